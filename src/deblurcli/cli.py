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


@app.command("make-pairs")
def make_pairs_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders or quoted globs (e.g. 'videos/*.mp4'); with --from-stills, photos.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder: blurred/, targets/ and pairs.jsonl.")
    ],
    frames: Annotated[
        int,
        typer.Option(
            min=2,
            help="M, consecutive frames averaged per pair. The target is frame M//2 of the window "
            "(0-based): the middle one for odd M; for even M the later of the two middle frames "
            "(frame 4 of 0..7 for M=8).",
        ),
    ] = 8,
    gamma: Annotated[
        float, typer.Option(min=0.1, help="Frames are averaged in linear light: x^gamma, mean, then x^(1/gamma).")
    ] = 2.2,
    samples: Annotated[
        Optional[int],
        typer.Option(min=1, help="Pairs per video, spread over its usable windows (default 100 per video, 1 per still)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the window choice and of the stills' camera paths.")] = 0,
    max_side: Annotated[
        Optional[int], typer.Option(min=16, help="Downscale frames so the longer side is at most this many pixels.")
    ] = None,
    interpolate: Annotated[
        int,
        typer.Option(
            min=0,
            help="Insert K optical-flow (OpenCV DIS) frames between neighbours before averaging, so "
            "low-fps video gives continuous blur instead of ghost copies (0 = off, the paper's method).",
        ),
    ] = 0,
    from_stills: Annotated[
        bool,
        typer.Option(
            "--from-stills",
            help="Inputs are photos: render a virtual video along a random curved camera path "
            "(homography per sub-frame, optional moving foreground patches) and average it.",
        ),
    ] = False,
    max_blur: Annotated[
        float, typer.Option(min=1.0, help="--from-stills: longest blur streak, in pixels at the output size.")
    ] = 60.0,
    moving_objects: Annotated[
        bool, typer.Option("--moving-objects/--no-moving-objects", help="--from-stills: independently moving patches.")
    ] = True,
    cut_threshold: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Scene cut: a frame's content score divided by the mean of its 2+2 neighbours' must "
            "reach this (adaptive test)...",
        ),
    ] = 3.0,
    cut_min_score: Annotated[
        float, typer.Option(min=0.0, help="... and its content score (0-255 HSV difference) this floor.")
    ] = 15.0,
    max_luma_shift: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Flash/fade: reject a window when any frame's mean luma differs from the target's by "
            "more than this (0-255).",
        ),
    ] = 12.0,
    static_ratio: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Static: reject when blur score(blurred) > this x blur score(target) (variance of the "
            "Laplacian; lower = blurrier).",
        ),
    ] = 0.9,
    min_motion: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Static: reject when fewer than this fraction of pixels change by >10 luma levels "
            "between the window's first and last frames.",
        ),
    ] = 0.01,
    recursive: RecursiveOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Make blur/sharp training pairs from videos (or photos with --from-stills).

    Each pair averages M consecutive frames in linear light (the blurred image) against the
    window's target frame. Windows spanning a scene cut (adaptive detector), a flash or fade
    (luma tests), or static ones (blurred barely blurrier than the target) are rejected and counted
    by reason. Writes OUTPUT/blurred/NAME.png, OUTPUT/targets/NAME.png and OUTPUT/pairs.jsonl;
    a rerun keeps existing pairs. Exit status: 0 all inputs done, 1 some failed, 2 usage.
    """
    import statistics

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from deblurcli.console import emit_json, err, error_line, out
    from deblurcli.inputs import expand_inputs
    from deblurcli.pairs import PairsConfig, PairsProgress, expand_video_inputs, make_pairs

    try:
        cfg = PairsConfig(
            frames=frames, gamma=gamma, samples=samples, seed=seed, max_side=max_side,
            interpolate=interpolate, cut_threshold=cut_threshold, cut_min_score=cut_min_score,
            max_luma_shift=max_luma_shift, static_ratio=static_ratio, min_motion=min_motion,
            max_blur=max_blur, moving_objects=moving_objects,
        )
    except ValueError as e:
        raise _fail(str(e), 2) from None
    items = expand_inputs(inputs, recursive=recursive) if from_stills else expand_video_inputs(inputs, recursive=recursive)

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[int, object] = {}
    reported: set[int] = set()

    def on_progress(p: PairsProgress) -> None:
        if p.index not in tasks:
            label = f"[{p.index + 1}/{p.inputs}] {Path(p.source).name}"
            tasks[p.index] = progress.add_task(label, total=p.frames_total, info="")
        task = tasks[p.index]
        info = f"{p.pairs_written} written, {p.pairs_kept} kept, {p.rejected} rejected"
        if from_stills:
            progress.update(task, total=1, completed=1 if p.done else 0, info=info)  # type: ignore[arg-type]
        else:
            progress.update(task, total=p.frames_total, completed=p.frames_decoded, info=info)  # type: ignore[arg-type]
        if p.done and p.index not in reported:
            reported.add(p.index)
            if p.frames_total is not None:
                progress.update(task, completed=p.frames_total)  # type: ignore[arg-type]
            if p.error:
                error_line(p.error)  # same console as the bar: printed above it, as it happens

    try:
        with progress:
            report = make_pairs(items, output, cfg, from_stills=from_stills, on_progress=on_progress)
    except DeblurError as e:
        raise _fail(str(e), 1) from None

    for r in report.results:
        if json_out:
            emit_json(r.to_json())
    totals = report.totals()
    if json_out:
        emit_json({"summary": totals, "output": str(output)})
    else:
        table = Table(title=f"Pairs in {output}", title_justify="left")
        for col, just in (("input", "left"), ("frames", "right"), ("written", "right"), ("kept", "right"),
                          ("cut", "right"), ("flash", "right"), ("fade", "right"), ("static", "right"),
                          ("blur ratio (median)", "right")):
            table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
        for r in report.results:
            rej = r.rejected or {}
            med = f"{statistics.median(r.blur_ratio):.3f}" if r.blur_ratio else "-"
            table.add_row(
                Path(r.source).name if not r.error else f"[red]{Path(r.source).name} (failed)[/]",
                str(r.frames) if r.kind == "video" else "-",
                str(r.pairs_written), str(r.pairs_kept),
                *(str(rej.get(k, 0)) if r.kind == "video" else "-" for k in ("cut", "flash", "fade", "static")),
                med,
            )
        out.print(table)
        line = (f"{totals['pairs_written']} pairs written, {totals['pairs_kept']} kept, "
                f"{totals['windows_examined']} windows examined")
        rb = totals.get("blur_ratio")
        if isinstance(rb, dict):
            line += f"; blur score ratio blurred/target: median {rb['median']}, max {rb['max']}"
        bp = totals.get("blur_px")
        if isinstance(bp, dict):
            line += (f"; blur length px: min {bp['min']}, p10 {bp['p10']}, median {bp['median']}, "
                     f"p90 {bp['p90']}, max {bp['max']}")
        out.print(line)
    if report.failed:
        err.print(f"{len(report.results) - report.failed} inputs done, {report.failed} failed")
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
