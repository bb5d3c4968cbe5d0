"""What a training run is asked to do: :class:`TrainConfig` (JSON-serialisable, stored in every
checkpoint), :data:`RECIPE_FIELDS`, :class:`TrainError` and the progress events (:class:`TrainEvent`).

Imports nothing of :mod:`deblurcli.train`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

from deblurcli import MAX_SEED
from deblurcli.errors import DeblurError
from deblurcli.pairs import DEFAULT_GAMMA

#: Fields that define the experiment; on --resume they come from the checkpoint, not the command line.
RECIPE_FIELDS = (
    "arch",
    "hparams",
    "critic_hparams",
    "laplacian",
    "gan",
    "content",
    "content_weight",
    "lambda_gp",
    "critic_iters",
    "label_noise",
    "lr",
    "betas",
    "decay_start",
    "crop",
    "batch_size",
    "seed",
    "max_blur",
    "gamma",
    "gamma_set",
    "highlights",
    "val_fraction",
    "clip_grad",
)


class TrainError(DeblurError):
    """Training cannot start or continue (bad options, missing checkpoint, too little data)."""


@dataclass
class TrainConfig:
    """Everything a training run needs; JSON-serialisable (it is stored in checkpoints).

    Attributes:
        data: ``--data`` folders (pair layouts or sharp photos; see :mod:`deblurcli.data`).
        out: output folder (checkpoints/, metrics.jsonl, model.safetensors, curves.png).
        steps: generator updates in total (``None``: from ``epochs``).
        epochs: passes over the training items (used when ``steps`` is None).
        crop: random crop side.
        batch_size: samples per process per step (DeblurGAN: 1).
        arch: generator architecture ("c2f", "deblurgan" or "nafnet").
        hparams: generator hyperparameters (``laplacian`` is set from :attr:`laplacian`).
        critic_hparams: PatchGAN hyperparameters (ndf, n_layers, norm).
        laplacian: Laplacian 4th input channel (False = the paper's ablation).
        gan: adversarial training (False = content loss only, no critic).
        content: "perceptual" (VGG19 conv3_3 MSE) or "l1fft".
        vgg_weights: VGG19 state_dict path for "perceptual" (default: torchvision's cache).
        content_weight: λ of the content loss (100).
        lambda_gp: λ of the gradient penalty (10).
        critic_iters: critic updates per generator update (5).
        label_noise: per-sample probability that the critic's real/fake roles are swapped (0.1).
        lr, betas: Adam settings of both optimisers (1e-4, (0.5, 0.999)).
        decay_start: fraction of the steps at constant lr before the linear decay (0.5).
        clip_grad: largest L2 norm of the generator's gradient per step (0: no clipping). A batch
            that produces a huge gradient (a rare crop with extreme blur) would otherwise throw the
            weights far off and undo hundreds of steps; the norm is logged as ``g_grad_norm``.
        device: "auto", "cpu", "cuda" (or "cuda:N" for a single process).
        precision: "auto" (bf16 autocast on CUDA when supported and on CPUs with AMX/AVX512-BF16,
            else fp32), "fp32" or "bf16".
        threads: compute threads per process on the CPU (0: the cores not already busy, see
            :func:`deblurcli.hardware.default_threads`).
        workers: DataLoader worker processes per training process.
        blur_on: where the synthetic blur of photo sources is rendered: "loader" (the stills
            engine's OpenCV warps in the loader workers), "device" (the workers only draw the
            samples; the training process warps them on its device with ``grid_sample``: on a GPU,
            a loader core renders ~24-70 crops/s of 256 px, far fewer than a step takes) or "auto" (device on
            CUDA, loader elsewhere). The images agree to ~0.02 levels; a run option, not part of
            the recipe.
        seed: seed of initialisation, data order, crops and noise.
        save_every, val_every, log_every: intervals in steps (0 disables periodic saving/validation;
            a checkpoint and a validation always happen at the end).
        val_count: validation images (0 = all held-out ones); val_crop: their center crop (0 = whole).
        val_fraction: share of each non-GoPro source held out for validation.
        max_blur: longest synthetic streak (px at crop size) for photo sources.
        gamma: (low, high) camera-response gamma of that synthetic blur, drawn per crop (equal
            values: fixed). Validation always uses 2.2, so runs stay comparable.
        gamma_set: when given, the gamma is drawn per crop from these values, each equally often
            (``gamma`` is then their (min, max), for display).
        highlights: probability of brighter-than-white highlights in a synthetic crop blurred in
            linear light (gamma above 1); 0 keeps the samples of earlier versions.
        keep: checkpoints kept (older ones are deleted; 0 = keep all).
        resume: continue from the newest checkpoint in ``OUT/checkpoints``.
        init: start the generator from these weights (a ``.safetensors`` file, a registered name or
            ``hf://...``; :func:`preflight` resolves it to a local file once, for all processes)
            instead of at random; the recipe is this run's (fine-tuning). Its architecture and
            hyperparameters must match.
    """

    data: list[str]
    out: str
    steps: Optional[int] = None
    epochs: Optional[int] = None
    crop: int = 256
    batch_size: int = 1
    arch: str = "deblurgan"
    hparams: dict[str, Any] = field(default_factory=dict)
    critic_hparams: dict[str, Any] = field(default_factory=dict)
    laplacian: bool = True
    gan: bool = True
    content: str = "perceptual"
    vgg_weights: Optional[str] = None
    content_weight: float = 100.0
    lambda_gp: float = 10.0
    critic_iters: int = 5
    label_noise: float = 0.1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5
    clip_grad: float = 0.0
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    workers: int = 2
    blur_on: str = "auto"
    seed: int = 0
    save_every: int = 1000
    val_every: int = 500
    log_every: int = 10
    val_count: int = 16
    val_crop: int = 256
    val_fraction: float = 0.05
    max_blur: float = 60.0
    gamma: tuple[float, float] = (DEFAULT_GAMMA, DEFAULT_GAMMA)
    gamma_set: tuple[float, ...] = ()
    highlights: float = 0.0
    keep: int = 3
    resume: bool = False
    init: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["gamma"] = list(self.gamma)
        d["gamma_set"] = list(self.gamma_set)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_json`; unknown keys are ignored (older/newer checkpoints)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("betas", "gamma", "gamma_set"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def validate(self) -> None:
        """Raise :class:`TrainError` on inconsistent options (before anything starts)."""
        if not self.data:
            raise TrainError("give at least one --data folder")
        if self.init and self.resume:
            raise TrainError("give --init or --resume, not both (a resumed run continues from its checkpoint)")
        if self.steps is None and self.epochs is None:
            raise TrainError("give --steps or --epochs")
        if not (0 < self.gamma[0] <= self.gamma[1]):
            raise TrainError(f"--gamma needs 0 < LOW <= HIGH, got {self.gamma[0]:g}-{self.gamma[1]:g}")
        if any(not (math.isfinite(g) and g > 0) for g in self.gamma_set):
            raise TrainError(f"--gamma values must be positive numbers, got {','.join(f'{g:g}' for g in self.gamma_set)}")
        if self.steps is not None and self.steps < 1 or self.epochs is not None and self.epochs < 1:
            raise TrainError("--steps/--epochs must be at least 1")
        if self.crop < 16:
            raise TrainError(f"--crop must be at least 16, got {self.crop}")
        if self.gan and self.crop < 32:
            raise TrainError(f"--crop must be at least 32 with the PatchGAN critic, got {self.crop}")
        if self.batch_size < 1 or self.critic_iters < 1:
            raise TrainError("--batch-size and --critic-iters must be at least 1")
        if not 0.0 <= self.label_noise <= 1.0:
            raise TrainError(f"--label-noise must be in [0, 1], got {self.label_noise}")
        if not (math.isfinite(self.clip_grad) and self.clip_grad >= 0):
            raise TrainError(f"--clip-grad must be 0 (off) or a positive norm, got {self.clip_grad}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise TrainError(f"--decay-start must be in [0, 1], got {self.decay_start}")
        if self.content not in ("perceptual", "l1fft"):
            raise TrainError(f"unknown --content {self.content!r}; choose perceptual or l1fft")
        if self.blur_on not in ("auto", "loader", "device"):
            raise TrainError(f"unknown --blur-on {self.blur_on!r}; choose auto, loader or device")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise TrainError(f"unknown --precision {self.precision!r}; choose auto, fp32 or bf16")
        if self.arch not in ("c2f", "deblurgan", "nafnet"):
            raise TrainError(f"unknown --arch {self.arch!r}; choose c2f, deblurgan or nafnet")
        if self.threads < 0:
            raise TrainError(f"--threads must be 0 (auto) or more, got {self.threads}")
        if not 0 <= self.seed <= MAX_SEED:
            raise TrainError(f"--seed must be in [0, {MAX_SEED}], got {self.seed}")


@dataclass
class TrainEvent:
    """A progress report for ``on_progress`` (rank 0 only).

    ``kind`` is "start" (``info`` has the run summary), "step" (``metrics``: latest losses, lr,
    it/s), "val" (``metrics``: val_psnr, val_ssim and the blurred inputs' val_psnr_blurred,
    val_ssim_blurred), "checkpoint" (``info['path']``) or "done" (``info``: output paths).
    """

    kind: str
    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[TrainEvent], None]
