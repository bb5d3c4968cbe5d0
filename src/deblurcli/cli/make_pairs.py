"""``deblur make-pairs``: blur/sharp training pairs from videos, or from photos with --from-stills.

The command-specific options are the aliases below (one per option, with its help text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli import MAX_SEED
from deblurcli.cli.app import app
from deblurcli.cli.exits import _fail
from deblurcli.cli.options import JsonOpt, RecursiveOpt
from deblurcli.errors import DeblurError

VideoInputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Video files, folders or quoted globs (e.g. 'videos/*.mp4'); with --from-stills, photos.",
        show_default=False,
    ),
]
PairsOutputOpt = Annotated[
    Path, typer.Option("--output", "-o", help="Output folder: blurred/, targets/ and pairs.jsonl.")
]
FramesOpt = Annotated[
    int,
    typer.Option(
        min=2,
        help="M, consecutive frames averaged per pair. The target is frame M//2 of the window "
        "(0-based): the middle one for odd M; for even M the later of the two middle frames "
        "(frame 4 of 0..7 for M=8).",
    ),
]
GammaOpt = Annotated[
    float, typer.Option(min=0.1, help="Frames are averaged in linear light: x^gamma, mean, then x^(1/gamma).")
]
SamplesOpt = Annotated[
    Optional[int],
    typer.Option(min=1, help="Pairs per video, spread over its usable windows (default 100 per video, 1 per still)."),
]
SeedOpt = Annotated[
    int, typer.Option(min=0, max=MAX_SEED, help="Seed of the window choice and of the stills' camera paths.")
]
MaxSideOpt = Annotated[
    Optional[int], typer.Option(min=16, help="Downscale frames so the longer side is at most this many pixels.")
]
InterpolateOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Insert K optical-flow (OpenCV DIS) frames between neighbours before averaging, so "
        "low-fps video gives continuous blur instead of ghost copies (0 = off, the paper's method).",
    ),
]
FromStillsOpt = Annotated[
    bool,
    typer.Option(
        "--from-stills",
        help="Inputs are photos: render a virtual video along a random curved camera path "
        "(homography per sub-frame, optional moving foreground patches) and average it.",
    ),
]
MaxBlurOpt = Annotated[
    float, typer.Option(min=1.0, help="--from-stills: longest blur streak, in pixels at the output size.")
]
MovingObjectsOpt = Annotated[
    bool, typer.Option("--moving-objects/--no-moving-objects", help="--from-stills: independently moving patches.")
]
CutThresholdOpt = Annotated[
    float,
    typer.Option(
        min=1.0,
        help="Scene cut: a frame's content score divided by the mean of its 2+2 neighbours' must "
        "reach this (adaptive test)...",
    ),
]
CutMinScoreOpt = Annotated[
    float, typer.Option(min=0.0, help="... and its content score (0-255 HSV difference) this floor.")
]
MaxLumaShiftOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Flash/fade: reject a window when any frame's mean luma differs from the target's by "
        "more than this (0-255).",
    ),
]
StaticRatioOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Static: reject when blur score(blurred) > this x blur score(target) (variance of the "
        "Laplacian; lower = blurrier).",
    ),
]
MinMotionOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Static: reject when fewer than this fraction of pixels change by >10 luma levels "
        "between the window's first and last frames.",
    ),
]


@app.command("make-pairs")
def make_pairs_cmd(
    inputs: VideoInputsArg,
    output: PairsOutputOpt,
    frames: FramesOpt = 8,
    gamma: GammaOpt = 2.2,
    samples: SamplesOpt = None,
    seed: SeedOpt = 0,
    max_side: MaxSideOpt = None,
    interpolate: InterpolateOpt = 0,
    from_stills: FromStillsOpt = False,
    max_blur: MaxBlurOpt = 60.0,
    moving_objects: MovingObjectsOpt = True,
    cut_threshold: CutThresholdOpt = 3.0,
    cut_min_score: CutMinScoreOpt = 15.0,
    max_luma_shift: MaxLumaShiftOpt = 12.0,
    static_ratio: StaticRatioOpt = 0.9,
    min_motion: MinMotionOpt = 0.01,
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
    from rich.progress import TextColumn

    from deblurcli.console import emit_json, err, error_line, progress_bar, warn_line
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
    from deblurcli.inputs import output_folder_problem

    problem = output_folder_problem(output)
    if problem:
        raise _fail(f"--output {problem}", 2)
    # OUT is never an input: `make-pairs --from-stills photos -r -o photos/pairs`, run again, must
    # not take its own pairs for photos.
    if from_stills:
        items = expand_inputs(inputs, recursive=recursive, exclude=[output])
    else:
        items = expand_video_inputs(inputs, recursive=recursive, exclude=[output])

    progress = progress_bar(TextColumn("{task.fields[info]}"))
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
            if p.warning:
                warn_line(p.warning)

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
        _print_pairs_table(report.results, totals, output)
    if report.failed:
        err.print(f"{len(report.results) - report.failed} inputs done, {report.failed} failed")
        raise typer.Exit(1)


def _print_pairs_table(results: list, totals: dict, output: Path) -> None:  # type: ignore[type-arg]
    """The table of inputs (frames, pairs, rejections by reason) and the totals line, on stdout."""
    import statistics

    from rich.table import Table

    from deblurcli.console import out

    table = Table(title=f"Pairs in {output}", title_justify="left")
    for col, just in (("input", "left"), ("frames", "right"), ("written", "right"), ("kept", "right"),
                      ("cut", "right"), ("flash", "right"), ("fade", "right"), ("static", "right"),
                      ("blur ratio (median)", "right")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in results:
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
