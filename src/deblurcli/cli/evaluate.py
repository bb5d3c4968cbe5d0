"""``deblur evaluate``: PSNR and SSIM against ground truth, comparable with papers.

The command-specific options are the aliases below (one per option, with its help text).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli.cli.app import app
from deblurcli.cli.exits import _fail, _setup_exit_code
from deblurcli.cli.options import PRECISION_HELP, JsonOpt, LinearOpt, OfflineOpt, Precision, ThreadsOpt
from deblurcli.errors import DeblurError


class SsimChoice(str, enum.Enum):
    skimage = "skimage"
    matlab = "matlab"


class BlurDirChoice(str, enum.Enum):
    blur = "blur"
    blur_gamma = "blur_gamma"


class SplitChoice(str, enum.Enum):
    test = "test"
    train = "train"


DatasetArg = Annotated[
    Optional[Path],
    typer.Argument(
        help="Pair folder: GoPro (<root>/{train,test}/<scene>/{blur,blur_gamma,sharp}, or one split or "
        "scene folder), make-pairs (blurred/ + targets/), or blur/ + sharp/ (Levin's "
        "blur/imI_kernelK_img.png pairs with sharp/imI.png). Omit with --pred DIR --gt DIR.",
        show_default=False,
    ),
]
EvalModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Score this model's outputs: a registered name (see `deblur models`), a .safetensors file, "
        "or hf://owner/repo/file.safetensors@revision.",
        show_default=False,
    ),
]
PredOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Score existing predictions in DIR, matched to the dataset's pairs by name (DIR/<name>.*), "
        "or to --gt's files by relative path or stem.",
        show_default=False,
    ),
]
GtOpt = Annotated[
    Optional[Path], typer.Option(help="Ground-truth folder for --pred when no dataset is given.", show_default=False)
]
IdentityOpt = Annotated[
    bool, typer.Option("--identity", help="Score the blurred inputs themselves (the baseline row).")
]
SsimOpt = Annotated[
    SsimChoice,
    typer.Option(
        "--ssim",
        help="SSIM convention. 'matlab': MATLAB ssim() on the RGB array (one 3-D Gaussian window across "
        "rows, columns and colour planes), as the GoPro papers' evaluation scripts. 'skimage': "
        "per-channel Gaussian window sigma 1.5, data range 255, population covariance, as "
        "scikit-image's structural_similarity (Wang et al. 2004).",
    ),
]
BlurDirOpt = Annotated[
    BlurDirChoice, typer.Option(help="GoPro / flat layouts: the blurred sub-folder to read.")
]
SplitOpt = Annotated[
    Optional[SplitChoice],
    typer.Option(help="GoPro root: the split to score. Default: test when present, else train.", show_default=False),
]
EvalDeviceOpt = Annotated[str, typer.Option(help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'...")]
EvalPrecisionOpt = Annotated[Precision, typer.Option(help="--model: " + PRECISION_HELP)]
EvalTileOpt = Annotated[
    Optional[int],
    typer.Option(
        min=0,
        help="--model: tile side in pixels (less memory); 0 = never tile. Default: whole image if it fits.",
        show_default=False,
    ),
]
LimitOpt = Annotated[
    Optional[int], typer.Option(min=1, help="Score only the first N pairs (quick checks).", show_default=False)
]
RowsOpt = Annotated[
    Optional[Path],
    typer.Option("--rows", help="Write per-image rows to FILE: JSON lines for .jsonl, else CSV.", show_default=False),
]
ReportOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Write a report folder: rows.csv, rows.jsonl, summary.json, best_worst.png (blurred | output | "
        "sharp of the best and worst images) and psnr_gain_hist.png.",
        show_default=False,
    ),
]
ExtremesOpt = Annotated[int, typer.Option(min=1, help="--report: how many best and worst images to show.")]
AlignOpt = Annotated[
    int,
    typer.Option(
        min=0,
        metavar="PX",
        help="Score each output, and each blurred input, at the integer shift of up to PX pixels that fits "
        "the ground truth best, on the area PX pixels inside the borders: the convention of camera-shake "
        "benchmarks, whose blurred images are offset from the ground truth (Levin et al. 2009: use 5). "
        "0 = no shift.",
    ),
]
PublishedOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--published/--no-published",
        help="Print published GoPro results beside ours (marked: not measured by deblur). Default: on for GoPro layouts.",
        show_default=False,
    ),
]


@app.command()
def evaluate(
    dataset: DatasetArg = None,
    model: EvalModelOpt = None,
    pred: PredOpt = None,
    gt: GtOpt = None,
    identity: IdentityOpt = False,
    ssim_convention: SsimOpt = SsimChoice.matlab,
    blur_dir: BlurDirOpt = BlurDirChoice.blur,
    split: SplitOpt = None,
    device: EvalDeviceOpt = "auto",
    precision: EvalPrecisionOpt = Precision.auto,
    threads: ThreadsOpt = 0,
    tile: EvalTileOpt = None,
    linear: LinearOpt = False,
    offline: OfflineOpt = False,
    limit: LimitOpt = None,
    rows_out: RowsOpt = None,
    report: ReportOpt = None,
    extremes: ExtremesOpt = 4,
    align: AlignOpt = 0,
    published: PublishedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """PSNR and SSIM of deblurred images against ground truth, comparable with papers.

    Scores a model's outputs (--model), existing predictions (--pred), or the blurred inputs
    (--identity), on the images as saved (8-bit for 8-bit inputs), PSNR over RGB. Prints the mean
    and median, the gain over the blurred input and the seconds per image. Pairs with missing
    ground truth, unreadable files or mismatched sizes are reported and left out. Exit status: 0 all
    scored, 1 some pairs failed, 2 usage or dataset error.
    """

    from deblurcli.console import emit_json, err, error_line, progress_bar
    from deblurcli.errors import DatasetError, InputError, ModelError

    progress = progress_bar()
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
                precision=precision.value,
                tile=tile,
                offline=offline,
                limit=limit,
                extremes=extremes if report is not None else 0,
                align=align,
                linear=linear,
                threads=threads,
                on_progress=on_progress,
            )
        finally:
            if "task" in state:
                progress.stop()
    except (InputError, DatasetError, ModelError) as e:
        raise _fail(str(e), _setup_exit_code(e)) from None
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
    except (OSError, DeblurError) as e:  # atomic writes raise ImageError naming the file
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
    if s.get("linear"):
        title += " (run on linear light: --linear)"
    out.print(title, soft_wrap=True)  # above the table: a table title would wrap to its width
    table = Table()
    table.add_column("")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_row("mean", f(s["psnr"], ".3f"), f(s["ssim"], ".4f"))
    table.add_row("median", f(s["psnr_median"], ".3f"), f(s["ssim_median"], ".4f"))
    if s.get("input_psnr") is not None:
        table.add_row("blurred input, mean", f(s["input_psnr"], ".3f"), f(s["input_ssim"], ".4f"))
        table.add_row("gain over input, mean", f(s["psnr_gain"], "+.3f"), f(s["ssim_gain"], "+.4f"))
    out.print(table)
    if s.get("level_shift") is not None:
        shift = f"Mean level vs ground truth (8-bit levels): output {s['level_shift']:+.2f}"
        if s.get("input_level_shift") is not None:
            shift += f", blurred input {s['input_level_shift']:+.2f}"
        out.print(shift + ".")
    timing = f"{s['seconds_per_image']:.3f} s per image in all" if s.get("seconds_per_image") is not None else ""
    if s.get("model_seconds_per_image") is not None:
        timing = f"model {s['model_seconds_per_image']:.3f} s per image, " + timing
    out.print(f"SSIM convention: {s['ssim_convention']} ({s['ssim_convention_text']}). {timing} on {s['device']}.")
    if s.get("align"):
        out.print(f"Aligned: each image scored at its best integer shift within ±{s['align']} px, {s['align']} px inside the borders.")
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

