"""The ``deblur`` command: a thin typer layer over the library.

Each command parses options, calls library functions, and renders with rich. Library modules that
need torch are imported inside the command functions, so ``deblur --help`` stays fast and torch-free.
Exit codes: 0 all done, 1 some items failed (the others were processed), 2 usage error.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from deblurcli import MAX_SEED, __version__
from deblurcli.errors import DeblurError

def _finite_only(param: object) -> None:
    """Make one option refuse inf and nan, after typer's own conversion and range checks (nan
    passes every range check, and no option of deblur means anything with either: a --threshold
    of inf cannot even be written as JSON)."""
    convert = param.process_value  # type: ignore[attr-defined]

    def process_value(ctx, value):  # type: ignore[no-untyped-def]
        value = convert(ctx, value)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise typer.BadParameter(f"{v} is not a finite number", ctx=ctx, param=param)  # type: ignore[arg-type]
        return value

    param.process_value = process_value  # type: ignore[attr-defined]


def _reflow(text: str) -> str:
    """Docstring paragraphs as one line each: typer's rich help keeps the docstring's line breaks,
    which then cut sentences at fixed places whatever the terminal's width."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def _plain_metavar(param: object) -> None:
    """What --help shows of a value: nothing for a flag (it takes none; typer showed ``<bool>``),
    the element type for a list (``<path>...`` for the inputs, not ``<list[str]>``)."""
    desc = param.type_descriptor  # type: ignore[attr-defined]
    if getattr(param, "is_flag", False) or desc.annotation is bool:
        param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]
    elif desc.is_list and not desc.is_choice:
        element = (desc.annotation.__args__ or (str,))[0]
        repeat = "..." if param.param_type_name == "argument" else ""  # type: ignore[attr-defined]
        label = "path" if element is Path or param.param_type_name == "argument" else element.__name__  # type: ignore[attr-defined]
        param.display_type_rich = lambda ctx: f"<{label}>{repeat}"  # type: ignore[attr-defined]


def _plain_help_option(command: object) -> None:
    """-h/--help is a flag too (made when help is shown, so it is not among the params)."""
    make = command.get_help_option  # type: ignore[attr-defined]

    def get_help_option(ctx):  # type: ignore[no-untyped-def]
        option = make(ctx)
        if option is not None and hasattr(option, "type_descriptor"):
            _plain_metavar(option)
        return option

    command.get_help_option = get_help_option  # type: ignore[attr-defined]


class _Group(TyperGroup):
    """The deblur command group: every option of every command refuses inf and nan (one place, so
    that a new option cannot forget it)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if command.help:
                command.help = _reflow(command.help)
            for param in command.params:
                _finite_only(param)
                _plain_metavar(param)
            _plain_help_option(command)
        for param in self.params:  # --version
            _plain_metavar(param)
        _plain_help_option(self)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        """Ctrl-C: one line saying what to do next, exit status 130 (128 + SIGINT), as shells do."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            from deblurcli.console import error_line

            command = ctx.invoked_subcommand
            hint = _RESUME_HINTS.get(command or "", "")
            error_line(f"interrupted{hint}")
            raise typer.Exit(130) from None


#: What an interrupted command says about going on (outputs are written atomically and kept).
_RESUME_HINTS = {
    "fix": "; run the same command again to resume (finished files are kept and skipped)",
    "make-pairs": "; run the same command again to resume (finished pairs are kept)",
    "train": "; run the same command with --resume to continue from the last checkpoint",
}


