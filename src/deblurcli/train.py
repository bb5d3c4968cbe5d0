"""Training: the paper's conditional WGAN-GP (Laplacian-conditioned generator, label noise), resumable.

One *step* is one generator update. Each step takes one batch and, as DeblurGAN does, first updates
the critic ``critic_iters`` times on that batch (generated images detached), then the generator once
with ``-D(G(x)) + content_weight * content(G(x), y)``. The learning rate of both optimisers is
constant for the first ``decay_start`` fraction of the steps, then falls linearly towards 0 at the
last step; it is a pure function of (step, total steps), so a resumed run follows the schedule it
would have followed uninterrupted (resuming with a larger ``--steps`` recomputes it for the new
total, as if the run had been started with it).

Distributed: run under torch's launcher (``python -m torch.distributed.run``), which sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``. Both networks are wrapped in DistributedDataParallel (NCCL on CUDA,
gloo on CPU); the critic's loss, penalty included, is built in one DDP forward and one backward (see
:mod:`deblurcli.losses`). The generator's adversarial term uses the critic's unwrapped module with its
parameters frozen, so DDP never sees a critic backward without a critic forward. Only rank 0 reports
progress, validates, writes metrics and saves. At every checkpoint the ranks compare their parameters
(``rank_param_max_diff`` in metrics.jsonl, which must be 0).

Checkpoints (``OUT/checkpoints/step_NNNNNNN.pt``) are ``torch.save`` dicts of tensors and plain values
(loadable with ``weights_only=True``): both networks, both optimisers, the step, the config and every
rank's RNG states. They are written to a temporary file and renamed, so a run killed at any moment
(SIGKILL included) resumes from the last complete checkpoint. bf16 needs no loss scaling, so there
is no GradScaler state to keep (fp16 is not offered).
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

from deblurcli import MAX_SEED
from deblurcli.errors import DatasetError, DeblurError
from deblurcli.pairs import DEFAULT_GAMMA

CHECKPOINT_FORMAT = "deblurcli-train-checkpoint"
CHECKPOINT_VERSION = 1

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
        seed: seed of initialisation, data order, crops and noise.
        save_every, val_every, log_every: intervals in steps (0 disables periodic saving/validation;
            a checkpoint and a validation always happen at the end).
        val_count: validation images (0 = all held-out ones); val_crop: their center crop (0 = whole).
        val_fraction: share of each non-GoPro source held out for validation.
        max_blur: longest synthetic streak (px at crop size) for photo sources.
        gamma: (low, high) camera-response gamma of that synthetic blur, drawn per crop (equal
            values: fixed). Validation always uses 2.2, so runs stay comparable.
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
    seed: int = 0
    save_every: int = 1000
    val_every: int = 500
    log_every: int = 10
    val_count: int = 16
    val_crop: int = 256
    val_fraction: float = 0.05
    max_blur: float = 60.0
    gamma: tuple[float, float] = (DEFAULT_GAMMA, DEFAULT_GAMMA)
    keep: int = 3
    resume: bool = False
    init: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["gamma"] = list(self.gamma)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_json`; unknown keys are ignored (older/newer checkpoints)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("betas", "gamma"):
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


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """Learning-rate multiplier for the update that makes step ``step + 1`` (0-based ``step``).

    1 for the first ``round(decay_start * total)`` updates, then linear: ``(total - step) /
    (total - start)``, which reaches ``1 / (total - start)`` at the last update (never 0, so no
    update is wasted).
    """
    start = round(decay_start * total)
    if step < start or total <= start:
        return 1.0
    return (total - step) / (total - start)


# --------------------------------------------------------------------------------------- helpers


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def list_checkpoints(out: str | Path) -> list[Path]:
    """Complete checkpoints in ``OUT/checkpoints``, oldest first (temporary files are ignored)."""
    d = checkpoint_dir(out)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step_*.pt") if p.stem[5:].isdigit())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a deblurcli training checkpoint")
    return ckpt


def read_checkpoint_config(path: str | Path) -> TrainConfig:
    """The config stored in a checkpoint, read without loading the tensors into memory (mmap)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise TrainError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a deblurcli training checkpoint")
    return TrainConfig.from_json(ckpt["config"])


def apply_recipe(cfg: TrainConfig, saved: TrainConfig) -> None:
    """Take the experiment-defining fields (:data:`RECIPE_FIELDS`) from a checkpoint's config."""
    for name in RECIPE_FIELDS:
        setattr(cfg, name, getattr(saved, name))


