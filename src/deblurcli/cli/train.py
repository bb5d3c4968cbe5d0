"""``deblur train`` (and the hidden ``_train-worker`` that torch's launcher starts): train the
deblurring GAN, rendering rank 0's progress."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli import MAX_SEED
from deblurcli.cli.app import app
from deblurcli.cli.exits import _fail, _setup_exit_code
from deblurcli.cli.options import JsonOpt, ThreadsOpt
from deblurcli.errors import DeblurError


class ContentChoice(str, enum.Enum):
    perceptual = "perceptual"
    l1fft = "l1fft"


class ArchChoice(str, enum.Enum):
    c2f = "c2f"
    deblurgan = "deblurgan"
    nafnet = "nafnet"


class PrecisionChoice(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


def _parse_hparams(values: list[str] | None, option: str) -> dict[str, object]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (8, 0.5, true), else as a string."""
    import json

    parsed: dict[str, object] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


def _by_kind(metrics: dict, prefix: str, fmt: str) -> str:
    """``"; g1.0 +0.12 dB, g2.2 ..."`` for the per-kind validation metrics named ``prefix<kind>``."""
    parts = [f"{k[len(prefix):]} {fmt.format(v)}" for k, v in sorted(metrics.items()) if k.startswith(prefix)]
    return "; " + ", ".join(parts) if parts else ""


def _render_training(cfg: "object", json_out: bool) -> dict:
    """Run deblurcli.train.train(cfg) in this process, rendering rank 0's progress (stderr) or JSON."""
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from deblurcli.console import emit_json, err
    from deblurcli.train import TrainEvent, train

    if int(os.environ.get("RANK", 0)) != 0:
        return train(cfg)  # type: ignore[arg-type]

    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
        console=err,
        disable=json_out,
    )
    task = progress.add_task("train", total=None, rate="", losses="")

    def on_progress(e: TrainEvent) -> None:
        if e.kind == "start":
            info = e.info
            progress.update(task, total=e.total, completed=e.step)
            if json_out:
                emit_json({"kind": "start", "step": e.step, "total": e.total, **{k: v for k, v in info.items() if k != "config"}, **e.metrics})
                return
            for line in info["sources"]:
                err.print(f"data: {line}")
            where = f"{info['world_size']} processes" if info["world_size"] > 1 else "1 process"
            err.print(
                f"model: {cfg.arch} ({info['generator_params']:,} parameters), device {info['device']} "  # type: ignore[attr-defined]
                f"{info['precision']}, {where}"
                + (f" x {info['threads']} thread{'s' if info['threads'] != 1 else ''}" if info.get("threads") else "")
                + f", {info['steps_per_epoch']} steps/epoch"
                + (", synthetic blur rendered on the device" if info.get("blur_on") == "device" else "")
            )
            if info["resumed_from"] is not None:
                err.print(f"resumed from step {info['resumed_from']}")
            if e.metrics:
                err.print(
                    f"validation: {info['val_items']} images; blurred inputs PSNR {e.metrics['val_psnr_blurred']:.2f} dB, "
                    f"SSIM {e.metrics['val_ssim_blurred']:.4f}" + _by_kind(e.metrics, "val_blurred_psnr_", "{:.2f} dB")
                )
        elif e.kind == "step":
            m = e.metrics
            if json_out:
                # The `train` rows README promises, at metrics.jsonl's pace (--log-every).
                if e.step % max(1, cfg.log_every) == 0 or e.step >= e.total:  # type: ignore[attr-defined]
                    emit_json({"kind": "train", "step": e.step, **m})
                return
            losses = f"G {m['g_loss']:.4g}"
            if "d_loss" in m:
                losses += f"  D {m['d_loss']:.4g}  W {m['wasserstein']:.3g}  GP {m['gp']:.3g}"
            progress.update(task, completed=e.step, rate=f"{m['it_s']:.2f} it/s", losses=losses)
        elif e.kind == "val":
            m = e.metrics
            if json_out:
                emit_json({"kind": "val", "step": e.step, **m})
            else:
                progress.console.print(
                    f"step {e.step}: val PSNR {m['val_psnr']:.2f} dB (blurred {m['val_psnr_blurred']:.2f}), "
                    f"SSIM {m['val_ssim']:.4f} (blurred {m['val_ssim_blurred']:.4f})"
                    + _by_kind(m, "val_gain_", "{:+.2f} dB") + _by_kind(m, "val_shift_", "{:+.2f} levels")
                )
        elif e.kind == "checkpoint":
            if json_out:
                emit_json({"kind": "checkpoint", "step": e.step, **e.info})
        elif e.kind == "done" and json_out:
            emit_json({"kind": "done", **e.info})

    with progress:
        result = train(cfg, on_progress)  # type: ignore[arg-type]
    if not json_out:
        from deblurcli.console import out

        out.print(f"trained {result['steps']} steps")
        out.print(f"model:       {result['model']}")
        out.print(f"checkpoint:  {result['checkpoint']}")
        out.print(f"metrics:     {result['metrics']}")
        if result.get("plot"):
            out.print(f"curves:      {result['plot']}")
    return result


