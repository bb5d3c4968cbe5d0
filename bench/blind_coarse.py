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
import math
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

    import cv2
    import torch
    import torch.nn.functional as F

    from deblurcli.images import read_image
    from deblurcli.metrics import psnr

    torch.set_num_threads(1)

    def otf(k: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The kernel's transfer function on an h x w grid, the kernel centred at pixel (0, 0)."""
        p = torch.zeros(h, w)
        p[: k.shape[0], : k.shape[1]] = k
        return torch.fft.rfft2(torch.roll(p, (-(k.shape[0] // 2), -(k.shape[1] // 2)), dims=(0, 1)))

    dx = torch.tensor([[0.0, 0, 0], [0, -1, 1], [0, 0, 0]])

    def l0_latent(y: torch.Tensor, k: torch.Tensor, lam: float) -> torch.Tensor:
        """argmin_x |k*x - y|^2 + lam |grad x|_0, by half-quadratic splitting (Xu et al. 2013)."""
        h, w = y.shape
        kf, dxf, dyf = otf(k, h, w), otf(dx, h, w), otf(dx.T.contiguous(), h, w)
        ktyf, kk, dd = kf.conj() * torch.fft.rfft2(y), kf.abs() ** 2, dxf.abs() ** 2 + dyf.abs() ** 2
        x, beta = y.clone(), 2 * lam
        while beta < 1e5:
            xf = torch.fft.rfft2(x)
            gx, gy = torch.fft.irfft2(dxf * xf, s=(h, w)), torch.fft.irfft2(dyf * xf, s=(h, w))
            small = gx**2 + gy**2 < lam / beta
            gx, gy = gx.masked_fill(small, 0), gy.masked_fill(small, 0)
            g = dxf.conj() * torch.fft.rfft2(gx) + dyf.conj() * torch.fft.rfft2(gy)
            x = torch.fft.irfft2((ktyf + beta * g) / (kk + beta * dd), s=(h, w))
            beta *= 2
        return x

    def kernel_from(x: torch.Tensor, y: torch.Tensor, size: int) -> torch.Tensor:
        """Least-squares kernel on the gradients, cropped, cleaned to one stroke, centred."""
        h, w = y.shape
        inner = torch.zeros(h, w)
        inner[size : h - size, size : w - size] = 1  # no gradients across the padding or the wrap
        grads = [(torch.roll(a, -1, d) - a) * inner for a in (x, y) for d in (1, 0)]
        xs, ys = [torch.fft.rfft2(g) for g in grads[:2]], [torch.fft.rfft2(g) for g in grads[2:]]
        num = sum(a.conj() * b for a, b in zip(xs, ys))
        den = sum(a.abs() ** 2 for a in xs) + 2.0
        k = torch.roll(torch.fft.irfft2(num / den, s=(h, w)), (size // 2, size // 2), dims=(0, 1))[:size, :size]
        k = k.clamp(min=0)
        k[k < k.max() / 10] = 0
        # One stroke: keep the 8-connected component that holds the maximum.
        n, labels = cv2.connectedComponents((k > 0).numpy().astype(np.uint8), connectivity=8)
        if n > 2:
            k = k * torch.from_numpy(labels == labels.flat[int(k.argmax())]).float()
        k = k / k.sum().clamp(min=1e-8)
        yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
        cy, cx = float((k * yy).sum()), float((k * xx).sum())
        return torch.roll(k, (round(size // 2 - cy), round(size // 2 - cx)), dims=(0, 1))

    def estimate(y: torch.Tensor, largest: int, lam: float = 4e-3, iters: int = 8) -> torch.Tensor:
        sizes = [largest]
        while sizes[-1] > 3:  # kernel sides shrinking by sqrt(2), odd, down to 3
            s = max(3, round(sizes[-1] / math.sqrt(2)))
            sizes.append(s - 1 + s % 2)
        k = None
        for s in reversed(sizes):
            ys = F.interpolate(y[None, None], scale_factor=s / largest, mode="bilinear", align_corners=False)[0, 0] if s < largest else y
            k = torch.full((s, s), 1.0 / s**2) if k is None else F.interpolate(k[None, None], size=(s, s), mode="bilinear", align_corners=False)[0, 0].clamp(min=0)
            k = k / k.sum()
            yp = F.pad(ys[None, None], (s, s, s, s), mode="reflect")[0, 0]
            step_lam = lam
            for _ in range(iters):
                k = kernel_from(l0_latent(yp, k, step_lam), yp, s)
                step_lam = max(step_lam * 0.9, 1e-4)
        assert k is not None
        return k

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
        k = estimate(0.299 * lin[0] + 0.587 * lin[1] + 0.114 * lin[2], args.kernel, args.lam, args.iters)
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
