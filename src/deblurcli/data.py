"""Training data: pair folders and folders of sharp photos -> random (blurred, sharp) crops.

Each ``--data`` folder is one *source*, recognised in this order:

1. a pair layout that :func:`deblurcli.layouts.scan_pairs` knows: a ``deblur make-pairs`` folder
   (``blurred/`` + ``targets/``), flat ``blur/`` + ``sharp/``, or GoPro
   (``<root>/{train,test}/<scene>/{blur,sharp}``);
2. otherwise a folder of (sharp) photos, searched recursively: each training sample is a random crop
   of a photo blurred on the fly by the stills engine (:func:`deblurcli.pairs.synthesize_from_still`).

Validation split: a GoPro root with both splits trains on ``train/`` and validates on ``test/``;
any other source holds out a fixed, seed-independent fraction of its items (at least one when it has
two or more), so the held-out images never change between runs or on ``--resume``. Validation pairs of
a photo source are synthesized once with a fixed seed, so the numbers compare across steps and runs.

Randomness: a sample's crop, flips and synthetic blur come from ``numpy.random.default_rng((seed,
epoch, index))``, so they do not depend on the number of loader workers or processes, and a resumed
run sees the very samples it would have seen.

Where the synthetic blur is rendered: by default in the loader workers (the stills engine's OpenCV
warps, :meth:`TrainDataset.sample`). A GPU's training step takes far more crops per second than a
CPU core renders (``bench/loader.py``), so with ``TrainDataset(plans=True)`` the workers only draw
each sample (:meth:`TrainDataset.draw`: its crop, the engine's :class:`~deblurcli.pairs.StillPlan`,
its flips) and the training process renders the batch on its device (:func:`render_batch`, with
``grid_sample``; the same images to ~0.02 of an 8-bit level).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from deblurcli.errors import DatasetError
from deblurcli.images import Image
from deblurcli.pairs import DEFAULT_GAMMA, StillPlan, plan_from_still, render_plan

#: Salt of the fixed validation hold-out permutation (independent of --seed on purpose).
_VAL_SALT = 0x5EED
#: Seed of the synthetic validation pairs of photo sources.
_VAL_SYNTH_SEED = 20240601


@dataclass(frozen=True)
class Item:
    """One training/validation item: a blurred/sharp file pair, or a sharp photo (``blurred=None``)."""

    sharp: Path
    name: str
    blurred: Optional[Path] = None

    @property
    def synthetic(self) -> bool:
        """True when the blur is synthesized from the sharp photo."""
        return self.blurred is None


@dataclass
class Source:
    """One ``--data`` folder: its layout and its train / validation items."""

    root: Path
    layout: str  #: "gopro", "make-pairs", "flat" or "stills"
    train: list[Item] = field(default_factory=list)
    val: list[Item] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the run summary."""
        kind = "sharp photos, blurred on the fly" if self.layout == "stills" else f"{self.layout} pairs"
        return f"{self.root}: {len(self.train)} train + {len(self.val)} val ({kind})"


def _image_files(root: Path) -> list[Path]:
    from deblurcli.images import EXTENSIONS

    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))


def _hold_out(items: list[Item], fraction: float) -> tuple[list[Item], list[Item]]:
    """Split items into (train, val) by a permutation that depends only on the item names."""
    if fraction <= 0 or len(items) < 2:
        return items, []
    n_val = min(len(items) - 1, max(1, round(fraction * len(items))))
    order = sorted(items, key=lambda it: zlib.crc32(f"{_VAL_SALT}:{it.name}".encode()))
    val_names = {it.name for it in order[:n_val]}
    return [it for it in items if it.name not in val_names], [it for it in items if it.name in val_names]


def open_source(root: str | Path, *, val_fraction: float = 0.05, blur_dir: str = "blur") -> Source:
    """Recognise one ``--data`` folder (see the module docstring) and split it.

    Raises:
        DatasetError: missing folder, or neither a pair layout nor any image inside.
    """
    from deblurcli.layouts import scan_pairs

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    try:
        scan = scan_pairs(root, blur_dir=blur_dir)
    except DatasetError:
        scan = None
    if scan is not None and scan.pairs:
        items = [Item(sharp=p.sharp, blurred=p.blurred, name=p.name) for p in scan.pairs]
        if scan.layout == "gopro" and (root / "train").is_dir() and (root / "test").is_dir():
            train = [Item(sharp=p.sharp, blurred=p.blurred, name=p.name) for p in scan_pairs(root, blur_dir=blur_dir, split="train").pairs]
            return Source(root, "gopro", train=train, val=items if val_fraction > 0 else [])
        train, val = _hold_out(items, val_fraction)
        return Source(root, scan.layout, train=train, val=val)
    photos = _image_files(root)
    if not photos:
        raise DatasetError(
            f"{root}: no training data (expected blurred/+targets/, blur/+sharp/, a GoPro folder, or sharp photos)"
        )
    items = [Item(sharp=p, name=p.relative_to(root).with_suffix("").as_posix()) for p in photos]
    train, val = _hold_out(items, val_fraction)
    return Source(root, "stills", train=train, val=val)


