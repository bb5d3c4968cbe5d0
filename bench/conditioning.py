"""Why the c2f `whiten` input: how fast first-order training learns deconvolution, per input.

The simplest deblurring there is: a known blur (a 9 px horizontal box) undone by one linear 15x15
filter on the blurred image, added to it (a residual, zero at the start). Least squares solves it in
closed form; training must find the same filter by Adam steps. On RGB input the filter's high
frequencies, which deblurring has to amplify, are the smallest directions of the input's covariance
(a blurred photo's gradients are ~100x smaller than its values), so Adam crawls; on the whitened input
of `deblurcli.models._common.condition_whitened` they are not. Printed: the MSE of each, as a ratio
to doing nothing (the blurred image itself), after the same steps on the same batches, and the
closed-form optimum of a linear filter on RGB (the floor both could reach).

    python bench/conditioning.py [--photos ../shared/data/sharp/debian-photos] [--steps 200]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "sharp" / "debian-photos")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    files = sorted(args.photos.glob("*.jpg"))[:12]
    if not files:
        sys.exit(f"no photos in {args.photos} (the shared data folder is needed)")

    import cv2
    import torch

    from deblurcli.images import read_image, resize_max_side
    from deblurcli.models._common import condition_whitened

    torch.manual_seed(0)
    torch.set_num_threads(1)
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1 / 9
    photos = [resize_max_side(read_image(f).pixels, 1280).astype(np.float32) / 255 for f in files]
    rng = np.random.default_rng(0)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        sharp = []
        for _ in range(8):
            p = photos[int(rng.integers(len(photos)))]
            y, x = rng.integers(0, p.shape[0] - 128), rng.integers(0, p.shape[1] - 128)
            sharp.append(p[y : y + 128, x : x + 128])
        s = np.stack(sharp)
        b = np.stack([cv2.filter2D(c, -1, kernel, borderType=cv2.BORDER_REFLECT_101) for c in s])
        return torch.from_numpy(b).permute(0, 3, 1, 2), torch.from_numpy(s).permute(0, 3, 1, 2)

    batches = [batch() for _ in range(args.steps + 20)]
    inputs = {"rgb": lambda b: b, "whitened": condition_whitened}
    results = {}
    for name, feed in inputs.items():
        conv = torch.nn.Conv2d(feed(batches[0][0]).shape[1], 3, 15, padding=7)
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
        opt = torch.optim.Adam(conv.parameters(), lr=args.lr)
        for b, s in batches[: args.steps]:
            loss = ((b + conv(feed(b)) - s) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():  # held-out batches
            results[name] = float(sum(((b + conv(feed(b)) - s) ** 2).mean() / ((b - s) ** 2).mean() for b, s in batches[-20:]) / 20)

    # Closed form on grey patches: the best 15x15 linear filter (ordinary least squares).
    feats, targets = [], []
    for b, s in batches[:40]:
        g, t = b.mean(1).numpy(), s.mean(1).numpy()
        for k in range(len(g)):
            for _ in range(200):
                y, x = rng.integers(7, 121), rng.integers(7, 121)
                feats.append(g[k, y - 7 : y + 8, x - 7 : x + 8].ravel())
                targets.append(t[k, y, x])
    a, t = np.array(feats), np.array(targets)
    n = len(t) * 4 // 5
    w, *_ = np.linalg.lstsq(a[:n], t[:n], rcond=None)
    floor = float(np.mean((a[n:] @ w - t[n:]) ** 2) / np.mean((a[n:, 7 * 15 + 7] - t[n:]) ** 2))

    print(f"linear 15x15 deconvolution of a 9 px box blur, Adam {args.lr:g}, {args.steps} steps of 8 crops of 128 px")
    print("MSE as a ratio to the blurred input (lower is better):")
    for name, r in results.items():
        print(f"  {name:9s} input: {r:.3f}")
    print(f"  closed-form optimum (least squares, grey): {floor:.3f}")


if __name__ == "__main__":
    main()
