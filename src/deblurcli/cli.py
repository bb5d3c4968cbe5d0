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


class SsimChoice(str, enum.Enum):
    skimage = "skimage"
    matlab = "matlab"


class BlurDirChoice(str, enum.Enum):
    blur = "blur"
    blur_gamma = "blur_gamma"


class SplitChoice(str, enum.Enum):
    test = "test"
    train = "train"


@app.command()
def evaluate(
    dataset: Annotated[
        Optional[Path],
        typer.Argument(
            help="Pair folder: GoPro (<root>/{train,test}/<scene>/{blur,blur_gamma,sharp}, or one split or "
            "scene folder), make-pairs (blurred/ + targets/), or blur/ + sharp/ (Levin's "
            "blur/imI_kernelK_img.png pairs with sharp/imI.png). Omit with --pred DIR --gt DIR.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Score this model's outputs: a registered name or a weights file."),
    ] = None,
    pred: Annotated[
        Optional[Path],
        typer.Option(
            help="Score existing predictions in DIR, matched to the dataset's pairs by name (DIR/<name>.*), "
            "or to --gt's files by relative path or stem.",
            show_default=False,
        ),
    ] = None,
    gt: Annotated[
        Optional[Path], typer.Option(help="Ground-truth folder for --pred when no dataset is given.", show_default=False)
    ] = None,
    identity: Annotated[
        bool, typer.Option("--identity", help="Score the blurred inputs themselves (the baseline row).")
    ] = False,
    ssim_convention: Annotated[
        SsimChoice,
        typer.Option(
            "--ssim",
            help="SSIM convention. 'matlab': MATLAB ssim() on the RGB array (one 3-D Gaussian window across "
            "rows, columns and colour planes), as the GoPro papers' evaluation scripts. 'skimage': "
            "per-channel Gaussian window sigma 1.5, data range 255, population covariance, as "
            "scikit-image's structural_similarity (Wang et al. 2004).",
        ),
    ] = SsimChoice.matlab,
    blur_dir: Annotated[
        BlurDirChoice, typer.Option(help="GoPro / flat layouts: the blurred sub-folder to read.")
    ] = BlurDirChoice.blur,
    split: Annotated[
        Optional[SplitChoice],
        typer.Option(help="GoPro root: the split to score [default: test when present, else train].", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'...")] = "auto",
    precision: Annotated[str, typer.Option(help="--model: 'auto', 'fp32', 'fp16' or 'bf16'.")] = "auto",
    tile: Annotated[
        Optional[int], typer.Option(min=64, help="--model: run in tiles of this size (less memory).", show_default=False)
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="--model: never download weights.")] = False,
    limit: Annotated[
        Optional[int], typer.Option(min=1, help="Score only the first N pairs (quick checks).", show_default=False)
    ] = None,
    rows_out: Annotated[
        Optional[Path],
        typer.Option("--rows", help="Write per-image rows to FILE: JSON lines for .jsonl, else CSV.", show_default=False),
    ] = None,
    report: Annotated[
        Optional[Path],
        typer.Option(
            help="Write a report folder: rows.csv, rows.jsonl, summary.json, best_worst.png (blurred | output | "
            "sharp of the best and worst images) and psnr_gain_hist.png.",
            show_default=False,
        ),
    ] = None,
    extremes: Annotated[int, typer.Option(min=1, help="--report: how many best and worst images to show.")] = 4,
    published: Annotated[
        Optional[bool],
        typer.Option(
            "--published/--no-published",
            help="Print published GoPro results beside ours (not measured by deblur) [default: for GoPro layouts].",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """PSNR and SSIM of deblurred images against ground truth, comparable with papers.

    Scores a model's outputs (--model), existing predictions (--pred), or the blurred inputs
    (--identity), on the images as saved (8-bit for 8-bit inputs), PSNR over RGB. Prints the mean
    and median, the gain over the blurred input and the seconds per image. Pairs with missing
    ground truth, unreadable files or mismatched sizes are reported and left out. Exit status: 0 all
    scored, 1 some pairs failed, 2 usage or dataset error.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from deblurcli.console import emit_json, err, error_line
    from deblurcli.errors import DatasetError, InputError

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    state: dict[str, object] = {}

    def on_progress(done: int, total: int, row: object) -> None:
        from deblurcli.evaluate import EvalRow

        assert isinstance(row, EvalRow)
        if "task" not in state:  # started on the first image: errors before it print cleanly
            progress.start()
            state["task"] = progress.add_task("scoring", total=total)
        if row.error:
            error_line(row.error)
        if json_out:
            emit_json(row.to_dict())
        progress.update(state["task"], completed=done, description=f"scoring {row.name}")  # type: ignore[arg-type]

    try:
        from deblurcli.evaluate import PUBLISHED_GOPRO, evaluate as run_evaluate

        try:
            result = run_evaluate(
                dataset,
                model=model,
                pred=pred,
                gt=gt,
                identity=identity,
                blur_dir=blur_dir.value,
                split=split.value if split else None,  # type: ignore[arg-type]
                ssim_convention=ssim_convention.value,
                device=device,
                precision=precision,
                tile=tile,
                offline=offline,
                limit=limit,
                extremes=extremes if report is not None else 0,
                on_progress=on_progress,
            )
        finally:
            if "task" in state:
                progress.stop()
    except (InputError, DatasetError) as e:
        raise _fail(str(e), 2) from None
    except DeblurError as e:
        raise _fail(str(e), 1) from None

    summary = dict(result.summary)
    show_published = published if published is not None else summary.get("layout") == "gopro"
    if show_published:
        summary["published_gopro"] = [dict(p, measured=False) for p in PUBLISHED_GOPRO]
    try:
        from deblurcli.evalreport import write_report, write_rows

        if rows_out is not None:
            write_rows(rows_out, result.rows)
        if report is not None:
            files = write_report(report, result, {k: v for k, v in summary.items() if k == "published_gopro"})
            if not json_out:
                err.print(f"report: {', '.join(str(f) for f in files)}", soft_wrap=True)
    except OSError as e:
        raise _fail(f"cannot write the report: {e}", 1) from None

    if json_out:
        emit_json(summary)
    else:
        _print_evaluation(summary, show_published)
    if result.failed:
        err.print(f"{len(result.scored)} scored, {len(result.failed)} failed (left out of the means)")
        raise typer.Exit(1)
    if not result.scored:
        raise _fail("nothing was scored", 1)


def _print_evaluation(s: dict, show_published: bool) -> None:
    """The summary table (and the published numbers, marked as such) on stdout."""
    from rich.table import Table

    from deblurcli.console import out

    def f(v: object, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    what = {"identity": "blurred input (identity)", "model": f"model {s.get('model')}", "pred": f"predictions {s.get('pred')}"}
    source = s.get("dataset") or s.get("gt")
    title = f"{what.get(str(s['what']), s['what'])} on {source} ({s['layout']}): {s['count']} images"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_row("mean", f(s["psnr"], ".3f"), f(s["ssim"], ".4f"))
    table.add_row("median", f(s["psnr_median"], ".3f"), f(s["ssim_median"], ".4f"))
    if s.get("input_psnr") is not None:
        table.add_row("blurred input, mean", f(s["input_psnr"], ".3f"), f(s["input_ssim"], ".4f"))
        table.add_row("gain over input, mean", f(s["psnr_gain"], "+.3f"), f(s["ssim_gain"], "+.4f"))
    out.print(table)
    timing = f"{s['seconds_per_image']:.3f} s per image in all" if s.get("seconds_per_image") is not None else ""
    if s.get("model_seconds_per_image") is not None:
        timing = f"model {s['model_seconds_per_image']:.3f} s per image, " + timing
    out.print(f"SSIM convention: {s['ssim_convention']} ({s['ssim_convention_text']}). {timing} on {s['device']}.")
    if s.get("capped"):
        out.print(f"{s['capped']} identical image(s) counted as {s['psnr_cap']:g} dB.")
    if show_published:
        pub = Table(
            title="Published GoPro test results (from the papers, NOT measured by deblur)",
            title_justify="left",
            caption="SSIM from each paper's own code, mostly MATLAB ssim (= --ssim matlab). "
            "* DeblurGAN reported CW-SSIM, not SSIM.",
            caption_justify="left",
        )
        pub.add_column("method")
        pub.add_column("PSNR (dB)", justify="right")
        pub.add_column("SSIM", justify="right")
        pub.add_column("note")
        for p in s.get("published_gopro", []):
            star = "*" if "CW-SSIM" in p["note"] else ""
            pub.add_row(p["method"], f"{p['psnr']:.2f}", f"{p['ssim']:.3f}{star}", p["note"])
        if s.get("layout") == "gopro":  # a side-by-side row only makes sense on GoPro itself
            pub.add_row(
                "[bold]this run (measured)[/]", f(s["psnr"], ".2f"), f(s["ssim"], ".3f"), f"--ssim {s['ssim_convention']}"
            )
        out.print(pub)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
