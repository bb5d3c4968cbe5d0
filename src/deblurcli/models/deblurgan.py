"""The paper's generator: the DeblurGAN ResNet generator (Kupyn et al. 2018) with a Laplacian 4th channel.

7x7 conv -> two stride-2 3x3 convs -> ``n_blocks`` residual blocks (conv-norm-ReLU-dropout-conv-norm)
-> two transposed convs -> 7x7 conv -> tanh, plus the global residual ``clamp(input + out)`` on the
RGB channels. Differences from the reference code, on purpose:

* the Laplacian channel is computed inside :meth:`forward`, callers pass RGB only;
* convolutions followed by a normalisation have no bias (InstanceNorm would subtract it again, so
  the reference's biases there never learn anything);
* any H x W works: the input is padded to a multiple of 4 and the output cropped back;
* values at the boundary are [0, 1]; [-1, 1] is used inside, as in the paper.

InstanceNorm here normalises each image with its own statistics in training and inference alike
(no running stats), so train/eval differ only by dropout. Note that this makes the output depend on
the whole image: tiled inference (see :mod:`deblurcli.inference`) is an approximation for this model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deblurcli.models._common import check_norm, condition, pad_to_multiple


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResnetBlock(nn.Module):
    """Reflect-pad 3x3 conv, norm, ReLU, dropout, reflect-pad 3x3 conv, norm; plus the skip."""

    def __init__(self, channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            _norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DeblurGANGenerator(nn.Module):
    """DeblurGAN ResNet generator conditioned on the Laplacian of its input.

    Args:
        ngf: width of the first layer (64 in the paper); the bottleneck has ``4 * ngf`` channels.
        n_blocks: residual blocks at 1/4 resolution (9 in the paper).
        norm: ``"instance"`` (paper), ``"batch"`` or ``"none"``.
        dropout: dropout probability inside the residual blocks (0.5 in the paper; off in eval mode).
        laplacian: add the Laplacian of the input luma as a 4th input channel (off for the ablation).

    Shape:
        (B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float in [0, 1], any H, W >= 1.
    """

    arch = "deblurgan"
    #: The input is padded to a multiple of this (two stride-2 downsamplings).
    pad_multiple = 4

    def __init__(
        self, *, ngf: int = 64, n_blocks: int = 9, norm: str = "instance", dropout: float = 0.5, laplacian: bool = True
    ) -> None:
        super().__init__()
        check_norm(norm)
        if ngf < 1 or n_blocks < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"invalid hyperparameters ngf={ngf} n_blocks={n_blocks} dropout={dropout}")
        self.hparams: dict[str, Any] = {
            "ngf": ngf, "n_blocks": n_blocks, "norm": norm, "dropout": dropout, "laplacian": laplacian
        }
        self.use_laplacian = laplacian
        bias = norm == "none"
        in_ch = 4 if laplacian else 3
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7, bias=bias),
            _norm(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias), _norm(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                _norm(norm, ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        # Zero-initialised last conv: the untrained generator is the identity (tanh(0) = 0 through the
        # global residual), so training starts from "return the blurred input" instead of from noise
        # ~4 dB below it; gradients reach the earlier layers from the first optimiser step on.
        nn.init.zeros_(self.net[-2].weight)
        nn.init.zeros_(self.net[-2].bias)

    @property
    def in_channels(self) -> int:
        """Channels of the first convolution: 4 with the Laplacian, 3 without."""
        return self.net[1].in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = condition(x, self.use_laplacian)
        # Reflection pads need size > pad at every scale: at least 8 px (2 px at 1/4 resolution).
        padded, h, w = pad_to_multiple(inp, self.pad_multiple, min_size=8)
        out = self.net(padded)[..., :h, :w]
        # Global residual on the RGB channels only, in [-1, 1], then back to [0, 1].
        return ((inp[:, :3] + out).clamp(-1.0, 1.0) + 1.0) * 0.5
