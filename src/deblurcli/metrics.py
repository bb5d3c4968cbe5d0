"""Image-quality metrics with stated conventions: PSNR and SSIM, vectorised in torch.

Both functions take float tensors (B, C, H, W) (C is 3 at library boundaries) and return one value
per image, shape (B,). They run on whatever device the tensors are on (GPU when present). SSIM
computes in float32 by default on values centred on 0 (its variances are differences of squares,
``E[x^2] - E[x]^2``, and centring shrinks the squares 4x); on 720p photos that stays within ~3e-6
of a float64 computation, and is 3x faster on CPU. Pass ``dtype=torch.float64`` for the exact one.

"As saved": papers score the 8-bit files they wrote, not the network's float output. Pass
``quantize=True`` (or call :func:`quantize_uint8` yourself) to round to the 256 levels first.

SSIM conventions (``convention=``):

``"skimage"``
    Wang et al. (2004) as scikit-image computes it with
    ``structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``: each channel separately, an 11x11 Gaussian
    window (sigma 1.5, truncated at 3.5 sigma), C1=(0.01*255)^2, C2=(0.03*255)^2, the SSIM map
    cropped by the window radius (5 px) on every side, averaged, then averaged over channels.
    Because of that crop, no padding mode is involved and the result matches scikit-image's.

``"matlab"``
    MATLAB's ``ssim(A, ref)`` on an H x W x 3 array with default options, which is what the GoPro
    evaluation scripts of DeepDeblur / SRN / DeblurGAN-v2 / MPRNet / NAFNet call. MATLAB treats a
    2-D RGB array as a 3-D *volume* (``DataFormat`` defaults to ``"SSS"``, three spatial
    dimensions; MathWorks' answer 2142916 and the ``ssim`` documentation): local statistics come
    from a 3-D Gaussian filter (``imgaussfilt3``, sigma 1.5, filter size 2*ceil(3*sigma)+1 = 11,
    ``'replicate'`` padding) applied across rows, columns *and* the three colour planes; the SSIM
    map (H x W x 3) is averaged without cropping. C1=(0.01*L)^2, C2=(0.03*L)^2 with L=255 for
    uint8. It gives higher values than the per-channel convention on the same images.

PSNR: ``10*log10(data_range^2 / MSE)`` with the MSE over all pixels and channels of each image
(RGB, not luma). Identical images give ``inf``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

SsimConvention = Literal["skimage", "matlab"]
#: The conventions :func:`ssim` understands, with a one-line description for reports.
SSIM_CONVENTIONS: dict[str, str] = {
    "skimage": "per-channel SSIM, Gaussian window sigma 1.5 (11x11), data range 255, "
    "population covariance, 5 px border cropped (scikit-image / Wang et al. 2004)",
    "matlab": "MATLAB ssim() on the RGB array: one 3-D Gaussian window sigma 1.5 (11x11x11) "
    "across rows, columns and colour planes, replicate padding, no crop",
}

_SIGMA = 1.5
_RADIUS = 5  # skimage: int(3.5 * 1.5 + 0.5); MATLAB: ceil(3 * 1.5). Both 5 -> an 11-tap window.
_K1, _K2 = 0.01, 0.03


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] float tensor to the 256 levels an 8-bit file holds (values stay in [0, 1]).

    Rounds half to even (``torch.round``), as NumPy's ``rint`` used by image writers does.
    """
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or target.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    *,
    quantize: bool = False,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, over all channels (RGB, not luma).

    Args:
        pred: (B, C, H, W) prediction.
        target: (B, C, H, W) reference, same shape.
        data_range: the value span of the inputs (1.0 for [0, 1] tensors, 255 for 0-255 values).
        quantize: round both inputs to 8-bit levels first (requires ``data_range=1``): PSNR of the
            images as saved.
        dtype: computation precision.

    Returns:
        (B,) tensor of ``dtype``; ``inf`` where the images are identical.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> psnr(x, x.clamp(0, 0.5)).shape
        torch.Size([2])
    """
    _check(pred, target)
    if quantize:
        if data_range != 1.0:
            raise ValueError("quantize=True expects [0, 1] inputs (data_range=1.0)")
        pred, target = quantize_uint8(pred), quantize_uint8(target)
    diff = pred.to(dtype) - target.to(dtype)
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf


def _gauss_taps(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(-_RADIUS, _RADIUS + 1, device=device, dtype=dtype)
    g = torch.exp(-(x**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _filter_hw(x: torch.Tensor, taps: torch.Tensor, pad: bool) -> torch.Tensor:
    """Separable Gaussian over H and W of every plane of (N, H, W); 'replicate'-padded ('same')
    or 'valid'. The planes go in as the channels of one depthwise convolution, which CPU kernels
    run several times faster than N single-channel images."""
    n, k = x.shape[0], taps.numel()
    x = x.unsqueeze(0)
    if pad:
        x = F.pad(x, (_RADIUS, _RADIUS, _RADIUS, _RADIUS), mode="replicate")
    x = F.conv2d(x, taps.view(1, 1, k, 1).expand(n, 1, k, 1), groups=n)
    return F.conv2d(x, taps.view(1, 1, 1, k).expand(n, 1, 1, k), groups=n)[0]


def _channel_matrix(c: int, taps: torch.Tensor) -> torch.Tensor:
    """(C, C) matrix M with out[c] = sum_c' M[c, c'] in[c']: the 11-tap Gaussian along the channel
    axis with 'replicate' padding (MATLAB imgaussfilt3's third dimension; C is only 3, so the
    out-of-range taps pile onto the edge planes)."""
    m = torch.zeros(c, c, dtype=taps.dtype, device=taps.device)
    for i in range(c):
        for t in range(taps.numel()):
            j = min(max(i + t - _RADIUS, 0), c - 1)
            m[i, j] += taps[t]
    return m


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    convention: SsimConvention = "skimage",
    *,
    data_range: float = 1.0,
    quantize: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Structural similarity per image, in a named convention (see the module docstring).

    Args:
        pred: (B, C, H, W) prediction.
        target: (B, C, H, W) reference, same shape. H and W must be at least 11 for ``"skimage"``.
        convention: ``"skimage"`` (per-channel, cropped) or ``"matlab"`` (3-D window, RGB volume).
        data_range: the value span of the inputs; they are rescaled to 0-255 so the constants are
            C1=(0.01*255)^2, C2=(0.03*255)^2 (SSIM is invariant to this rescaling).
        quantize: round both inputs to 8-bit levels first (requires ``data_range=1``).
        dtype: computation precision (float32 default; see the module docstring).

    Returns:
        (B,) tensor of ``dtype``.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(ssim(x, x))
        1.0
    """
    _check(pred, target)
    if convention not in SSIM_CONVENTIONS:
        raise ValueError(f"unknown SSIM convention {convention!r}; choose from {sorted(SSIM_CONVENTIONS)}")
    b, c, h, w = pred.shape
    if convention == "skimage" and min(h, w) < 2 * _RADIUS + 1:
        raise ValueError(f"skimage SSIM needs images of at least {2 * _RADIUS + 1}x{2 * _RADIUS + 1}, got {h}x{w}")
    if quantize:
        if data_range != 1.0:
            raise ValueError("quantize=True expects [0, 1] inputs (data_range=1.0)")
        pred, target = quantize_uint8(pred), quantize_uint8(target)
    scale = 255.0 / data_range
    x = pred.to(dtype) * scale
    y = target.to(dtype) * scale
    c1, c2 = (_K1 * 255.0) ** 2, (_K2 * 255.0) ** 2
    taps = _gauss_taps(x.device, dtype)
    matlab = convention == "matlab"

    # Centre the values on 0 (-128..127) before squaring: (co)variances do not change, and the
    # squares are 4x smaller, so float32 loses 4x less to the cancellation in E[x^2] - E[x]^2.
    x, y = x - 127.5, y - 127.5
    # Filter the five moment images in one batched call: (5*B*C, H, W).
    stack = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * b * c, h, w)
    f = _filter_hw(stack, taps, pad=matlab).reshape(5, b, c, *_out_hw(h, w, matlab))
    if matlab:
        f = torch.einsum("ij,kbjhw->kbihw", _channel_matrix(c, taps), f)
    mu_x, mu_y, xx, yy, xy = f.unbind(0)
    # Population (co)variances: use_sample_covariance=False in skimage; MATLAB does the same.
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    mu_x, mu_y = mu_x + 127.5, mu_y + 127.5  # the luminance term needs the true means
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    # skimage averages per channel then over channels; every channel has the same pixel count,
    # so that equals the mean over all of (C, H, W) -- as MATLAB's mean over the volume.
    return s.flatten(1).mean(dim=1)


