"""Turn command-line arguments (files, folders, quoted globs) into a list of image files.

Shells expand ``*.jpg`` before the program sees it, except when quoted, on Windows, or when the
pattern matches nothing; so patterns are expanded here too (``**`` works with ``--recursive``).
Every argument resolves either to files or to an :class:`InputItem` carrying an error, so one bad
argument never stops the others.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable

from deblurcli.images import EXTENSIONS

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputItem:
    """One input file, or one argument that failed to resolve.

    Attributes:
        path: the file (or the argument as given, when ``error`` is set).
        relative: path relative to the folder argument it came from (just the file name for a
            file argument): used to mirror a folder tree under an output folder.
        error: why this argument gave no file, or ``None``.
    """

    path: Path
    relative: Path
    error: str | None = None


def is_image_name(path: Path) -> bool:
    """True when the extension is one deblurcli reads."""
    return path.suffix.lower() in EXTENSIONS


def _wanted(path: Path, extensions: Collection[str]) -> bool:
    return path.is_file() and path.suffix.lower() in extensions and not path.name.startswith(".")


def expand_inputs(
    args: Iterable[str | Path],
    *,
    recursive: bool = False,
    extensions: Collection[str] = tuple(EXTENSIONS),
    kind: str = "image",
) -> list[InputItem]:
    """Resolve files, folders and glob patterns to files, in argument order, without duplicates.

    Folders give the files with one of ``extensions`` (lower case, with the dot; image files by
    default) directly inside them, or all below them with ``recursive``; a file given by name is
    kept whatever its extension (the decoder then decides). Arguments that exist nowhere, globs
    matching nothing and folders without such files give an item with ``error`` set; ``kind``
    names the files in those messages ("no video files in folder").
    """
    items: list[InputItem] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(InputItem(path, relative))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files = sorted((f for f in found if _wanted(f, extensions)), key=lambda f: str(f).lower())
            if not files:
                hint = "" if recursive else " (use --recursive for sub-folders)"
                items.append(InputItem(p, p, f"no {kind} files in folder{hint}"))
            for f in files:
                add(f, f.relative_to(p))
        elif p.exists():
            add(p, Path(p.name))
        elif _GLOB_CHARS & set(str(arg)):
            matches = sorted(glob.glob(str(arg), recursive=recursive))
            files = [Path(m) for m in matches if _wanted(Path(m), extensions)]
            if not files:
                items.append(InputItem(p, p, f"pattern matched no {kind} files"))
            for f in files:
                add(f, Path(f.name))
        else:
            items.append(InputItem(p, p, "no such file or folder"))
    return items
