"""Blurred/sharp pair folders on disk -> a list of file pairs. Torch-free (evaluate and train share it).

Layouts recognised by :func:`find_pairs` / :func:`scan_pairs` (``root`` is what the user gave):

``gopro``
    GoPro_Large (Nah et al. 2017): ``<root>/{train,test}/<scene>/{blur,blur_gamma,sharp}/*.png``.
    ``split`` picks ``train`` or ``test`` (default: ``test`` when present, else ``train``).
    ``root`` may also be one split folder (``<root>/<scene>/...``). ``blur_dir`` picks ``blur``
    (the default, the blurred images the papers report on) or ``blur_gamma``.
    Pair names are ``<scene>/<stem>``.
``make-pairs``
    What ``deblur make-pairs`` writes: ``<root>/blurred/NAME.png`` + ``<root>/targets/NAME.png``
    (the paper's folder names). ``pairs.jsonl`` beside them describes where each pair came from;
    it is not needed to pair the files, which share their names.
``flat``
    ``<root>/<blur_dir>/`` + ``<root>/sharp/`` (this is also a single GoPro scene folder).

Within a layout, a blurred file is paired with the sharp file that has, in order of preference:

1. the same relative path without extension (``blur/a/x.png`` <-> ``sharp/a/x.jpg``);
2. the same stem, when exactly one sharp file has it (outputs written to a flat folder);
3. the **longest stem that is a prefix of the blurred stem followed by ``_``, ``-`` or ``.``**, in
   the same relative folder. This is the Levin et al. (2009) rule:
   ``blur/im1_kernel3_img.png`` <-> ``sharp/im1.png`` (``im1`` and not ``im10``, thanks to the
   separator).

A blurred file without a match is reported (:class:`Unpaired`), not silently dropped; sharp files
without a blurred counterpart are ignored. :func:`match_folders` applies the same rules to any two
folders (``deblur evaluate --pred DIR --gt DIR``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deblurcli.errors import DatasetError
from deblurcli.images import EXTENSIONS

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
BLUR_DIRS: tuple[str, ...] = ("blur", "blur_gamma")
_SEPARATORS = ("_", "-", ".")
_KNOWN = (
    "expected a GoPro folder (<root>/{train,test}/<scene>/{blur,sharp}), a make-pairs folder "
    "(blurred/ + targets/) or blur/ + sharp/"
)


@dataclass(frozen=True)
class PairFiles:
    """One blurred image and its ground truth.

    Attributes:
        blurred: the blurred input (for :func:`match_folders`: the image being scored).
        sharp: the sharp ground truth.
        name: a stable identifier, the blurred file's relative path without extension
            (``GOPR0384_11_00/000001`` for GoPro).
    """

    blurred: Path
    sharp: Path
    name: str


@dataclass(frozen=True)
class Unpaired:
    """A blurred file for which no ground truth was found, and why."""

    path: Path
    name: str
    reason: str


@dataclass
class PairScan:
    """What :func:`scan_pairs` found: the layout, the pairs, and the blurred files left unpaired."""

    layout: str
    root: Path
    pairs: list[PairFiles] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)


def find_pairs(root: Path | str, *, blur_dir: str = "blur", split: Split | None = None) -> list[PairFiles]:
    """The complete pairs under ``root`` (see the module docstring for layouts and matching).

    Raises:
        DatasetError: ``root`` is missing, has no layout deblur knows, or holds no blurred images.
    """
    return scan_pairs(root, blur_dir=blur_dir, split=split).pairs


def scan_pairs(root: Path | str, *, blur_dir: str = "blur", split: Split | None = None) -> PairScan:
    """Like :func:`find_pairs`, but also returns the blurred files that have no ground truth.

    Args:
        root: a GoPro root, split or scene folder; a make-pairs folder; or a blur/ + sharp/ folder.
        blur_dir: the blurred sub-folder name of GoPro / flat layouts (``blur`` or ``blur_gamma``).
        split: GoPro split; ``None`` = ``test`` when present, else ``train``. Ignored by other
            layouts, except that naming one split folder and asking for the other is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    if split is not None and split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose train or test")
    if split is not None and root.name in SPLITS and root.name != split:
        raise DatasetError(f"{root}: is the {root.name} split, but split={split!r} was asked for")

    if (root / "blurred").is_dir() and (root / "targets").is_dir():
        return _finish(_scan_dirs(root / "blurred", root / "targets", "make-pairs", root, ""))
    if _is_pair_dir(root, blur_dir):
        return _finish(_scan_dirs(root / blur_dir, root / "sharp", "flat", root, ""))

    splits = [s for s in SPLITS if _scenes(root / s, blur_dir)]
    if splits:
        chosen = split or ("test" if "test" in splits else "train")
        if chosen not in splits:
            raise DatasetError(f"{root}: GoPro layout without a {chosen}/ split (found {', '.join(splits)})")
        return _finish(_scan_gopro(root, _scenes(root / chosen, blur_dir), blur_dir))
    scenes = _scenes(root, blur_dir)
    if scenes:
        return _finish(_scan_gopro(root, scenes, blur_dir))

    # Say what is missing when the folder is nearly right (the commonest mistake: blur_gamma).
    if blur_dir != "blur" and ((root / "sharp").is_dir() or _scenes(root, "blur") or _scenes(root / "test", "blur")):
        raise DatasetError(f"{root}: no {blur_dir}/ folder beside sharp/ ({_KNOWN})")
    raise DatasetError(f"{root}: not a dataset layout deblur knows; {_KNOWN}")