def open_sources(roots: list[str | Path], *, val_fraction: float = 0.05) -> list[Source]:
    """:func:`open_source` for every ``--data`` folder; item names are prefixed to stay unique."""
    if not roots:
        raise DatasetError("no --data folder given")
    sources = [open_source(r, val_fraction=val_fraction) for r in roots]
    if len(sources) > 1:
        for i, s in enumerate(sources):
            s.train = [Item(it.sharp, f"{i}:{it.name}", it.blurred) for it in s.train]
            s.val = [Item(it.sharp, f"{i}:{it.name}", it.blurred) for it in s.val]
    return sources


# --------------------------------------------------------------------------------------- pixels


def _read_rgb(path: Path) -> np.ndarray:
    from deblurcli.images import read_image

    return read_image(path).rgb_float()


def _pad_to(a: np.ndarray, size: int) -> np.ndarray:
    """Mirror-pad (H, W, 3) so both sides are at least ``size``."""
    import cv2

    h, w = a.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return a
    # BORDER_REFLECT_101 needs pad < side; tiny images fall back to edge replication.
    mode = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE
    return cv2.copyMakeBorder(a, 0, ph, 0, pw, mode)


def _plan(
    sharp_crop: np.ndarray,
    rng: np.random.Generator,
    max_blur: float,
    gamma: tuple[float, float] = (DEFAULT_GAMMA, DEFAULT_GAMMA),
    gamma_set: tuple[float, ...] = (),
    highlights: float = 0.0,
) -> StillPlan:
    lo, hi = gamma
    if gamma_set:
        # One of a few values, each equally often: blur averaged in stored values (1.0) and in
        # linear light (2.2) are met equally, which a uniform draw on [1.0, 2.2] (mostly > 1) is not.
        g = float(gamma_set[int(rng.integers(len(gamma_set)))])
    else:
        # A fixed gamma draws nothing, so runs without a range keep their exact random streams.
        g = lo if lo == hi else float(rng.uniform(lo, hi))
    # Brighter-than-white highlights only where the blur happened in linear light (a camera's own
    # exposure); frames averaged in stored values were each clipped already.
    return plan_from_still(np.ascontiguousarray(sharp_crop, dtype=np.float32), rng, max_blur=max_blur, gamma=g,
                           highlights=highlights if g > 1.0 else 0.0)


