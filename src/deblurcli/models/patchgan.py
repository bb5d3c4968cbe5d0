"""The critic: a PatchGAN (pix2pix / DeblurGAN NLayerDiscriminator) for WGAN-GP training.

Kernel 4 convolutions: one stride-2 conv without norm, ``n_layers - 1`` stride-2 conv-norm-LeakyReLU,
one stride-1 conv-norm-LeakyReLU, and a final stride-1 conv to one channel. No sigmoid: a WGAN
critic outputs raw scores. Each output value scores one patch of the input (70x70 for 3 layers).
BatchNorm is not offered: the gradient penalty is defined per sample, which batch statistics break.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PatchGANCritic(nn.Module):
    """PatchGAN critic.

    Args:
        ndf: width of the first layer (64).
        n_layers: stride-2 layers (3).
        norm: ``"instance"`` (DeblurGAN) or ``"none"``.

    Shape:
        (B, 3, H, W) float in [0, 1] -> (B, 1, h, w) raw scores (H, W >= 24 for 3 layers).
    """

    arch = "patchgan"

    def __init__(self, *, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"critic norm must be 'instance' or 'none', got {norm!r}")
        if ndf < 1 or n_layers < 1:
            raise ValueError(f"invalid hyperparameters ndf={ndf} n_layers={n_layers}")
        self.hparams: dict[str, Any] = {"ndf": ndf, "n_layers": n_layers, "norm": norm}

        def norm_layer(c: int) -> nn.Module:
            return nn.InstanceNorm2d(c, affine=True) if norm == "instance" else nn.Identity()

        bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
        return self.net(x * 2.0 - 1.0)
