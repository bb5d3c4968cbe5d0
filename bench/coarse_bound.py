"""What the coarse scales of a coarse-to-fine model are worth on the held-out 720p sets: an upper bound.

For each frame of a ``blur/`` + ``sharp/`` set, the blurred frame's image at 1/2, 1/4, 1/8 and 1/16
size (area averaging, as ``c2f`` builds its pyramid) is replaced by the sharp frame's, and the change
is carried up bilinearly (as ``c2f``'s ``residual=correction`` does): ``out = blurred + up(down(sharp)
- down(blurred))``, the finer scales left as they are. Printed: the mean PSNR gain of ``out`` over the
blurred frame for each factor: what a model gets at most if only its coarsest scale works, perfectly.

Session 6, on the sets of ``scripts/make_720p_sets.py``: at 1/2, 1/4, 1/8, 1/16:
``small720-g1.0`` (10-25 px) +7.8 / +3.8 / +1.4 / +0.4 dB; ``heldout720-g1.0`` (20-120 px)
+11.7 / +7.1 / +3.8 / +1.6; ``heldout720-g2.2`` +12.2 / +7.7 / +4.3 / +2.1. Most of what large blur
costs in PSNR is at coarse scales, where a 120 px streak is 30 px (1/4) or 15 px (1/8).

    python bench/coarse_bound.py /work/data/heldout720-g1.0 [/work/data/small720-g1.0 ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

FACTORS = (2, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", type=Path, nargs="+", help="folders with blur/ and sharp/ (same file names)")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from deblurcli.images import read_image
    from deblurcli.metrics import psnr

    def load(path: Path) -> torch.Tensor:
        return torch.from_numpy(read_image(path).pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]

    for root in args.sets:
        blurred_files = sorted((root / "blur").glob("*.png"))
        if not blurred_files:
            sys.exit(f"{root}: no blur/*.png (make the sets with scripts/make_720p_sets.py)")
        gains = []
        for f in blurred_files:
            b, s = load(f), load(root / "sharp" / f.name)
            h, w = b.shape[-2:]
            row = []
            for k in FACTORS:
                db = F.interpolate(b, size=(h // k, w // k), mode="area")
                ds = F.interpolate(s, size=(h // k, w // k), mode="area")
                out = (b + F.interpolate(ds - db, size=(h, w), mode="bilinear", align_corners=False)).clamp(0, 1)
                row.append(float(psnr(out, s) - psnr(b, s)))
            gains.append(row)
        mean = np.mean(gains, axis=0)
        print(f"{root.name} ({len(gains)} frames): gain with the true image at "
              + ", ".join(f"1/{k}: {g:+.2f} dB" for k, g in zip(FACTORS, mean)))


if __name__ == "__main__":
    main()
