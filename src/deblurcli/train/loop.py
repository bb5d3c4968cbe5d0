"""The training loop: one step (:func:`train_step`), the validation (:func:`validate`), and
:func:`train`, which sets a run up (data, networks, rank 0's records) and drives the steps.

One *step* is one generator update. Each step takes one batch and, as DeblurGAN does, first updates
the critic ``critic_iters`` times on that batch (generated images detached), then the generator once
with ``-D(G(x)) + content_weight * content(G(x), y)``. The learning rate of both optimisers is
constant for the first ``decay_start`` fraction of the steps, then falls linearly towards 0 at the
last step (:func:`lr_factor`).

Imports the other modules of :mod:`deblurcli.train`; none of them imports this one.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from deblurcli.errors import DatasetError
from deblurcli.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    _atomic_save,
    _rng_state,
    _save_final,
    _set_rng_state,
    apply_recipe,
    build_critic,
    build_generator,
    checkpoint_dir,
    list_checkpoints,
    load_checkpoint,
    load_init,
)
from deblurcli.train.config import RECIPE_FIELDS, ProgressFn, TrainConfig, TrainError, TrainEvent
from deblurcli.train.curves import plot_metrics
from deblurcli.train.distributed import _dist_env, _Sampler, param_max_diff, resolve_device, resolve_precision


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


def compute_setup(cfg: TrainConfig, local_rank: int = 0, world: int = 1) -> tuple[Any, str, Any]:
    """This process's (device, precision, autocast context) for ``cfg``; on the CPU it also sets
    torch's compute threads. What :func:`train` runs its steps with (and ``bench/loader.py`` too).

    Raises:
        TrainError: no such device, or bf16 asked of a GPU without it.
    """
    import torch

    device = resolve_device(cfg, local_rank, world)
    if device.type == "cpu":
        from deblurcli.hardware import resolve_threads

        torch.set_num_threads(resolve_threads(cfg.threads))
    precision = resolve_precision(cfg, device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainError("--precision bf16: this GPU does not support bf16")
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    return device, precision, autocast


def train(cfg: TrainConfig, on_progress: Optional[ProgressFn] = None) -> dict[str, Any]:
    """Train (or resume) as configured; returns a summary dict (rank 0; others return {}).

    Raises:
        DeblurError subclasses for bad data/options; anything else is a bug.
    """
    import torch.distributed as dist

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

    device, precision, autocast = compute_setup(cfg, local_rank, world)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)

    run = _Run(cfg, ckpt, report, rank=rank, world=world, device=device, precision=precision, autocast=autocast)
    try:
        data = _make_data(cfg, rank=rank, world=world, device=device)
        run.total = data.total
        run.nets, step = _make_networks(cfg, ckpt, rank=rank, world=world, device=device)
        if rank == 0:
            run.start(data, step)
        step, last_saved, last_val = run.loop(data, step)
        if last_saved != step:  # e.g. resumed at or past the requested total
            run.save(step)
        result: dict[str, Any] = run.finish(step, last_val) if rank == 0 else {}
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
            if run.nets is not None:
                run.nets.g_ddp = run.nets.d_ddp = None
            gc.collect()
            dist.destroy_process_group()


@dataclass
class _Data:
    """This process's training data: the sources, their items, the sampler and the loader."""

    sources: list[Any]
    train_items: list[Any]
    val_items: list[Any]
    per_epoch: int
    total: int
    dataset: Any
    sampler: _Sampler
    loader: Any


def _make_data(cfg: TrainConfig, *, rank: int, world: int, device: Any) -> _Data:
    """Open the sources, hold out the validation items, and build the sampler and loader."""
    import torch
    from torch.utils.data import DataLoader

    from deblurcli.data import TrainDataset, collate_drawn, open_sources

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
    # On a GPU the step outruns what the loader's cores can render (bench/loader.py): the workers
    # then only draw the samples, and this process warps them on the device.
    on_device = cfg.blur_on == "device" or (cfg.blur_on == "auto" and device.type == "cuda")
    dataset = TrainDataset(train_items, crop=cfg.crop, seed=cfg.seed, max_blur=cfg.max_blur, gamma=cfg.gamma,
                           gamma_set=cfg.gamma_set, highlights=cfg.highlights, plans=on_device)
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
        pin_memory=device.type == "cuda" and not on_device,
        collate_fn=collate_drawn if on_device else None,
        generator=torch.Generator().manual_seed(cfg.seed),
        **loader_kw,
    )
    return _Data(sources, train_items, val_items, per_epoch, total, dataset, sampler, loader)


@dataclass
class _Nets:
    """The networks, their optimisers and the content loss. ``g_ddp``/``d_ddp`` are the DDP wrappers
    of several processes (the networks themselves in one)."""

    generator: Any
    critic: Any
    content_loss: Any
    opt_g: Any
    opt_d: Any
    g_ddp: Any
    d_ddp: Any
    memory_format: Any