app = typer.Typer(
    cls=_Group,
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


def _default_model_lines() -> list[str]:
    """Which model `deblur fix` runs without --model, its size and what it was trained for.

    Read from the torch-free registry and the bundled file's size on disk, never by loading the
    weights: `deblur --version` must stay instant and torch-free.
    """
    from deblurcli.console import human_size
    from deblurcli.registry import DEFAULT_MODEL, REGISTRY
    from deblurcli.weights import bundled_weights_dir

    entry = REGISTRY[DEFAULT_MODEL]
    bdir = bundled_weights_dir()
    path = bdir / entry.weights_filename if bdir is not None else None
    where = f"{human_size(path.stat().st_size)} file, bundled" if path and path.is_file() else "weights not bundled"
    lines = [f"default model: {entry.name} ({entry.architecture}, {entry.num_params / 1e6:.1f} M parameters, {where})"]
    if entry.trained_for:
        lines.append(f"  trained for: {entry.trained_for}")
    if bdir is not None and (bdir / "README.md").is_file():
        lines.append(f"  model card: {bdir / 'README.md'}")
    return lines


def _version(value: bool) -> None:
    if value:
        # The first line stays "deblur X.Y.Z" for scripts; then what the user is running.
        typer.echo("\n".join([f"deblur {__version__}", *_default_model_lines()]))
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True,
            help="Show the version and the bundled default model (name, size, what it was trained for), and exit.",
        ),
    ] = False,
) -> None:
    """Blind motion deblurring for photos, and the research pipeline behind it."""
    import os

    if os.environ.get("DEBLUR_MAX_PIXELS", "").strip():
        # Read once, here: a bad value is a usage error, not the same error for every file.
        from deblurcli.images import max_pixels_from_env

        try:
            max_pixels_from_env()
        except DeblurError as e:
            raise _fail(str(e), 2) from None


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


def _parse_gamma(text: str) -> tuple[float, float]:
    """``"2.2"`` -> (2.2, 2.2); ``"1.0-2.2"`` -> (1.0, 2.2); anything else is a usage error (exit 2)."""
    parts = text.split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not (0 < values[0] <= values[-1]) or not all(math.isfinite(v) for v in values):
        raise _fail(f"--gamma {text!r}: give one positive number (2.2) or a range LOW-HIGH (1.0-2.2)", 2)
    return values[0], values[-1]


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
    from rich.table import Table

    from deblurcli.blur import score_image
    from deblurcli.console import emit_json, err, error_line, out, progress_bar
    from deblurcli.images import read_image
    from deblurcli.inputs import expand_inputs

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


class OutFormat(str, enum.Enum):
    keep = "keep"
    jpeg = "jpeg"
    png = "png"
    tiff = "tiff"
    webp = "webp"
    bmp = "bmp"


#: File extension written for each --format choice.
_FORMAT_EXT = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}


class Precision(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="A registered name (see `deblur models`), a .safetensors file, or "
        "hf://owner/repo/file.safetensors@revision. Default: the registry's default model.",
        show_default=False,
    ),
]
LinearOpt = Annotated[
    bool,
    typer.Option(
        "--linear",
        help="The images hold linear light (linear TIFFs from raw converters, Levin et al. 2009), not a "
        "camera's gamma-encoded values: the model runs on them encoded with x^(1/2.2), as the photos it was "
        "trained on, and the result is decoded back. Without it, linear images come out too dark at edges.",
    ),
]
PRECISION_HELP = (
    "auto = fp16 on CUDA, bf16 autocast on CPUs with AMX or AVX512-BF16 (2-3x faster there; outputs "
    "within 8-bit rounding of fp32), fp32 elsewhere; fp16 needs CUDA."
)
ThreadsOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="CPU compute threads; 0 = the cores not already busy (1-min load average), since a thread "
        "that shares its core with another program stalls all the others.",
    ),
]

OfflineOpt = Annotated[
    bool,
    typer.Option("--offline", help="Never touch the network: use bundled or cached weights only (also HF_HUB_OFFLINE=1)."),
]