def build_generator(cfg: TrainConfig) -> Any:
    """The generator of ``cfg`` (architecture, hyperparameters, Laplacian channel), on the CPU.

    Raises:
        TrainError: unknown architecture or invalid hyperparameters.
    """
    from deblurcli.models import create_model

    try:
        return create_model(cfg.arch, **{**cfg.hparams, "laplacian": cfg.laplacian})
    except ValueError as e:
        raise TrainError(str(e)) from None


def build_critic(cfg: TrainConfig) -> Any:
    """The PatchGAN critic of ``cfg`` (``critic_hparams``), on the CPU.

    Raises:
        TrainError: invalid hyperparameters.
    """
    from deblurcli.models import create_model

    try:
        return create_model("patchgan", **cfg.critic_hparams)
    except ValueError as e:
        raise TrainError(str(e)) from None


def load_init(generator: Any, path: str | Path) -> None:
    """Load a ``.safetensors`` file's tensors into ``generator`` (every tensor, same shapes).

    Raises:
        TrainError: the file does not fit this architecture and hyperparameters (one line).
    """
    from safetensors.torch import load_file

    from deblurcli.weights import _first_line, read_metadata

    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise TrainError(f"--init {path}: not a readable .safetensors file ({_first_line(e)})") from None
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError:
        meta = read_metadata(path)
        made = f"{meta.get('architecture', '?')} {meta.get('hyperparameters', '')}".strip()
        raise TrainError(
            f"--init {path}: its tensors do not fit this generator (the file holds {made}); "
            "give the same --arch, --hparam and Laplacian setting as the run that made it"
        ) from None


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """Write the generator of a training checkpoint as a ``.safetensors`` model (what ``deblur fix
    --model`` and ``deblur evaluate --model`` load), with the run's recipe in its metadata: to score or
    use a run that is still going, or one that was stopped before its end.

    Raises:
        TrainError: not a readable deblurcli checkpoint.
    """
    from deblurcli import __version__
    from deblurcli.weights import save_model

    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_json(ckpt["config"])
    generator = build_generator(cfg)
    generator.load_state_dict(ckpt["generator"])
    recipe = {k: cfg.to_json()[k] for k in RECIPE_FIELDS}
    return save_model(
        path,
        generator,
        metadata={
            "recipe": json.dumps(recipe, sort_keys=True),
            "trained_steps": str(int(ckpt["step"])),
            "training_data": json.dumps([str(Path(d)) for d in cfg.data]),
            "trainer": f"deblurcli {__version__} export_checkpoint",
            **({"initialised_from": cfg.init} if cfg.init else {}),
        },
    )


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        # fsync so that a crash right after the rename cannot leave an empty "complete" file.
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_final(save_model: Callable[..., Path], path: Path, *args: Any, **kwargs: Any) -> Path:
    """save_model, with an OS refusal as a one-line TrainError (the checkpoints are already saved)."""
    try:
        return save_model(path, *args, **kwargs)
    except OSError as e:
        raise TrainError(
            f"cannot write {path}: {e.strerror or e}; the last checkpoint is saved (--resume to write the model)"
        ) from None


def _dist_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torch's launcher environment (0, 0, 1 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def resolve_device(cfg: TrainConfig, local_rank: int, world: int):  # -> torch.device
    import torch

    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available (use --device cpu)")
        if world > 1 or name == "cuda":
            name = f"cuda:{local_rank}" if world > 1 else "cuda:0"
        dev = torch.device(name)
        torch.cuda.set_device(dev)
        return dev
    if name != "cpu":
        raise TrainError(f"unknown --device {cfg.device!r}; choose auto, cpu or cuda")
    return torch.device("cpu")


def resolve_precision(cfg: TrainConfig, device) -> str:
    """``cfg.precision`` with "auto" resolved: bf16 on CUDA GPUs that support it and on CPUs with
    native bf16 (AMX or AVX512-BF16; 2-4x faster there), fp32 elsewhere."""
    import torch

    from deblurcli.hardware import cpu_has_bf16

    if cfg.precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_bf16() else "fp32"
    return cfg.precision


