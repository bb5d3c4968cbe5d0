"""The CLI's consoles and output helpers (used by the cli package only; the library never prints).

Human progress and messages go to stderr; results go to stdout, either as a rich table or, with
``--json``, as one JSON object per line so that ``deblur ... --json | jq`` works.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

#: Progress bars, warnings and errors.
err = Console(stderr=True, highlight=False)
#: Results (tables). JSON lines are written to sys.stdout directly, unstyled.
out = Console(highlight=False)


def error_line(message: str) -> None:
    """Print one ``error: ...`` line on stderr."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn_line(message: str) -> None:
    """Print one ``warning: ...`` line on stderr."""
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def emit_json(obj: dict[str, Any]) -> None:
    """Write one JSON object as a line on stdout and flush (streams stay usable mid-run)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def human_size(n: float) -> str:
    """Bytes as a short human string (1.2 MB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def progress_bar(*extra: Any, elapsed: bool = False, disable: bool = False) -> Any:
    """The commands' progress bar on stderr: description, bar, done/total, the ``extra`` rich
    columns, then the time remaining (or the time elapsed); it disappears when done."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn() if elapsed else TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=disable,
    )
