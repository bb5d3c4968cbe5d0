"""An efficient modern generator: NAFNet-style U-Net (Chen et al. 2022, "Simple Baselines for Image
Restoration"), conditioned on the Laplacian like the paper's generator.

Blocks use a channel LayerNorm, a 1x1 conv, a 3x3 depthwise conv, SimpleGate (split the channels in
two halves and multiply them, instead of a nonlinearity), simplified channel attention (global average
pool -> 1x1 conv -> scale), a 1x1 conv, then a second gated 1x1 feed-forward; both branches are
added through learnable per-channel scales initialised to zero, so every block starts as identity.
The U-Net has ``len(enc_blocks)`` stride-2 downsamplings (2x2 conv doubling the width) and as many
pixel-shuffle upsamplings; the skip connections are added, not concatenated (cheaper).

Note: simplified channel attention pools over the whole image, so the output depends (mildly) on
the whole image and tiled inference is a close approximation, not an identity.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.models._common import condition, pad_to_multiple


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) tensor (NAFNet's norm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused layer_norm kernel over the last dim of an NHWC view: one pass instead of ~8
        # elementwise ones; with channels_last memory the permutes are free.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split the channels into two halves and multiply them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """One NAFNet block: gated depthwise-conv branch with channel attention, then a gated FFN."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        dw = c * dw_expand
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        # Simplified channel attention: global average pool + 1x1 conv, no nonlinearity.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        ffn = c * ffn_expand
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # Zero-initialised residual scales: each block starts as the identity (stable deep training).
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + self.drop(x) * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + self.drop(x) * self.gamma


class NAFNetGenerator(nn.Module):
    """NAFNet-style U-Net generator conditioned on the Laplacian of its input.

    Args:
        width: channels at full resolution (doubled at each downsampling).
        enc_blocks: NAFBlocks per encoder level; its length is the number of downsamplings
            (4 gives a 1/16 bottleneck and a receptive field of several hundred pixels).
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level (same length as ``enc_blocks``).
        dropout: dropout inside the blocks (off in eval mode).
        laplacian: add the Laplacian of the input luma as a 4th input channel.

    Shape:
        (B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float in [0, 1], any H, W >= 1.
    """

    arch = "nafnet"

    def __init__(
        self,
        *,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1, 1, 1),
        middle_blocks: int = 1,
        dec_blocks: Sequence[int] = (1, 1, 1, 1),
        dropout: float = 0.0,
        laplacian: bool = True,
    ) -> None:
        super().__init__()
        enc_blocks, dec_blocks = [int(n) for n in enc_blocks], [int(n) for n in dec_blocks]
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks and dec_blocks must have the same length, got {enc_blocks} {dec_blocks}")
        if width < 1 or middle_blocks < 0 or min(enc_blocks + dec_blocks, default=0) < 0:
            raise ValueError("width must be >= 1 and block counts >= 0")
        self.hparams: dict[str, Any] = {
            "width": width,
            "enc_blocks": enc_blocks,
            "middle_blocks": middle_blocks,
            "dec_blocks": dec_blocks,
            "dropout": dropout,
            "laplacian": laplacian,
        }
        self.use_laplacian = laplacian
        self.pad_multiple = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(4 if laplacian else 3, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        # Zero-initialised: the untrained network is the identity through the global residual (see
        # the DeblurGAN generator), which starts training at the blurred input's PSNR.
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, ch * 2, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, ch * 2, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(n)]))

    @property
    def in_channels(self) -> int:
        """Channels of the first convolution: 4 with the Laplacian, 3 without."""
        return self.intro.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = condition(x, self.use_laplacian)
        padded, h, w = pad_to_multiple(inp, self.pad_multiple)
        feat = self.intro(padded)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            feat = dec(up(feat) + skip)
        out = self.ending(feat)[..., :h, :w]
        # Global residual on RGB only, in [-1, 1] (the same scale as the paper's generator).
        return ((inp[:, :3] + out).clamp(-1.0, 1.0) + 1.0) * 0.5
