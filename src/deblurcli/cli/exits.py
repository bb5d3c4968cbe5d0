"""Errors into exit codes and one-line messages: the one place where the CLI decides them.

Exit codes: 0 all done, 1 some items failed (the others were processed) or a failure the command
line cannot fix (the network), 2 usage error (something on the command line cannot be used as
given), 130 interrupted (Ctrl-C). Imports :mod:`deblurcli.console` and :mod:`deblurcli.errors` only.
"""

from __future__ import annotations

import typer

from deblurcli.errors import DeblurError

#: What an interrupted command says about going on (outputs are written atomically and kept).
_RESUME_HINTS = {
    "fix": "; run the same command again to resume (finished files are kept and skipped)",
    "make-pairs": "; run the same command again to resume (finished pairs are kept)",
    "train": "; run the same command with --resume to continue from the last checkpoint",
}


def interrupted(command: str | None) -> typer.Exit:
    """Ctrl-C: one line saying what to do next, exit status 130 (128 + SIGINT), as shells do."""
    from deblurcli.console import error_line

    hint = _RESUME_HINTS.get(command or "", "")
    error_line(f"interrupted{hint}")
    return typer.Exit(130)


def _fail(message: str, code: int = 1) -> typer.Exit:
    from deblurcli.console import error_line

    error_line(message)
    return typer.Exit(code)


def _setup_exit_code(e: DeblurError) -> int:
    """The exit status of an error that stops a command before any item is processed: 2 (usage:
    something on the command line cannot be used as given), except 1 for the network, which the
    command line cannot fix (README, "Exit status")."""
    from deblurcli.errors import NetworkError

    return 1 if isinstance(e, NetworkError) else 2


def _os_reason(e: OSError) -> str:
    """An OSError as one line: the OS's reason and the path it names."""
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}"
