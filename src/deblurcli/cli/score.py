"""``deblur score``: the blur score of each image (variance of the Laplacian)."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from deblurcli.cli.app import app
from deblurcli.cli.options import InputsArg, JsonOpt, RecursiveOpt
from deblurcli.errors import DeblurError


class SortKey(str, enum.Enum):
    name = "name"
    score = "score"


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
    from rich.table import Table

    from deblurcli.blur import score_image
    from deblurcli.console import emit_json, err, error_line, out, progress_bar
    from deblurcli.images import read_image
    from deblurcli.inputs import expand_inputs
    from deblurcli.video import is_video

    items = expand_inputs(inputs, recursive=recursive)
    rows: list[dict[str, object]] = []
    failed = 0
    progress = progress_bar(disable=len(items) < 2)
    with progress:
        task = progress.add_task("scoring", total=len(items))
        for item in items:
            name = str(item.path)
            progress.update(task, description=f"scoring {item.path.name}")
            try:
                if item.error:
                    raise DeblurError(f"{name}: {item.error}")
                if is_video(item.path):  # folders and globs skip videos; one named here is refused
                    raise DeblurError(f"{name}: a video; deblur score takes images "
                                      "(deblur fix --json gives a video's blur score on sampled frames)")
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

