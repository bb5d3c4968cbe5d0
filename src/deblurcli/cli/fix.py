"""``deblur fix``: deblur images and videos into an output folder, keeping their format and metadata.

The command's steps: check the options, plan every output (:func:`_plan_outputs`), then for each
input decide whether it can and should be written (:func:`_target_problem`), load the model on
first use (:class:`_Model`), deblur and write it (:func:`_deblur_file` for photos,
:func:`deblurcli.cli.fix_video.deblur_video_file` for videos), and render the table.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli.cli.app import app
from deblurcli.cli.exits import _fail, _os_reason, _setup_exit_code
from deblurcli.cli.fix_video import codec_problem, deblur_video_file, parse_frames, video_line, video_row, video_suffix
from deblurcli.cli.options import (
    PRECISION_HELP,
    InputsArg,
    JsonOpt,
    LinearOpt,
    ModelOpt,
    OfflineOpt,
    Precision,
    RecursiveOpt,
    ThreadsOpt,
)
from deblurcli.errors import DeblurError


class OutFormat(str, enum.Enum):
    keep = "keep"
    jpeg = "jpeg"
    png = "png"
    tiff = "tiff"
    webp = "webp"
    bmp = "bmp"


#: File extension written for each --format choice.
_FORMAT_EXT = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}


FixOutputOpt = Annotated[
    Path,
    typer.Option("--output", "-o", help="Output folder (created if missing); input folder trees are mirrored in it."),
]
SuffixOpt = Annotated[str, typer.Option(help="Added to each output file name before the extension, e.g. _sharp.")]
FormatOpt = Annotated[
    OutFormat, typer.Option("--format", help="Output format of photos; 'keep' writes each file in its input's format.")
]
QualityOpt = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality of written files.")]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Allow an output to replace its input file (e.g. -o on the input folder).")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Redo outputs that already exist (by default they are skipped, so a run resumes).")
]
CompareOpt = Annotated[
    bool,
    typer.Option("--compare", help="Also write NAME_compare.EXT: the input and the result side by side (for a video, a second video: each frame's input left, result right as it plays, same timing and sound)."),
]
CrfOpt = Annotated[
    int,
    typer.Option("--crf", min=0, max=63, help="Videos: constant rate factor of x264/x265/VP9/AV1 (lower = better; 18 is visually lossless for x264)."),
]
CodecOpt = Annotated[
    str, typer.Option("--codec", help="Videos: the FFmpeg video encoder (libx264, libx265, libvpx-vp9, mpeg4, ...).")
]
FramesOpt = Annotated[
    Optional[str],
    typer.Option("--frames", help="Videos: only frames A:B (0-based, B excluded; A: to the end), shifted to start at 0.", show_default=False),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.")]
TileOpt = Annotated[
    Optional[int],
    typer.Option(min=0, help="Tile side in pixels for large images (default: from available memory; 0 = never tile).", show_default=False),
]
TileOverlapOpt = Annotated[int, typer.Option(min=0, help="Pixels shared by neighbouring tiles, blended.")]


@app.command()
def fix(
    inputs: InputsArg,
    output: FixOutputOpt,
    model: ModelOpt = None,
    recursive: RecursiveOpt = False,
    suffix: SuffixOpt = "",
    out_format: FormatOpt = OutFormat.keep,
    quality: QualityOpt = 95,
    overwrite: OverwriteOpt = False,
    force: ForceOpt = False,
    compare: CompareOpt = False,
    device: DeviceOpt = "auto",
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.auto,
    threads: ThreadsOpt = 0,
    tile: TileOpt = None,
    tile_overlap: TileOverlapOpt = 32,
    linear: LinearOpt = False,
    crf: CrfOpt = 18,
    codec: CodecOpt = "libx264",
    frames: FramesOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Deblur images and videos with a Laplacian-conditioned generator; write them to OUT with their metadata.

    Each output keeps its input's size, format (unless --format), bit depth, alpha, EXIF and ICC
    profile. Videos (.mp4 .mov .mkv .webm .avi .m4v .mts .m2ts) are re-encoded with --codec at --crf,
    every frame deblurred, keeping audio (copied), timestamps, rotation, colour tags and metadata;
    the same container where it holds the codec, else .mp4 or .mkv. Existing outputs are skipped
    (use --force to redo them); an input is never written over unless --overwrite. The blur score
    (variance of the Laplacian of the 8-bit luma; higher is sharper) is shown before -> after (of the
    written file; for videos, the median of sampled frames). For camera shake (the same streak
    across the whole photo), --model blind estimates the streak and undoes it, with no weights.
    Exit status: 0 all done, 1 some files failed (the others are still processed), 2 usage error
    (bad option, codec or model, an -o that cannot be a folder).
    """
    from rich.progress import TextColumn

    from deblurcli.console import emit_json, err, error_line, progress_bar
    from deblurcli.images import EXTENSIONS
    from deblurcli.inputs import expand_inputs
    from deblurcli.registry import DEFAULT_MODEL
    from deblurcli.video import VIDEO_EXTENSIONS, is_video

    frame_range = _checked_options(output, tile, tile_overlap, suffix, frames)
    model_spec = model or DEFAULT_MODEL
    # OUT is never an input: a rerun of `fix DIR -r -o DIR/out` must not fix its own outputs.
    items = expand_inputs(inputs, recursive=recursive, exclude=[output], kind="image or video",
                          extensions={*EXTENSIONS, *VIDEO_EXTENSIONS})
    videos = any(is_video(i.path) for i in items if not i.error)
    if videos or codec != "libx264":
        problem = codec_problem(codec)
        if problem:
            raise _fail(problem, 2)
    input_paths = {i.path.resolve() for i in items if not i.error}
    fmt = None if out_format is OutFormat.keep else out_format.value.upper()
    targets = _plan_outputs(items, output, suffix, _FORMAT_EXT[out_format.value] if fmt else None, compare, codec)

    loader = _Model(
        model_spec, device=device, precision=precision.value, tile=tile,
        tile_overlap=tile_overlap, offline=offline, linear=linear, threads=threads,
    )

    rows: list[dict[str, object]] = []
    failed = skipped = 0
    progress = progress_bar(TextColumn("{task.fields[info]}"), elapsed=True)
    with progress:
        task = progress.add_task("fixing", total=len(items), info="")
        tiles = progress.add_task("", total=None, visible=False, info="")
        for item in items:
            name = str(item.path)
            progress.update(task, description=f"fixing {item.path.name}")
            try:
                if item.error:
                    raise DeblurError(f"{name}: {item.error}")
                target, problem = targets[id(item)]
                if problem:
                    raise DeblurError(f"{name}: {problem}")
                _target_problem(name, target, input_paths, overwrite)
                if target.exists() and not force and target.resolve() not in input_paths:
                    skipped += 1
                    row = {"path": name, "output": str(target), "status": "skipped", "kind": _kind(item),
                           "reason": "output exists (use --force to redo)"}
                    if json_out:
                        emit_json(row)
                    progress.advance(task)
                    continue
                try:
                    d = loader.get()
                except DeblurError as e:
                    # No file can succeed without a model: stop. Problems fixed on the command line
                    # (unknown name, no weights for it, a file that is not a model, device/precision)
                    # are usage errors; an unreachable Hub is not.
                    progress.stop()
                    error_line(str(e))
                    raise typer.Exit(_setup_exit_code(e)) from None
                if is_video(item.path):
                    video = deblur_video_file(d, item, target, progress, tiles, codec=codec, crf=crf, frames=frame_range,
                                              compare=_compare_path(target) if compare else None)
                else:
                    video = None
                    image, before, after, seconds = _deblur_file(d, item, target, progress, tiles, fmt, quality, compare)
            except (DeblurError, OSError) as e:
                # One file's failure (including the OS refusing one of its paths) is that file's only.
                message = str(e) if isinstance(e, DeblurError) else f"{name}: {_os_reason(e)}"
                failed += 1
                progress.console.print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
                if json_out:
                    emit_json({"path": name, "status": "failed", "kind": _kind(item), "error": message.removeprefix(f"{name}: ")})
            else:
                if video is not None:
                    row, line = video_row(name, video, d.info.name, linear), video_line(item.path.name, video)
                else:
                    row = _done_row(name, target, image, before, after, seconds, d.info.name, linear)
                    line = f"{item.path.name}  blur score {before:.1f} -> {after:.1f}  ({seconds:.1f} s)"
                    # A classical model says when it kept the photo: no kernel it could trust.
                    if getattr(d.model, "last_kernels", None) == [None]:
                        row["kept"] = True
                        line += "  kept as it was: no single camera-shake streak found"
                rows.append(row)
                if json_out:
                    emit_json(row)
                progress.console.print(_escape(line), highlight=False)
            progress.advance(task)

    if not json_out and rows:
        _print_fix_table(rows)
    summary = f"{len(rows)} fixed, {skipped} skipped (output exists), {failed} failed; outputs in {output}"
    err.print(summary, highlight=False)
    if failed:
        raise typer.Exit(1)