def check_gpus(n: int) -> None:
    """Fail before launching when fewer than ``n`` CUDA devices are visible."""
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < n:
        raise TrainError(f"--gpus {n}: this machine has {have} CUDA device{'s' if have != 1 else ''}")


def launcher_command(
    worker_args: list[str],
    *,
    nproc: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: Optional[str] = None,
    python: Optional[str] = None,
) -> list[str]:
    """The ``python -m torch.distributed.run ...`` command line that starts the training processes.

    One node: ``--standalone`` (a free local port). Several nodes: the static rendezvous at
    ``rdzv_endpoint`` (host:port of node 0) with this node's ``--node-rank``; run the same command on
    every node.
    """
    import sys

    cmd = [python or sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise TrainError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the address of node 0)")
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    return cmd + worker_args


def preflight(cfg: TrainConfig) -> list[str]:
    """Check what can be checked before any process starts; returns the data summary lines.

    Raises:
        TrainError / DatasetError / ContentLossError with a one-line message.
    """
    from deblurcli.data import open_sources
    from deblurcli.losses import VGG19_FILENAME, default_vgg19_path

    cfg.validate()
    if cfg.resume:
        found = list_checkpoints(cfg.out)
        if not found:
            raise TrainError(f"--resume: no checkpoint in {checkpoint_dir(cfg.out)}")
        apply_recipe(cfg, read_checkpoint_config(found[-1]))
    check_outputs(cfg.out)
    if not cfg.resume and list_checkpoints(cfg.out):
        raise TrainError(f"{cfg.out} already holds checkpoints; use --resume to continue, or another --out")
    # The networks are built once here, on the CPU (under a second even for the paper's
    # generator): bad --hparam/--critic-hparam values fail before any folder or process is made.
    generator = build_generator(cfg)
    if cfg.gan:
        build_critic(cfg)
    if cfg.init:
        from deblurcli.weights import resolve_weights

        # Resolved once, here: the training processes get a local file, and a mismatch fails before
        # any of them starts.
        cfg.init = str(resolve_weights(cfg.init, option="--init").path)
        load_init(generator, cfg.init)
    if cfg.content == "perceptual":
        path = Path(cfg.vgg_weights) if cfg.vgg_weights else default_vgg19_path()
        if not path.is_file():
            from deblurcli.losses import ContentLossError

            where = f"{path} not found" if cfg.vgg_weights else f"not in the torchvision cache ({path})"
            raise ContentLossError(
                f"--content perceptual needs ImageNet VGG19 weights ({VGG19_FILENAME}), {where}; "
                "pass --vgg-weights PATH, or use --content l1fft (no external weights)"
            )
    sources = open_sources(cfg.data, val_fraction=cfg.val_fraction)
    if sum(len(s.train) for s in sources) == 0:
        raise DatasetError("no training items left after the validation hold-out")
    largest = check_images(sources)
    if cfg.crop > max(largest):
        raise TrainError(
            f"--crop {cfg.crop} is larger than every training image (the largest is {largest[0]}x{largest[1]}); "
            f"give --crop {max(largest)} or less"
        )
    return [s.describe() for s in sources]


#: What a run writes in --out: (name, "folder" or "file").
OUTPUTS = (("checkpoints", "folder"), ("metrics.jsonl", "file"), ("model.safetensors", "file"), ("curves.png", "file"))


def check_outputs(out: str | Path) -> None:
    """Refuse an --out where any file the run will write cannot be written, before step 1: a
    read-only folder, a file where a folder goes (``OUT/checkpoints``) or a folder where a file goes
    (``OUT/model.safetensors``, found only at the end, would lose the whole run).

    Raises:
        TrainError: naming the path and what is wrong with it.
    """
    from deblurcli.inputs import output_folder_problem

    problem = output_folder_problem(out)
    if problem:
        raise TrainError(f"--out {problem}")
    for name, kind in OUTPUTS:
        p = Path(out) / name
        if not (p.exists() or p.is_symlink()):
            continue
        if kind == "folder" and not p.is_dir():
            raise TrainError(f"--out: {p} exists and is not a folder (checkpoints go there); move it away")
        if kind == "file" and not p.is_file():
            raise TrainError(f"--out: {p} exists and is not a file (the run writes it); move it away")
        if kind == "folder" and not os.access(p, os.W_OK | os.X_OK):
            raise TrainError(f"--out: cannot write in {p} (permission denied or read-only)")


