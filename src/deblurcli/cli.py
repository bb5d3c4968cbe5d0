"""The ``deblur`` command: a thin typer layer over the library.

Each command parses options, calls library functions, and renders with rich. Library modules that
need torch are imported inside the command functions, so ``deblur --help`` stays fast and torch-free.
Exit codes: 0 all done, 1 some items failed (the others were processed), 2 usage error.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli import __version__
from deblurcli.errors import DeblurError

app = typer.Typer(
    name="deblur",
    help=(
        "Blind motion deblurring for photos, and the research pipeline behind it.\n\n"
        "Blur score = variance of the 4-neighbour Laplacian [[0,1,0],[1,-4,1],[0,1,0]] of the 8-bit "
        "luma (higher is sharper)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deblur {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Blind motion deblurring for photos, and the research pipeline behind it."""


# Options shared by several commands (one definition, the same spelling everywhere).
InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders, or quoted glob patterns (e.g. 'photos/*.jpg', expanded by deblur).",
        show_default=False,
    ),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine output: one JSON object per line on stdout (no table).")
]


class SortKey(str, enum.Enum):
    name = "name"
    score = "score"


def _fail(message: str, code: int = 1) -> typer.Exit:
    from deblurcli.console import error_line

    error_line(message)
    return typer.Exit(code)


@app.command()
def score(
    inputs: InputsArg,
    recursive: RecursiveOpt = False,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Verdict threshold: below it an image is called 'blurry'. 100 is the common "
            "variance-of-Laplacian rule of thumb for ~0.5-1 MP photos (pyimagesearch, 2015); scores "
            "scale with resolution, so calibrate it on your own photos.",
        ),
    ] = 100.0,
    sort: Annotated[
        SortKey, typer.Option(help="Table order: 'name' (file order) or 'score' (blurriest first).")
    ] = SortKey.name,
    max_side: Annotated[
        Optional[int],
        typer.Option(
            min=8,
            help="Score a copy downscaled so its longer side is at most this many pixels "
            "(faster; scores then compare only with scores taken at the same size).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Blur score of each image: variance of the Laplacian of the 8-bit luma at full resolution.

    The score equals cv2.Laplacian(gray, cv2.CV_64F).var() with gray the BT.601 luma. Higher is
    sharper. Exit status: 0 all scored, 1 some files failed (the others are still scored), 2 usage.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from deblurcli.blur import score_image
    from deblurcli.console import emit_json, err, error_line, out
    from deblurcli.images import read_image
    from deblurcli.inputs import expand_inputs

    items = expand_inputs(inputs, recursive=recursive)
    rows: list[dict[str, object]] = []
    failed = 0
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=len(items) < 2,
    )
    with progress:
        task = progress.add_task("scoring", total=len(items))
        for item in items:
            name = str(item.path)
            progress.update(task, description=f"scoring {item.path.name}")
            try:
                if item.error:
                    raise DeblurError(f"{name}: {item.error}")
                image = read_image(item.path)
                value = score_image(image, max_side=max_side)
            except DeblurError as e:
                failed += 1
                error_line(str(e))  # same console as the progress bar: printed above it
                if json_out:
                    emit_json({"path": name, "error": str(e).removeprefix(f"{name}: ")})
            else:
                row = {
                    "path": name,
                    "score": round(value, 4),
                    "width": image.width,
                    "height": image.height,
                    "verdict": "blurry" if value < threshold else "sharp",
                    "threshold": threshold,
                }
                if max_side is not None:
                    row["max_side"] = max_side
                rows.append(row)
                if json_out:
                    emit_json(row)
            progress.advance(task)

    if not json_out and rows:
        if sort is SortKey.score:
            rows.sort(key=lambda r: float(r["score"]))  # type: ignore[arg-type]
        title = f"Blur score (variance of Laplacian; < {threshold:g} = blurry)"
        if max_side is not None:
            title += f", scored at max side {max_side}px"
        table = Table(title=title, title_justify="left")
        table.add_column("file", overflow="fold")
        table.add_column("size", justify="right")
        table.add_column("score", justify="right")
        table.add_column("verdict")
        for r in rows:
            style = "red" if r["verdict"] == "blurry" else "green"
            table.add_row(
                str(r["path"]), f"{r['width']}x{r['height']}", f"{r['score']:.1f}", f"[{style}]{r['verdict']}[/]"
            )
        out.print(table)
    if failed:
        err.print(f"{len(rows)} scored, {failed} failed")
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