@app.command()
def fix(
    inputs: InputsArg,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Output folder (created if missing); input folder trees are mirrored in it."),
    ],
    model: ModelOpt = None,
    recursive: RecursiveOpt = False,
    suffix: Annotated[str, typer.Option(help="Added to each output file name before the extension, e.g. _sharp.")] = "",
    out_format: Annotated[
        OutFormat, typer.Option("--format", help="Output format; 'keep' writes each file in its input's format.")
    ] = OutFormat.keep,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality of written files.")] = 95,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow an output to replace its input file (e.g. -o on the input folder).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo outputs that already exist (by default they are skipped, so a run resumes).")
    ] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also write NAME_compare.EXT: the input and the result side by side.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision.auto,
    threads: ThreadsOpt = 0,
    tile: Annotated[
        Optional[int],
        typer.Option(min=0, help="Tile side in pixels for large images (default: from available memory; 0 = never tile).", show_default=False),
    ] = None,
    tile_overlap: Annotated[int, typer.Option(min=0, help="Pixels shared by neighbouring tiles, blended.")] = 32,
    linear: LinearOpt = False,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Deblur images with a Laplacian-conditioned generator; write them to OUT with their metadata.

    Each output keeps its input's size, format (unless --format), bit depth, alpha, EXIF and ICC
    profile. Existing outputs are skipped (use --force to redo them); an input is never written over
    unless --overwrite. The blur score (variance of the Laplacian of the 8-bit luma; higher is
    sharper) is shown before -> after. Exit status: 0 all done, 1 some files failed (the others are
    still processed), 2 usage error (bad option or model, an -o that cannot be a folder).
    """
    import time

    from rich.table import Table

    from deblurcli.blur import score_image
    from deblurcli.console import emit_json, err, error_line, out, progress_bar
    from deblurcli.images import write_image
    from deblurcli.inputs import expand_inputs
    from deblurcli.registry import DEFAULT_MODEL

    from deblurcli.inputs import output_folder_problem

    problem = output_folder_problem(output)
    if problem:
        raise _fail(f"--output {problem}", 2)
    if tile and tile_overlap * 2 >= tile:
        raise _fail(f"--tile-overlap ({tile_overlap}) must be less than half of --tile ({tile})", 2)
    if any(c in suffix for c in "/\\\0"):
        raise _fail(f"--suffix must not contain path separators: {suffix!r}", 2)
    model_spec = model or DEFAULT_MODEL
    # OUT is never an input: a rerun of `fix DIR -r -o DIR/out` must not fix its own outputs.
    items = expand_inputs(inputs, recursive=recursive, exclude=[output])
    input_paths = {i.path.resolve() for i in items if not i.error}
    fmt = None if out_format is OutFormat.keep else out_format.value.upper()
    targets = _plan_outputs(items, output, suffix, _FORMAT_EXT[out_format.value] if fmt else None, compare)

    deblurrer = None

    def get_deblurrer():  # type: ignore[no-untyped-def]
        # Loaded on first use: a resumed run whose outputs all exist needs no model.
        nonlocal deblurrer
        if deblurrer is None:
            from deblurcli.inference import Deblurrer

            deblurrer = Deblurrer(
                model_spec, device=device, precision=precision.value, tile=tile,
                tile_overlap=tile_overlap, offline=offline, linear=linear, threads=threads,
            )
            err.print(
                f"model {deblurrer.info.name} ({deblurrer.info.architecture}, "
                f"{deblurrer.info.num_params / 1e6:.1f} M parameters, {deblurrer.info.source}) "
                f"on {deblurrer.device.type}, {_precision_label(deblurrer)}",
                highlight=False,
            )
        return deblurrer

    rows: list[dict[str, object]] = []
    failed = skipped = 0
    progress = progress_bar(elapsed=True)
    with progress:
        task = progress.add_task("fixing", total=len(items))
        tiles = progress.add_task("", total=None, visible=False)
        for item in items:
            name = str(item.path)
            progress.update(task, description=f"fixing {item.path.name}")
            try:
                if item.error:
                    raise DeblurError(f"{name}: {item.error}")
                target, problem = targets[id(item)]
                if problem:
                    raise DeblurError(f"{name}: {problem}")
                if target.resolve() in input_paths and not overwrite:
                    raise DeblurError(f"{name}: output {target} would replace an input (use --overwrite, another -o, or --suffix)")
                if (target.exists() or target.is_symlink()) and not target.is_file():
                    raise DeblurError(f"{name}: output {target} exists and is not a file; move it away")
                if target.exists() and not force and target.resolve() not in input_paths:
                    skipped += 1
                    row = {"path": name, "output": str(target), "status": "skipped", "reason": "output exists (use --force to redo)"}
                    if json_out:
                        emit_json(row)
                    progress.advance(task)
                    continue
                try:
                    d = get_deblurrer()
                except DeblurError as e:
                    # No file can succeed without a model: stop. Problems fixed on the command line
                    # (unknown name, no weights for it, a file that is not a model, device/precision)
                    # are usage errors; an unreachable Hub is not.
                    progress.stop()
                    error_line(str(e))
                    raise typer.Exit(_setup_exit_code(e)) from None
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
                after = score_image(result)
                # Made only now, so that an input that fails to read leaves no empty folder behind.
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:  # e.g. a file where the input tree has a sub-folder
                    raise DeblurError(f"{name}: cannot create folder {target.parent}: {e.strerror or e}") from None
                write_image(target, result, format=fmt, quality=quality)
                if compare:
                    _write_compare(image, result, target, fmt, quality)
                seconds = time.perf_counter() - t0
            except (DeblurError, OSError) as e:
                # One file's failure (including the OS refusing one of its paths) is that file's only.
                message = str(e) if isinstance(e, DeblurError) else f"{name}: {_os_reason(e)}"
                failed += 1
                progress.console.print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
                if json_out:
                    emit_json({"path": name, "status": "failed", "error": message.removeprefix(f"{name}: ")})
            else:
                ratio = after / before if before > 0 else None
                row = {
                    "path": name,
                    "output": str(target),
                    "status": "done",
                    "width": image.width,
                    "height": image.height,
                    "before": round(before, 4),
                    "after": round(after, 4),
                    "ratio": round(ratio, 4) if ratio is not None else None,
                    "seconds": round(seconds, 3),
                    "model": d.info.name,
                    "linear": linear,
                }
                rows.append(row)
                if json_out:
                    emit_json(row)
                progress.console.print(
                    f"{_escape(item.path.name)}  blur score {before:.1f} -> {after:.1f}  ({seconds:.1f} s)", highlight=False
                )
            progress.advance(task)

    if not json_out and rows:
        table = Table(title="deblur fix (blur score: variance of Laplacian, higher = sharper)", title_justify="left")
        for col, justify in (("file", "left"), ("size", "right"), ("before", "right"), ("after", "right"),
                             ("ratio", "right"), ("seconds", "right")):
            table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for r in rows:
            ratio_txt = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
            table.add_row(str(r["path"]), f"{r['width']}x{r['height']}", f"{r['before']:.1f}", f"{r['after']:.1f}",
                          ratio_txt, f"{r['seconds']:.1f}")
        out.print(table)
    summary = f"{len(rows)} fixed, {skipped} skipped (output exists), {failed} failed; outputs in {output}"
    err.print(summary, highlight=False)
    if failed:
        raise typer.Exit(1)


def _os_reason(e: OSError) -> str:
    """An OSError as one line: the OS's reason and the path it names."""
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}"