def _out_hw(h: int, w: int, same: bool) -> tuple[int, int]:
    return (h, w) if same else (h - 2 * _RADIUS, w - 2 * _RADIUS)


def align(pred: torch.Tensor, target: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Register each prediction to its target by the integer shift of best PSNR, for scoring.

    In real camera-shake benchmarks (Levin et al. 2009, Köhler et al. 2012) the blurred image is
    offset from its ground truth by a few pixels (a shake kernel has no fixed centre), so a
    prediction that is sharp but offset scores worse than the blurry input. Their evaluation
    therefore scores each result at the translation that fits the ground truth best. Here: every
    shift (dy, dx) in [-radius, radius]^2 is tried; the target is always cropped to the same
    central window (``radius`` px inside each border) and the prediction to that window moved by
    (dy, dx), so scores at different shifts cover the same target pixels and compare fairly.

    Args:
        pred, target: (B, C, H, W), same shape, H and W larger than ``2 * radius``.
        radius: the largest shift tried, in pixels (0: no alignment, the crops are the inputs).

    Returns:
        (pred_crops, target_crops, shifts): (B, C, H - 2r, W - 2r) tensors to score, and the
        (dy, dx) chosen per image (ties go to the smallest shift, then the first in raster order).
    """
    _check(pred, target)
    b, _, h, w = pred.shape
    r = int(radius)
    if r < 0:
        raise ValueError(f"alignment radius must be >= 0, got {radius}")
    if r == 0:
        return pred, target, [(0, 0)] * b
    if h <= 2 * r or w <= 2 * r:
        raise ValueError(f"a {w}x{h} image is too small to align by up to {r} px")
    t = target[:, :, r : h - r, r : w - r]
    shifts = sorted(((dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)), key=lambda s: abs(s[0]) + abs(s[1]))
    best_mse = torch.full((b,), float("inf"), dtype=torch.float64, device=pred.device)
    best = torch.zeros((b, 2), dtype=torch.long)
    for dy, dx in shifts:
        p = pred[:, :, r + dy : h - r + dy, r + dx : w - r + dx]
        mse = (p.to(torch.float64) - t.to(torch.float64)).pow(2).flatten(1).mean(dim=1)
        better = (mse < best_mse).cpu()
        best_mse = torch.minimum(best_mse, mse)
        best[better] = torch.tensor([dy, dx])
    chosen = [(int(dy), int(dx)) for dy, dx in best.tolist()]
    crops = torch.stack([pred[i, :, r + dy : h - r + dy, r + dx : w - r + dx] for i, (dy, dx) in enumerate(chosen)])
    return crops, t, chosen