def _make_networks(cfg: TrainConfig, ckpt: Optional[dict[str, Any]], *, rank: int, world: int, device: Any) -> tuple[_Nets, int]:
    """Build (or restore from ``ckpt``) the networks and optimisers, and seed this rank's random
    streams; returns them and the step to start from."""
    import numpy as np
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    from deblurcli.losses import create_content_loss

    distributed = world > 1
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
    return _Nets(generator, critic, content_loss, opt_g, opt_d, g_ddp, d_ddp, memory_format), step


def train_step(nets: _Nets, cfg: TrainConfig, blurred: Any, sharp: Any, *, factor: float, autocast: Any, device: Any) -> dict[str, float]:
    """One step on one batch: both learning rates at ``factor``, ``critic_iters`` critic updates
    (generated images detached), then one generator update. Returns the step's losses."""
    import torch

    from deblurcli.losses import critic_loss, generator_adversarial_loss

    critic, opt_g, opt_d = nets.critic, nets.opt_g, nets.opt_d
    for opt in (opt_g, opt_d):
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
    parts: dict[str, float] = {}
    with autocast:
        fake = nets.g_ddp(blurred)
    if critic is not None and nets.d_ddp is not None and opt_d is not None:
        w_sum = gp_sum = d_sum = 0.0
        swaps = 0
        for _ in range(cfg.critic_iters):
            opt_d.zero_grad(set_to_none=True)
            with autocast:
                cl = critic_loss(nets.d_ddp, sharp, fake, lambda_gp=cfg.lambda_gp, label_noise=cfg.label_noise)
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
    content = nets.content_loss(fake, sharp)
    g_loss = adv.float() + cfg.content_weight * content
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    # The norm before clipping (inf when clipping is off: nothing is scaled then).
    grad_norm = torch.nn.utils.clip_grad_norm_(nets.generator.parameters(), cfg.clip_grad if cfg.clip_grad > 0 else float("inf"))
    opt_g.step()
    if critic is not None:
        critic.requires_grad_(True)
    parts.update(
        g_loss=float(g_loss.detach()), g_adv=float(adv.detach()), g_content=float(content.detach()), g_grad_norm=float(grad_norm)
    )
    return parts


ValItem = tuple[str, Any, Any, str]  # (name, blurred (1,3,H,W), sharp, kind); see data.load_validation


def _kind_scores(preds: list[Any], val_set: list[ValItem], prefix: str) -> tuple[list[float], dict[str, float]]:
    """The PSNR of each of ``preds`` against its target, and per kind of validation item (``g1.0``,
    ``g2.2``, ``pairs``) the mean PSNR and mean level shift (8-bit levels, output minus target), as
    ``{prefix}psnr_<kind>`` and ``{prefix}shift_<kind>``."""
    import numpy as np

    from deblurcli.metrics import psnr

    scores = [float(psnr(p, s)) for p, (_, _, s, _) in zip(preds, val_set)]
    shifts = [255.0 * float((p - s).mean()) for p, (_, _, s, _) in zip(preds, val_set)]
    out: dict[str, float] = {}
    for kind in sorted({k for *_, k in val_set}):
        mine = [i for i, (*_, k) in enumerate(val_set) if k == kind]
        out[f"{prefix}psnr_{kind}"] = float(np.mean([scores[i] for i in mine]))
        out[f"{prefix}shift_{kind}"] = float(np.mean([shifts[i] for i in mine]))
    return scores, out


def validation_baseline(val_set: list[ValItem]) -> dict[str, float]:
    """The blurred inputs' scores on the validation set: ``val_psnr_blurred``, ``val_ssim_blurred``
    and per kind ``val_blurred_psnr_<kind>``, ``val_blurred_shift_<kind>``."""
    import numpy as np

    from deblurcli.metrics import ssim

    scores, per_kind = _kind_scores([b for _, b, _, _ in val_set], val_set, "val_blurred_")
    return {
        "val_psnr_blurred": float(np.mean(scores)),
        "val_ssim_blurred": float(np.mean([float(ssim(b, s)) for _, b, s, _ in val_set])),
        **per_kind,
    }


