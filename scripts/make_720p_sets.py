#!/usr/bin/env python3
"""Training photos and held-out sets at the pixel scale of 720p footage, from ../shared/data.

Real 720p dynamic-scene blur has streaks of 10-120 px. Photos must be at that pixel scale before the
stills engine blurs them, so the 1920 px Debian photos are downscaled to a long side of 1280 px.

Writes, under OUT (deterministic: the same files on every machine):

* ``train1280/``: the Debian photos that are not held out, long side 1280 px (PNG), for ``--data``.
* ``heldout720-g1.0/`` and ``heldout720-g2.2/``: ``blur/`` + ``sharp/`` pairs (a layout that
  ``deblur evaluate`` reads), 1280x720 frames cut from the held-out photos (never trained on),
  blurred by the stills engine with streaks of 20-120 px, averaged in stored values (γ 1.0, as
  GoPro's ``blur`` folder and Levin) and in linear light (γ 2.2, as GoPro's ``blur_gamma``). Both
  sets use the same camera paths, so they differ only in how the frames were averaged.
* ``small720-g1.0/``: the middle frame of each held-out photo with small streaks (10-25 px, γ 1.0):
  a check that a model removes ordinary blur and leaves nearly sharp detail alone.
* with ``--check-photos N``: ``check720-g1.0/`` and ``checksmall720-g1.0/``, the same kinds of frames
  (γ 1.0) from the N training photos that sort first by crc32, with another seed: for checking
  settings chosen on the held-out sets (`--model blind`'s agreement threshold, its tile size) on
  frames they were not chosen on. Not for networks trained on ``train1280`` (they saw these photos).
* with ``--fresh-photos N``: ``fresh720-g1.0/``, ``fresh720-g2.2/`` (2 frames a photo, 20-120 px,
  the same paths at both gammas) and ``freshsmall720-g1.0/``, from the N training photos after the
  first 8 (the check photos of ``--check-photos 8``) in crc32 order, with a third seed: frames no
  setting was chosen on before session 14 (there `--model blind` lost 4-17 dB on tiles of grass
  blades; `training/README.md`).

Usage: python scripts/make_720p_sets.py [--data ../shared/data] [--out DIR] [--frames-per-photo 3]
                                        [--check-photos 8] [--fresh-photos 8]
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np

from deblurcli.images import Image, read_image, resize_max_side, write_image
from deblurcli.pairs import synthesize_from_still

#: Held-out Debian photos: the 8 names that sort first by crc32 (fixed; independent of content).
HELD_OUT = 8
LONG_SIDE = 1280
FRAME = (1280, 720)
SEED = 720
CHECK_SEED = 721
FRESH_SEED = 722
#: Streak range (min, max px) of the 20-120 px sets and of the 10-25 px ones.
LARGE_BLUR = (20.0, 120.0)
SMALL_BLUR = (10.0, 25.0)
#: Each family of sets: (its 20-120 px set, its 10-25 px set, the seed of their paths).
HELDOUT = ("heldout720", "small720", SEED)
CHECK = ("check720", "checksmall720", CHECK_SEED)
FRESH = ("fresh720", "freshsmall720", FRESH_SEED)
#: What bench/kernel_bound.py replays the sets' paths from.
FAMILIES = (HELDOUT, CHECK, FRESH)
#: The fresh photos follow the first 8 (the check photos of ``--check-photos 8``) in crc32 order.
FRESH_FROM = 8
GAMMAS = (1.0, 2.2)


def held_out_names(names: list[str]) -> set[str]:
    return set(sorted(names, key=lambda n: zlib.crc32(n.encode()))[:HELD_OUT])


def save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, Image(pixels=np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default="/work/data")
    ap.add_argument("--frames-per-photo", type=int, default=3)
    ap.add_argument("--check-photos", type=int, default=0, help="also write the check sets from this many training photos")
    ap.add_argument("--fresh-photos", type=int, default=0, help="also write the fresh sets from this many training photos after those")
    args = ap.parse_args()
    src = Path(args.data) / "sharp" / "debian-photos"
    photos = sorted(p for p in src.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {src}")
    out = Path(args.out)
    held = held_out_names([p.stem for p in photos])
    by_crc = sorted((p.stem for p in photos if p.stem not in held), key=lambda n: zlib.crc32(n.encode()))
    check = set(by_crc[: args.check_photos])
    # From the 9th photo on, whatever --check-photos says (the fresh sets stay the same files).
    fresh = set(by_crc[FRESH_FROM : FRESH_FROM + args.fresh_photos])
    (out / "train1280").mkdir(parents=True, exist_ok=True)
    for p in photos:
        rgb = resize_max_side(read_image(p).pixels, LONG_SIDE).astype(np.float32) / 255.0
        if p.stem in check:
            write_frames(out, p.stem, rgb, args.frames_per_photo, *CHECK, (1.0,))
        if p.stem in fresh:
            write_frames(out, p.stem, rgb, 2, *FRESH, GAMMAS)
        if p.stem not in held:
            save_png(out / "train1280" / f"{p.stem}.png", rgb)
            continue
        write_frames(out, p.stem, rgb, args.frames_per_photo, *HELDOUT, GAMMAS)
    print(f"train1280: {len(photos) - len(held)} photos; held out: {', '.join(sorted(held))}")


def write_frames(out: Path, stem: str, rgb: np.ndarray, frames: int, big: str, small: str, seed: int, gammas: tuple[float, ...]) -> None:
    """``frames`` 1280x720 frames of one photo with 20-120 px streaks into ``{big}-g{γ}/``, and the
    middle one with 10-25 px streaks (γ 1.0) into ``{small}-g1.0/``."""
    h, w = rgb.shape[:2]
    fw, fh = min(FRAME[0], w), min(FRAME[1], h)
    for k in range(frames):
        # Frames spread over the photo (left/centre/right or top/middle/bottom), same seed per frame.
        t = k / max(1, frames - 1)
        x, y = round((w - fw) * t), round((h - fh) * t)
        crop = np.ascontiguousarray(rgb[y : y + fh, x : x + fw])
        name = f"{stem}_{k}"
        for g in gammas:
            rng = np.random.default_rng((seed, zlib.crc32(name.encode())))
            s = synthesize_from_still(crop, rng, min_blur=LARGE_BLUR[0], max_blur=LARGE_BLUR[1], gamma=g)
            d = out / f"{big}-g{g:.1f}"
            save_png(d / "blur" / f"{name}.png", s.blurred)
            save_png(d / "sharp" / f"{name}.png", s.sharp)
            print(f"{d.name}/{name}: streak {s.blur_px:.0f} px, {s.subframes} sub-frames, {s.objects} objects", flush=True)
        if k == (frames - 1) // 2:
            rng = np.random.default_rng((seed, zlib.crc32(name.encode())))
            s = synthesize_from_still(crop, rng, min_blur=SMALL_BLUR[0], max_blur=SMALL_BLUR[1], gamma=1.0)
            save_png(out / f"{small}-g1.0" / "blur" / f"{name}.png", s.blurred)
            save_png(out / f"{small}-g1.0" / "sharp" / f"{name}.png", s.sharp)


if __name__ == "__main__":
    main()
