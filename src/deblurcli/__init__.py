"""deblurcli: blind motion deblurring from the command line and from Python.

Importing this package is cheap: it imports neither torch nor OpenCV. Submodules that need them
(``deblurcli.inference``, ``deblurcli.train`` ...) import them when they are imported themselves.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: Seeds accepted by ``make-pairs`` and ``train`` (and their configs): 0 to 2**32 - 1. NumPy's
#: generators refuse negative seeds, and 32 bits keep ``train``'s derived per-rank seeds in torch's range.
MAX_SEED = 2**32 - 1

# Public names -> the submodule that defines them. Resolved on first attribute access so that
# `import deblurcli` stays torch-free (PEP 562).
_LAZY = {
    "read_image": "deblurcli.images",
    "write_image": "deblurcli.images",
    "Image": "deblurcli.images",
    "blur_score": "deblurcli.blur",
    "DeblurError": "deblurcli.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deblurcli' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