def match_folders(images: Path | str, reference: Path | str) -> PairScan:
    """Pair every image under ``images`` with its ground truth under ``reference``.

    For scoring another tool's outputs (``--pred DIR --gt DIR``): ``PairFiles.blurred`` holds the
    image to score. Matching follows the module's rules (relative path, stem, Levin prefix).
    The side-by-side ``NAME_compare.EXT`` files that ``deblur fix --compare`` writes beside
    ``NAME.EXT`` are not predictions and are left out (the Levin rule would pair them with NAME).
    """
    images, reference = Path(images), Path(reference)
    for d in (images, reference):
        if not d.is_dir():
            raise DatasetError(f"{d}: no such folder" if not d.exists() else f"{d}: not a folder")
    if not images_under(reference):  # one line, not one "no ground truth" line per prediction
        raise DatasetError(f"{reference}: no ground-truth images found")
    return _finish(_scan_dirs(images, reference, "pred-gt", images, "", skip_compare=True))


def _is_compare_file(rel: Path, files: set[Path]) -> bool:
    """True for ``NAME_compare.EXT`` when ``NAME.EXT`` is beside it (what ``fix --compare`` writes)."""
    return rel.stem.endswith("_compare") and rel.with_name(rel.stem[: -len("_compare")] + rel.suffix) in files


# --- internals -------------------------------------------------------------------------------


def _is_pair_dir(d: Path, blur_dir: str) -> bool:
    return (d / blur_dir).is_dir() and (d / "sharp").is_dir()


def _scenes(d: Path, blur_dir: str) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and _is_pair_dir(p, blur_dir))


def images_under(d: Path) -> list[Path]:
    """Image files under ``d`` (recursive), relative to ``d``, sorted; hidden files skipped."""
    out = [
        p.relative_to(d)
        for p in d.rglob("*")
        if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(out, key=lambda p: p.as_posix())


def _key(rel: Path) -> str:
    return rel.with_suffix("").as_posix()


def _scan_gopro(root: Path, scenes: Iterable[Path], blur_dir: str) -> PairScan:
    scan = PairScan("gopro", root)
    for scene in scenes:
        part = _scan_dirs(scene / blur_dir, scene / "sharp", "gopro", root, scene.name + "/")
        scan.pairs += part.pairs
        scan.unpaired += part.unpaired
    return scan


def _scan_dirs(blur: Path, sharp: Path, layout: str, root: Path, prefix: str, skip_compare: bool = False) -> PairScan:
    scan = PairScan(layout, root)
    sharp_files = images_under(sharp)
    by_key: dict[str, list[Path]] = defaultdict(list)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    by_parent: dict[str, list[Path]] = defaultdict(list)
    for s in sharp_files:
        by_key[_key(s)].append(s)
        by_stem[s.stem].append(s)
        by_parent[s.parent.as_posix()].append(s)

    blurred = images_under(blur)
    if skip_compare:
        present = set(blurred)
        blurred = [b for b in blurred if not _is_compare_file(b, present)]
    for b in blurred:
        name = prefix + _key(b)
        match, reason = _match(b, by_key, by_stem, by_parent)
        if match is None:
            scan.unpaired.append(Unpaired(blur / b, name, f"{reason} in {sharp}"))
        else:
            scan.pairs.append(PairFiles(blur / b, sharp / match, name))
    return scan


def _match(
    b: Path, by_key: dict[str, list[Path]], by_stem: dict[str, list[Path]], by_parent: dict[str, list[Path]]
) -> tuple[Path | None, str]:
    # 1. Same relative path, any image extension (prefer the same extension if several).
    same = by_key.get(_key(b), [])
    if len(same) == 1:
        return same[0], ""
    if len(same) > 1:
        exact = [s for s in same if s.suffix.lower() == b.suffix.lower()]
        if len(exact) == 1:
            return exact[0], ""
        return None, f"several ground-truth files named {_key(b)}.*"
    # 2. Same stem anywhere, if unambiguous.
    stem = by_stem.get(b.stem, [])
    if len(stem) == 1:
        return stem[0], ""
    if len(stem) > 1:
        return None, f"several ground-truth files with stem {b.stem!r}"
    # 3. Levin rule: the longest sharp stem that prefixes the blurred stem at a separator.
    candidates = [
        s
        for s in by_parent.get(b.parent.as_posix(), [])
        if len(b.stem) > len(s.stem) and b.stem.startswith(s.stem) and b.stem[len(s.stem)] in _SEPARATORS
    ]
    if candidates:
        longest = max(len(s.stem) for s in candidates)
        best = [s for s in candidates if len(s.stem) == longest]
        if len(best) == 1:
            return best[0], ""
        return None, f"several ground-truth files with stem {best[0].stem!r}"
    return None, "no ground truth"


def _finish(scan: PairScan) -> PairScan:
    if not scan.pairs and not scan.unpaired:
        raise DatasetError(f"{scan.root}: no images found ({scan.layout} layout)")
    return scan