def _plan_outputs(
    items: list, output: Path, suffix: str, ext: Optional[str], compare: bool  # type: ignore[type-arg]
) -> dict[int, tuple[Path, Optional[str]]]:
    """Each input's output file (by ``id(item)``) and why it cannot be written, decided before any
    work: a name too long for the file system, or a name that an earlier input of the same run
    already writes (``c1/x.png`` and ``c2/x.png`` into one -o), which would be skipped or, with
    --force, silently overwritten."""
    import os

    from deblurcli.inputs import name_problem

    plan: dict[int, tuple[Path, Optional[str]]] = {}
    owners: dict[str, Path] = {}
    for item in items:
        if item.error:
            continue
        rel = item.relative
        target = output / rel.parent / f"{rel.stem}{suffix}{ext or rel.suffix}"
        written = [target] + ([target.with_name(f"{target.stem}_compare{target.suffix}")] if compare else [])
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


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _setup_exit_code(e: DeblurError) -> int:
    """The exit status of an error that stops a command before any item is processed: 2 (usage:
    something on the command line cannot be used as given), except 1 for the network, which the
    command line cannot fix (README, "Exit status")."""
    from deblurcli.errors import NetworkError

    return 1 if isinstance(e, NetworkError) else 2


def _write_compare(before, after, target: Path, fmt: Optional[str], quality: int) -> None:  # type: ignore[no-untyped-def]
    """Write the input and the result side by side (alpha dropped) as TARGET_compare.EXT."""
    from dataclasses import replace

    import numpy as np

    from deblurcli.images import write_image

    both = np.concatenate([before.pixels, after.pixels], axis=1)
    write_image(target.with_name(f"{target.stem}_compare{target.suffix}"), replace(after, pixels=both, alpha=None),
                format=fmt, quality=quality)


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """List the named models, and what the bundled default model was trained for.

    A table of architecture, parameters, size (fp32), weights source, cached or not; then the
    default model's file size, what it was trained for, and where its model card is.

    A name goes to `deblur fix --model NAME`. The default (nafnet-s) is bundled; models without
    published weights cannot be used by name yet: pass a .safetensors file (e.g. from `deblur train`).
    """
    from rich.table import Table

    from deblurcli.console import emit_json, out
    from deblurcli.registry import DEFAULT_MODEL, list_models
    from deblurcli.weights import is_cached

    rows = []
    for e in list_models():
        local = is_cached(e)
        source = e.hub.spec if e.hub else ("bundled" if local == "bundled" else "not published")
        rows.append({
            "name": e.name,
            "default": e.name == DEFAULT_MODEL,
            "architecture": e.architecture,
            "parameters": e.num_params,
            "size_bytes": e.num_params * 4,
            "source": source,
            "cached": local is not None,
            "description": e.description,
            "trained_for": e.trained_for,
            "hyperparameters": e.hyperparameters,
        })
    if json_out:
        for r in rows:
            emit_json(r)
        return
    from deblurcli.console import human_size

    table = Table(title=f"Models (deblur fix --model NAME; default {DEFAULT_MODEL})", title_justify="left")
    for col in ("name", "arch", "params", "size", "source", "cached"):
        # Names are typed back on the command line: never fold one.
        table.add_column(
            col, justify="right" if col in ("params", "size") else "left", overflow="fold", no_wrap=col in ("name", "source")
        )
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["architecture"]),
            f"{int(r['parameters']) / 1e6:.1f} M",  # type: ignore[call-overload]
            human_size(float(r["size_bytes"])),  # type: ignore[arg-type]
            str(r["source"]),
            "yes" if r["cached"] else "no",
        )
    out.print(table)
    for line in _default_model_lines():
        out.print(line, highlight=False, markup=False)


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
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of the window choice and of the stills' camera paths.")
    ] = 0,
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

    from rich.progress import TextColumn
    from rich.table import Table

    from deblurcli.console import emit_json, err, error_line, out, progress_bar, warn_line
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
        typer.Option(
            "--model",
            "-m",
            help="Score this model's outputs: a registered name (see `deblur models`), a .safetensors file, "
            "or hf://owner/repo/file.safetensors@revision.",
            show_default=False,
        ),
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
        typer.Option(help="GoPro root: the split to score. Default: test when present, else train.", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'...")] = "auto",
    precision: Annotated[Precision, typer.Option(help="--model: " + PRECISION_HELP)] = Precision.auto,
    threads: ThreadsOpt = 0,
    tile: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            help="--model: tile side in pixels (less memory); 0 = never tile. Default: whole image if it fits.",
            show_default=False,
        ),
    ] = None,
    linear: LinearOpt = False,
    offline: OfflineOpt = False,
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
    align: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="PX",
            help="Score each output, and each blurred input, at the integer shift of up to PX pixels that fits "
            "the ground truth best, on the area PX pixels inside the borders: the convention of camera-shake "
            "benchmarks, whose blurred images are offset from the ground truth (Levin et al. 2009: use 5). "
            "0 = no shift.",
        ),
    ] = 0,
    published: Annotated[
        Optional[bool],
        typer.Option(
            "--published/--no-published",
            help="Print published GoPro results beside ours (marked: not measured by deblur). Default: on for GoPro layouts.",
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


class ContentChoice(str, enum.Enum):
    perceptual = "perceptual"
    l1fft = "l1fft"


class ArchChoice(str, enum.Enum):
    c2f = "c2f"
    deblurgan = "deblurgan"
    nafnet = "nafnet"


class PrecisionChoice(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


def _parse_hparams(values: list[str] | None, option: str) -> dict[str, object]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (8, 0.5, true), else as a string."""
    import json

    parsed: dict[str, object] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _render_training(cfg: "object", json_out: bool) -> dict:
    """Run deblurcli.train.train(cfg) in this process, rendering rank 0's progress (stderr) or JSON."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from deblurcli.console import emit_json, err
    from deblurcli.train import TrainEvent, train

    if int(os.environ.get("RANK", 0)) != 0:
        return train(cfg)  # type: ignore[arg-type]

    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
        console=err,
        disable=json_out,
    )
    task = progress.add_task("train", total=None, rate="", losses="")

    def on_progress(e: TrainEvent) -> None:
        if e.kind == "start":
            info = e.info
            progress.update(task, total=e.total, completed=e.step)
            if json_out:
                emit_json({"kind": "start", "step": e.step, "total": e.total, **{k: v for k, v in info.items() if k != "config"}, **e.metrics})
                return
            for line in info["sources"]:
                err.print(f"data: {line}")
            where = f"{info['world_size']} processes" if info["world_size"] > 1 else "1 process"
            err.print(
                f"model: {cfg.arch} ({info['generator_params']:,} parameters), device {info['device']} "  # type: ignore[attr-defined]
                f"{info['precision']}, {where}"
                + (f" x {info['threads']} thread{'s' if info['threads'] != 1 else ''}" if info.get("threads") else "")
                + f", {info['steps_per_epoch']} steps/epoch"
            )
            if info["resumed_from"] is not None:
                err.print(f"resumed from step {info['resumed_from']}")
            if e.metrics:
                err.print(
                    f"validation: {info['val_items']} images; blurred inputs PSNR {e.metrics['val_psnr_blurred']:.2f} dB, "
                    f"SSIM {e.metrics['val_ssim_blurred']:.4f}"
                )
        elif e.kind == "step":
            m = e.metrics
            if json_out:
                # The `train` rows README promises, at metrics.jsonl's pace (--log-every).
                if e.step % max(1, cfg.log_every) == 0 or e.step >= e.total:  # type: ignore[attr-defined]
                    emit_json({"kind": "train", "step": e.step, **m})
                return
            losses = f"G {m['g_loss']:.4g}"
            if "d_loss" in m:
                losses += f"  D {m['d_loss']:.4g}  W {m['wasserstein']:.3g}  GP {m['gp']:.3g}"
            progress.update(task, completed=e.step, rate=f"{m['it_s']:.2f} it/s", losses=losses)
        elif e.kind == "val":
            m = e.metrics
            if json_out:
                emit_json({"kind": "val", "step": e.step, **m})
            else:
                progress.console.print(
                    f"step {e.step}: val PSNR {m['val_psnr']:.2f} dB (blurred {m['val_psnr_blurred']:.2f}), "
                    f"SSIM {m['val_ssim']:.4f} (blurred {m['val_ssim_blurred']:.4f})"
                )
        elif e.kind == "checkpoint":
            if json_out:
                emit_json({"kind": "checkpoint", "step": e.step, **e.info})
        elif e.kind == "done" and json_out:
            emit_json({"kind": "done", **e.info})

    with progress:
        result = train(cfg, on_progress)  # type: ignore[arg-type]
    if not json_out:
        from deblurcli.console import out

        out.print(f"trained {result['steps']} steps")
        out.print(f"model:       {result['model']}")
        out.print(f"checkpoint:  {result['checkpoint']}")
        out.print(f"metrics:     {result['metrics']}")
        if result.get("plot"):
            out.print(f"curves:      {result['plot']}")
    return result


def _precision_label(deblurrer: object) -> str:
    """ "bf16, 2 threads" / "fp32" / "fp16": what a run computes in, for its first line."""
    import torch

    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(deblurrer.dtype, "fp32")  # type: ignore[attr-defined]
    if deblurrer.device.type == "cpu":  # type: ignore[attr-defined]
        n = torch.get_num_threads()
        return f"{name}, {n} thread{'s' if n != 1 else ''}"
    return name


@app.command()
def train(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Training data folder (repeat for several): a make-pairs folder (blurred/+targets/), "
            "blur/+sharp/, a GoPro root, or a folder of sharp photos (blurred on the fly).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder: checkpoints/, metrics.jsonl, model.safetensors, curves.png.", show_default=False)],
    steps: Annotated[Optional[int], typer.Option(min=1, help="Generator updates in total (each after --critic-iters critic updates).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over the training items (instead of --steps).")] = None,
    crop: Annotated[int, typer.Option(min=16, help="Random crop side in pixels (with random flips).")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per process per step (DeblurGAN: 1).")] = 1,
    arch: Annotated[ArchChoice, typer.Option(help="Generator architecture.")] = ArchChoice.deblurgan,
    hparam: Annotated[
        Optional[list[str]],
        typer.Option("--hparam", help="Generator hyperparameter KEY=VALUE (repeat), e.g. ngf=32, n_blocks=6."),
    ] = None,
    critic_hparam: Annotated[
        Optional[list[str]], typer.Option("--critic-hparam", help="PatchGAN critic hyperparameter KEY=VALUE (ndf, n_layers).")
    ] = None,
    content: Annotated[
        ContentChoice,
        typer.Option(help="Content loss: 'perceptual' = MSE of VGG19 conv3_3 features (needs ImageNet VGG19 weights); 'l1fft' = L1 + 0.1 x L1 of the FFT."),
    ] = ContentChoice.perceptual,
    vgg_weights: Annotated[
        Optional[Path], typer.Option(help="torchvision VGG19 state_dict (vgg19-dcbb9e9d.pth); default: the torch hub cache.")
    ] = None,
    content_weight: Annotated[float, typer.Option(min=0.0, help="λ of the content loss.")] = 100.0,
    no_laplacian: Annotated[bool, typer.Option("--no-laplacian", help="Ablation: no Laplacian 4th input channel.")] = False,
    no_gan: Annotated[bool, typer.Option("--no-gan", help="Content loss only: no critic, no adversarial term.")] = False,
    critic_iters: Annotated[int, typer.Option(min=1, help="Critic updates per generator update (on the same batch).")] = 5,
    label_noise: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Per-sample probability that the critic's real and fake roles are swapped in a critic update."),
    ] = 0.1,
    lambda_gp: Annotated[float, typer.Option(min=0.0, help="λ of the WGAN-GP gradient penalty.")] = 10.0,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of both networks (betas 0.5, 0.999).")] = 1e-4,
    decay_start: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of the steps at constant lr; then linear decay towards 0.")
    ] = 0.5,
    clip_grad: Annotated[
        float, typer.Option(min=0.0, help="Clip the generator's gradient to this L2 norm per step (0 = off); the norm is logged as g_grad_norm.")
    ] = 0.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[PrecisionChoice, typer.Option(help="auto = bf16 autocast on CUDA GPUs that support it and on CPUs with AMX or AVX512-BF16 (2-4x faster there), else fp32.")] = PrecisionChoice.auto,
    threads: ThreadsOpt = 0,
    gpus: Annotated[Optional[int], typer.Option(min=1, help="Train on N GPUs of this machine (DDP over NCCL, via torch.distributed.run).")] = None,
    procs: Annotated[Optional[int], typer.Option(min=1, help="Processes per node on --device (e.g. --device cpu --procs 2 uses gloo).")] = None,
    nnodes: Annotated[int, typer.Option(min=1, help="Nodes (run the same command on each, with its --node-rank).")] = 1,
    node_rank: Annotated[int, typer.Option(min=0, help="This node's rank (multi-node).")] = 0,
    rdzv_endpoint: Annotated[Optional[str], typer.Option(help="HOST:PORT of node 0 (multi-node).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes per training process.")] = 2,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of initialisation, data order, crops and noise.")] = 0,
    save_every: Annotated[int, typer.Option(min=0, help="Checkpoint every N steps (and always at the end).")] = 1000,
    val_every: Annotated[int, typer.Option(min=0, help="Validate every N steps (and always at the end).")] = 500,
    log_every: Annotated[int, typer.Option(min=1, help="Write averaged losses to metrics.jsonl every N steps.")] = 10,
    val_count: Annotated[int, typer.Option(min=0, help="Validation images (0 = every held-out one).")] = 16,
    val_crop: Annotated[int, typer.Option(min=0, help="Center crop of validation images (0 = whole image).")] = 256,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of each source held out for validation (GoPro: its test/ split).")] = 0.05,
    max_blur: Annotated[float, typer.Option(min=1.0, help="Longest synthetic blur streak (px at crop size) for folders of sharp photos.")] = 60.0,
    gamma: Annotated[
        str,
        typer.Option(
            metavar="G|LOW-HIGH",
            help="Camera-response gamma of that synthetic blur (frames averaged in linear light x^G): one value "
            "(2.2, the paper's) or a range drawn per crop, e.g. 1.0-2.2, so that the model also meets blur that "
            "was not made in linear light (Levin et al.'s set). Validation always uses 2.2.",
        ),
    ] = "2.2",
    keep: Annotated[int, typer.Option(min=0, help="Checkpoints to keep (0 = all).")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in OUT/checkpoints (model, optimisers, step, RNG; the recipe comes from the checkpoint).")] = False,
    init: Annotated[Optional[str], typer.Option("--init", metavar="MODEL", help="Fine-tune: start the generator from these weights (a .safetensors file such as another run's OUT/model.safetensors, a model name, or hf://...) with this run's recipe; same --arch/--hparam/Laplacian setting as the run that made it.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the deblurring GAN: WGAN-GP + λ x content loss, Laplacian-conditioned generator, label noise.

    Writes OUT/checkpoints/step_N.pt (atomic; --resume continues exactly), OUT/metrics.jsonl,
    OUT/model.safetensors (for `deblur fix --model`) and OUT/curves.png. Several processes (--gpus,
    --procs, --nnodes) are started through torch.distributed.run; only rank 0 logs and saves.
    """
    import json
    import os
    import tempfile

    from deblurcli.console import error_line
    from deblurcli.train import TrainConfig, TrainError, check_gpus, launcher_command, preflight

    if gpus is not None:
        if device not in ("auto", "cuda"):
            raise _fail(f"--gpus needs CUDA, but --device is {device}", 2)
        device = "cuda"
    nproc = gpus or procs or 1
    cfg = TrainConfig(
        data=[str(d) for d in data],
        out=str(out_dir),
        steps=steps,
        epochs=epochs,
        crop=crop,
        batch_size=batch_size,
        arch=arch.value,
        hparams=_parse_hparams(hparam, "--hparam"),
        critic_hparams=_parse_hparams(critic_hparam, "--critic-hparam"),
        laplacian=not no_laplacian,
        gan=not no_gan,
        content=content.value,
        vgg_weights=str(vgg_weights) if vgg_weights else None,
        content_weight=content_weight,
        lambda_gp=lambda_gp,
        critic_iters=critic_iters,
        label_noise=label_noise,
        lr=lr,
        decay_start=decay_start,
        clip_grad=clip_grad,
        device=device,
        precision=precision.value,
        threads=threads,
        workers=workers,
        seed=seed,
        save_every=save_every,
        val_every=val_every,
        log_every=log_every,
        val_count=val_count,
        val_crop=val_crop,
        val_fraction=val_fraction,
        max_blur=max_blur,
        gamma=_parse_gamma(gamma),
        keep=keep,
        resume=resume,
        init=init,
    )
    if steps is not None and epochs is not None:
        raise _fail("give --steps or --epochs, not both", 2)
    try:
        if gpus is not None:
            check_gpus(gpus)
        if not resume:
            cfg.validate()
        preflight(cfg)
    except DeblurError as e:  # nothing started: bad options, data, --out, --init or VGG weights
        raise _fail(str(e), _setup_exit_code(e)) from None

    inside_launcher = "LOCAL_RANK" in os.environ
    if (nproc > 1 or nnodes > 1) and not inside_launcher:
        fd, cfg_path = tempfile.mkstemp(prefix="deblur-train-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg.to_json(), f)
        try:
            worker = ["-m", "deblurcli", "_train-worker", cfg_path] + (["--json"] if json_out else [])
            cmd = launcher_command(worker, nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
            # torch's launcher runs in this process (its documented main(), what `torchrun` calls):
            # same elastic agent, one Python start-up fewer. It starts the workers as subprocesses.
            from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
            from torch.distributed.run import main as torchrun_main

            try:
                torchrun_main(cmd[3:])
            except ChildFailedError:
                error_line("training processes failed (see the messages above)")
                raise typer.Exit(1) from None
        except TrainError as e:
            raise _fail(str(e), 2) from None
        finally:
            os.unlink(cfg_path)
        return
    try:
        _render_training(cfg, json_out)
    except DeblurError as e:
        raise _fail(str(e), 1) from None


@app.command("_train-worker", hidden=True)
def _train_worker(
    config: Annotated[Path, typer.Argument(help="TrainConfig JSON written by `deblur train`.")],
    json_out: JsonOpt = False,
) -> None:
    """One training process started by torch.distributed.run (internal)."""
    import json

    from deblurcli.train import TrainConfig

    cfg = TrainConfig.from_json(json.loads(config.read_text()))
    try:
        _render_training(cfg, json_out)
    except DeblurError as e:
        raise _fail(str(e), 1) from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