def validate(generator: Any, val_set: list[ValItem], baseline: dict[str, float], *, device: Any, autocast: Any) -> dict[str, float]:
    """Mean PSNR and SSIM of the generator's outputs on the validation set (with the blurred
    inputs' ``baseline`` beside them), and per kind of item the PSNR gain over the blurred inputs
    (``val_gain_<kind>``, dB) and the mean level shift against the targets (``val_shift_<kind>``,
    8-bit levels); ``{}`` without a validation set."""
    import numpy as np
    import torch

    from deblurcli.metrics import ssim

    if not val_set:
        return {}
    generator.eval()
    with torch.no_grad(), autocast:
        preds = [generator(b.to(device)).float().clamp(0, 1).cpu() for _, b, _, _ in val_set]
    generator.train()
    scores, per_kind = _kind_scores(preds, val_set, "val_")
    out = {
        "val_psnr": float(np.mean(scores)),
        "val_ssim": float(np.mean([float(ssim(p, s)) for p, (_, _, s, _) in zip(preds, val_set)])),
        "val_psnr_blurred": baseline["val_psnr_blurred"],
        "val_ssim_blurred": baseline["val_ssim_blurred"],
    }
    for kind in sorted({k for *_, k in val_set}):
        out[f"val_gain_{kind}"] = per_kind[f"val_psnr_{kind}"] - baseline[f"val_blurred_psnr_{kind}"]
        out[f"val_shift_{kind}"] = per_kind[f"val_shift_{kind}"]
    return out


