"""The import graph has no upward arrows (DESIGN.md: files -> images -> tensors -> model -> files;
the CLI depends on the library, never the reverse).

Imports are read from the source files with ``ast`` (every ``import``, including those inside
functions and ``TYPE_CHECKING`` blocks), so a lazy import cannot hide an upward arrow; one test also
imports ``deblurcli.images`` in a fresh interpreter and checks what came with it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "deblurcli"

#: Modules (or packages) from the bottom up: a module may import its own layer and those below.
LAYERS: list[set[str]] = [
    {"deblurcli", "deblurcli.errors", "deblurcli.hardware"},
    {"deblurcli.images", "deblurcli.registry", "deblurcli.metrics"},
    {"deblurcli.inputs", "deblurcli.layouts", "deblurcli.blur", "deblurcli.losses"},
    {"deblurcli.models", "deblurcli.weights"},
    {"deblurcli.inference", "deblurcli.pairs", "deblurcli.video"},
    {"deblurcli.data", "deblurcli.evaluate"},
    {"deblurcli.evalreport", "deblurcli.train"},
    # The command line and what only it uses (the library never prints).
    {"deblurcli.console", "deblurcli.cli", "deblurcli.__main__"},
]
CLI_LAYER = len(LAYERS) - 1

#: Inside a package, each module may import only those listed before it (its __init__ docstring).
PACKAGE_ORDER = {
    "deblurcli.pairs": ["average", "stills", "detect", "config", "store", "video", "make"],
    "deblurcli.cli": ["exits", "options", "app", "score", "fix_video", "fix", "models", "make_pairs", "evaluate", "train"],
    "deblurcli.train": ["config", "checkpoint", "distributed", "preflight", "curves", "loop"],
    "deblurcli.video": ["formats", "frames", "writer", "deblur"],
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every deblurcli module ``path`` imports (absolute names; relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # `from deblurcli.cli import score` imports the submodule deblurcli.cli.score.
            found.update(f"{module}.{a.name}" for a in node.names if (PACKAGE.parent / module.replace(".", "/") / a.name).exists()
                         or (PACKAGE.parent / module.replace(".", "/") / f"{a.name}.py").exists())
    return {m for m in found if m == "deblurcli" or m.startswith("deblurcli.")}


def _layer(module: str) -> int:
    """The layer of a module: that of the longest listed name it is, or lies inside."""
    best, depth = None, -1
    for i, layer in enumerate(LAYERS):
        for unit in layer:
            if (module == unit or module.startswith(unit + ".")) and unit.count(".") > depth:
                best, depth = i, unit.count(".")
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layering.py: add it to LAYERS")
    return best


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in SOURCES:
        _layer(_module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_upward_imports(path: Path) -> None:
    me = _module_name(path)
    upward = sorted(m for m in _imports(path) if _layer(m) > _layer(me))
    assert not upward, f"{me} (layer {_layer(me)}) imports from layers above it: {upward}"


def test_library_never_imports_the_cli() -> None:
    offenders = {
        _module_name(p): sorted(m for m in _imports(p) if m == "deblurcli.cli" or m.startswith("deblurcli.cli.")
                                or m == "deblurcli.console")
        for p in SOURCES
        if _layer(_module_name(p)) < CLI_LAYER
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_images_imports_nothing_above_it() -> None:
    allowed = set().union(*LAYERS[: _layer("deblurcli.images") + 1])
    assert _imports(PACKAGE / "images.py") <= allowed


@pytest.mark.parametrize("package", sorted(PACKAGE_ORDER))
def test_package_modules_import_only_earlier_ones(package: str) -> None:
    order = PACKAGE_ORDER[package]
    folder = PACKAGE / package.split(".", 1)[1]
    assert sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("__")) == sorted(order)
    for i, stem in enumerate(order):
        mine = {m.split(".")[2] for m in _imports(folder / f"{stem}.py") if m.startswith(package + ".")}
        later = mine - set(order[:i])
        assert not later, f"{package}.{stem} imports {sorted(later)}, listed after it"


def test_importing_images_loads_no_higher_module() -> None:
    code = (
        "import sys, deblurcli.images; "
        "print(' '.join(m for m in sys.modules if m.startswith('deblurcli')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = set().union(*LAYERS[: _layer("deblurcli.images") + 1])
    assert set(loaded) <= allowed, sorted(set(loaded) - allowed)
