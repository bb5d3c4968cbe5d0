"""Network architectures: plain ``nn.Module`` classes with keyword hyperparameters.

Every model has ``.arch`` (its key in :data:`ARCHITECTURES`) and ``.hparams`` (the keyword arguments
that rebuild it), which is what :mod:`deblurcli.weights` stores beside the tensors.

Generators take (B, 3, H, W) float RGB in [0, 1] of any size and return the same shape in [0, 1];
they compute their Laplacian channel themselves. ``blind`` is not a network: classical blind
deconvolution with no weights, run through the same interface. The critic returns (B, 1, h, w) raw scores.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deblurcli.models.blind import BlindDeconvolution
from deblurcli.models.c2f import CoarseToFineUNet
from deblurcli.models.deblurgan import DeblurGANGenerator
from deblurcli.models.nafnet import NAFNetGenerator
from deblurcli.models.patchgan import PatchGANCritic

#: Architecture name -> class.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "blind": BlindDeconvolution,
    "c2f": CoarseToFineUNet,
    "deblurgan": DeblurGANGenerator,
    "nafnet": NAFNetGenerator,
    "patchgan": PatchGANCritic,
}
#: The trainable architectures that restore images (the critic is training-only; ``blind`` restores
#: images but has nothing to train).
GENERATORS = frozenset({"c2f", "deblurgan", "nafnet"})

__all__ = ["ARCHITECTURES", "GENERATORS", "BlindDeconvolution", "CoarseToFineUNet", "DeblurGANGenerator", "NAFNetGenerator", "PatchGANCritic", "create_model"]


def create_model(arch: str, **hparams: Any) -> nn.Module:
    """Build an architecture by name with keyword hyperparameters (defaults for the rest).

    Raises:
        ValueError: unknown architecture or unknown/invalid hyperparameters.
    """
    cls = ARCHITECTURES.get(arch)
    if cls is None:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    try:
        return cls(**hparams)
    except TypeError as e:
        raise ValueError(f"bad hyperparameters for {arch}: {e}") from None
