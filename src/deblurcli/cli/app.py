"""The typer app: the command group (inf/nan refused everywhere, plain --help metavars, Ctrl-C),
the root options (``--version``) and :func:`main`, the console-script entry point.

Imports :mod:`deblurcli.cli.exits` of the package; the command modules import this one (for
``app``) and register themselves on it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from deblurcli import __version__
from deblurcli.cli.exits import _fail, interrupted
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
            raise interrupted(ctx.invoked_subcommand) from None


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


def main() -> None:
    """Console-script entry point."""
    app()
