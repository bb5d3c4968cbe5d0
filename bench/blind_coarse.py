"""An untrained baseline for large blur: classical blind deconvolution at a coarse scale.

At 1/8 of a 1280x720 frame a 120 px streak is a 15 px kernel on a 160x90 image. Each frame of a
``blur/`` + ``sharp/`` set is area-downsampled by ``--down``; one blur kernel is estimated for the whole
small image by alternating an L0-gradient latent image and a least-squares kernel over a pyramid of
kernel sizes (Xu and Jia 2010; Pan et al. 2014); the small image is Wiener-deconvolved with it (in
the set's linear space, ``--gamma``), and the change is carried up to full size bilinearly, as c2f's
``residual=correction`` does. Printed: each frame's PSNR gain and the mean, for a few noise-to-signal
ratios, and the seconds per frame.

Session 6 (``--down 8``, kernels up to 17 px): +0.10 dB on the 24 frames of ``heldout720-g1.0``
(noise-to-signal 0.01; the best trained c2f: +0.09), +0.33 on its six frames without moving objects
(two of them +1.2); -0.48 on ``heldout720-g2.2`` at ``--gamma 2.2``; -0.51 at ``--down 4 --kernel 33``.
``--iters 16``: +0.14 (and +0.40 if each frame where it loses kept its blurred image: a fallback is
worth building); ``--lam`` 2e-3 / 8e-3 / 1.6e-2: +0.01 / -0.40 / -0.73 (best noise-to-signal).
Wiener with the *true* kernels at 1/8 gains +2.1 dB on those six frames (``training/README.md``).

    python bench/blind_coarse.py /work/data/heldout720-g1.0 [--down 8] [--kernel 17] [--gamma 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

NSRS = (0.003, 0.01, 0.03)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", type=Path, help="folder with blur/ and sharp/ (same file names)")
    ap.add_argument("--down", type=int, default=8, help="work at 1/DOWN size")
    ap.add_argument("--kernel", type=int, default=17, help="largest kernel side at that size (odd)")
    ap.add_argument("--gamma", type=float, default=1.0, help="the blur's space: 1.0 stored values, 2.2 linear light")
    ap.add_argument("--lam", type=float, default=4e-3, help="weight of the L0 gradient prior (images in [0, 1])")
    ap.add_argument("--iters", type=int, default=8, help="latent/kernel alternations per kernel size")
    ap.add_argument("--frames", type=int, default=0, help="only the first N frames (0 = all)")
    args = ap.parse_args()
    files = sorted((args.set / "blur").glob("*.png"))[: args.frames or None]
    if not files:
        sys.exit(f"{args.set}: no blur/*.png (make the sets with scripts/make_720p_sets.py)")
    if args.kernel < 3 or args.kernel % 2 == 0:
        sys.exit("--kernel must be an odd number >= 3")

    import torch
    import torch.nn.functional as F

    from deblurcli.blur import LUMA_WEIGHTS
    from deblurcli.images import read_image
    from deblurcli.metrics import psnr
    from deblurcli.models.blind import otf, estimate_kernel

    torch.set_num_threads(1)

    def wiener(img: torch.Tensor, k: torch.Tensor, nsr: float) -> torch.Tensor:
        p = k.shape[-1]
        x = F.pad(img[None], (p, p, p, p), mode="reflect")[0]
        kf = otf(k, *x.shape[-2:])
        return torch.fft.irfft2(kf.conj() / (kf.abs() ** 2 + nsr) * torch.fft.rfft2(x), s=x.shape[-2:])[..., p:-p, p:-p]

    def load(path: Path) -> torch.Tensor:
        return torch.from_numpy(read_image(path).pixels.astype(np.float32) / 255).permute(2, 0, 1)

    gains: dict[float, list[float]] = {n: [] for n in NSRS}
    seconds = []
    for f in files:
        b, s = load(f), load(args.set / "sharp" / f.name)
        t0 = time.perf_counter()
        small = F.interpolate(b[None], scale_factor=1 / args.down, mode="area")[0]
        lin = small.clamp(0, 1) ** args.gamma
        luma = sum(c * lin[i] for i, c in enumerate(LUMA_WEIGHTS))
        k = estimate_kernel(luma, args.kernel, latent_weight=args.lam, iterations=args.iters,
                           floor=0.1, growth=2.0)  # session 6's settings (the library's are for full size)
        seconds.append(time.perf_counter() - t0)
        for nsr in NSRS:
            est = wiener(lin, k, nsr).clamp(0, 1) ** (1 / args.gamma)
            out = (b + F.interpolate((est - small)[None], size=b.shape[-2:], mode="bilinear", align_corners=False)[0]).clamp(0, 1)
            gains[nsr].append(float(psnr(out[None], s[None]) - psnr(b[None], s[None])))
        print(f"{f.stem}: " + "  ".join(f"nsr {n:g} {gains[n][-1]:+.2f}" for n in NSRS), flush=True)
    print(f"{args.set.name} ({len(files)} frames, 1/{args.down}, kernels up to {args.kernel} px, γ {args.gamma:g}), "
          f"{np.mean(seconds):.2f} s/frame for the estimate; mean gain: "
          + "  ".join(f"nsr {n:g} {np.mean(g):+.2f} dB" for n, g in gains.items()))


if __name__ == "__main__":
    main()
