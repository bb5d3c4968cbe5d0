"""Classical blind deconvolution for camera shake: one blur kernel per image (per tile of a large
one), estimated, then undone.

No learned weights. The kernel is estimated on the image's luma, shrunk so its long side is at most
``work_side`` px (a 100 px streak at 1280 px is 30 px there), by alternating an L0-gradient latent
image (Xu et al. 2013, by half-quadratic splitting) and a least-squares kernel fitted to gradients
(Cho and Lee 2009), coarse to fine over kernel sizes growing by sqrt(2) up to ``max_kernel`` (Xu and
Jia 2010; Pan et al. 2014); a kernel shorter than half the search window is searched again on the
image at twice the size, up to 1024 px (short streaks hold no shape at 384 px). The kernel is then scaled up to the
full image (at most 1536 px on the long side: a larger photo is deconvolved at that size and the change
carried up), placed so that the middle of the exposure (:func:`stroke_midpoint`) is its centre, as the
sharp frame of a video is, and the image is deconvolved with a total-variation prior (Krishnan and
Fergus 2009, half-quadratic splitting), which rings far less than Wiener deconvolution with the same
kernel. The kernel sums to one, so the mean level is kept in the space the deconvolution runs in.

Written here rather than taken from a library: no maintained Python package does blind kernel
estimation (scikit-image has only non-blind Wiener and Richardson-Lucy); every step is a few FFTs.

This suits blur that is nearly the same across the frame (camera shake on a distant scene, Levin et
al. 2009's benchmark). A photo of 960 px or more is cut into half-overlapping tiles of at least
640 px, each with its own kernel, which follows blur that changes slowly across the frame (a
rotating camera); it cannot undo blur that changes within a tile (depth, moving people), and a
wrong kernel makes an image worse: :meth:`BlindDeconvolution.forward` keeps the input
(or the tile) where the estimate fails the checks in :func:`kernel_is_plausible`, is too short to
be a streak (``min_blur``) or is not found again when searched for at another size
(``agreement``), and around blown-out highlights (:func:`near_clipped`); a long kernel (over 8 px
RMS radius) applies only part of its change (``full_radius``) and is deconvolved with a prior
that grows with its length (``tv_growth``): the longer the streak, the less one kernel is right
across a tile; and such a kernel is not trusted where the image does not show its direction as
missing fine detail (:func:`streak_evidence`, ``min_evidence``), nor where a tile on nearly the
same pixels finds another stroke (``twin_agreement``).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.blur import LUMA_WEIGHTS


def otf(k: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The transfer function of kernel ``k`` (centred) on an h x w grid (rfft2 layout)."""
    p = torch.zeros(h, w, dtype=k.dtype, device=k.device)
    p[: k.shape[0], : k.shape[1]] = k
    return torch.fft.rfft2(torch.roll(p, (-(k.shape[0] // 2), -(k.shape[1] // 2)), dims=(0, 1)))


def _gradient_otfs(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer functions of forward differences along x and y."""
    dx = torch.tensor([[0.0, 0, 0], [0, -1, 1], [0, 0, 0]], device=device)
    return otf(dx, h, w), otf(dx.T.contiguous(), h, w)


def _l0_latent(y: torch.Tensor, k: torch.Tensor, weight: float, growth: float) -> torch.Tensor:
    """argmin_x |k * x - y|^2 + weight * |grad x|_0 (Xu et al. 2013): a latent image with only
    the strong edges, the ones that tell the kernel."""
    h, w = y.shape
    kf = otf(k, h, w)
    dxf, dyf = _gradient_otfs(h, w, y.device)
    ktyf, kk, dd = kf.conj() * torch.fft.rfft2(y), kf.abs() ** 2, dxf.abs() ** 2 + dyf.abs() ** 2
    x, beta = y.clone(), 2 * weight
    while beta < 1e5:
        xf = torch.fft.rfft2(x)
        gx, gy = torch.fft.irfft2(dxf * xf, s=(h, w)), torch.fft.irfft2(dyf * xf, s=(h, w))
        small = gx**2 + gy**2 < weight / beta
        gx, gy = gx.masked_fill(small, 0), gy.masked_fill(small, 0)
        g = dxf.conj() * torch.fft.rfft2(gx) + dyf.conj() * torch.fft.rfft2(gy)
        x = torch.fft.irfft2((ktyf + beta * g) / (kk + beta * dd), s=(h, w))
        beta *= growth
    return x


def _kernel_from(x: torch.Tensor, y: torch.Tensor, size: int, floor: float) -> torch.Tensor:
    """Least-squares kernel mapping the latent's gradients to the blurred image's, cropped to
    ``size``, made non-negative, cleaned to the one stroke that holds its peak, and centred."""
    h, w = y.shape
    inner = torch.zeros(h, w, device=y.device)
    inner[size : h - size, size : w - size] = 1  # no gradients across the padding or the wrap
    grads = [(torch.roll(a, -1, d) - a) * inner for a in (x, y) for d in (1, 0)]
    xs, ys = [torch.fft.rfft2(g) for g in grads[:2]], [torch.fft.rfft2(g) for g in grads[2:]]
    num = sum(a.conj() * b for a, b in zip(xs, ys, strict=True))
    den = sum(a.abs() ** 2 for a in xs) + 2.0
    k = torch.roll(torch.fft.irfft2(num / den, s=(h, w)), (size // 2, size // 2), dims=(0, 1))[:size, :size]
    k = k.clamp(min=0)
    k[k < k.max() * floor] = 0
    # One stroke: the 8-connected component that holds the peak (isolated specks are noise).
    n, labels = cv2.connectedComponents((k > 0).cpu().numpy().astype(np.uint8), connectivity=8)
    if n > 2:
        k = k * torch.from_numpy(labels == labels.flat[int(k.argmax())]).to(k)
    k = k / k.sum().clamp(min=1e-8)
    cy, cx = (float(c) for c in _centroid(k))
    return torch.roll(k, (round(size // 2 - cy), round(size // 2 - cx)), dims=(0, 1))


def _centroid(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of the centre of mass of a kernel that sums to one, as 0-d tensors."""
    r = torch.arange(k.shape[-1], dtype=k.dtype, device=k.device)
    return (k.sum(1) * r).sum(), (k.sum(0) * r).sum()


def estimate_kernel(
    gray: torch.Tensor,
    size: int,
    *,
    latent_weight: float = 4e-3,
    iterations: int = 8,
    floor: float = 0.05,
    growth: float = 2 * math.sqrt(2),
) -> torch.Tensor:
    """Estimate one blur kernel from a blurred greyscale image.

    Args:
        gray: (H, W) float image in [0, 1] (the blur's own space: stored values or linear light).
        size: the largest kernel side in pixels (odd, >= 3); longer streaks cannot be found.
        latent_weight: weight of the L0 gradient prior on the latent image.
        iterations: latent/kernel alternations at each kernel size.
        floor: kernel values below this fraction of its peak are set to zero (specks of noise).
        growth: factor by which the latent step's penalty grows per inner iteration. The
            defaults were chosen on Levin et al. 2009 at full size (growth 2*sqrt(2) instead of 2:
            +3.50 dB instead of +3.25, 15% faster); at 1/8 of a 720p frame (``bench/blind_coarse.py``)
            floor 0.1 and growth 2 do better.

    Returns:
        (size, size) non-negative kernel that sums to 1, centred on its centroid.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    gray = gray.float()
    sizes = [size]
    while sizes[-1] > 3:  # kernel sides shrinking by sqrt(2), odd, down to 3
        s = max(3, round(sizes[-1] / math.sqrt(2)))
        sizes.append(s - 1 + s % 2)
    k: torch.Tensor | None = None
    for s in reversed(sizes):
        ys = F.interpolate(gray[None, None], scale_factor=s / size, mode="bilinear", align_corners=False)[0, 0] if s < size else gray
        if k is None:
            k = torch.full((s, s), 1.0 / s**2, device=gray.device)
        else:
            k = F.interpolate(k[None, None], size=(s, s), mode="bilinear", align_corners=False)[0, 0].clamp(min=0)
        k = k / k.sum()
        yp = F.pad(ys[None, None], (s, s, s, s), mode="reflect")[0, 0]
        weight = latent_weight
        for _ in range(iterations):
            k = _kernel_from(_l0_latent(yp, k, weight, growth), yp, s, floor)
            weight = max(weight * 0.9, 1e-4)  # admit finer edges as the kernel firms up
    assert k is not None
    return k


def resize_kernel(k: torch.Tensor, scale: float) -> torch.Tensor:
    """A kernel estimated on an image shrunk by ``1/scale``, for the full-size image (odd side)."""
    if scale <= 1:
        return k
    n = int(round(k.shape[-1] * scale)) | 1
    big = F.interpolate(k[None, None], size=(n, n), mode="bilinear", align_corners=False)[0, 0].clamp(min=0)
    return big / big.sum()


def deconvolve(image: torch.Tensor, kernel: torch.Tensor, *, weight: float = 3e-3, alpha: float = 1.0) -> torch.Tensor:
    """Non-blind deconvolution: argmin_x |k * x - y|^2 + weight * sum |grad x|^alpha.

    Half-quadratic splitting (Krishnan and Fergus 2009) with ``alpha`` 1 (total variation, soft
    thresholding). The image is reflect-padded by the kernel's side so borders do not wrap.

    Args:
        image: (C, H, W) float.
        kernel: (k, k) kernel that sums to 1.
        weight: prior weight; larger is smoother and rings less, smaller restores finer detail.

    Returns:
        (C, H, W) float, not clamped.
    """
    p = kernel.shape[-1]
    y = F.pad(image[None].float(), (p, p, p, p), mode="reflect")[0]
    h, w = y.shape[-2:]
    kf = otf(kernel.float(), h, w)
    dxf, dyf = _gradient_otfs(h, w, y.device)
    ktyf, kk, dd = kf.conj() * torch.fft.rfft2(y), kf.abs() ** 2, dxf.abs() ** 2 + dyf.abs() ** 2
    x, beta = y.clone(), 5e-4
    while beta < 0.2:
        xf = torch.fft.rfft2(x)
        gx, gy = torch.fft.irfft2(dxf * xf, s=(h, w)), torch.fft.irfft2(dyf * xf, s=(h, w))
        t = weight / (2 * beta)
        gx = torch.sign(gx) * (gx.abs() - t).clamp(min=0)
        gy = torch.sign(gy) * (gy.abs() - t).clamp(min=0)
        g = dxf.conj() * torch.fft.rfft2(gx) + dyf.conj() * torch.fft.rfft2(gy)
        x = torch.fft.irfft2((ktyf + beta * g) / (kk + beta * dd), s=(h, w))
        beta *= 2 * math.sqrt(2)
    return x[..., p:-p, p:-p]


def near_clipped(image: torch.Tensor, reach: int, *, level: float = 0.98) -> torch.Tensor:
    """(1, H, W) weight in [0, 1]: 1 within ``reach`` px of a clipped pixel (white: every channel
    at or above ``level``), falling to 0 over half that distance beyond.

    A clipped highlight (a street lamp at night) is not the blur of what was there: its streak
    holds less light than the scene had, and deconvolving it leaves a dark ring and stripes
    (seen on ``real-blur/15_blurred.png``). Where this weight is 1 the input is kept; Cho, Wang and
    Lee (2011) instead drop such pixels from the data term, which needs an iterative solver.
    """
    clipped = (image.amin(0, keepdim=True) >= level).float()
    if not bool(clipped.any()):
        return torch.zeros_like(clipped)
    near = F.max_pool2d(clipped[None], 2 * reach + 1, 1, reach)
    soft = reach // 2
    return F.avg_pool2d(F.max_pool2d(near, 2 * soft + 1, 1, soft), 2 * soft + 1, 1, soft, count_include_pad=False)[0]


def stroke_midpoint(k: torch.Tensor) -> tuple[float, float]:
    """(row, column) of the point that splits a kernel's mass in half along its stroke.

    A blur kernel is the camera's path drawn with the time spent at each point, and the sharp frame
    a blurred one is compared with (GoPro, video pairs, the stills engine) is the middle of the
    exposure: the point of the path with half the exposure's mass on either side. The stroke's
    pixels are ordered by their geodesic distance (8-connected, within the kernel's support) from
    one end (the support pixel farthest from the peak), and the mass-weighted position of those
    within one pixel of the half-mass distance is returned. On a curved or unevenly fast path this
    differs from the centroid, which can lie off the stroke: deconvolving the held-out 10-25 px
    frames by the true kernel moved to its centroid gains +0.78 dB, moved to this point +3.09 dB (in
    place: +3.46; ``bench/path_bound.py --tile 4096 --place ...``, session 9).
    """
    n_rows, n_cols = k.shape
    kn = k.detach().cpu().double().numpy()
    support = kn > 0

    def distances(start: tuple[int, int]) -> dict[tuple[int, int], float]:
        dist, heap = {start: 0.0}, [(0.0, start)]
        while heap:
            d, (r, c) = heapq.heappop(heap)
            if d > dist[(r, c)]:
                continue
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    q = (r + dr, c + dc)
                    if (dr or dc) and 0 <= q[0] < n_rows and 0 <= q[1] < n_cols and support[q]:
                        nd = d + (math.sqrt(2) if dr and dc else 1.0)
                        if nd < dist.get(q, math.inf):
                            dist[q] = nd
                            heapq.heappush(heap, (nd, q))
        return dist

    peak = divmod(int(kn.argmax()), n_cols)
    if not support[peak]:
        return (n_rows - 1) / 2, (n_cols - 1) / 2
    from_peak = distances(peak)
    end = max(from_peak, key=from_peak.__getitem__)
    along = sorted(distances(end).items(), key=lambda item: item[1])
    pos = np.array([p for p, _ in along], dtype=np.float64)
    dist = np.array([d for _, d in along])
    mass = kn[pos[:, 0].astype(int), pos[:, 1].astype(int)]
    half = dist[min(int(np.searchsorted(np.cumsum(mass) / mass.sum(), 0.5)), len(dist) - 1)]
    near = np.abs(dist - half) <= 1.0
    w = mass[near]
    return float((pos[near, 0] * w).sum() / w.sum()), float((pos[near, 1] * w).sum() / w.sum())


def centre_kernel_at(k: torch.Tensor, row: float, col: float, *, subpixel: bool = False) -> torch.Tensor:
    """The kernel moved (padded rather than wrapped) so that (row, col) is its centre: by whole
    pixels, and with ``subpixel`` by the remaining fraction too (bilinearly, one pixel more on
    each side), so that a point between pixels is placed exactly."""
    n = k.shape[-1]
    dy, dx = round(n // 2 - row), round(n // 2 - col)
    pad = max(abs(dy), abs(dx)) + int(subpixel)
    out = torch.zeros(n + 2 * pad, n + 2 * pad, dtype=k.dtype, device=k.device)
    out[pad + dy : pad + dy + n, pad + dx : pad + dx + n] = k
    if not subpixel:
        return out
    # What is left to move, in [-1/2, 1/2] px each way: spread over the four nearest pixels.
    fy, fx = n // 2 - row - dy, n // 2 - col - dx
    sy, sx = (1 if fy >= 0 else -1), (1 if fx >= 0 else -1)
    fy, fx = abs(fy), abs(fx)
    # The one-pixel margin keeps the rolls from wrapping, so the mass is kept.
    return sum(
        w * torch.roll(out, (oy * sy, ox * sx), (0, 1))
        for oy, ox, w in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx))
    )


def tile_weights(n_rows: int, n_cols: int) -> torch.Tensor:
    """(n_rows, n_cols) pyramid blending weights of a tile: 1 at its edges, growing linearly inward,
    so that half-overlapping tiles fade into each other without seams."""
    wy = torch.minimum(torch.arange(n_rows) + 1.0, torch.arange(n_rows, 0, -1).float())
    wx = torch.minimum(torch.arange(n_cols) + 1.0, torch.arange(n_cols, 0, -1).float())
    return wy[:, None] * wx[None]


def kernel_is_plausible(k: torch.Tensor, *, border: int = 2, max_border_mass: float = 0.02) -> bool:
    """Whether an estimated kernel can be trusted: a camera-shake path is one thin stroke inside
    the support. A stroke that runs into the support's edge was cut off (the blur is longer than
    the largest kernel searched), and deconvolving with it makes the image worse.
    """
    inner = k[border:-border, border:-border].sum()
    return float(k.sum() - inner) <= max_border_mass * float(k.sum())


def kernel_agreement(a: torch.Tensor, b: torch.Tensor, *, sigma: float = 1.0, reach: int = 2) -> float:
    """How alike two kernels are: normalised correlation of the two, each smoothed by a Gaussian of
    ``sigma`` px (thin strokes drawn one pixel apart still agree), at the best shift within
    ``reach`` px, after centring the smaller in the larger's support. 1 for the same stroke."""
    n = max(a.shape[-1], b.shape[-1])
    r = max(1, math.ceil(3 * sigma))
    g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32, device=a.device) ** 2 / (2 * sigma**2))
    g = g / g.sum()

    def smooth(k: torch.Tensor) -> torch.Tensor:
        p = (n - k.shape[-1]) // 2 + r
        k = F.pad(k.float()[None, None], (p, p, p, p))
        return F.conv2d(F.conv2d(k, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))[0, 0]

    sa, sb = smooth(a), smooth(b)
    norm = float(sa.norm() * sb.norm()) or 1.0
    return max(
        float((sa * torch.roll(sb, (dy, dx), (0, 1))).sum()) / norm
        for dy in range(-reach, reach + 1)
        for dx in range(-reach, reach + 1)
    )


def kernel_radius(k: torch.Tensor) -> float:
    """RMS distance of a kernel's mass from its centroid, in its own pixels (a straight streak of
    length L has L / sqrt(12); a single pixel 0)."""
    k = k / k.sum().clamp(min=1e-12)
    cy, cx = _centroid(k)
    r = torch.arange(k.shape[-1], dtype=k.dtype, device=k.device)
    return float((k * ((r[:, None] - cy) ** 2 + (r[None] - cx) ** 2)).sum().sqrt())


def _luma(img: torch.Tensor) -> torch.Tensor:
    """(H, W) BT.601 luma of a (3, H, W) image, in its own space."""
    return sum(c * img[i] for i, c in enumerate(LUMA_WEIGHTS))


def streak_evidence(gray: torch.Tensor, k: torch.Tensor, *, coarse: int = 4) -> float:
    """Whether an image shows the blur a kernel claims: the share of its gradient energy that runs
    along the kernel's long axis with the image shrunk ``coarse`` times, over that share at full size.

    Blur along a direction takes away the fine detail along it and leaves the coarse: under a right
    kernel the share is lower at full size than shrunk, so the ratio is above 1 (1.2-2.4 on the
    deconvolved tiles of session 14 whose estimate matched the true kernel). An image whose own
    structure runs one way (grass blades, ripples on water) misleads the search into a long kernel
    along it, which nothing in the image contradicts (the aperture problem); such an image lacks
    that detail at every scale, and the ratio is about 1 or below (0.75-1.0 on the tiles where a
    13 px streak was taken for a 50-80 px one, each losing 4-17 dB).

    Args:
        gray: (H, W) image (luma, in the blur's space) the kernel was found for.
        k: the kernel (any side); its long axis is that of its mass's second moments.
        coarse: the factor the image is shrunk by (area average) for the coarse share.

    Returns:
        The ratio (1 where the image has no gradient at either size).
    """
    k = k.double() / k.sum().double().clamp(min=1e-12)
    r = torch.arange(k.shape[-1], dtype=k.dtype, device=k.device)
    cy, cx = _centroid(k)
    dy, dx = r[:, None] - cy, r[None] - cx
    cross = (k * dy * dx).sum()
    moments = torch.stack([torch.stack([(k * dy * dy).sum(), cross]), torch.stack([cross, (k * dx * dx).sum()])])
    u = torch.linalg.eigh(moments).eigenvectors[:, -1].float()  # (dy, dx) of the long axis

    def share(img: torch.Tensor) -> float:
        gy, gx = torch.gradient(img.float())
        total = float((gy * gy + gx * gx).sum())
        return float(((u[0] * gy + u[1] * gx) ** 2).sum()) / total if total > 0 else 0.0

    fine = share(gray)
    small = F.avg_pool2d(gray[None, None].float(), coarse)[0, 0] if min(gray.shape[-2:]) >= 3 * coarse else gray
    return share(small) / fine if fine > 0 else 1.0


def deconvolve_tiled(image: torch.Tensor, kernel: torch.Tensor, *, weight: float = 3e-3, tile: int = 1024) -> torch.Tensor:
    """:func:`deconvolve` with bounded memory: one channel and one ``tile``-px block at a time, each
    with a margin of twice the kernel's side of real context around it (the block's own border
    effects stay in the margin, so the blocks meet without seams).

    A 24 MP photo deconvolved whole needs ~7 GB; in blocks of 1024 px, a few hundred MB.
    """
    c, h, w = image.shape
    if h <= tile and w <= tile:
        return deconvolve(image, kernel, weight=weight)
    m = 2 * kernel.shape[-1]
    out = torch.empty(c, h, w, dtype=torch.float32, device=image.device)
    for ch in range(c):
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                ya, xa = max(0, y0 - m), max(0, x0 - m)
                block = deconvolve(image[ch : ch + 1, ya : min(h, y1 + m), xa : min(w, x1 + m)], kernel, weight=weight)
                out[ch, y0:y1, x0:x1] = block[0, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


@contextlib.contextmanager
def _one_thread(active: bool = True) -> Iterator[None]:
    """torch's intra-op threads set to one for the block (process-wide), then restored."""
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if active:
            torch.set_num_threads(before)


def _done_now(fn: Callable[..., object], *args: object) -> Future:
    """``fn(*args)`` run here and now, as a finished future (a pool's ``submit`` without a pool)."""
    f: Future = Future()
    try:
        f.set_result(fn(*args))
    except BaseException as e:  # re-raised by result(), as a pool's future would
        f.set_exception(e)
    return f


class BlindDeconvolution(nn.Module):
    """Blind deconvolution as a model: (B, 3, H, W) in [0, 1] in, the same out; no weights.

    Each image (each tile of a large one: ``tiles``) gets its own kernel (see the module
    docstring). Where the kernel fails :func:`kernel_is_plausible`, is shorter than ``min_blur`` or
    fails the ``agreement`` check, the image (or tile) is returned unchanged, and so is the
    neighbourhood of its blown-out highlights (:func:`near_clipped`).

    On a CPU the tiles are worked on side by side, as many at once as torch has compute threads
    (``torch.get_num_threads()`` when called), each on one thread (torch's thread count is set to
    one for the call, process-wide, and restored after): the result is the same bit for bit
    whatever the thread count, which it was not when every thread worked on one tile.

    Args:
        work_side: the kernel is estimated on the image shrunk to at most this long side.
        max_kernel: the largest kernel side searched at that size (odd); with the defaults a streak
            of up to ~31/384 of the image's long side (~100 px at 1280 px) can be found.
        latent_weight: L0 prior weight of the estimation's latent image.
        iterations: alternations per kernel size.
        tv_weight: total-variation weight of the final deconvolution.
        deconv_side: photos larger than this are deconvolved at this long side, the change carried
            up bilinearly to full size (their own finer detail is kept).
        gamma: the space the blur happened in: 1.0 stored values (GoPro ``blur``, Levin), 2.2 linear
            light (a real exposure, GoPro ``blur_gamma``).
        min_blur: kernels whose :func:`kernel_radius` is below this (px, at the size the kernel
            was searched at; a straight streak of ~4 px has 1.2) keep the image as it was. Such an
            estimate resolves no streak: on the held-out video pairs half the frames got one, and
            deconvolving with it lost 0.2-1.2 dB on each; Levin's kernels measure >= 2.6 there and
            the real-blur photos' >= 1.6.
        placement: where the deconvolved image is put relative to the blurred one: "midpoint"
            (the kernel's :func:`stroke_midpoint` at its centre: the middle of the exposure, where
            sharp frames of video and of the stills engine are) or "centroid" (its centre of mass;
            before session 9).
        zoom: while the kernel found is shorter than half the search window, estimate it again on
            the image at twice the size (up to ``zoom_side``): held-out 10-25 px frames at 1280 px
            -0.39 dB without, +1.53 dB with (session 9).
        zoom_side: the largest long side (px) the zoom searches a kernel at (``None``: up to
            ``deconv_side``). The search's cost grows with the area: on a 1280x720 frame with a short
            streak, the searches at 384, 768 and 1280 px took 2, 8 and 26 s. Held-out 10-25 px
            frames at 1280 px: up to 768 px +1.32 dB in 13 s a frame, 1024 px +1.75 in 21 s, 1280
            px +1.53 in 36 s (session 10).
        agreement: a first kernel shorter than :attr:`AGREEMENT_RADIUS` is searched again on the
            image at 5/6 and 7/6 of that size; if either differs from it (:func:`kernel_agreement`
            below this), the estimate is not trusted and the image (or tile) is kept: a kernel the
            search finds at one size only is usually wrong. 0 switches the check off. Chosen on the
            held-out sets themselves (session 10; no statistic of a single estimate told right
            kernels from wrong ones there).
        full_radius: a kernel with an RMS radius (:func:`kernel_radius`, px at the size the image is
            deconvolved at) above this keeps only ``full_radius / radius`` of the change its
            deconvolution makes, at least ``min_strength`` of it (``None``: always all of it). The
            longer the streak, the less one kernel is right across a tile (a rotating camera
            bends and stretches it from one side to the other; moving people) and the more an
            estimate is off: per tile of the 20-120 px frames, half the change was worth more
            than all of it for kernels of 10 px radius and more, all of it for those under 7 px
            (see :attr:`FULL_RADIUS`; whole held-out frames at γ 1.0: -0.03 -> +0.20 dB).
        min_strength: the smallest fraction of the change kept for long kernels (see ``full_radius``).
        tv_growth: a kernel over ``full_radius`` is deconvolved with a total-variation weight of
            ``tv_weight * (radius / full_radius) ** tv_growth`` (0: ``tv_weight`` for all): a
            smoother deconvolution is the safer answer to a kernel that is only roughly right, and
            growing with the length it leaves kernels just over ``full_radius`` nearly as they
            were (see :attr:`TV_GROWTH`).
        min_evidence: a kernel over ``full_radius`` whose tile (of at least
            :attr:`EVIDENCE_SIDE` px) scores below this on :func:`streak_evidence` is not trusted
            and the tile keeps the input (0: never; see :attr:`MIN_EVIDENCE`).
        subpixel: the kernel is placed at its ``placement`` point exactly (:func:`centre_kernel_at`
            with ``subpixel``), not to the nearest pixel; the output moves by the same fraction.
            A short streak undone well is worth several dB, and half a pixel off costs much of it
            where the sharp image is the exposure's middle exactly (the stills engine's frames:
            +0.13 dB on each 10-25 px set). Off by default: where it is not, the fraction moves
            the output off the sharp image's grid (Levin's pairs, compared after a whole-pixel
            alignment, -0.49 dB; the video pairs, whose target is half a frame after the middle,
            -0.03; sessions 15-16, ``training/README.md``).
        twin_agreement: a long kernel (over ``full_radius``) of a tile that has a twin, a tile at
            most 1/8 of the side away along one axis (7/8 of its pixels the same; a 1280x720
            frame's two rows of 640 px tiles, y 0 and 80, are twins column by column), is not
            trusted and the tile keeps the input when the twin found a kernel too and the two
            agree (:func:`kernel_agreement`, smoothed by the scale they were searched at) below
            this: on nearly the same pixels the search found another stroke, so neither is to be
            believed alone. 0 switches it off (see :attr:`TWIN_AGREEMENT`).
        tiles: half-overlapping tiles along the long side, each with its own kernel, searched,
            checked (``agreement``) and kept or deconvolved on its own; 1: one kernel for the whole
            image; ``None`` (the default): as many as keep each tile at least :attr:`TILE_SIDE` px
            at the size it is deconvolved at (one below 960 px, three at 1280 px). Blur that varies
            across the frame (a rotating camera, depth) needs several, and each tile must still hold
            a streak at the size it is searched at.
    """

    arch = "blind"
    #: Callers must not cut the image into tiles: it tiles itself (``tiles``), with the whole image's
    #: context around each tile, and bounds its own memory.
    whole_image = True
    #: FFTs and L0 thresholds need fp32; half-precision autocast is switched off inside.
    runs_in_fp32 = True
    #: Reports finished tiles through :attr:`on_progress` (the Deblurrer sets it).
    reports_progress = True
    #: Kernels with an RMS radius of this many px or more (a straight streak of ~20 px where it is
    #: searched) skip the agreement check: a long thin stroke resampled to another size correlates
    #: less with itself: on Levin's longest kernels right ones agreed no better than wrong ones, and
    #: `real-blur/13_structure`, which blind restores, would be kept (session 10).
    AGREEMENT_RADIUS = 6.0
    #: The smallest tile side (px, at the size the image is deconvolved at) of ``tiles=None``. On the
    #: held-out 1280x720 frames, three tiles of 640 px (six in all) each with its own kernel and
    #: agreement check against one kernel per frame: 10-25 px streaks +2.64 dB against +1.75, 20-120
    #: px γ 1.0 +0.07 against -0.25, γ 2.2 -0.18 against -0.33, at 3-8 times the time; on check
    #: frames not chosen on, +1.31 against +0.78 and +0.40 against -0.53 (session 11). With the true
    #: kernels, 640 px tiles gain +2.48 dB on the 20-120 px frames where one kernel per frame gains
    #: +0.12 (session 9). Smaller tiles hold too little to search.
    TILE_SIDE = 640
    #: ``full_radius``'s default. Per 640 px tile of the 20-120 px γ 1.0 held-out and check frames
    #: and the 10-25 px frames (session 13, 211 deconvolved tiles, gain over the blurred tile in
    #: dB when 1/4, 1/2, 3/4 or all of the change is kept): radius under 7 px +0.62 / +1.12 / +1.42 /
    #: +1.40 (short streaks: one kernel fits the tile), 7-10 px +0.74 / +1.11 / +1.06 / +0.58,
    #: 10-15 px +0.75 / +0.99 / +0.71 / +0.01, over 15 px +0.64 / +0.73 / +0.40 / -0.28.
    FULL_RADIUS = 8.0
    #: ``tv_growth``'s default. Whole frames with the strength rule (session 14), constant weight /
    #: 1e-2 over 8 px / growing: held-out 20-120 px γ 1.0 +0.37 / +0.40 / +0.39 dB, fresh frames
    #: -0.28 / -0.10 / -0.15 (γ 2.2: -0.68 / -0.47 / -0.54); the step flattens the detail of
    #: `real-blur/13_structure` (a 9.5 px kernel) that growing with the length keeps.
    TV_GROWTH = 1.0
    #: ``min_evidence``'s default. Long kernels of 640 px tiles (session 14): on fresh frames the
    #: tiles scoring under 1 lost 2.5-3.9 dB on average at the shipped strength (their kernels 2-3x
    #: too long), on the held-out frames -0.4 to +0.6; per tile over all tiles, fresh -0.65 ->
    #: -0.04 dB, held-out +0.68 -> +0.65.
    MIN_EVIDENCE = 1.0
    #: The shortest tile side (px, at the size it deconvolves) that ``min_evidence`` judges. The
    #: statistic was measured on 640 px tiles; on a small photo the coarse image is a few dozen px
    #: and the streak still covers much of it (`real-blur/13_structure`, 265 px with a 9.5 px
    #: radius kernel that blind restores well, scores 0.93).
    EVIDENCE_SIDE = 512
    #: ``twin_agreement``'s default. Whole 1280x720 frames (session 17, AMD EPYC), gain dB, before ->
    #: with it (frames better / worse): fresh 20-120 px γ 1.0 +0.04 -> +0.27 (2 / 0; chosen there:
    #: `Volna_0` -3.16 -> 0.00, its wrong long kernels' twins agree at 0.80), γ 2.2 -0.07 -> -0.05
    #: (1 / 0), check γ 1.0 +0.92 -> +0.92 (1 / 1: `Garden_2` -0.69 -> +0.22, but `Aqua_0` +1.12 ->
    #: +0.18, right kernels whose twins agree at 0.76), held-out γ 1.0 +0.31 and γ 2.2 -0.01
    #: unchanged; 10-25 px check +1.76 -> +1.83 (2 / 0), held-out +2.33 and fresh +0.12 unchanged.
    #: Twins of most long tiles agree at 0.95-1.00, right or wrong: 0.95 lost on the check frames
    #: (+0.90, 1 / 3).
    TWIN_AGREEMENT = 0.9

    def __init__(
        self,
        work_side: int = 384,
        max_kernel: int = 31,
        latent_weight: float = 4e-3,
        iterations: int = 8,
        tv_weight: float = 3e-3,
        gamma: float = 1.0,
        deconv_side: int = 1536,
        min_blur: float = 1.2,
        placement: str = "midpoint",
        zoom: bool = True,
        tiles: int | None = None,
        zoom_side: int | None = 1024,
        agreement: float = 0.94,
        full_radius: float | None = FULL_RADIUS,
        min_strength: float = 0.5,
        tv_growth: float = TV_GROWTH,
        min_evidence: float = MIN_EVIDENCE,
        subpixel: bool = False,
        twin_agreement: float = TWIN_AGREEMENT,
    ) -> None:
        super().__init__()
        if work_side < 32:
            raise ValueError(f"work_side must be >= 32, got {work_side}")
        if max_kernel < 3 or max_kernel % 2 == 0:
            raise ValueError(f"max_kernel must be odd and >= 3, got {max_kernel}")
        if deconv_side < work_side:
            raise ValueError(f"deconv_side ({deconv_side}) must be >= work_side ({work_side})")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if min_blur < 0:
            raise ValueError(f"min_blur must be >= 0, got {min_blur}")
        if placement not in ("midpoint", "centroid"):
            raise ValueError(f"placement must be 'midpoint' or 'centroid', got {placement!r}")
        if tiles is not None and tiles < 1:
            raise ValueError(f"tiles must be >= 1 or None, got {tiles}")
        if not 0 <= agreement <= 1:
            raise ValueError(f"agreement must be in [0, 1], got {agreement}")
        if full_radius is not None and full_radius <= 0:
            raise ValueError(f"full_radius must be > 0 or None, got {full_radius}")
        if not 0 < min_strength <= 1:
            raise ValueError(f"min_strength must be in (0, 1], got {min_strength}")
        if tv_growth < 0:
            raise ValueError(f"tv_growth must be >= 0, got {tv_growth}")
        if min_evidence < 0:
            raise ValueError(f"min_evidence must be >= 0, got {min_evidence}")
        if not 0 <= twin_agreement <= 1:
            raise ValueError(f"twin_agreement must be in [0, 1], got {twin_agreement}")
        if zoom_side is not None and zoom_side < work_side:
            raise ValueError(f"zoom_side ({zoom_side}) must be >= work_side ({work_side})")
        self.work_side, self.max_kernel = work_side, max_kernel
        self.latent_weight, self.iterations, self.tv_weight, self.gamma = latent_weight, iterations, tv_weight, gamma
        self.deconv_side, self.min_blur, self.placement, self.zoom = deconv_side, min_blur, placement, zoom
        self.tiles, self.zoom_side, self.agreement = tiles, zoom_side, agreement
        self.full_radius, self.min_strength = full_radius, min_strength
        self.tv_growth, self.min_evidence, self.subpixel = tv_growth, min_evidence, subpixel
        self.twin_agreement = twin_agreement
        self.hparams = {
            "work_side": work_side, "max_kernel": max_kernel, "latent_weight": latent_weight,
            "iterations": iterations, "tv_weight": tv_weight, "gamma": gamma, "deconv_side": deconv_side,
            "min_blur": min_blur, "placement": placement, "zoom": zoom, "tiles": tiles,
            "zoom_side": zoom_side, "agreement": agreement, "full_radius": full_radius, "min_strength": min_strength,
            "tv_growth": tv_growth, "min_evidence": min_evidence, "subpixel": subpixel,
            "twin_agreement": twin_agreement,
        }
        #: The kernels of the last forward pass, at the size each image was deconvolved at (full
        #: size up to ``deconv_side``; a tiled image's central tile's, or another deconvolved
        #: tile's), ``None`` where the whole input was kept.
        self.last_kernels: list[torch.Tensor | None] = []
        #: Called with (tiles done, tiles in the batch) as each tile is finished: a large photo takes
        #: a minute or more. :class:`deblurcli.inference.Deblurrer` sets it for the length of a call.
        self.on_progress: Callable[[int, int], None] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # FFTs and the L0 thresholds need fp32: never run under bf16/fp16 autocast.
        # One compute thread per tile, tiles side by side, instead of every thread on one tile:
        # the L0 thresholds of the kernel search turn the rounding differences of multi-threaded
        # FFTs and sums into different kernels (the README's example scored 67.1 on two threads,
        # 68.6 on one), so the result would depend on the thread count; this way it does not, and
        # small FFTs gain little from a second thread anyway.
        workers = torch.get_num_threads() if x.device.type == "cpu" else 1
        with torch.autocast(x.device.type, enabled=False), _one_thread(x.device.type == "cpu"):
            x = x.float().contiguous()
            outs, self.last_kernels = [], []
            for i, img in enumerate(x):
                out, k = self._one(img, functools.partial(self._report, i, len(x)), workers)
                outs.append(out)
                self.last_kernels.append(k)
            return outs[0][None] if len(outs) == 1 else torch.stack(outs)  # no copy of a 24 MP photo

    def _report(self, image: int, images: int, done: int, tiles: int) -> None:
        """:attr:`on_progress` for ``done`` of the ``tiles`` of image ``image`` of ``images``, counted
        over the batch (its images share one size, hence one tile count)."""
        if self.on_progress is not None:
            self.on_progress(image * tiles + done, images * tiles)

    def _kernel_for(
        self, lin: torch.Tensor, scale: float, pool: ThreadPoolExecutor | None = None
    ) -> tuple[torch.Tensor | None, float]:
        """The kernel of ``lin`` (3, H, W, the blur's space), searched on it shrunk by ``scale`` and,
        while it is short, at twice that size; with the scale it was found at. ``None`` where the
        estimate is not trusted (the image is kept there). ``pool`` runs the agreement check's
        searches side by side."""
        found: tuple[torch.Tensor | None, float] = (None, scale)
        first = True
        # The largest scale-down that keeps the searched image within zoom_side.
        floor = max(1.0, max(lin.shape[-2:]) / self.zoom_side) if self.zoom_side else 1.0
        # With a pool, the check's larger (slower) search starts beside the first one: it is
        # wasted only where the kernel is long enough to skip the check.
        early: dict[float, Future] = {}
        if pool is not None and self.agreement > 0:
            early[7 / 6] = pool.submit(self._search_at, lin, self._check_sides(lin, scale)[7 / 6])
        while True:
            k = self._search(F.interpolate(lin[None], scale_factor=1 / scale, mode="area")[0] if scale > 1 else lin)
            if k is None:
                return found
            radius = kernel_radius(k)
            if first and self.agreement > 0 and radius < self.AGREEMENT_RADIUS and not self._agrees(lin, scale, k, pool, early):
                return None, scale  # found at one search size only: not to be trusted, nor zoomed into
            first = False
            trusted = kernel_is_plausible(k) and radius >= self.min_blur
            if not trusted and found[0] is not None:
                return found  # zoomed in, the streak no longer fits: the coarser estimate stands
            found = (k if trusted else None, scale)
            # A short streak is a few pixels at work_side, too few to hold its shape (10-25 px
            # streaks at 1280 px are 3-8 px at 384): look again at twice the size while the kernel
            # would still fit the search window, up to zoom_side (or deconv_side). Its length is
            # judged by its RMS radius (a straight streak of L px has L / sqrt(12)), which a few
            # stray specks do not inflate as they do its bounding box.
            if not self.zoom or scale <= floor * (1 + 1e-6) or 2 * math.sqrt(12) * radius + 4 > self.max_kernel:
                return found
            scale = max(scale / 2, floor)

    @staticmethod
    def _check_sides(lin: torch.Tensor, scale: float) -> dict[float, int]:
        """The long sides (px) the agreement check searches ``lin`` at, by factor of the size
        1/``scale`` the kernel was found at: 5/6 and 7/6 of it."""
        return {factor: round(max(lin.shape[-2:]) / scale * factor) for factor in (5 / 6, 7 / 6)}

    def _search_at(self, lin: torch.Tensor, side: int) -> torch.Tensor | None:
        """The kernel searched on ``lin`` shrunk to a long side of ``side`` px (see :meth:`_search`)."""
        return self._search(F.interpolate(lin[None], scale_factor=side / max(lin.shape[-2:]), mode="area")[0])

    def _agrees(
        self,
        lin: torch.Tensor,
        scale: float,
        k: torch.Tensor,
        pool: ThreadPoolExecutor | None = None,
        started: dict[float, Future] | None = None,
    ) -> bool:
        """Whether the kernels searched on ``lin`` at 5/6 and at 7/6 of the size ``k`` was found at
        (1/``scale``) are the same stroke as ``k``, compared at that size; both searches run side
        by side in ``pool`` when one is given (``started``: those already running, by factor)."""
        base = max(lin.shape[-2:]) / scale
        sides = self._check_sides(lin, scale)
        # Without a pool the second search runs only if the first agrees.
        running = dict(started or {})
        if pool is not None:
            running.update({f: pool.submit(self._search_at, lin, side) for f, side in sides.items() if f not in running})
        for factor, side in sides.items():
            other = running[factor].result() if factor in running else self._search_at(lin, side)
            if other is None:
                continue  # too small to search at this size: no evidence either way
            # Both at the larger of the two sizes: a kernel searched at a smaller size covers more px.
            small, big, ratio = (other, k, base / side) if factor < 1 else (k, other, side / base)
            if kernel_agreement(resize_kernel(small, ratio), big) < self.agreement:
                return False
        return True

    def _search(self, img: torch.Tensor) -> torch.Tensor | None:
        """The kernel estimated on ``img`` (3, H, W, as it is searched), or ``None`` where it is too
        small to search: a long thin panorama shrinks to a few rows, too few to hold a streak of the
        searched length, and the estimate's reflect padding needs the room."""
        if min(img.shape[-2:]) < 2 * self.max_kernel:
            return None
        return estimate_kernel(_luma(img), self.max_kernel, latent_weight=self.latent_weight, iterations=self.iterations)

    def _placed(self, k: torch.Tensor, scale: float) -> torch.Tensor:
        """A kernel found at 1/``scale``, for the image it deconvolves, centred per ``placement``."""
        big = resize_kernel(k, scale)
        if self.placement == "midpoint":
            # Found on the small kernel (a few hundred pixels), mapped to the scaled-up one's grid.
            row, col = stroke_midpoint(k)
            f = big.shape[-1] / k.shape[-1]
            big = centre_kernel_at(big, (row + 0.5) * f - 0.5, (col + 0.5) * f - 0.5, subpixel=self.subpixel)
        return big

    def strength(self, radius: float) -> float:
        """The fraction of its deconvolution's change that a kernel of RMS radius ``radius`` (px, at
        the size it deconvolves) keeps: 1 up to ``full_radius``, ``full_radius / radius`` beyond, at
        least ``min_strength``."""
        if not self._is_long(radius):
            return 1.0
        return max(self.min_strength, self.full_radius / radius)

    def deconv_weight(self, radius: float) -> float:
        """The total-variation weight a kernel of RMS radius ``radius`` (px, at the size it
        deconvolves) is deconvolved with: ``tv_weight``, times ``(radius / full_radius) **
        tv_growth`` over ``full_radius``."""
        if not self._is_long(radius):
            return self.tv_weight
        return self.tv_weight * (radius / self.full_radius) ** self.tv_growth

    def _is_long(self, radius: float) -> bool:
        """Whether a kernel of RMS radius ``radius`` is over ``full_radius``, where the rules for
        long kernels (``min_strength``, ``tv_growth``, ``min_evidence``) apply."""
        return self.full_radius is not None and radius > self.full_radius

    def _tile(
        self, mid: torch.Tensor, scale: float, y0: int, x0: int, side: int, pool: ThreadPoolExecutor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, float]:
        """The kernel of the tile of ``mid`` at (``y0``, ``x0``) of ``side`` px, the change its
        deconvolution makes there (not yet weighted for blending) and the scale the kernel was
        searched at; ``(None, None, scale)`` where it keeps the input. ``pool``: for the agreement
        check's searches (see :meth:`_agrees`)."""
        mh, mw = mid.shape[-2:]
        y1, x1 = min(y0 + side, mh), min(x0 + side, mw)
        k, kscale = self._kernel_for(mid[:, y0:y1, x0:x1], scale, pool)
        if k is None:
            return None, None, kscale  # this tile keeps the input
        k = self._placed(k, kscale)
        radius = kernel_radius(k)
        if self._is_long(radius) and self.min_evidence > 0 and min(y1 - y0, x1 - x0) >= self.EVIDENCE_SIDE:
            if streak_evidence(_luma(mid[:, y0:y1, x0:x1]), k) < self.min_evidence:
                return None, None, kscale  # the tile does not show this blur: a kernel along its own structure
        # Real context around the tile, so its deconvolution's own border effects stay outside.
        m = 2 * k.shape[-1]
        ya, yb, xa, xb = max(0, y0 - m), min(mh, y1 + m), max(0, x0 - m), min(mw, x1 + m)
        region = mid[:, ya:yb, xa:xb]
        keep = (1 - near_clipped(region, k.shape[-1] // 2)) * self.strength(radius)
        d = (deconvolve_tiled(region, k, weight=self.deconv_weight(radius)) - region) * keep
        return k, d[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa], kscale

    def _judge_twins(
        self, origins: list[tuple[int, int]], results: list[tuple[torch.Tensor | None, torch.Tensor | None, float]], side: int
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """The (kernel, change) of the tiles at ``origins`` of ``side`` px from their :meth:`_tile`
        ``results``, with ``(None, None)`` for each tile whose long kernel its twin contradicts (see
        ``twin_agreement``); each is judged against its twin's own result."""
        judged = [(k, d) for k, d, _ in results]
        if self.twin_agreement <= 0:
            return judged
        near = side // 8  # 7/8 of the pixels shared: 80 px of 640, a 1280x720 frame's two rows
        for i, ((y0, x0), (k, _, s)) in enumerate(zip(origins, results, strict=True)):
            if k is None or not self._is_long(kernel_radius(k)):
                continue
            for (y1, x1), (other, _, s1) in zip(origins, results, strict=True):
                twin = (x1 == x0 and 0 < abs(y1 - y0) <= near) or (y1 == y0 and 0 < abs(x1 - x0) <= near)
                if not twin or other is None:
                    continue
                # Smoothed and shifted by the coarser search's scale: one pixel where they were found.
                scale = max(s, s1)
                if kernel_agreement(k, other, sigma=scale, reach=math.ceil(2 * scale)) < self.twin_agreement:
                    judged[i] = (None, None)
                    break
        return judged

    def tile_layout(self, h: int, w: int) -> tuple[int, list[tuple[int, int]]]:
        """The side (px) and (row, column) origins of the tiles an h x w image (at the size it is
        deconvolved at) is cut into: ``tiles`` half-overlapping tiles along the long side, or as
        many as stay at least :attr:`TILE_SIDE` px; every tile whole, the last one flush with the
        edge. One tile (the whole image) under 1.5 :attr:`TILE_SIDE`."""
        # `tiles` half-overlapping tiles along the long side (1: the whole image), each with its own
        # kernel, blended with pyramid weights: a rotating camera blurs the corners differently.
        # n half-overlapping tiles of side 2L/(n+1) cover L: the most that stay >= TILE_SIDE.
        n = self.tiles if self.tiles is not None else max(1, math.floor(2 * max(h, w) / self.TILE_SIDE - 1))
        side = max(h, w) if n == 1 else math.ceil(2 * max(h, w) / (n + 1))

        def starts(length: int) -> list[int]:
            return [0] if length <= side else [*range(0, length - side, side // 2), length - side]

        return side, [(y0, x0) for y0 in starts(h) for x0 in starts(w)]

    def _one(
        self, img: torch.Tensor, report: Callable[[int, int], None], workers: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Deblur one (3, H, W) image; with its kernel (``None`` where all of it was kept).
        ``report(done, tiles)`` is called as each of its tiles is finished; up to ``workers``
        tiles are worked on at once."""
        h, w = img.shape[-2:]
        # In place where it can be: a 24 MP photo is 288 MB per copy (bench/fix.py --rss-check).
        lin = img.clamp(0, 1)
        if self.gamma != 1:
            lin.pow_(self.gamma)
        # Deconvolve at most at deconv_side: a kernel found at work_side and scaled up more than
        # that holds no finer detail to restore, and at 24 MP it would be ~500 px wide. Above it,
        # the change made at that size is carried up and the photo's own fine detail kept.
        dscale = max(h, w) / self.deconv_side
        mid = F.interpolate(lin[None], scale_factor=1 / dscale, mode="area")[0] if dscale > 1 else lin
        mh, mw = mid.shape[-2:]
        scale = max(1.0, max(mh, mw) / self.work_side)
        side, origins = self.tile_layout(mh, mw)
        # Tiles run side by side, one compute thread each (see forward), and are summed in their
        # own order: the result does not depend on how many run at once.
        # An image of one tile uses the pool for its agreement check's searches instead (_kernel_for).
        pool = ThreadPoolExecutor(min(workers, max(2, len(origins)))) if workers > 1 else None
        one = len(origins) == 1
        run = pool.submit if pool is not None and not one else _done_now
        try:
            futures = [run(self._tile, mid, scale, y0, x0, side, pool if one else None) for y0, x0 in origins]
            for done, _ in enumerate(as_completed(futures), 1):
                report(done, len(origins))
            results = self._judge_twins(origins, [f.result() for f in futures], side)
        except BaseException:
            if pool is not None:  # Ctrl-C or an error: drop the tiles not yet started, do not wait
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        if pool is not None:
            pool.shutdown()
        change, wsum = torch.zeros_like(mid), torch.zeros(1, mh, mw, device=mid.device)
        for (y0, x0), (_, d) in zip(origins, results, strict=True):
            y1, x1 = min(y0 + side, mh), min(x0 + side, mw)
            wt = tile_weights(y1 - y0, x1 - x0).to(mid.device)
            wsum[:, y0:y1, x0:x1] += wt
            if d is not None:
                change[:, y0:y1, x0:x1] += d * wt
        kernels = [k for k, _ in results]
        found = [k for k in kernels if k is not None]
        if not found:
            return img.clone(), None  # forward returns it without a copy: never the caller's tensor
        change.div_(wsum)
        if dscale > 1:
            change = F.interpolate(change[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        # The kernel recorded is the central tile's (the whole image's with one tile), or another's.
        centre = kernels[len(kernels) // 2]
        out = lin.add_(change).clamp_(0, 1)
        if self.gamma != 1:
            out.pow_(1 / self.gamma)
        return out, centre if centre is not None else found[0]