class _Run:
    """One process's run: what its steps share, and rank 0's records (metrics.jsonl, TensorBoard,
    checkpoints, the validation set, the final model)."""

    def __init__(self, cfg: TrainConfig, ckpt: Optional[dict[str, Any]], report: ProgressFn, *, rank: int, world: int,
                 device: Any, precision: str, autocast: Any) -> None:
        self.cfg, self.ckpt, self.report = cfg, ckpt, report
        self.rank, self.world, self.distributed = rank, world, world > 1
        self.device, self.precision, self.autocast = device, precision, autocast
        self.out = Path(cfg.out)
        self.metrics_path = self.out / "metrics.jsonl"
        self.nets: Optional[_Nets] = None
        self.total = 0
        self.val_set: list[ValItem] = []
        self.baseline: dict[str, float] = {}
        self.tb: Any = None

    def start(self, data: _Data, step: int) -> None:
        """Rank 0: the metrics file, the validation set and its baseline, TensorBoard, the start event."""
        import torch

        from deblurcli.data import load_validation

        assert self.nets is not None
        # checkpoints/ is made by the first save: a run that fails before it leaves none.
        if self.ckpt is not None:
            _truncate_metrics(self.metrics_path, step)
        elif self.metrics_path.exists():
            self.metrics_path.unlink()
        multiple = getattr(self.nets.generator, "pad_multiple", 16)
        # Validated on each gamma the run trains on (a range: both ends), scored per kind.
        gammas = self.cfg.gamma_set or tuple(sorted({float(self.cfg.gamma[0]), float(self.cfg.gamma[1])}))
        self.val_set = [
            (n, torch.from_numpy(b).permute(2, 0, 1)[None], torch.from_numpy(s).permute(2, 0, 1)[None], kind)
            for n, b, s, kind in load_validation(data.val_items, count=self.cfg.val_count, crop=self.cfg.val_crop,
                                                 max_blur=self.cfg.max_blur, multiple=multiple, gammas=gammas)
        ]
        if self.val_set:
            self.baseline = validation_baseline(self.val_set)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.out / "tensorboard"))
        except Exception:  # tensorboard not installed: metrics.jsonl is the record
            self.tb = None
        self.report(
            TrainEvent(
                "start",
                step,
                data.total,
                metrics=dict(self.baseline),
                info={
                    "sources": [s.describe() for s in data.sources],
                    "train_items": len(data.train_items),
                    "val_items": len(self.val_set),
                    "device": str(self.device),
                    "precision": self.precision,
                    "blur_on": "device" if data.dataset.plans else "loader",
                    "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
                    "world_size": self.world,
                    "steps_per_epoch": data.per_epoch,
                    "resumed_from": step if self.ckpt is not None else None,
                    "generator_params": sum(p.numel() for p in self.nets.generator.parameters()),
                    "config": self.cfg.to_json(),
                },
            )
        )

    def log_row(self, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        _write_jsonl(self.metrics_path, row)
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, row["step"])

    def validate(self) -> dict[str, float]:
        assert self.nets is not None
        return validate(self.nets.generator, self.val_set, self.baseline, device=self.device, autocast=self.autocast)

    def save(self, step: int) -> Optional[Path]:
        """Write a checkpoint (rank 0; every rank takes part: RNG states and the parameter check)."""
        import torch.distributed as dist

        cfg, nets = self.cfg, self.nets
        assert nets is not None
        rngs: list[Any] = [None] * self.world
        state = _rng_state(self.device)
        if self.distributed:
            dist.all_gather_object(rngs, state)
        else:
            rngs = [state]
        diff = param_max_diff([nets.generator] + ([nets.critic] if nets.critic is not None else []), self.distributed)
        if self.rank != 0:
            return None
        path = checkpoint_dir(self.out) / f"step_{step:07d}.pt"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainError(f"cannot write checkpoints in {path.parent}: {e.strerror or e}") from None
        obj = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": step,
            "total": self.total,
            "config": cfg.to_json(),
            "generator": nets.generator.state_dict(),
            "opt_g": nets.opt_g.state_dict(),
            "critic": nets.critic.state_dict() if nets.critic is not None else None,
            "opt_d": nets.opt_d.state_dict() if nets.opt_d is not None else None,
            "rng": [{k: (v.cpu() if hasattr(v, "cpu") else v) for k, v in r.items()} for r in rngs],
            "world_size": self.world,
        }
        try:
            _atomic_save(obj, path)
        except OSError as e:
            raise TrainError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
        if cfg.keep > 0:
            for old in list_checkpoints(self.out)[: -cfg.keep]:
                old.unlink(missing_ok=True)
        row: dict[str, Any] = {"kind": "checkpoint", "step": step, "path": str(path)}
        if self.distributed:
            row["rank_param_max_diff"] = diff
        self.log_row(row)
        self.report(TrainEvent("checkpoint", step, self.total, info={"path": str(path), "rank_param_max_diff": diff}))
        return path

    def loop(self, data: _Data, step: int) -> tuple[int, int, int]:
        """Steps until ``total``, with metrics rows, validations and checkpoints at their intervals;
        returns (step, last saved step, last validated step)."""
        import torch
        import torch.distributed as dist

        from deblurcli.data import render_batch

        cfg, nets, total, device, distributed, world = self.cfg, self.nets, self.total, self.device, self.distributed, self.world
        assert nets is not None
        nets.generator.train()
        window: dict[str, float] = {}
        window_n = 0
        t_window = time.perf_counter()
        t0 = time.perf_counter()
        start_step = step
        last_saved = step if self.ckpt is not None else -1
        last_val = -1
        while step < total:
            epoch, offset = divmod(step, data.per_epoch)
            data.sampler.set_epoch(epoch, start=offset * cfg.batch_size)
            data.dataset.set_epoch(epoch)
            for batch in _batches(data.loader):
                blurred, sharp = render_batch(batch, device) if data.dataset.plans else batch
                blurred = blurred.to(device, non_blocking=True).contiguous(memory_format=nets.memory_format)
                sharp = sharp.to(device, non_blocking=True).contiguous(memory_format=nets.memory_format)
                factor = lr_factor(step, total, cfg.decay_start)
                parts = train_step(nets, cfg, blurred, sharp, factor=factor, autocast=self.autocast, device=device)
                step += 1
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
                    self.log_row(row)
                    window, window_n, t_window = {}, 0, now
                if self.rank == 0:
                    elapsed = time.perf_counter() - t0
                    self.report(
                        TrainEvent(
                            "step",
                            step,
                            total,
                            metrics={**parts, "lr": cfg.lr * factor, "it_s": (step - start_step) / max(elapsed, 1e-9)},
                        )
                    )
                if self.rank == 0 and (cfg.val_every > 0 and step % cfg.val_every == 0 or done):
                    vm = self.validate()
                    if vm:
                        self.log_row({"kind": "val", "step": step, **vm})
                        self.report(TrainEvent("val", step, total, metrics=vm))
                    last_val = step
                if cfg.save_every > 0 and step % cfg.save_every == 0 or done:
                    self.save(step)
                    last_saved = step
                if done:
                    break
        return step, last_saved, last_val

    def finish(self, step: int, last_val: int) -> dict[str, Any]:
        """Rank 0: the last validation, model.safetensors, curves.png, and the run's summary."""
        cfg = self.cfg
        from deblurcli import __version__
        from deblurcli.weights import save_model

        if last_val != step and self.val_set:
            vm = self.validate()
            self.log_row({"kind": "val", "step": step, **vm})
            self.report(TrainEvent("val", step, self.total, metrics=vm))
        recipe = {k: cfg.to_json()[k] for k in RECIPE_FIELDS}
        model_path = _save_final(
            save_model,
            self.out / "model.safetensors",
            self.nets.generator,
            metadata={
                "recipe": json.dumps(recipe, sort_keys=True),
                "trained_steps": str(step),
                "training_data": json.dumps([str(Path(d)) for d in cfg.data]),
                "trainer": f"deblurcli {__version__} deblur train",
                **({"initialised_from": cfg.init} if cfg.init else {}),
            },
        )
        plot_path = self.out / "curves.png"
        try:
            plot_metrics(self.metrics_path, plot_path)
        except Exception:  # a plot must never fail a finished run; the metrics are on disk
            plot_path = None  # type: ignore[assignment]
        if self.tb is not None:
            self.tb.close()
        result = {
            "steps": step,
            "model": str(model_path),
            "metrics": str(self.metrics_path),
            "plot": str(plot_path) if plot_path else None,
            "checkpoint": str(list_checkpoints(self.out)[-1]),
        }
        self.report(TrainEvent("done", step, self.total, info=result))
        return result
