"""Re-make the repository's example photo(s) under ``examples/`` from the shared data, in one command.

    python scripts/make_examples.py                      # reads ../shared/data, writes examples/

Each example is a redistributable photo (licence and attribution in ``examples/ATTRIBUTION.md``)
downscaled to ``--max-side`` pixels (area averaging) and blurred by the project's own stills engine,
:func:`deblurcli.pairs.synthesize_from_still`, with camera motion only (a curved handheld path with
rotation and zoom, no independently moving objects). The seed and the streak length are fixed, so
the same inputs give the same files. Only the blurred photo is written: it is the project's own
derived file; the original stays in the shared data.

README's first command deblurs ``examples/blurry_dogs.jpg``; ``tests/test_examples.py`` runs it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deblurcli.blur import score_image
from deblurcli.images import Image, read_image, resize_max_side, write_image
from deblurcli.pairs import synthesize_from_still

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    """One example: where its photo comes from and how it is blurred."""

    out_name: str
    source: str  # relative to the shared data folder
    blur_px: float  # the longest streak, px at the example's size
    seed: int


# Streaks of ~14 px at 1024 px: clearly shaken, and within what the bundled model is trained to
# undo (its model card: streaks beyond ~30 px are only sharpened at their edges).
EXAMPLES = (
    Example("blurry_dogs.jpg", "sharp/debian-photos/friends_by_Aitzol_Berasategi.jpg", blur_px=14.0, seed=19),
)


def make_example(ex: Example, data: Path, out_dir: Path, *, max_side: int, quality: int) -> Path:
    """Render one example into ``out_dir`` and return its path."""
    src = read_image(data / ex.source)
    rgb = resize_max_side(src.rgb_float(), max_side).astype(np.float32)
    rng = np.random.default_rng(ex.seed)
    # min_blur == max_blur: the streak length is the one chosen above, not a random draw.
    sample = synthesize_from_still(rgb, rng, max_blur=ex.blur_px, min_blur=ex.blur_px, moving_objects=False)
    out = out_dir / ex.out_name
    pixels = np.rint(np.clip(sample.blurred, 0.0, 1.0) * 255.0).astype(np.uint8)
    # No EXIF or ICC carried over: the file is a new, derived picture (sRGB, as the source).
    write_image(out, Image(pixels=pixels, format="JPEG"), quality=quality)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    ap.add_argument("--out", type=Path, default=ROOT / "examples")
    ap.add_argument("--max-side", type=int, default=1024, help="long side of the examples in pixels")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for ex in EXAMPLES:
        path = make_example(ex, args.data, args.out, max_side=args.max_side, quality=args.quality)
        img = read_image(path)
        h, w = img.pixels.shape[:2]
        print(f"{path}: {w}x{h}, {path.stat().st_size / 1000:.0f} kB, blur score {score_image(img):.1f}, "
              f"streak {ex.blur_px:g} px, seed {ex.seed}")


if __name__ == "__main__":
    main()
