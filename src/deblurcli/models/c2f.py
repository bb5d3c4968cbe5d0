"""A coarse-to-fine U-Net built for large motion blur and for CPUs with bf16 matrix units.

The same U-Net (shared weights) runs at 1/4, 1/2 and full resolution, as SRN-DeblurNet does (Tao et
al. 2018): a 100 px streak at full size is a 25 px streak where it is first attacked, so the network
only has to master moderate blur, and each finer scale starts from the upsampled result of the one
below. At every scale the network sees the blurred image at that scale with its Laplacian (the
paper's 4th channel, computed per scale) and the upsampled estimate from the coarser scale, and
predicts a residual on the blurred image at that scale (its final convolution starts at zero, so the
untrained network is the identity).

The body uses only dense 3x3 convolutions with ReLU, channel counts in multiples of 16, stride-2 3x3
convolutions down and 1x1 convolution + PixelShuffle up, skip connections added: the operations that
oneDNN runs on bf16 matrix units (AMX, AVX512-BF16) and GPUs run fastest; no normalisation layers,
so the output of a tile does not depend on the rest of the image beyond the receptive field.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deblurcli.models._common import WHITEN_LAPLACIAN_GAIN, WHITENED_CHANNELS, condition, condition_whitened, pad_to_multiple


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, added to the input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class UNetBody(nn.Module):
    """A dense-convolution U-Net: (B, in_ch, H, W) -> (B, 3, H, W), H and W multiples of 2**levels."""

    def __init__(self, in_ch: int, width: int, levels: int, blocks: int, middle_blocks: int) -> None:
        super().__init__()
        self.intro = nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(inplace=True))
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        ch = width
        for _ in range(levels):
            self.encoders.append(nn.Sequential(*[ResBlock(ch) for _ in range(blocks)]))
            self.downs.append(nn.Sequential(nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.ReLU(inplace=True)))
            ch *= 2
        self.middle = nn.Sequential(*[ResBlock(ch) for _ in range(middle_blocks)])
        for _ in range(levels):
            self.ups.append(nn.Sequential(nn.Conv2d(ch, ch * 2, 1), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[ResBlock(ch) for _ in range(blocks)]))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            feat = dec(up(feat) + skip)
        return self.ending(feat)


class CoarseToFineUNet(nn.Module):
    """Coarse-to-fine generator: one U-Net with shared weights applied at ``scales`` resolutions.

    Args:
        width: channels at the body's full resolution (doubled at each level; use a multiple of 16).
        levels: stride-2 downsamplings inside the body.
        blocks: residual blocks per encoder and decoder level.
        middle_blocks: residual blocks at the bottleneck.
        scales: resolutions the body runs at (3: 1/4, 1/2, 1).
        laplacian: add the Laplacian of the input luma (at each scale) as a 4th input channel.
        whiten: amplified high frequencies in the input (:func:`condition_whitened`: the Laplacian
            channel and each colour's gradients, at gains that make them the RGB channels' order),
            which makes a linear deconvolution far faster to learn (``bench/conditioning.py``; in
            this network the measured gain was small, ``training/README.md``); needs ``laplacian``.
        residual: what each finer scale adds its output to. ``"blurred"`` (the first c2f models):
            the blurred image at that scale, the coarser estimate being only an extra input; trained
            that way, the body learned to all but ignore it (``c2f-w``: running it at 4 scales
            instead of 3 changes its output by < 1e-5), so each scale deblurs on its own.
            ``"prior"``: the upsampled estimate of the scale below, as SRN-DeblurNet refines, so
            what the coarse scales removed stays removed (but the body must first re-create the
            fine detail that the upsampled estimate lacks). ``"correction"``: the blurred image
            plus the upsampled change the scale below made to its own blurred image (a Laplacian
            pyramid's way): the fine detail stays and the coarse deblurring is carried up. The
            coarsest scale always adds to its blurred image.

    Shape:
        (B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float in [0, 1], any H, W >= 1.
    """

    arch = "c2f"

    def __init__(
        self,
        *,
        width: int = 32,
        levels: int = 3,
        blocks: int = 1,
        middle_blocks: int = 2,
        scales: int = 3,
        laplacian: bool = True,
        whiten: bool = False,
        residual: str = "blurred",
    ) -> None:
        super().__init__()
        if width < 1 or levels < 1 or blocks < 0 or middle_blocks < 0 or scales < 1:
            raise ValueError("width, levels and scales must be >= 1, block counts >= 0")
        if whiten and not laplacian:
            raise ValueError("whiten includes the Laplacian channel: it needs laplacian=True")
        if residual not in ("blurred", "prior", "correction"):
            raise ValueError(f"residual must be 'blurred', 'prior' or 'correction', got {residual!r}")
        self.hparams: dict[str, Any] = {
            "width": width,
            "levels": levels,
            "blocks": blocks,
            "middle_blocks": middle_blocks,
            "scales": scales,
            "laplacian": laplacian,
        }
        if whiten:  # only when on, so that files saved before the option keep their metadata
            self.hparams["whiten"] = True
        if residual != "blurred":  # likewise: older files have no such key
            self.hparams["residual"] = residual
        self.residual = residual
        self.whiten = whiten
        self.use_laplacian = laplacian
        self.scales = scales
        # Input at each scale: the conditioned blurred image (3, 4 or 10 channels) + the estimate (3).
        self.body = UNetBody(self.conditioned_channels + 3, width, levels, blocks, middle_blocks)

    @property
    def pad_multiple(self) -> int:
        """What H and W pad to: the body's own multiple at the coarsest scale (derived, so that
        running a model at more or fewer scales needs only ``scales`` changed)."""
        return 2 ** (self.hparams["levels"] + self.scales - 1)

    @property
    def in_channels(self) -> int:
        """Channels of the conditioned blurred image: 4 with the Laplacian, 3 without."""
        return 4 if self.use_laplacian else 3

    @property
    def conditioned_channels(self) -> int:
        """Channels of the body's conditioned-image input: 10 whitened, else :attr:`in_channels`."""
        return WHITENED_CHANNELS if self.whiten else self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        padded, _, _ = pad_to_multiple(x, self.pad_multiple)
        # The blurred pyramid, finest first; area averaging is the right anti-aliased 2x reduction.
        pyramid = [padded]
        for _ in range(self.scales - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        est: torch.Tensor | None = None
        coarser: torch.Tensor | None = None  # the blurred image of the scale below
        for blurred in reversed(pyramid):
            size = blurred.shape[-2:]
            prior = blurred if est is None else F.interpolate(est, size=size, mode="bilinear", align_corners=False)
            inp = condition_whitened(blurred) if self.whiten else condition(blurred, self.use_laplacian)
            out = self.body(torch.cat([inp, prior * 2.0 - 1.0], dim=1))
            # Residual on the blurred image at this scale (residual="prior": on the coarser
            # estimate; "correction": plus what the scale below changed), in [-1, 1]; clamped so a
            # scale never hands the next one values outside the image range.
            base = inp[:, :3]
            if est is not None and self.residual == "prior":
                base = prior * 2.0 - 1.0
            elif est is not None and coarser is not None and self.residual == "correction":
                base = base + 2.0 * F.interpolate(est - coarser, size=size, mode="bilinear", align_corners=False)
            est = ((base + out.float()).clamp(-1.0, 1.0) + 1.0) * 0.5
            coarser = blurred
        assert est is not None
        return est[..., :h, :w]


def whitened_from(model: CoarseToFineUNet) -> CoarseToFineUNet:
    """A ``whiten=True`` copy of a trained plain-input c2f model that computes the same output.

    The whitened body reads 10 conditioned channels instead of 4: RGB (weights copied), the
    Laplacian channel at :data:`~deblurcli.models._common.WHITEN_LAPLACIAN_GAIN` instead of 2 (its
    weights scaled to match) and six gradient channels (weights zero, so they change nothing until
    training uses them); the estimate's 3 channels follow (copied). Training continues from what the
    model learned instead of from scratch.

    Raises:
        ValueError: ``model`` is already whitened or has no Laplacian channel.
    """
    if model.whiten or not model.use_laplacian:
        raise ValueError("whitened_from needs a c2f model with the plain RGB + Laplacian input")
    new = CoarseToFineUNet(**{**model.hparams, "whiten": True})
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    w = state["body.intro.0.weight"]  # (C, 4 + 3, 3, 3): RGB, 2 x Laplacian, estimate
    wide = torch.zeros(w.shape[0], new.conditioned_channels + 3, *w.shape[2:], dtype=w.dtype)
    wide[:, 0:3] = w[:, 0:3]
    wide[:, 3] = w[:, 3] * (2.0 / WHITEN_LAPLACIAN_GAIN)
    wide[:, -3:] = w[:, model.in_channels :]
    state["body.intro.0.weight"] = wide
    new.load_state_dict(state, strict=True)
    return new
