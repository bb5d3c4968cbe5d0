"""Options shared by several commands: one definition, the same spelling everywhere.

``Annotated`` aliases (``InputsArg``, ``RecursiveOpt``, ``JsonOpt``, ``ModelOpt``, ``LinearOpt``,
``ThreadsOpt``, ``OfflineOpt``), the ``--precision`` choices of inference and its help text.
Imports typer only.
"""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Image files (and for fix, video files), folders, or quoted glob patterns (e.g. 'photos/*.jpg', expanded by deblur).",
        show_default=False,
    ),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine output: one JSON object per line on stdout (no table).")
]


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