def check_images(sources: list) -> tuple[int, int]:  # type: ignore[type-arg]
    """Read the header of every image of ``sources`` (not the pixels); return the largest (w, h).

    Raises:
        DatasetError: some files are not readable images (the first few named), so that a text file
            named .jpg stops the run before step 1, not inside a loader worker.
    """
    from deblurcli.errors import ImageError
    from deblurcli.images import probe_image

    bad: list[str] = []
    largest = (0, 0)
    for source in sources:
        for item in [*source.train, *source.val]:
            for path in (item.sharp, item.blurred):
                if path is None:
                    continue
                try:
                    w, h = probe_image(path)
                except ImageError as e:
                    bad.append(str(e))
                    continue
                largest = max(largest, (w, h), key=lambda s: max(s))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DatasetError(f"{len(bad)} unreadable file{'s' if len(bad) > 1 else ''} in --data: {bad[0]}{more}; remove or replace them")
    return largest


# --------------------------------------------------------------------------------------- the loop


class _Sampler:
    """DistributedSampler whose epoch can start part-way (exact resume without loading skipped data)."""

    def __init__(self, n: int, *, world: int, rank: int, seed: int) -> None:
        from torch.utils.data import DistributedSampler

        self.inner = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(self.inner)[self.start :])

    def __len__(self) -> int:
        return len(self.inner) - self.start