def _checked_options(output: Path, tile: Optional[int], tile_overlap: int, suffix: str,
                     frames: Optional[str]) -> Optional[tuple[int, Optional[int]]]:
    """Exit 2 on an option that cannot be used as given; returns the parsed --frames."""
    from deblurcli.inputs import output_folder_problem

    problem = output_folder_problem(output)
    if problem:
        raise _fail(f"--output {problem}", 2)
    if tile and tile_overlap * 2 >= tile:
        raise _fail(f"--tile-overlap ({tile_overlap}) must be less than half of --tile ({tile})", 2)
    if any(c in suffix for c in "/\\\0"):
        raise _fail(f"--suffix must not contain path separators: {suffix!r}", 2)
    try:
        return parse_frames(frames)
    except ValueError as e:
        raise _fail(str(e), 2) from None


class _Model:
    """The Deblurrer, loaded on first use: a resumed run whose outputs all exist needs no model."""

    def __init__(self, spec: str, **options: object) -> None:
        self.spec, self.options = spec, options
        self.deblurrer = None

    def get(self):  # type: ignore[no-untyped-def]
        """The Deblurrer (loaded, and its first line printed, on the first call)."""
        if self.deblurrer is None:
            from deblurcli.console import err
            from deblurcli.inference import Deblurrer

            deblurrer = self.deblurrer = Deblurrer(self.spec, **self.options)  # type: ignore[arg-type]
            err.print(
                f"model {deblurrer.info.name} ({deblurrer.info.architecture}, "
                f"{deblurrer.info.num_params / 1e6:.1f} M parameters, {deblurrer.info.source}) "
                f"on {deblurrer.device.type}, {_precision_label(deblurrer)}",
                highlight=False,
            )
        return self.deblurrer