def load_pair(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """Full-size (blurred, sharp) float32 arrays of a file pair.

    Raises:
        DatasetError: the two files have different sizes.
    """
    assert item.blurred is not None
    b, s = _read_rgb(item.blurred), _read_rgb(item.sharp)
    if b.shape != s.shape:
        raise DatasetError(f"{item.blurred}: size {b.shape[1]}x{b.shape[0]} differs from {item.sharp} ({s.shape[1]}x{s.shape[0]})")
    return b, s


@dataclass
class Drawn:
    """One training sample as drawn, before its synthetic blur is rendered and its flips applied.

    Attributes:
        sharp: (crop, crop, 3) float32 sharp image, unflipped.
        blurred: its (crop, crop, 3) float32 blurred image (a pair source), or None when ``plan``
            is still to be rendered.
        plan: the stills-engine plan of a photo source's sample (see :func:`render_batch`).
        flip_x, flip_y: the horizontal and vertical flips to apply to both images.
    """

    sharp: np.ndarray
    blurred: Optional[np.ndarray]
    plan: Optional[StillPlan]
    flip_x: bool
    flip_y: bool


class TrainDataset:
    """Random crops (same window in both images) with random horizontal/vertical flips.

    A ``torch.utils.data.Dataset`` by duck typing (``__len__``/``__getitem__``), so this module
    imports torch only when items are produced. Call :meth:`set_epoch` before each epoch (before the
    loader's iterator is created: workers receive a copy of the dataset).

    Args:
        items: training items.
        crop: crop side in pixels (images smaller than that are mirror-padded).
        seed: base seed of the per-sample generators.
        flip: random flips.
        max_blur: longest streak of synthetic blur, px at crop size (photo sources).
        gamma: (low, high) camera-response gamma of the synthetic blur, drawn uniformly per crop
            (equal values: fixed; the paper's is 2.2).
        gamma_set: when given, the gamma is drawn per crop from these values instead, each equally
            often (``gamma`` is then ignored).
        highlights: probability of brighter-than-white highlights in a crop whose gamma is above 1
            (see :func:`deblurcli.pairs.synthesize_from_still`).
        plans: items are :class:`Drawn` samples whose synthetic blur is not rendered yet (a loader
            with ``collate_fn=collate_drawn``; the training process renders the batch with
            :func:`render_batch` on its device) instead of (blurred, sharp) tensors.
    """

    def __init__(
        self, items: list[Item], *, crop: int, seed: int = 0, flip: bool = True, max_blur: float = 60.0,
        gamma: tuple[float, float] = (DEFAULT_GAMMA, DEFAULT_GAMMA), gamma_set: tuple[float, ...] = (),
        highlights: float = 0.0, plans: bool = False,
    ) -> None:
        if crop < 16:
            raise ValueError(f"crop must be at least 16 px, got {crop}")
        self.items = list(items)
        self.crop = crop
        self.seed = seed
        self.flip = flip
        self.max_blur = max_blur
        self.gamma = gamma
        self.gamma_set = tuple(gamma_set)
        self.highlights = highlights
        self.plans = plans
        self.epoch = 0
        # Decoded sharp photos (as stored), see preload().
        self._photos: dict[Path, Image] = {}

    def preload(self, max_bytes: int = 2 << 30) -> int:
        """Decode the sharp photos of synthetic items now, up to ``max_bytes`` of pixels in all.

        Decoding a 1280 px photo costs about as much as synthesizing its blurred crop (~40 ms), and
        every photo comes back every epoch. Call it before the loader's workers start: they fork
        from this process and share the decoded pixels copy-on-write. Photos past the budget (large
        datasets) are decoded per sample as before. Returns the bytes held.
        """
        from deblurcli.images import read_image

        held = sum(im.pixels.nbytes for im in self._photos.values())
        for item in self.items:
            if item.synthetic and item.sharp not in self._photos:
                image = read_image(item.sharp)
                if held + image.pixels.nbytes > max_bytes:
                    break
                self._photos[item.sharp] = image
                held += image.pixels.nbytes
        return held

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _photo(self, path: Path) -> Image:
        """The photo at ``path``, as stored (preloaded, or decoded now)."""
        from deblurcli.images import read_image

        image = self._photos.get(path)
        return image if image is not None else read_image(path)

    def draw(self, index: int) -> Drawn:
        """Item ``index`` this epoch as drawn: the crop, its blur (a plan for photo sources) and flips."""
        item = self.items[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        c = self.crop
        blurred: Optional[np.ndarray] = None
        plan: Optional[StillPlan] = None
        if item.synthetic:
            photo = self._photo(item.sharp)
            if photo.height >= c and photo.width >= c:
                # Crop the stored pixels, then convert only the crop: converting a whole 1280 px
                # photo to float for one crop costs more than the crop's blur.
                y, x = rng.integers(0, photo.height - c + 1), rng.integers(0, photo.width - c + 1)
                sharp = Image(pixels=photo.pixels[y : y + c, x : x + c]).rgb_float()
            else:
                sharp = _pad_to(photo.rgb_float(), c)
                y, x = rng.integers(0, sharp.shape[0] - c + 1), rng.integers(0, sharp.shape[1] - c + 1)
                sharp = sharp[y : y + c, x : x + c]
            plan = _plan(sharp, rng, self.max_blur, self.gamma, self.gamma_set, self.highlights)
            sharp = plan.sharp
        else:
            blurred, sharp = load_pair(item)
            blurred, sharp = _pad_to(blurred, c), _pad_to(sharp, c)
            y, x = rng.integers(0, sharp.shape[0] - c + 1), rng.integers(0, sharp.shape[1] - c + 1)
            blurred, sharp = blurred[y : y + c, x : x + c], sharp[y : y + c, x : x + c]
        # Rendering draws nothing, so the flips are those of a sample rendered here.
        flip_x = bool(self.flip and rng.random() < 0.5)
        flip_y = bool(self.flip and rng.random() < 0.5)
        return Drawn(sharp=sharp, blurred=blurred, plan=plan, flip_x=flip_x, flip_y=flip_y)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The (blurred, sharp) (crop, crop, 3) float32 arrays of item ``index`` this epoch."""
        d = self.draw(index)
        blurred, sharp = (d.blurred if d.plan is None else render_plan(d.plan).blurred), d.sharp
        if d.flip_x:
            blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
        if d.flip_y:
            blurred, sharp = blurred[::-1], sharp[::-1]
        return np.ascontiguousarray(blurred), np.ascontiguousarray(sharp)

    def __getitem__(self, index: int):  # -> tuple[torch.Tensor, torch.Tensor] | Drawn
        if self.plans:
            return self.draw(index)
        import torch

        b, s = self.sample(index)
        return torch.from_numpy(b).permute(2, 0, 1), torch.from_numpy(s).permute(2, 0, 1)


@dataclass
class DrawnBatch:
    """A batch of :class:`Drawn` samples as a loader hands it to the training process.

    Attributes:
        images: (B, crop, crop, 3) float32 tensor: a plan's linear-light photo
            (:attr:`StillPlan.lin`), or a pair's blurred crop.
        sharp: (B, crop, crop, 3) float32 tensor, the sharp crops, unflipped.
        plans: per sample, its plan without its images (``lin`` is in ``images``, ``sharp`` in
            ``sharp``), or None.
        flips: per sample, (flip_x, flip_y).
    """

    images: Any
    sharp: Any
    plans: list[Optional[StillPlan]]
    flips: list[tuple[bool, bool]]


#: Stands in for a plan's images once they travel as tensors in a :class:`DrawnBatch`.
_MOVED = np.zeros((0, 0, 3), np.float32)


def collate_drawn(batch: list[Drawn]) -> DrawnBatch:
    """A loader's ``collate_fn`` for ``TrainDataset(plans=True)``; it runs in the loader worker.

    The images go as tensors, which the loader moves through shared memory: batches of 16 plans
    pickled with their float32 images came through a one-worker loader at 283-326 crops/s (256 px)
    on a 2-core CPU, collated by this at 558-600.
    """
    import dataclasses

    import torch

    images = np.stack([d.plan.lin if d.plan is not None else d.blurred for d in batch])  # type: ignore[misc]
    return DrawnBatch(
        images=torch.from_numpy(images),
        sharp=torch.from_numpy(np.stack([d.sharp for d in batch])),
        plans=[dataclasses.replace(d.plan, lin=_MOVED, sharp=_MOVED) if d.plan is not None else None for d in batch],
        flips=[(d.flip_x, d.flip_y) for d in batch],
    )


def _grid_for(mats: np.ndarray, height: int, width: int, src_height: int, src_width: int, device):  # -> torch.Tensor
    """``grid_sample`` grids (n, height, width, 2) that warp a (src_height, src_width) image by each
    forward homography of ``mats`` (n, 3, 3), as ``cv2.warpPerspective`` does: output pixel p takes
    the source at mats[k]^-1 p, pixel centres at integers (``align_corners=True``)."""
    import torch

    inv = torch.from_numpy(np.linalg.inv(mats)).to(device=device, dtype=torch.float32)
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (h, w, 3)
    src = torch.einsum("nij,hwj->nhwi", inv, pts)
    xy = src[..., :2] / src[..., 2:3]
    scale = torch.tensor([2.0 / max(src_width - 1, 1), 2.0 / max(src_height - 1, 1)], device=device)
    return xy * scale - 1.0


def render_plan_torch(plan: StillPlan, lin, device):  # -> torch.Tensor
    """The blurred image of ``plan`` rendered on a torch ``device``, (3, H, W) float32 in [0, 1]:
    :func:`deblurcli.pairs.render_plan` with ``grid_sample`` for OpenCV's warps (reflected borders
    for the photo, empty ones for the moving patches), equal to it up to interpolation rounding.

    Args:
        plan: the plan (its ``lin`` is not read).
        lin: the plan's linear-light photo, a (H, W, 3) float32 tensor (on any device).
        device: where to render.
    """
    import torch
    import torch.nn.functional as F

    h, w = lin.shape[:2]
    n = len(plan.cams)
    frames = F.grid_sample(lin.to(device).permute(2, 0, 1)[None].expand(n, -1, -1, -1), _grid_for(plan.cams, h, w, h, w, device),
                           mode="bilinear", padding_mode="reflection", align_corners=True)
    for obj, mats, roi in zip(plan.objects, plan.object_mats, plan.object_rois, strict=True):
        if roi is None:  # as render_plan: a patch that never enters the frame is not drawn
            continue
        ph, pw = obj.alpha.shape
        rgba = torch.from_numpy(obj.rgba).to(device).permute(2, 0, 1)[None].expand(n, -1, -1, -1)
        layer = F.grid_sample(rgba, _grid_for(mats, h, w, ph, pw, device), mode="bilinear",
                              padding_mode="zeros", align_corners=True)
        frames = frames * (1.0 - layer[:, 3:4]) + layer[:, :3]  # premultiplied "over"
    return frames.mean(dim=0).clamp(0.0, 1.0).pow(1.0 / plan.gamma)


def render_batch(batch: DrawnBatch, device):  # -> tuple[torch.Tensor, torch.Tensor]
    """(blurred, sharp) (B, 3, crop, crop) tensors on ``device`` of a :class:`DrawnBatch`: plans
    rendered there (:func:`render_plan_torch`), flips applied as :meth:`TrainDataset.sample` does."""
    import torch

    blurred, sharp = [], []
    for image, s, plan, (flip_x, flip_y) in zip(batch.images, batch.sharp, batch.plans, batch.flips, strict=True):
        s = s.to(device).permute(2, 0, 1)
        b = render_plan_torch(plan, image, device) if plan is not None else image.to(device).permute(2, 0, 1)
        dims = [i for i, f in ((2, flip_x), (1, flip_y)) if f]
        if dims:
            b, s = b.flip(dims), s.flip(dims)
        blurred.append(b)
        sharp.append(s)
    return torch.stack(blurred), torch.stack(sharp)


def _center_crop(a: np.ndarray, size: int, multiple: int) -> np.ndarray:
    h, w = a.shape[:2]
    th = min(h, size) if size > 0 else h
    tw = min(w, size) if size > 0 else w
    th, tw = max(multiple, th - th % multiple), max(multiple, tw - tw % multiple)
    y, x = (h - th) // 2, (w - tw) // 2
    return a[y : y + th, x : x + tw]


def load_validation(
    items: list[Item],
    *,
    count: int = 16,
    crop: int = 256,
    max_blur: float = 60.0,
    multiple: int = 16,
    gammas: tuple[float, ...] = (DEFAULT_GAMMA,),
) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """The validation set, loaded once: up to ``count`` items (evenly spread), center-cropped.

    Args:
        items: held-out items.
        count: how many to keep (0 = all).
        crop: center-crop side (0 = whole image); sides are rounded down to ``multiple``.
        max_blur: synthetic blur of photo items (drawn with a fixed seed per item).
        multiple: crop sides are multiples of this (models pad anyway; this keeps borders honest).
        gammas: camera gammas of the synthetic blur, taken in turn by the photo items, so that a
            run trained on blur averaged in stored values (1.0) and in linear light (2.2) is
            validated on both, and each kind is scored on its own (a gain on 2.2 alone can be a
            brightness correction that removes no blur).

    Returns:
        A list of (name, blurred, sharp, kind): float32 (H, W, 3) arrays; ``kind`` is ``"g1.0"``,
        ``"g2.2"``, ... for photos blurred here (their gamma), ``"pairs"`` for file pairs.
    """
    if not gammas:
        raise ValueError("gammas must name at least one gamma")
    if count and len(items) > count:
        picks = np.linspace(0, len(items) - 1, count).round().astype(int)
        items = [items[i] for i in sorted(set(picks.tolist()))]
    out = []
    photos = 0
    for item in items:
        if item.synthetic:
            g = float(gammas[photos % len(gammas)])
            photos += 1
            sharp = _center_crop(_pad_to(_read_rgb(item.sharp), 16), crop, multiple)
            rng = np.random.default_rng((_VAL_SYNTH_SEED, zlib.crc32(item.name.encode())))
            sample = render_plan(_plan(sharp, rng, max_blur, gamma=(g, g)))
            blurred, sharp = sample.blurred, sample.sharp
            kind = f"g{g:.1f}"
        else:
            blurred, sharp = (_pad_to(a, 16) for a in load_pair(item))
            blurred, sharp = _center_crop(blurred, crop, multiple), _center_crop(sharp, crop, multiple)
            kind = "pairs"
        out.append((item.name, np.ascontiguousarray(blurred), np.ascontiguousarray(sharp), kind))
    return out
