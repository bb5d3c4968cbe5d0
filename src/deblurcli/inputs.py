"""Turn command-line arguments (files, folders, quoted globs) into a list of image files.

Shells expand ``*.jpg`` before the program sees it, except when quoted, on Windows, or when the
pattern matches nothing; so patterns are expanded here too (``**`` works with ``--recursive``).
Every argument resolves either to files or to an :class:`InputItem` carrying an error, so one bad
argument never stops the others.
"""

from __future__ import annotations

import os
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


def _glob(pattern: str, recursive: bool) -> list[Path]:
    """The paths matching ``pattern``, sorted. ``**`` spans folders only with ``recursive`` (else it
    is ``*``, as in :func:`glob.glob`).

    pathlib's ``**`` does not descend into symlinked folders, so links that loop (``self -> .``,
    ``sub/up -> ..``) cannot make the expansion endless; :func:`glob.glob` follows them.
    """
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:first]) if first else Path(".")
    rest = [("*" if part == "**" and not recursive else part) for part in parts[first:]]
    try:
        return sorted(root.glob("/".join(rest)))
    except (OSError, ValueError):  # unreadable root, or a pattern pathlib refuses
        return []


def _inside(path: Path, folders: Collection[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == f or f in resolved.parents for f in folders)


def expand_inputs(
    args: Iterable[str | Path],
    *,
    recursive: bool = False,
    extensions: Collection[str] = tuple(EXTENSIONS),
    kind: str = "image",
    exclude: Collection[str | Path] = (),
) -> list[InputItem]:
    """Resolve files, folders and glob patterns to files, in argument order, without duplicates.

    Folders give the files with one of ``extensions`` (lower case, with the dot; image files by
    default) directly inside them, or all below them with ``recursive``; a file given by name is
    kept whatever its extension (the decoder then decides). Arguments that exist nowhere, globs
    matching nothing and folders without such files give an item with ``error`` set; ``kind``
    names the files in those messages ("no video files in folder"). Files that folders and globs
    find inside an ``exclude`` folder (a command's output folder) are left out, so that a rerun
    never takes its own earlier outputs as inputs.
    """
    items: list[InputItem] = []
    seen: set[Path] = set()
    excluded = [Path(e).resolve() for e in exclude]

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(InputItem(path, relative))

    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files = sorted(
                (f for f in found if _wanted(f, extensions) and not _inside(f, excluded)), key=lambda f: str(f).lower()
            )
            if not files:
                hint = "" if recursive else " (use --recursive for sub-folders)"
                items.append(InputItem(p, p, f"no {kind} files in folder{hint}"))
            for f in files:
                add(f, f.relative_to(p))
        elif p.exists():
            add(p, Path(p.name))
        elif _GLOB_CHARS & set(str(arg)):
            files = [m for m in _glob(str(arg), recursive) if _wanted(m, extensions) and not _inside(m, excluded)]
            if not files:
                items.append(InputItem(p, p, f"pattern matched no {kind} files"))
            for f in files:
                add(f, Path(f.name))
        else:
            items.append(InputItem(p, p, "no such file or folder"))
    return items


def name_max(folder: str | Path) -> int:
    """The longest file name (in bytes) the file system of ``folder`` (or its nearest existing
    ancestor) accepts; 255 where it cannot be asked."""
    p = Path(folder)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(os.pathconf(p, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def name_problem(path: Path) -> str | None:
    """Why the file name of ``path`` cannot be created (too long for the file system), or ``None``."""
    size, limit = len(os.fsencode(path.name)), name_max(path.parent)
    if size > limit:
        return f"output name {path.name[:24]}...{path.suffix} is {size} bytes, over the file system's limit of {limit}"
    return None


def output_folder_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be used (or made) as an output folder, or ``None``; creates nothing.

    It must be a folder, or not exist yet below a folder this process can write in (the folders
    between are made on the first write, so a run that fails early leaves none behind).
    """
    p = Path(folder)
    if p.exists():
        if not p.is_dir():
            return f"{p} exists and is not a folder"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"{p}: cannot write in this folder (permission denied or read-only)"
        return None
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            return f"{p}: {parent} is a broken symbolic link"
        parent = parent.parent
    if not parent.is_dir():
        return f"{p}: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{p}: cannot create it in {parent} (permission denied or read-only)"
    return None
