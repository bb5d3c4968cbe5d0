"""Pieces shared by the generators: input conditioning, padding to a multiple, the output residual."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deblurcli.blur import laplacian


def condition(x: torch.Tensor, use_laplacian: bool) -> torch.Tensor:
    """The network input for a (B, 3, H, W) batch in [0, 1]: RGB in [-1, 1], plus (if enabled) the
    Laplacian of the luma as a 4th channel on the same scale (the paper's conditioning).

    The Laplacian is taken on the image as given (before any padding), so the 4th channel is the
    Laplacian of the blurred image itself, with reflected borders.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
    rgb = x * 2.0 - 1.0
    if not use_laplacian:
        return rgb
    # laplacian() is linear, so 2 * lap(x) is the Laplacian of the [-1, 1] image.
    return torch.cat([rgb, 2.0 * laplacian(x)], dim=1)


#: Gains of the whitened conditioning (:func:`condition_whitened`), for images in [0, 1] units.
#: A blurred photo's gradients and Laplacian have standard deviations of ~0.01-0.05, so the high
#: frequencies that deblurring must amplify are the smallest directions of the input covariance,
#: and first-order training learns them slowly (an ill-conditioned least-squares problem). These
#: gains bring those channels to ~0.1-1, the RGB channels' order. `bench/conditioning.py` (a 15x15
#: linear filter undoing a known 9 px blur, Adam 1e-4, 200 steps of 8 crops of 128 px): 0.985 of the
#: blurred input's MSE on RGB input, 0.449 on whitened input (closed-form optimum 0.392).
WHITEN_GRAD_GAIN = 10.0
WHITEN_LAPLACIAN_GAIN = 30.0


#: Channels of :func:`condition_whitened`'s output.
WHITENED_CHANNELS = 10


def condition_whitened(x: torch.Tensor) -> torch.Tensor:
    """The network input with whitened high frequencies, for a (B, 3, H, W) batch in [0, 1]: RGB
    in [-1, 1] (3), the paper's Laplacian-of-luma channel (1) and each colour's horizontal and
    vertical forward differences (6), the last seven amplified (see :data:`WHITEN_GRAD_GAIN`).
    :data:`WHITENED_CHANNELS` channels."""
    plain = condition(x, True)  # RGB in [-1, 1] and 2 x the Laplacian; checks the shape
    p = F.pad(x, (0, 1, 0, 1), mode="replicate")
    dx = p[..., :-1, 1:] - x
    dy = p[..., 1:, :-1] - x
    lap = plain[:, 3:] * (WHITEN_LAPLACIAN_GAIN / 2.0)
    return torch.cat([plain[:, :3], lap, WHITEN_GRAD_GAIN * dx, WHITEN_GRAD_GAIN * dy], dim=1)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> tuple[torch.Tensor, int, int]:
    """Pad H and W at the bottom/right up to a multiple of ``multiple`` and at least ``min_size``
    (reflection; replication when the image is too small to reflect). Returns the padded tensor and
    the original H, W to crop back to."""
    h, w = x.shape[-2:]
    th = max(h + (-h) % multiple, min_size + (-min_size) % multiple)
    tw = max(w + (-w) % multiple, min_size + (-min_size) % multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x, h, w
    # Reflection needs pad < size; tiny images (or pads larger than the image) fall back to replicate.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


def check_norm(norm: str) -> str:
    if norm not in ("instance", "batch", "none"):
        raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {norm!r}")
    return norm