def _done_row(name: str, target: Path, image, before: float, after: float, seconds: float, model: str, linear: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The JSON row (and table row) of one fixed file."""
    ratio = after / before if before > 0 else None
    return {
        "path": name,
        "output": str(target),
        "status": "done",
        "kind": "image",
        "width": image.width,
        "height": image.height,
        "before": round(before, 4),
        "after": round(after, 4),
        "ratio": round(ratio, 4) if ratio is not None else None,
        "seconds": round(seconds, 3),
        "model": model,
        "linear": linear,
    }


def _target_problem(name: str, target: Path, input_paths: set[Path], overwrite: bool) -> None:
    """Raise DeblurError when ``target`` would replace an input (without --overwrite) or is not a file."""
    if target.resolve() in input_paths and not overwrite:
        raise DeblurError(f"{name}: output {target} would replace an input (use --overwrite, another -o, or --suffix)")
    if (target.exists() or target.is_symlink()) and not target.is_file():
        raise DeblurError(f"{name}: output {target} exists and is not a file; move it away")


def _deblur_file(d, item, target: Path, progress, tiles, fmt: Optional[str], quality: int, compare: bool):  # type: ignore[no-untyped-def]
    """Read one input, deblur it (tile progress on ``tiles``), write it (and its comparison);
    returns (image, blur score before, after, seconds)."""
    import time

    from deblurcli.blur import score_image
    from deblurcli.images import write_image

    name = str(item.path)
    t0 = time.perf_counter()
    from deblurcli.images import read_image

    image = read_image(item.path)
    before = score_image(image)

    def on_tiles(done: int, total: int) -> None:
        progress.update(tiles, completed=done, total=total, visible=total > 1,
                        description=f"  tiles of {item.path.name}")

    try:
        result = d.deblur_image(image, on_progress=on_tiles)
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and "out of memory" not in str(e).lower():
            raise
        raise DeblurError(f"{name}: out of memory; try a smaller --tile (e.g. --tile 512)") from None
    finally:
        progress.update(tiles, visible=False, completed=0)
    # Made only now, so that an input that fails to read leaves no empty folder behind.
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # e.g. a file where the input tree has a sub-folder
        raise DeblurError(f"{name}: cannot create folder {target.parent}: {e.strerror or e}") from None
    write_image(target, result, format=fmt, quality=quality)
    # The score of what was written (JPEG and WebP change the pixels the model made: README's
    # example 19.2 -> 19.0 with nafnet-s, 75.4 -> 77.5 with blind), so `deblur score` says the same.
    after = score_image(read_image(target))
    if compare:
        _write_compare(image, result, target, fmt, quality)
    seconds = time.perf_counter() - t0
    return image, before, after, seconds


def _print_fix_table(rows: list[dict[str, object]]) -> None:
    """The table of fixed files (blur score before and after) on stdout."""
    from rich.table import Table

    from deblurcli.console import out

    table = Table(title="deblur fix (blur score: variance of Laplacian, higher = sharper)", title_justify="left")
    for col, justify in (("file", "left"), ("size", "right"), ("before", "right"), ("after", "right"),
                         ("ratio", "right"), ("seconds", "right")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        ratio_txt = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        size = f"{r['width']}x{r['height']}" + (f", {r['frames']} frames" if r["kind"] == "video" else "")
        before, after = (f"{r[k]:.1f}" if r[k] is not None else "-" for k in ("before", "after"))
        table.add_row(str(r["path"]), size, before, after, ratio_txt, f"{r['seconds']:.1f}")
    out.print(table)


def _plan_outputs(
    items: list, output: Path, suffix: str, ext: Optional[str], compare: bool, codec: str  # type: ignore[type-arg]
) -> dict[int, tuple[Path, Optional[str]]]:
    """Each input's output file (by ``id(item)``) and why it cannot be written, decided before any
    work: a video FFmpeg cannot read, a name too long for the file system, or a name that an earlier
    input of the same run already writes (``c1/x.png`` and ``c2/x.png`` into one -o, or ``x.mts``
    and ``x.mp4``, both written as ``x.mp4``), which would be skipped or, with --force, silently
    overwritten. A video's extension is :func:`deblurcli.video.output_suffix`'s (--format is for
    photos)."""
    import os

    from deblurcli.inputs import name_problem
    from deblurcli.video import is_video

    plan: dict[int, tuple[Path, Optional[str]]] = {}
    owners: dict[str, Path] = {}
    for item in items:
        if item.error:
            continue
        rel = item.relative
        if is_video(item.path):
            vext, unreadable = video_suffix(item.path, codec)
            target = output / rel.parent / f"{rel.stem}{suffix}{vext}"
            if unreadable:
                plan[id(item)] = (target, unreadable)
                continue
        else:
            target = output / rel.parent / f"{rel.stem}{suffix}{ext or rel.suffix}"
        written = [target] + ([_compare_path(target)] if compare else [])
        problem = next((p for p in map(name_problem, written) if p), None)
        if problem:
            problem += " (use a shorter --suffix, or rename the input)"
        keys = [os.path.normcase(os.path.abspath(w)) for w in written]
        clash = next((owners[k] for k in keys if k in owners), None)
        if problem is None and clash is not None:
            problem = (f"output {target} is also the output of {clash} in this run (same name); "
                       "fix them in separate runs with different -o, or pass their parent folder with -r")
        if problem is None:
            owners.update(dict.fromkeys(keys, item.path))
        plan[id(item)] = (target, problem)
    return plan


def _kind(item) -> str:  # type: ignore[no-untyped-def]
    from deblurcli.video import is_video

    return "video" if is_video(item.path) else "image"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _compare_path(target: Path) -> Path:
    """Where --compare writes the side-by-side copy of ``target``: TARGET_compare.EXT beside it."""
    return target.with_name(f"{target.stem}_compare{target.suffix}")


def _write_compare(before, after, target: Path, fmt: Optional[str], quality: int) -> None:  # type: ignore[no-untyped-def]
    """Write the input and the result side by side (alpha dropped) as TARGET_compare.EXT."""
    from dataclasses import replace

    import numpy as np

    from deblurcli.images import write_image

    both = np.concatenate([before.pixels, after.pixels], axis=1)
    write_image(_compare_path(target), replace(after, pixels=both, alpha=None),
                format=fmt, quality=quality)


def _precision_label(deblurrer: object) -> str:
    """ "bf16, 2 threads" / "fp32" / "fp16": what a run computes in, for its first line."""
    import torch

    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(deblurrer.dtype, "fp32")  # type: ignore[attr-defined]
    if deblurrer.device.type == "cpu":  # type: ignore[attr-defined]
        n = torch.get_num_threads()
        return f"{name}, {n} thread{'s' if n != 1 else ''}"
    return name

