"""What knowing the camera path is worth, and whether the path can be fitted: the held-out 720p sets.

The stills engine blurs a frame along a camera path of 11 numbers (``deblurcli.pairs.stills``: a
cubic translation, a quadratic rotation, a zoom and a perspective term, identity at mid-exposure).
For each frame of a set written by ``scripts/make_720p_sets.py`` this bench:

1. **bound**: replays the set's path (same seed, same draws) and deblurs the frame in 256 px tiles
   (half overlapping, blended), each with total-variation deconvolution
   (:func:`deblurcli.models.blind.deconvolve`, the non-blind step of ``--model blind``) by the
   path's kernel at the tile's centre (:func:`deblurcli.pairs.camera_psf`), in the set's linear
   space. ``bench/kernel_bound.py`` does the same with Wiener deconvolution.
2. with ``--fit``: **oracle fit**: forgets the path and fits the 11 numbers to the blurred frame at
   1/4 size by Adam, *with the sharp frame known* (the blurred frame is re-made from it by warping
   it along the candidate path with ``grid_sample``), from a few random starts, keeping the best
   fit; then deblurs with the fitted path as in 1. This asks whether the path model is identifiable
   and the fit well-posed, not whether a blind method can find it (the sharp frame is unknown there).

3. with ``--from-tiles``: **path from six kernels**: forgets the path and fits the 11 numbers to the
   true kernels at the centres of the six 640 px tiles ``--model blind`` cuts a 1280x720 frame into
   (:func:`fit_path_to_kernels`: the path's kernel at each centre drawn as Gaussian splats at the
   kernel search's scale, 1280/384, against the true one shrunk to it), then deblurs in ``--tile``
   px tiles with the fitted path. This asks what six right kernels are worth once a path carries
   them to finer tiles (used directly, one per 640 px tile, they gain +2.48 dB: session 9).

Printed per frame: the PSNR gain (dB, RGB, 8-bit) of each over the blurred frame, the fitted path's
kernels' agreement with the true ones (normalised correlation at 3x3 points), and means with and
without the frames that have independently moving objects (not replayed: there the camera's kernel
is wrong).

    python bench/path_bound.py [--data /work/data] [--set heldout720-g1.0] [--frames 24] [--fit] [--from-tiles]
                               [--tile 256] [--place true|centroid|midpoint]

Session 8 (training/README.md, "What session 8 found"): known path +6.66 dB on ``small720-g1.0``,
+4.33 on ``heldout720-g1.0`` (+3.68 on its 15 frames without moving objects; two frames lose 6-8 dB
to the frame's borders, which a 111 px streak reaches across); fitted with the sharp frame known
+4.69 on ``small720-g1.0`` (the true path +6.66 on the same frames), +5.28 on the first six 20-120 px
frames (true path +6.20); ``heldout720-g2.2`` +2.95 on its first 19 frames. 20-120 px frames take
20-250 s each (kernels up to ~240 px), some over 15 minutes (``picosdeeuropa..._1``, 119 px).

Session 18: ``--from-tiles --no-bound`` on ``heldout720-g1.0``: +3.05 dB (24 frames; the same six
kernels one per 640 px tile gain +2.48, session 9), +3.98 without ``TwoWings_1`` and ``_2`` (-7.3 and
-7.1: a 111-117 px streak reaches across the frame's borders); 1-5 min a frame on one core. First 12
frames (``--frames 12``): ``heldout720-g2.2`` +3.99, ``check720-g1.0`` +4.02.

Session 9: one kernel per frame (``--tile 4096``): ``small720-g1.0`` +3.46 dB (the blur there is
nearly uniform), ``heldout720-g1.0`` +0.12 (it is not); six 640 px tiles (``--tile 640``) +2.48 on
the latter. Where the kernel is placed matters as much: ``small720-g1.0``, one kernel per frame,
``--place centroid`` +0.78 dB, ``--place midpoint`` +3.09, the true placement +3.46.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_bound import held_out_set, set_seed  # noqa: E402  (the sets' seed and names, one place)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data"), help="make_720p_sets.py's --out")
    ap.add_argument("--set", default="heldout720-g1.0")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fit", action="store_true", help="also fit the path with the sharp frame known")
    ap.add_argument("--from-tiles", action="store_true", help="also fit the path to the true kernels at blind's tile centres")
    ap.add_argument("--no-bound", action="store_true", help="skip the known path's own deblurring (the slowest part)")
    ap.add_argument("--tv", type=float, default=3e-3, help="TV weight of the per-tile deconvolution")
    ap.add_argument("--tile", type=int, default=256, help="tile side in px (a side >= the frame's: one kernel for it all)")
    ap.add_argument("--place", choices=("true", "centroid", "midpoint"), default="true",
                    help="where each kernel's centre is: the path's mid-exposure point (true), or where a blind "
                         "estimate would put it: its centroid, or its stroke_midpoint")
    args = ap.parse_args()
    gamma, min_blur, max_blur, files = held_out_set(args.data, args.set, args.frames)

    import torch

    from deblurcli.images import read_image
    from deblurcli.metrics import psnr
    from deblurcli.pairs import camera_psf, synthesize_from_still

    torch.set_num_threads(1)

    def load(path: Path) -> torch.Tensor:
        return torch.from_numpy(read_image(path).pixels.astype(np.float32) / 255).permute(2, 0, 1)

    def gain(out: torch.Tensor, blurred: torch.Tensor, sharp: torch.Tensor) -> float:
        return float(psnr(out[None], sharp[None]) - psnr(blurred[None], sharp[None]))

    rows = []
    for path in files:
        name = path.stem
        y, x = load(path), load(path.parent.parent / "sharp" / path.name)
        h, w = y.shape[-2:]
        rep = synthesize_from_still(np.zeros((h, w, 3), np.float32), np.random.default_rng((set_seed(args.set), zlib.crc32(name.encode()))),
                                    max_blur=max_blur, min_blur=min_blur, gamma=1.0)
        t0 = time.time()
        row = {"objects": rep.objects}
        msg = f"{name}: streak {rep.blur_px:.0f} px"
        if not args.no_bound:
            row["bound"] = gain(deblur_tiles(y, rep.camera, gamma, args.tv, args.tile, args.place), y, x)
            msg += f", known path {row['bound']:+.2f} dB"
        if args.from_tiles:
            size = int(2 * rep.blur_px + 5) | 1
            seen = [(cx, cy, torch.from_numpy(camera_psf(rep.camera, cx, cy, size))) for cx, cy in blind_tile_centres(w, h)]
            fitted = fit_path_to_kernels(seen, w, h, max(w, h) / 384)
            row["tiles"] = gain(deblur_tiles(y, fitted, gamma, args.tv, args.tile, args.place), y, x)
            agree = psf_agreement(fitted, rep.camera, w, h, rep.blur_px)
            msg += f", path from the tile kernels {row['tiles']:+.2f} dB (kernels agree {agree:.3f})"
        if args.fit:
            fitted, res = fit_path_oracle(y, x, 4, gamma)
            row["fit"] = gain(deblur_tiles(y, fitted, gamma, args.tv, args.tile, args.place), y, x)
            row["ncc"] = psf_agreement(fitted, rep.camera, w, h, rep.blur_px)
            msg += f", fitted path {row['fit']:+.2f} dB (kernels agree {row['ncc']:.3f}, residual {res:.1e})"
        print(msg + (f" ({rep.objects} moving objects)" if rep.objects else "") + f" [{time.time() - t0:.0f} s]", flush=True)
        rows.append(row)
    for label, keep in (("all", lambda r: True), ("without moving objects", lambda r: r["objects"] == 0)):
        sel = [r for r in rows if keep(r)]
        if sel:
            line = f"mean over {len(sel)} frames ({label}):"
            if not args.no_bound:
                line += f" known path {np.mean([r['bound'] for r in sel]):+.2f} dB"
            if args.from_tiles:
                line += f" path from the tile kernels {np.mean([r['tiles'] for r in sel]):+.2f} dB"
            if args.fit:
                line += f", fitted path {np.mean([r['fit'] for r in sel]):+.2f} dB, kernel agreement {np.mean([r['ncc'] for r in sel]):.3f}"
            print(line)


def deblur_tiles(y, camera: np.ndarray, gamma: float, tv: float, tile: int = 256, place: str = "true"):
    """Per-tile TV deconvolution of ``y`` (3, H, W) by the path's kernel at each tile's centre, in
    linear light (``gamma``), tiles half overlapping and blended with pyramid weights. ``place``:
    the kernel as the path draws it (mid-exposure at its centre), or moved to its centroid or to
    :func:`~deblurcli.models.blind.stroke_midpoint`, as a blind estimate would be."""
    import torch

    from deblurcli.models.blind import _centroid, centre_kernel_at, deconvolve, near_clipped, stroke_midpoint, tile_weights
    from deblurcli.pairs import camera_psf

    lin = y.clamp(0, 1) ** gamma
    _, h, w = lin.shape
    out, wsum = torch.zeros_like(lin), torch.zeros(1, h, w)
    step = tile // 2
    for y0 in range(0, max(h - step, 1), step):
        for x0 in range(0, max(w - step, 1), step):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy, cx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2
            q = camera @ np.array([cx, cy, 1.0])
            reach = float(np.abs(q[:, :2] / q[:, 2:] - [cx, cy]).max())
            size = int(2 * reach + 5) | 1
            k = torch.from_numpy(camera_psf(camera, cx, cy, size))
            if place != "true":
                k = k / k.sum()
                k = centre_kernel_at(k, *(stroke_midpoint(k) if place == "midpoint" else (float(c) for c in _centroid(k))))
            m = 2 * size  # real context around the tile, so its own border effects stay outside
            ya, yb, xa, xb = max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)
            region = lin[:, ya:yb, xa:xb]
            d = deconvolve(region, k, weight=tv)
            d = region + (d - region) * (1 - near_clipped(region, size // 2))
            wt = tile_weights(y1 - y0, x1 - x0)
            out[:, y0:y1, x0:x1] += d[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa] * wt
            wsum[:, y0:y1, x0:x1] += wt
    return (out / wsum).clamp(0, 1) ** (1 / gamma)


def path_homographies(p, ts, w: int, h: int):
    """(N, 3, 3) forward homographies of the engine's path family at times ``ts`` for the 11
    parameters ``p`` (px of motion at the frame's half-diagonal; rotation/zoom/perspective about
    the frame's centre: a rotation about another centre differs by a translation the cubic absorbs)."""
    import torch

    cx, cy, r = (w - 1) / 2, (h - 1) / 2, 0.5 * math.hypot(w, h)
    t = ts[:, None]
    txy = t * p[0:2] + t**2 * p[2:4] + t**3 * p[4:6]
    th = (ts * p[6] + ts**2 * p[7]) / r
    z = torch.exp(p[8] * ts / r)
    c, s = torch.cos(th) * z, torch.sin(th) * z
    one, zero = torch.ones_like(ts), torch.zeros_like(ts)
    core = torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1),
                        torch.stack([p[9] * ts / r**2, p[10] * ts / r**2, one], -1)], -2)
    shift = torch.eye(3).repeat(len(ts), 1, 1)
    shift[:, 0, 2], shift[:, 1, 2] = txy[:, 0] + cx, txy[:, 1] + cy
    from_c = torch.tensor([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    return shift @ core @ from_c


def fit_path_oracle(y, x, scale: int, gamma: float, restarts: int = 3, iters: int = 150, subframes: int = 32):
    """Fit the 11 path parameters so that the sharp frame ``x``, warped along the path and
    averaged (in linear light), reproduces the blurred ``y``, at 1/``scale`` size (luma). Returns
    the best fit's full-size homographies and its residual (mean squared error)."""
    import torch
    import torch.nn.functional as F

    def small(img):
        return F.interpolate((img.clamp(0, 1) ** gamma)[None], scale_factor=1 / scale, mode="area")[0].mean(0, keepdim=True)

    ys, xs = small(y), small(x)
    h, w = ys.shape[-2:]
    ts = torch.linspace(-0.5, 0.5, subframes)
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pix = torch.stack([gx.flatten(), gy.flatten(), torch.ones(h * w)], 0)
    m = 12  # border rows/columns left out (the warp pads there)

    def residual(p):
        q = torch.linalg.inv(path_homographies(p, ts, w, h)) @ pix
        grid = torch.stack([(2 * q[:, 0] / q[:, 2] + 1) / w - 1, (2 * q[:, 1] / q[:, 2] + 1) / h - 1], -1).view(subframes, h, w, 2)
        out = F.grid_sample(xs[None].expand(subframes, -1, -1, -1), grid, padding_mode="border", align_corners=False).mean(0)
        return ((out - ys)[:, m:-m, m:-m] ** 2).mean()

    gen = torch.Generator().manual_seed(0)
    # Random starts: at p = 0 every first derivative vanishes (the path is symmetric in time).
    starts = [torch.randn(11, generator=gen) * torch.tensor([8.0, 8, 4, 4, 4, 4, 6, 3, 2, 2, 2]) for _ in range(restarts)]
    best = _best_of_starts(residual, starts, iters, lr=0.5)
    up = np.diag([scale, scale, 1.0])
    mats = path_homographies(best[1], ts, w, h).double().numpy()
    return np.stack([up @ a @ np.linalg.inv(up) for a in mats]), best[0]


def _best_of_starts(loss_of, starts, iters: int, lr: float):
    """(loss, parameters) of the best of Adam runs (``iters`` steps, cosine-decayed ``lr``) from
    each of ``starts``."""
    import torch

    best = None
    for start in starts:
        p = start.clone().requires_grad_()
        opt = torch.optim.Adam([p], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
        for _ in range(iters):
            opt.zero_grad()
            loss = loss_of(p)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            final = float(loss_of(p))
        if best is None or final < best[0]:
            best = (final, p.detach().clone())
    return best


def blind_tile_centres(w: int, h: int) -> list[tuple[float, float]]:
    """(x, y) centres of the tiles ``--model blind`` cuts a w x h frame into (its default layout,
    :meth:`~deblurcli.models.blind.BlindDeconvolution.tile_layout`; frames up to 1536 px are
    deconvolved at their own size)."""
    from deblurcli.models.blind import BlindDeconvolution

    side, origins = BlindDeconvolution().tile_layout(h, w)
    return [((x0 + min(x0 + side, w) - 1) / 2, (y0 + min(y0 + side, h) - 1) / 2) for y0, x0 in origins]


def fit_path_to_kernels(kernels, w: int, h: int, scale: float, restarts: int = 10, iters: int = 300, subframes: int = 48):
    """Fit the 11 path parameters to kernels seen at points of a w x h frame: ``kernels`` is a list
    of (x, y, (k, k) kernel with the mid-exposure point at its centre). Each kernel is shrunk by
    ``scale`` (where a blind search would see it); the path's kernel there is drawn as Gaussian
    splats (sigma one shrunk pixel) and compared by 1 - normalised correlation. Adam from ``restarts``
    starts along the longest kernel's principal axis; returns the best fit's (N, 3, 3) homographies."""
    import torch
    import torch.nn.functional as F

    from deblurcli.models.blind import kernel_radius

    ts = torch.linspace(-0.5, 0.5, subframes)
    seen = []
    for cx, cy, k in kernels:
        s = k.shape[-1]
        n = max(5, round(s / scale)) | 1
        small = F.interpolate(k[None, None].float(), size=(n, n), mode="area")[0, 0]
        per = s / n  # full-size px per shrunk px
        grid = torch.arange(n, dtype=torch.float32) - ((s // 2) + 0.5) / per + 0.5
        target = small - small.mean()
        seen.append((cx, cy, grid, target / target.norm(), per, small / small.sum()))

    def loss_of(p):
        mats = path_homographies(p, ts, w, h)
        total = 0.0
        for cx, cy, grid, target, per, _ in seen:
            q = mats @ torch.tensor([cx, cy, 1.0])
            dx, dy = (q[:, 0] / q[:, 2] - cx) / per, (q[:, 1] / q[:, 2] - cy) / per
            drawn = torch.einsum("ty,tx->yx", torch.exp(-0.5 * (grid - dy[:, None]) ** 2), torch.exp(-0.5 * (grid - dx[:, None]) ** 2))
            drawn = drawn - drawn.mean()
            total = total + 1 - (drawn * target).sum() / (drawn.norm() + 1e-9)
        return total / len(seen)

    # Start along the longest kernel (its principal axis, at its length): a path symmetric in time
    # (p = 0) has no gradient to leave it by.
    _, _, grid, _, per, mass = max(seen, key=lambda o: kernel_radius(o[5]))
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    my, mx = (mass * gy).sum(), (mass * gx).sum()
    cov = torch.stack([torch.stack([(mass * (gx - mx) ** 2).sum(), (mass * (gx - mx) * (gy - my)).sum()]),
                       torch.stack([(mass * (gx - mx) * (gy - my)).sum(), (mass * (gy - my) ** 2).sum()])])
    values, vectors = torch.linalg.eigh(cov)
    axis = vectors[:, -1] * math.sqrt(12 * float(values[-1])) * per  # a straight streak of L px: L^2 / 12
    gen = torch.Generator().manual_seed(0)
    starts = []
    for start in range(restarts):
        p = torch.zeros(11)
        p[0:2] = axis * (0.7 + 0.6 * torch.rand(1, generator=gen))
        starts.append(p + torch.randn(11, generator=gen) * torch.tensor([4.0, 4, 8, 8, 6, 6, 8, 4, 3, 3, 3]) * (start > 0))
    best = _best_of_starts(loss_of, starts, iters, lr=1.0)
    return path_homographies(best[1], torch.linspace(-0.5, 0.5, 64), w, h).double().numpy()


def psf_agreement(fitted: np.ndarray, true: np.ndarray, w: int, h: int, blur_px: float) -> float:
    """Mean normalised correlation of the two paths' kernels at 3x3 points of the frame."""
    from deblurcli.pairs import camera_psf

    size = int(2 * blur_px + 5) | 1
    out = []
    for fy in (0.2, 0.5, 0.8):
        for fx in (0.2, 0.5, 0.8):
            a, b = camera_psf(true, fx * w, fy * h, size), camera_psf(fitted, fx * w, fy * h, size)
            out.append(float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    return float(np.mean(out))


if __name__ == "__main__":
    main()