def _rng_state(device) -> dict[str, Any]:
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": repr(random.getstate()),  # plain string: weights_only can load it
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device) -> None:
    import ast

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(ast.literal_eval(state["python"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _batches(loader: Any) -> Any:
    """The loader's batches. A deblurcli error raised in a loader worker (a file whose header was
    fine but whose pixels are truncated) comes back from torch as a RuntimeError holding the
    worker's whole traceback; it is raised again as a one-line DatasetError."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except RuntimeError as e:
            lines = str(e).strip().splitlines()
            if lines and lines[-1].startswith("deblurcli.errors.") and ": " in lines[-1]:
                raise DatasetError(lines[-1].split(": ", 1)[1]) from None
            raise
        yield batch


def _write_jsonl(path: Path, row: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
    except OSError as e:
        raise TrainError(f"cannot write {path}: {e.strerror or e}") from None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows after ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:  # a line cut by a kill mid-write
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
    os.replace(tmp, path)


def _finite(x: float) -> Optional[float]:
    """``x``, or ``None`` (JSON null) when it is inf/NaN: metrics.jsonl is strict JSON, and a
    diverged loss must be recorded, not crash the writer."""
    return x if math.isfinite(x) else None


def train(cfg: TrainConfig, on_progress: Optional[ProgressFn] = None) -> dict[str, Any]:
    """Train (or resume) as configured; returns a summary dict (rank 0; others return {}).

    Raises:
        DeblurError subclasses for bad data/options; anything else is a bug.
    """
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader

    from deblurcli.data import TrainDataset, load_validation, open_sources
    from deblurcli.losses import create_content_loss, critic_loss, generator_adversarial_loss
    from deblurcli.metrics import psnr, ssim

    rank, local_rank, world = _dist_env()
    distributed = world > 1
    out = Path(cfg.out)
    ckpt: Optional[dict[str, Any]] = None
    if cfg.resume:
        found = list_checkpoints(out)
        if not found:
            raise TrainError(f"--resume: no checkpoint in {checkpoint_dir(out)}")
        ckpt = load_checkpoint(found[-1])
        # The experiment is the checkpoint's; the run options (steps, intervals, device) are ours.
        apply_recipe(cfg, TrainConfig.from_json(ckpt["config"]))
    cfg.validate()
    report = on_progress if (rank == 0 and on_progress is not None) else (lambda e: None)

    device = resolve_device(cfg, local_rank, world)
    if device.type == "cpu":
        from deblurcli.hardware import resolve_threads

        torch.set_num_threads(resolve_threads(cfg.threads))
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    precision = resolve_precision(cfg, device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainError("--precision bf16: this GPU does not support bf16")
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    try:
        # ---- data
        sources = open_sources(cfg.data, val_fraction=cfg.val_fraction)
        train_items = [it for s in sources for it in s.train]
        val_items = [it for s in sources for it in s.val]
        # DistributedSampler pads the index list to a multiple of the world size; full batches only.
        per_epoch = math.ceil(len(train_items) / world) // cfg.batch_size
        if per_epoch < 1:
            raise DatasetError(
                f"{len(train_items)} training items are fewer than --batch-size {cfg.batch_size} x {world} processes"
            )
        total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch  # type: ignore[operator]
        dataset = TrainDataset(train_items, crop=cfg.crop, seed=cfg.seed, max_blur=cfg.max_blur, gamma=cfg.gamma)
        # Decoded once here, shared copy-on-write by the loader workers that fork every epoch.
        dataset.preload()
        sampler = _Sampler(len(dataset), world=world, rank=rank, seed=cfg.seed)
        loader_kw: dict[str, Any] = {}
        if cfg.workers > 0:
            loader_kw = {"num_workers": cfg.workers, "prefetch_factor": 2}
            # One OpenCV thread in the loader workers: the stills engine's warps would otherwise start
            # a thread per core in every worker and take the cores of the training threads. Set
            # here, in this process, before the workers fork: calling it in a forked worker deadlocks
            # on the pool state copied from this process.
            import cv2

            cv2.setNumThreads(1)
        # The loader gets its own generator: creating an iterator (every epoch) would otherwise draw
        # from the global torch RNG, which a resumed run (new iterator mid-epoch) would not repeat.
        # Samples do not use it: their randomness is keyed by (seed, epoch, index) in TrainDataset.
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=sampler,
            drop_last=True,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),
            **loader_kw,
        )

        # ---- models (same seed on every rank; DDP also broadcasts rank 0's parameters)
        torch.manual_seed(cfg.seed)
        # channels_last: oneDNN's convolutions run on NHWC without reordering every layer's input
        # (1.4-1.8x faster on the CPU in bench/precision.py; GPUs' tensor cores want it too).
        memory_format = torch.channels_last
        generator = build_generator(cfg).to(device, memory_format=memory_format)
        critic = build_critic(cfg).to(device, memory_format=memory_format) if cfg.gan else None
        content_loss = create_content_loss(cfg.content, vgg_weights=cfg.vgg_weights).to(device)
        opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=tuple(cfg.betas)) if critic is not None else None
        step = 0
        if ckpt is None and cfg.init:
            from deblurcli.weights import resolve_weights

            load_init(generator, resolve_weights(cfg.init).path)  # preflight made it a local file
        if ckpt is not None:
            generator.load_state_dict(ckpt["generator"])
            opt_g.load_state_dict(ckpt["opt_g"])
            if critic is not None:
                critic.load_state_dict(ckpt["critic"])
                opt_d.load_state_dict(ckpt["opt_d"])  # type: ignore[union-attr]
            step = int(ckpt["step"])
        g_ddp = DDP(generator, device_ids=[device.index] if device.type == "cuda" else None) if distributed else generator
        d_ddp = (DDP(critic, device_ids=[device.index] if device.type == "cuda" else None) if distributed else critic) if critic is not None else None
        # Per-rank streams for dropout, interpolation weights and label noise.
        rng_states = ckpt.get("rng") if ckpt is not None else None
        if rng_states is not None and len(rng_states) == world:
            _set_rng_state(rng_states[rank], device)
        else:
            torch.manual_seed(cfg.seed * 1000 + 1 + rank)
            np.random.seed((cfg.seed * 1000 + 1 + rank) % 2**32)
            random.seed(cfg.seed * 1000 + 1 + rank)

        # ---- rank 0: output folder, metrics, validation set
        metrics_path = out / "metrics.jsonl"
        val_set: list[tuple[str, Any, Any]] = []
        baseline: dict[str, float] = {}
        tb = None
        if rank == 0:
            # checkpoints/ is made by the first save: a run that fails before it leaves none.
            if ckpt is not None:
                _truncate_metrics(metrics_path, step)
            elif metrics_path.exists():
                metrics_path.unlink()
            multiple = getattr(generator, "pad_multiple", 16)
            val_set = [
                (n, torch.from_numpy(b).permute(2, 0, 1)[None], torch.from_numpy(s).permute(2, 0, 1)[None])
                for n, b, s in load_validation(val_items, count=cfg.val_count, crop=cfg.val_crop, max_blur=cfg.max_blur, multiple=multiple)
            ]
            if val_set:
                baseline = {
                    "val_psnr_blurred": float(np.mean([float(psnr(b, s)) for _, b, s in val_set])),
                    "val_ssim_blurred": float(np.mean([float(ssim(b, s)) for _, b, s in val_set])),
                }
            try:
                from torch.utils.tensorboard import SummaryWriter

                tb = SummaryWriter(str(out / "tensorboard"))
            except Exception:  # tensorboard not installed: metrics.jsonl is the record
                tb = None
            report(
                TrainEvent(
                    "start",
                    step,
                    total,
                    metrics=dict(baseline),
                    info={
                        "sources": [s.describe() for s in sources],
                        "train_items": len(train_items),
                        "val_items": len(val_set),
                        "device": str(device),
                        "precision": precision,
                        "threads": torch.get_num_threads() if device.type == "cpu" else None,
                        "world_size": world,
                        "steps_per_epoch": per_epoch,
                        "resumed_from": step if ckpt is not None else None,
                        "generator_params": sum(p.numel() for p in generator.parameters()),
                        "config": cfg.to_json(),
                    },
                )
            )

        def log_row(row: dict[str, Any]) -> None:
            if rank != 0:
                return
            _write_jsonl(metrics_path, row)
            if tb is not None:
                for k, v in row.items():
                    if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                        tb.add_scalar(k, v, row["step"])

        def validate() -> dict[str, float]:
            if not val_set:
                return {}
            generator.eval()
            ps, ss = [], []
            with torch.no_grad(), autocast:
                for _, b, s in val_set:
                    pred = generator(b.to(device)).float().clamp(0, 1).cpu()
                    ps.append(float(psnr(pred, s)))
                    ss.append(float(ssim(pred, s)))
            generator.train()
            return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)), **baseline}

        def param_max_diff() -> float:
            """Largest difference between this rank's parameters and rank 0's (all ranks call it)."""
            if not distributed:
                return 0.0
            nets = [generator] + ([critic] if critic is not None else [])
            flat = torch.cat([p.detach().reshape(-1).float() for n in nets for p in n.parameters()])
            ref = flat.clone()
            dist.broadcast(ref, src=0)
            diff = (flat - ref).abs().max()
            dist.all_reduce(diff, op=dist.ReduceOp.MAX)
            return float(diff)

        def save(step: int) -> Optional[Path]:
            rngs: list[Any] = [None] * world
            state = _rng_state(device)
            if distributed:
                dist.all_gather_object(rngs, state)
            else:
                rngs = [state]
            diff = param_max_diff()
            if rank != 0:
                return None
            path = checkpoint_dir(out) / f"step_{step:07d}.pt"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TrainError(f"cannot write checkpoints in {path.parent}: {e.strerror or e}") from None
            obj = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "step": step,
                "total": total,
                "config": cfg.to_json(),
                "generator": generator.state_dict(),
                "opt_g": opt_g.state_dict(),
                "critic": critic.state_dict() if critic is not None else None,
                "opt_d": opt_d.state_dict() if opt_d is not None else None,
                "rng": [{k: (v.cpu() if hasattr(v, "cpu") else v) for k, v in r.items()} for r in rngs],
                "world_size": world,
            }
            try:
                _atomic_save(obj, path)
            except OSError as e:
                raise TrainError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
            if cfg.keep > 0:
                for old in list_checkpoints(out)[: -cfg.keep]:
                    old.unlink(missing_ok=True)
            row: dict[str, Any] = {"kind": "checkpoint", "step": step, "path": str(path)}
            if distributed:
                row["rank_param_max_diff"] = diff
            log_row(row)
            report(TrainEvent("checkpoint", step, total, info={"path": str(path), "rank_param_max_diff": diff}))
            return path

        # ---- the loop
        generator.train()
        window: dict[str, float] = {}
        window_n = 0
        t_window = time.perf_counter()
        t0 = time.perf_counter()
        start_step = step
        last_saved = step if ckpt is not None else -1
        last_val = -1
        while step < total:
            epoch, offset = divmod(step, per_epoch)
            sampler.set_epoch(epoch, start=offset * cfg.batch_size)
            dataset.set_epoch(epoch)
            for blurred, sharp in _batches(loader):
                blurred = blurred.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                sharp = sharp.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                factor = lr_factor(step, total, cfg.decay_start)
                for opt in (opt_g, opt_d):
                    if opt is not None:
                        for group in opt.param_groups:
                            group["lr"] = cfg.lr * factor
                parts: dict[str, float] = {}
                with autocast:
                    fake = g_ddp(blurred)
                if critic is not None and d_ddp is not None and opt_d is not None:
                    w_sum = gp_sum = d_sum = 0.0
                    swaps = 0
                    for _ in range(cfg.critic_iters):
                        opt_d.zero_grad(set_to_none=True)
                        with autocast:
                            cl = critic_loss(d_ddp, sharp, fake, lambda_gp=cfg.lambda_gp, label_noise=cfg.label_noise)
                        cl.loss.backward()
                        opt_d.step()
                        w_sum += cl.wasserstein
                        gp_sum += cl.penalty
                        d_sum += float(cl.loss.detach())
                        swaps += cl.swapped
                    parts.update(
                        d_loss=d_sum / cfg.critic_iters,
                        wasserstein=w_sum / cfg.critic_iters,
                        gp=gp_sum / cfg.critic_iters,
                        label_swaps=float(swaps),
                    )
                    # Generator step: the critic's plain module, frozen, so that no critic gradient is
                    # computed and DDP's reducer of the critic is not involved.
                    critic.requires_grad_(False)
                    with autocast:
                        adv = generator_adversarial_loss(critic, fake)
                else:
                    adv = torch.zeros((), device=device)
                content = content_loss(fake, sharp)
                g_loss = adv.float() + cfg.content_weight * content
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                # The norm before clipping (inf when clipping is off: nothing is scaled then).
                grad_norm = torch.nn.utils.clip_grad_norm_(generator.parameters(), cfg.clip_grad if cfg.clip_grad > 0 else float("inf"))
                opt_g.step()
                if critic is not None:
                    critic.requires_grad_(True)
                step += 1
                parts.update(
                    g_loss=float(g_loss.detach()), g_adv=float(adv.detach()), g_content=float(content.detach()), g_grad_norm=float(grad_norm)
                )
                for k, v in parts.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1

                done = step >= total
                if step % max(1, cfg.log_every) == 0 or done:
                    names = sorted(window)
                    vec = torch.tensor([window[k] / window_n for k in names], dtype=torch.float64)
                    if distributed:  # the mean over ranks (every rank logs at the same steps)
                        vec = vec.to(device)
                        dist.all_reduce(vec)
                        vec = vec.cpu() / world
                    now = time.perf_counter()
                    row = {"kind": "train", "step": step, "epoch": epoch, "lr": cfg.lr * factor}
                    row.update({k: _finite(float(v)) for k, v in zip(names, vec.tolist())})
                    row["it_s"] = window_n / max(now - t_window, 1e-9)
                    row["elapsed_s"] = now - t0
                    log_row(row)
                    window, window_n, t_window = {}, 0, now
                if rank == 0:
                    elapsed = time.perf_counter() - t0
                    report(
                        TrainEvent(
                            "step",
                            step,
                            total,
                            metrics={**parts, "lr": cfg.lr * factor, "it_s": (step - start_step) / max(elapsed, 1e-9)},
                        )
                    )
                if rank == 0 and (cfg.val_every > 0 and step % cfg.val_every == 0 or done):
                    vm = validate()
                    if vm:
                        log_row({"kind": "val", "step": step, **vm})
                        report(TrainEvent("val", step, total, metrics=vm))
                    last_val = step
                if cfg.save_every > 0 and step % cfg.save_every == 0 or done:
                    save(step)
                    last_saved = step
                if done:
                    break

        if last_saved != step:  # e.g. resumed at or past the requested total
            save(step)
        result: dict[str, Any] = {}
        if rank == 0:
            from deblurcli import __version__
            from deblurcli.weights import save_model

            if last_val != step and val_set:
                vm = validate()
                log_row({"kind": "val", "step": step, **vm})
                report(TrainEvent("val", step, total, metrics=vm))
            recipe = {k: cfg.to_json()[k] for k in RECIPE_FIELDS}
            model_path = _save_final(
                save_model,
                out / "model.safetensors",
                generator,
                metadata={
                    "recipe": json.dumps(recipe, sort_keys=True),
                    "trained_steps": str(step),
                    "training_data": json.dumps([str(Path(d)) for d in cfg.data]),
                    "trainer": f"deblurcli {__version__} deblur train",
                    **({"initialised_from": cfg.init} if cfg.init else {}),
                },
            )
            plot_path = out / "curves.png"
            try:
                plot_metrics(metrics_path, plot_path)
            except Exception:  # a plot must never fail a finished run; the metrics are on disk
                plot_path = None  # type: ignore[assignment]
            if tb is not None:
                tb.close()
            result = {
                "steps": step,
                "model": str(model_path),
                "metrics": str(metrics_path),
                "plot": str(plot_path) if plot_path else None,
                "checkpoint": str(list_checkpoints(out)[-1]),
            }
            report(TrainEvent("done", step, total, info=result))
        if distributed:
            # Leave together: otherwise a rank that finished early tears gloo down while rank 0 is
            # still validating and writing the model. (Once in CI, rank 1 aborted at that point with
            # "terminate called without an active exception"; it did not reproduce in 34 local runs.)
            dist.barrier()
        return result
    finally:
        if distributed and dist.is_initialized():
            # The DDP wrappers' reducers hold the process group and its pending work; free them
            # before the group instead of at interpreter exit.
            g_ddp = d_ddp = None  # noqa: F841
            gc.collect()
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------- the plot


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file (unparseable lines skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_metrics(metrics: str | Path, png: str | Path, *, width: int = 900, panel_height: int = 180) -> Path:
    """Draw the training curves of a metrics.jsonl file to a PNG with Pillow.

    Panels: generator losses (content x weight is in g_loss), critic (Wasserstein estimate, penalty)
    and validation PSNR against the blurred inputs' PSNR. Written atomically.
    """
    from PIL import Image as PILImage
    from PIL import ImageDraw

    rows = read_metrics(metrics)
    train_rows = [r for r in rows if r.get("kind") == "train"]
    val_rows = [r for r in rows if r.get("kind") == "val"]
    panels = [
        ("content loss", [("g_content", train_rows, (44, 160, 44))]),
        ("adversarial: critic's Wasserstein estimate, generator's -D(G(x))", [("wasserstein", train_rows, (214, 39, 40)), ("g_adv", train_rows, (31, 119, 180))]),
        ("gradient penalty", [("gp", train_rows, (148, 103, 189))]),
        ("validation PSNR (dB)", [("val_psnr", val_rows, (31, 119, 180)), ("val_psnr_blurred", val_rows, (127, 127, 127))]),
    ]
    panels = [(t, [s for s in series if any(k in r for r in s[1] for k in [s[0]])]) for t, series in panels]
    panels = [p for p in panels if p[1]]
    img = PILImage.new("RGB", (width, max(1, len(panels)) * panel_height), "white")
    draw = ImageDraw.Draw(img)
    steps_all = [r["step"] for r in rows if "step" in r] or [0, 1]
    x0, x1 = min(steps_all), max(steps_all)
    if x1 == x0:
        x1 = x0 + 1
    ml, mr, mt, mb = 70, 20, 28, 28
    for i, (title, series) in enumerate(panels):
        top = i * panel_height
        values = [float(r[k]) for k, rs, _ in series for r in rs if k in r and r[k] is not None and math.isfinite(float(r[k]))]
        if not values:
            continue
        lo, hi = min(values), max(values)
        if hi == lo:
            hi, lo = hi + 1, lo - 1
        pl, pr, pt, pb = ml, width - mr, top + mt, top + panel_height - mb

        def xy(s: float, v: float) -> tuple[float, float]:
            return pl + (s - x0) / (x1 - x0) * (pr - pl), pb - (v - lo) / (hi - lo) * (pb - pt)

        draw.rectangle([pl, pt, pr, pb], outline=(160, 160, 160))
        draw.text((pl, top + 8), title, fill="black")
        draw.text((4, pt - 4), f"{hi:.4g}", fill="black")
        draw.text((4, pb - 8), f"{lo:.4g}", fill="black")
        draw.text((pl, pb + 6), f"step {x0}", fill="black")
        draw.text((pr - 70, pb + 6), f"step {x1}", fill="black")
        lx = pl + 8 + 6 * len(title)
        for key, rs, color in series:
            pts = [xy(r["step"], float(r[key])) for r in rs if key in r and r[key] is not None and math.isfinite(float(r[key]))]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for p in pts if len(pts) <= 50 else []:
                draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=color)
            draw.line([lx, top + 14, lx + 20, top + 14], fill=color, width=3)
            draw.text((lx + 24, top + 8), key, fill="black")
            lx += 40 + 7 * len(key)
    png = Path(png)
    tmp = png.with_name(f".{png.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, png)
    return png