def _parse_gamma(text: str) -> tuple[tuple[float, float], tuple[float, ...]]:
    """``"2.2"`` -> fixed; ``"1.0-2.2"`` -> a range; ``"1.0,2.2"`` -> a set of values.

    Returns ((low, high), set) for :class:`TrainConfig`'s ``gamma`` and ``gamma_set`` (the set is
    empty unless values were listed). Anything else is a usage error (exit 2).
    """
    usage = f"--gamma {text!r}: give one positive number (2.2), a range LOW-HIGH (1.0-2.2) or values G,G,... (1.0,2.2)"
    listed = "," in text
    parts = text.split(",") if listed else text.split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise _fail(usage, 2) from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise _fail(usage, 2)
    if listed:
        return (min(values), max(values)), tuple(values)
    if len(values) not in (1, 2) or values[0] > values[-1]:
        raise _fail(usage, 2)
    return (values[0], values[-1]), ()


DataOpt = Annotated[
    list[Path],
    typer.Option(
        "--data",
        help="Training data folder (repeat for several): a make-pairs folder (blurred/+targets/), "
        "blur/+sharp/, a GoPro root, or a folder of sharp photos (blurred on the fly).",
        show_default=False,
    ),
]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Output folder: checkpoints/, metrics.jsonl, model.safetensors, curves.png.", show_default=False)]
HparamOpt = Annotated[
    Optional[list[str]],
    typer.Option("--hparam", help="Generator hyperparameter KEY=VALUE (repeat), e.g. ngf=32, n_blocks=6."),
]
CriticHparamOpt = Annotated[
    Optional[list[str]], typer.Option("--critic-hparam", help="PatchGAN critic hyperparameter KEY=VALUE (ndf, n_layers).")
]
ContentOpt = Annotated[
    ContentChoice,
    typer.Option(help="Content loss: 'perceptual' = MSE of VGG19 conv3_3 features (needs ImageNet VGG19 weights); 'l1fft' = L1 + 0.1 x L1 of the FFT."),
]
VggWeightsOpt = Annotated[
    Optional[Path], typer.Option(help="torchvision VGG19 state_dict (vgg19-dcbb9e9d.pth); default: the torch hub cache.")
]
LabelNoiseOpt = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help="Per-sample probability that the critic's real and fake roles are swapped in a critic update."),
]
DecayStartOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Fraction of the steps at constant lr; then linear decay towards 0.")
]
ClipGradOpt = Annotated[
    float, typer.Option(min=0.0, help="Clip the generator's gradient to this L2 norm per step (0 = off); the norm is logged as g_grad_norm.")
]
TrainPrecisionOpt = Annotated[PrecisionChoice, typer.Option(help="auto = bf16 autocast on CUDA GPUs that support it and on CPUs with AMX or AVX512-BF16 (2-4x faster there), else fp32.")]
ValFractionOpt = Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of each source held out for validation (GoPro: its test/ split).")]
TrainGammaOpt = Annotated[
    str,
    typer.Option(
        metavar="G|LOW-HIGH|G,G,...",
        help="Camera-response gamma of that synthetic blur (frames averaged in linear light x^G): one value "
        "(2.2, the paper's), a range drawn per crop (1.0-2.2), or values drawn per crop, each equally often "
        "(1.0,2.2: blur averaged in stored values as in GoPro's blur/ and Levin's set, and in linear light). "
        "Validation always uses 2.2.",
    ),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in OUT/checkpoints (model, optimisers, step, RNG; the recipe comes from the checkpoint).")]
InitOpt = Annotated[Optional[str], typer.Option("--init", metavar="MODEL", help="Fine-tune: start the generator from these weights (a .safetensors file such as another run's OUT/model.safetensors, a model name, or hf://...) with this run's recipe; same --arch/--hparam/Laplacian setting as the run that made it.")]


@app.command()
def train(
    data: DataOpt,
    out_dir: OutDirOpt,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Generator updates in total (each after --critic-iters critic updates).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over the training items (instead of --steps).")] = None,
    crop: Annotated[int, typer.Option(min=16, help="Random crop side in pixels (with random flips).")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per process per step (DeblurGAN: 1).")] = 1,
    arch: Annotated[ArchChoice, typer.Option(help="Generator architecture.")] = ArchChoice.deblurgan,
    hparam: HparamOpt = None,
    critic_hparam: CriticHparamOpt = None,
    content: ContentOpt = ContentChoice.perceptual,
    vgg_weights: VggWeightsOpt = None,
    content_weight: Annotated[float, typer.Option(min=0.0, help="λ of the content loss.")] = 100.0,
    no_laplacian: Annotated[bool, typer.Option("--no-laplacian", help="Ablation: no Laplacian 4th input channel.")] = False,
    no_gan: Annotated[bool, typer.Option("--no-gan", help="Content loss only: no critic, no adversarial term.")] = False,
    critic_iters: Annotated[int, typer.Option(min=1, help="Critic updates per generator update (on the same batch).")] = 5,
    label_noise: LabelNoiseOpt = 0.1,
    lambda_gp: Annotated[float, typer.Option(min=0.0, help="λ of the WGAN-GP gradient penalty.")] = 10.0,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of both networks (betas 0.5, 0.999).")] = 1e-4,
    decay_start: DecayStartOpt = 0.5,
    clip_grad: ClipGradOpt = 0.0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: TrainPrecisionOpt = PrecisionChoice.auto,
    threads: ThreadsOpt = 0,
    gpus: Annotated[Optional[int], typer.Option(min=1, help="Train on N GPUs of this machine (DDP over NCCL, via torch.distributed.run).")] = None,
    procs: Annotated[Optional[int], typer.Option(min=1, help="Processes per node on --device (e.g. --device cpu --procs 2 uses gloo).")] = None,
    nnodes: Annotated[int, typer.Option(min=1, help="Nodes (run the same command on each, with its --node-rank).")] = 1,
    node_rank: Annotated[int, typer.Option(min=0, help="This node's rank (multi-node).")] = 0,
    rdzv_endpoint: Annotated[Optional[str], typer.Option(help="HOST:PORT of node 0 (multi-node).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes per training process.")] = 2,
    blur_on: Annotated[str, typer.Option(help="Where the synthetic blur of photo folders is rendered: loader (OpenCV, in the loader workers), device (the workers draw the samples, the training process warps them on its device: for GPUs, which a loader core cannot keep fed) or auto (device on CUDA, else loader).")] = "auto",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of initialisation, data order, crops and noise.")] = 0,
    save_every: Annotated[int, typer.Option(min=0, help="Checkpoint every N steps (and always at the end).")] = 1000,
    val_every: Annotated[int, typer.Option(min=0, help="Validate every N steps (and always at the end).")] = 500,
    log_every: Annotated[int, typer.Option(min=1, help="Write averaged losses to metrics.jsonl every N steps.")] = 10,
    val_count: Annotated[int, typer.Option(min=0, help="Validation images (0 = every held-out one).")] = 16,
    val_crop: Annotated[int, typer.Option(min=0, help="Center crop of validation images (0 = whole image).")] = 256,
    val_fraction: ValFractionOpt = 0.05,
    max_blur: Annotated[float, typer.Option(min=1.0, help="Longest synthetic blur streak (px at crop size) for folders of sharp photos.")] = 60.0,
    gamma: TrainGammaOpt = "2.2",
    highlights: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of synthetic crops blurred in linear light whose near-white pixels (lamps, glare) are made 2-20x brighter than white before the blur, then clipped as a sensor clips: long saturated streaks, as real exposures make (0 = none).")] = 0.0,
    keep: Annotated[int, typer.Option(min=0, help="Checkpoints to keep (0 = all).")] = 3,
    resume: ResumeOpt = False,
    init: InitOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the deblurring GAN: WGAN-GP + λ x content loss, Laplacian-conditioned generator, label noise.

    Writes OUT/checkpoints/step_N.pt (atomic; --resume continues exactly), OUT/metrics.jsonl,
    OUT/model.safetensors (for `deblur fix --model`) and OUT/curves.png. Several processes (--gpus,
    --procs, --nnodes) are started through torch.distributed.run; only rank 0 logs and saves.
    """
    import os

    from deblurcli.train import TrainConfig, check_gpus, preflight

    if gpus is not None:
        if device not in ("auto", "cuda"):
            raise _fail(f"--gpus needs CUDA, but --device is {device}", 2)
        device = "cuda"
    nproc = gpus or procs or 1
    gamma_range, gamma_set = _parse_gamma(gamma)
    cfg = TrainConfig(
        data=[str(d) for d in data],
        out=str(out_dir),
        steps=steps,
        epochs=epochs,
        crop=crop,
        batch_size=batch_size,
        arch=arch.value,
        hparams=_parse_hparams(hparam, "--hparam"),
        critic_hparams=_parse_hparams(critic_hparam, "--critic-hparam"),
        laplacian=not no_laplacian,
        gan=not no_gan,
        content=content.value,
        vgg_weights=str(vgg_weights) if vgg_weights else None,
        content_weight=content_weight,
        lambda_gp=lambda_gp,
        critic_iters=critic_iters,
        label_noise=label_noise,
        lr=lr,
        decay_start=decay_start,
        clip_grad=clip_grad,
        device=device,
        precision=precision.value,
        threads=threads,
        workers=workers,
        blur_on=blur_on,
        seed=seed,
        save_every=save_every,
        val_every=val_every,
        log_every=log_every,
        val_count=val_count,
        val_crop=val_crop,
        val_fraction=val_fraction,
        max_blur=max_blur,
        gamma=gamma_range,
        gamma_set=gamma_set,
        highlights=highlights,
        keep=keep,
        resume=resume,
        init=init,
    )
    if steps is not None and epochs is not None:
        raise _fail("give --steps or --epochs, not both", 2)
    try:
        if gpus is not None:
            check_gpus(gpus)
        if not resume:
            cfg.validate()
        preflight(cfg)
    except DeblurError as e:  # nothing started: bad options, data, --out, --init or VGG weights
        raise _fail(str(e), _setup_exit_code(e)) from None

    inside_launcher = "LOCAL_RANK" in os.environ
    if (nproc > 1 or nnodes > 1) and not inside_launcher:
        _launch(cfg, json_out, nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
        return
    try:
        _render_training(cfg, json_out)
    except DeblurError as e:
        raise _fail(str(e), 1) from None


@app.command("_train-worker", hidden=True)
def _train_worker(
    config: Annotated[Path, typer.Argument(help="TrainConfig JSON written by `deblur train`.")],
    json_out: JsonOpt = False,
) -> None:
    """One training process started by torch.distributed.run (internal)."""
    import json

    from deblurcli.train import TrainConfig

    cfg = TrainConfig.from_json(json.loads(config.read_text()))
    try:
        _render_training(cfg, json_out)
    except DeblurError as e:
        raise _fail(str(e), 1) from None


def _launch(cfg, json_out: bool, *, nproc: int, nnodes: int, node_rank: int, rdzv_endpoint: Optional[str]) -> None:  # type: ignore[no-untyped-def]
    """Start the training processes through torch.distributed.run (in this process); each runs
    ``_train-worker`` on the config, written to a temporary JSON file."""
    import json
    import os
    import tempfile

    from deblurcli.console import error_line
    from deblurcli.train import TrainError, launcher_command

    fd, cfg_path = tempfile.mkstemp(prefix="deblur-train-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(cfg.to_json(), f)
    try:
        worker = ["-m", "deblurcli", "_train-worker", cfg_path] + (["--json"] if json_out else [])
        cmd = launcher_command(worker, nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
        # torch's launcher runs in this process (its documented main(), what `torchrun` calls):
        # same elastic agent, one Python start-up fewer. It starts the workers as subprocesses.
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.run import main as torchrun_main

        try:
            torchrun_main(cmd[3:])
        except ChildFailedError:
            error_line("training processes failed (see the messages above)")
            raise typer.Exit(1) from None
    except TrainError as e:
        raise _fail(str(e), 2) from None
    finally:
        os.unlink(cfg_path)
