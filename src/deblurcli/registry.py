"""Named models: what to build and where its weights live. Torch-free (``deblur models`` stays fast).

Modelled on timm's pretrained configs: a plain, frozen dataclass per name, holding the architecture,
its hyperparameters, the weights file name, its sha256, and where it is published on the Hugging Face
Hub (repo, file, pinned revision). :mod:`deblurcli.weights` turns an entry into a verified file.

The default, ``nafnet-s``, is bundled in the wheel (``weights/nafnet-s.safetensors``, its model card
in ``weights/README.md``) and verified against its sha256 before it is loaded. The other entries
have no trained weights yet (``hub=None``, ``sha256=None``): ``deblur fix --model NAME`` says so and
how to pass a file instead. Publishing one means filling in ``sha256`` and ``hub`` (or bundling it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deblurcli.errors import UnknownModelError


@dataclass(frozen=True)
class HubFile:
    """A file on the Hugging Face Hub, pinned to a revision (a commit sha is best: it never moves)."""

    repo_id: str
    filename: str
    revision: str = "main"

    @property
    def spec(self) -> str:
        """The ``hf://owner/repo/file@revision`` spelling accepted by ``--model``."""
        return f"hf://{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class ModelEntry:
    """One named model.

    Attributes:
        name: the name given to ``--model``.
        architecture: key in :data:`deblurcli.models.ARCHITECTURES`.
        hyperparameters: keyword arguments for the architecture (the file's metadata wins if it has them).
        description: one line for ``deblur models``.
        trained_for: what the published weights were trained to undo, and on what, in one line for
            ``deblur --version`` and ``deblur models`` (empty when there are no weights). The model
            card says it at length; this is the line a user sees first.
        num_params: parameter count (checked against the real model by the tests).
        weights_filename: the file name in the bundled ``weights/`` folder.
        sha256: expected sha256 of the weights file, or ``None`` when none is published.
        hub: where the weights are published, or ``None``.
        weightless: the model has no weights at all (classical, built from its hyperparameters).
    """

    name: str
    architecture: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    trained_for: str = ""
    num_params: int = 0
    weights_filename: str = ""
    sha256: str | None = None
    hub: HubFile | None = None
    weightless: bool = False

    def __post_init__(self) -> None:
        if not self.weights_filename:
            object.__setattr__(self, "weights_filename", f"{self.name}.safetensors")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lower-case hex digits")

    @property
    def published(self) -> bool:
        """True when weights are known to exist somewhere (Hub) with a checksum to verify them."""
        return self.hub is not None and self.sha256 is not None


#: sha256 of the bundled ``weights/nafnet-s.safetensors`` (tests check that the file matches).
NAFNET_S_SHA256 = "3ca3b2dbcd5bb6753479948af88a50f5eab0d13e804d9b1db68ff42b9635f693"

_NAF_S = {"width": 16, "enc_blocks": [1, 1, 1, 1], "middle_blocks": 1, "dec_blocks": [1, 1, 1, 1]}
_NAF_M = {"width": 24, "enc_blocks": [1, 1, 2, 4], "middle_blocks": 2, "dec_blocks": [1, 1, 1, 1]}
# The shape of NAFNet-GoPro-width32 from the NAFNet paper (28 blocks at 1/16 resolution).
_NAF_L = {"width": 32, "enc_blocks": [1, 1, 1, 28], "middle_blocks": 1, "dec_blocks": [1, 1, 1, 1]}

# Coarse-to-fine dense-conv U-Net (see deblurcli.models.c2f): widths 16..256, 4 levels, 3 scales.
_C2F_S = {"width": 16, "levels": 4, "blocks": 1, "middle_blocks": 2, "scales": 3}

#: Name -> entry, in display order.
REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry(
            "deblurgan",
            "deblurgan",
            {"ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": 0.5, "laplacian": True},
            "the paper's generator: DeblurGAN ResNet, 9 blocks, width 64, Laplacian channel",
            num_params=11_386_563,
        ),
        ModelEntry(
            "deblurgan-half",
            "deblurgan",
            {"ngf": 32, "n_blocks": 9, "norm": "instance", "dropout": 0.5, "laplacian": True},
            "the paper's generator at half width (32): ~4x fewer FLOPs",
            num_params=2_854_755,
        ),
        ModelEntry(
            "c2f-s",
            "c2f",
            {**_C2F_S, "laplacian": True},
            "coarse-to-fine U-Net (one body at 1/4, 1/2, 1), dense 3x3 convs for bf16 CPUs, Laplacian channel",
            num_params=3_713_299,
        ),
        ModelEntry(
            "nafnet-s",
            "nafnet",
            {**_NAF_S, "laplacian": True},
            "NAFNet-style U-Net, width 16, 4 downsamplings: fastest; trained, bundled",
            trained_for=(
                "camera shake and motion blur in ordinary (gamma-encoded) photos, streaks up to ~30 px; "
                "trained on sharp photos blurred by the stills engine plus real video pairs, "
                "content loss, 16,000 steps on a 2-core CPU"
            ),
            num_params=1_137_347,
            sha256=NAFNET_S_SHA256,
        ),
        ModelEntry(
            "blind",
            "blind",
            {"work_side": 384, "max_kernel": 31, "gamma": 1.0},
            "classical blind deconvolution: one camera-shake kernel per image (per tile of a large one), "
            "estimated, then undone; no weights",
            trained_for=(
                "camera shake that is nearly the same across the frame (or a tile of 640 px or more), "
                "streaks up to ~8% of the long side; "
                "not trained (L0 kernel estimation and total-variation deconvolution); keeps an image whose "
                "kernel it cannot trust"
            ),
            weightless=True,
        ),
        ModelEntry(
            "nafnet-m",
            "nafnet",
            {**_NAF_M, "laplacian": True},
            "NAFNet-style U-Net, width 24, deeper at low resolution",
            num_params=4_445_379,
        ),
        ModelEntry(
            "nafnet-l",
            "nafnet",
            {**_NAF_L, "laplacian": True},
            "NAFNet-style U-Net, width 32, 28 blocks at 1/16 (NAFNet-GoPro-width32 shape)",
            num_params=17_112_195,
        ),
    )
}

#: What ``deblur fix`` uses without ``--model``: the bundled model (chosen by measurement, see the
#: model card ``weights/README.md``).
DEFAULT_MODEL = "nafnet-s"


def list_models() -> list[ModelEntry]:
    """All registered entries, in display order."""
    return list(REGISTRY.values())


def get_entry(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry:
    """The entry for a name.

    Raises:
        UnknownModelError: the name is not registered (the message lists the known names).
    """
    reg = REGISTRY if registry is None else registry
    entry = reg.get(name)
    if entry is None:
        known = ", ".join(reg) or "(none)"
        raise UnknownModelError(
            f"unknown model {name!r} (known: {known}; or give a .safetensors file or hf://owner/repo/file.safetensors@revision)"
        )
    return entry
