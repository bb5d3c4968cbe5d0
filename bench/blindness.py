"""Why no model has learned large blur here: how fast the c2f body learns a blur it must recognise.

The same network (the c2f body at one scale, whitened input, width 16 unless ``--width``, from scratch), the same
photos, optimiser and steps, three kinds of blur of the same size:

* ``fixed``: one known kernel (a horizontal box of the longest length) on every crop: the network
  only has to learn one deconvolution;
* ``straight``: a straight streak of random length and angle per crop (the network must first
  recognise the streak, then undo it: blind deblurring in its simplest form);
* ``engine``: the stills engine's curved, spatially varying camera paths (and moving patches), as in
  training and in the held-out sets, at the same streak lengths.

Printed for each: the validation PSNR gain (dB over the blurred crops, 32 held-out crops) every
``--every`` steps. Session 6, defaults (one thread, 128 px crops, batch 16, Adam 5e-4, streaks
3-15 px; fixed = a 15 px horizontal streak): fixed +1.64 dB after 100 steps and +3.61 after 300, still
climbing; straight +0.20 and +0.45; engine +0.53 and +0.57, and +0.56 after 600 (flat from step 50
on: a generic sharpening, learned at once, then nothing); at ``--width 32`` (3.4x the time per step)
engine is the same, +0.57 after 300 and 600. Session 7, engine for 2250 steps: +0.57 at 500, +0.65 at
750, +0.76 at 1250, +0.82 at 2000: not flat, only slow (about +0.1 dB per 1000 steps). Undoing a blur is learned fast; recognising which blur
it is, is what the steps do not buy.

    python bench/blindness.py [--kinds fixed,straight,engine] [--steps 300] [--length 3 15] [--width 16]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CROP = 128
MARGIN = 8  # blurred with this much context on each side, then cut to CROP: no border effects


def line_kernel(length: float, angle: float, size: int) -> np.ndarray:
    """A straight streak of ``length`` px at ``angle`` (radians), centred: the kernel of a camera
    translating uniformly along it (:func:`deblurcli.pairs.camera_psf` on translation homographies,
    as ``bench/kernel_bound.py`` draws its line kernels)."""
    from deblurcli.pairs import camera_psf

    ts = np.linspace(-0.5, 0.5, int(8 * length) + 2) * length
    path = np.repeat(np.eye(3)[None], len(ts), axis=0)
    path[:, 0, 2], path[:, 1, 2] = ts * math.cos(angle), ts * math.sin(angle)
    return camera_psf(path, 0.0, 0.0, size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "sharp")
    ap.add_argument("--kinds", default="fixed,straight,engine")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=16, help="c2f width (channels at full resolution)")
    ap.add_argument("--length", type=float, nargs=2, default=(3.0, 15.0), metavar=("MIN", "MAX"))
    args = ap.parse_args()
    files = sorted(p for p in args.photos.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".bmp") and "debian" not in str(p))
    if not files:
        sys.exit(f"no photos in {args.photos}/* (the shared data folder is needed)")

    import cv2
    import torch

    from deblurcli.images import read_image
    from deblurcli.losses import L1FFTLoss
    from deblurcli.metrics import psnr
    from deblurcli.models.c2f import CoarseToFineUNet
    from deblurcli.pairs import synthesize_from_still

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    side = CROP + 2 * MARGIN
    photos = [read_image(f).pixels for f in files[::3]]
    photos = [p for p in photos if min(p.shape[:2]) >= side]
    lo, hi = args.length
    ksize = 2 * math.ceil(hi / 2) + 3

    def blur(sharp: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if kind == "engine":
            s = synthesize_from_still(sharp, rng, max_blur=hi, min_blur=lo, gamma=1.0)
            return s.blurred, s.sharp
        if kind == "fixed":
            k = line_kernel(hi, 0.0, ksize)
        else:
            k = line_kernel(rng.uniform(lo, hi), rng.uniform(0, math.pi), ksize)
        return cv2.filter2D(sharp, -1, k, borderType=cv2.BORDER_REFLECT_101), sharp

    def batch(n: int, kind: str, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        bs, ss = [], []
        for _ in range(n):
            p = photos[int(rng.integers(len(photos)))]
            y, x = rng.integers(0, p.shape[0] - side + 1), rng.integers(0, p.shape[1] - side + 1)
            b, s = blur(np.ascontiguousarray(p[y : y + side, x : x + side], dtype=np.float32) / 255, kind, rng)
            bs.append(b[MARGIN:-MARGIN, MARGIN:-MARGIN])
            ss.append(s[MARGIN:-MARGIN, MARGIN:-MARGIN])
        return (torch.from_numpy(np.stack(bs)).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(np.stack(ss)).permute(0, 3, 1, 2).contiguous())

    print(f"c2f body (width {args.width}, whitened, from scratch), {args.steps} steps of {args.batch} crops of {CROP} px, "
          f"Adam {args.lr:g}, streaks {lo:g}-{hi:g} px; validation gain in dB")
    for kind in args.kinds.split(","):
        torch.manual_seed(0)
        vb, vs = batch(32, kind, np.random.default_rng(99))
        net = CoarseToFineUNet(width=args.width, levels=4, blocks=1, middle_blocks=2, scales=1, whiten=True)
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        loss_fn = L1FFTLoss(0.1)
        rng = np.random.default_rng(1)
        t0 = time.time()
        print(f"  {kind:8s}", end="", flush=True)
        for step in range(1, args.steps + 1):
            b, s = batch(args.batch, kind, rng)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(b)
            loss = loss_fn(out, s)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            if step % args.every == 0 or step == args.steps:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    vo = net(vb).float().clamp(0, 1)
                # Printed as it goes: long runs are read while they train.
                print(f"  {step}: {(psnr(vo, vs) - psnr(vb, vs)).mean().item():+.2f}", end="", flush=True)
        print(f"  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
