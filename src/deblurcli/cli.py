"""The ``deblur`` command: a thin typer layer over the library.

Each command parses options, calls library functions, and renders with rich. Library modules that
need torch are imported inside the command functions, so ``deblur --help`` stays fast and torch-free.
Exit codes: 0 all done, 1 some items failed (the others were processed), 2 usage error.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from deblurcli import __version__
from deblurcli.errors import DeblurError

app = typer.Typer(
    name="deblur",
    help=(
        "Blind motion deblurring for photos, and the research pipeline behind it.\n\n"
        "Blur score = variance of the 4-neighbour Laplacian [[0,1,0],[1,-4,1],[0,1,0]] of the 8-bit "
        "luma (higher is sharper)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deblur {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Blind motion deblurring for photos, and the research pipeline behind it."""


# Options shared by several commands (one definition, the same spelling everywhere).
InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders, or quoted glob patterns (e.g. 'photos/*.jpg', expanded by deblur).",
        show_default=False,
    ),
]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine output: one JSON object per line on stdout (no table).")
]


class SortKey(str, enum.Enum):
    name = "name"
    score = "score"


def _fail(message: str, code: int = 1) -> typer.Exit:
    from deblurcli.console import error_line

    error_line(message)
    return typer.Exit(code)


@app.command()
def score(
    inputs: InputsArg,
    recursive: RecursiveOpt = False,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Verdict threshold: below it an image is called 'blurry'. 100 is the common "
            "variance-of-Laplacian rule of thumb for ~0.5-1 MP photos (pyimagesearch, 2015); scores "
            "scale with resolution, so calibrate it on your own photos.",
        ),
    ] = 100.0,
    sort: Annotated[
        SortKey, typer.Option(help="Table order: 'name' (file order) or 'score' (blurriest first).")
    ] = SortKey.name,
    max_side: Annotated[
        Optional[int],
        typer.Option(
            min=8,
            help="Score a copy downscaled so its longer side is at most this many pixels "
            "(faster; scores then compare only with scores taken at the same size).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Blur score of each image: variance of the Laplacian of the 8-bit luma at full resolution.

    The score equals cv2.Laplacian(gray, cv2.CV_64F).var() with gray the BT.601 luma. Higher is
    sharper. Exit status: 0 all scored, 1 some files failed (the others are still scored), 2 usage.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from deblurcli.blur import score_image
    from deblurcli.console import emit_json, err, error_line, out
    from deblurcli.images import read_image
    from deblurcli.inputs import expand_inputs

    items = expand_inputs(inputs, recursive=recursive)
    rows: list[dict[str, object]] = []
    failed = 0
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=len(items) < 2,
    )
    with progress:
        task = progress.add_task("scoring", total=len(items))
        for item in items:
            name = str(item.path)
            progress.update(task, description=f"scoring {item.path.name}")
            try:
                if item.error:
                    raise DeblurError(f"{name}: {item.error}")
                image = read_image(item.path)
                value = score_image(image, max_side=max_side)
            except DeblurError as e:
                failed += 1
                error_line(str(e))  # same console as the progress bar: printed above it
                if json_out:
                    emit_json({"path": name, "error": str(e).removeprefix(f"{name}: ")})
            else:
                row = {
                    "path": name,
                    "score": round(value, 4),
                    "width": image.width,
                    "height": image.height,
                    "verdict": "blurry" if value < threshold else "sharp",
                    "threshold": threshold,
                }
                if max_side is not None:
                    row["max_side"] = max_side
                rows.append(row)
                if json_out:
                    emit_json(row)
            progress.advance(task)

    if not json_out and rows:
        if sort is SortKey.score:
            rows.sort(key=lambda r: float(r["score"]))  # type: ignore[arg-type]
        title = f"Blur score (variance of Laplacian; < {threshold:g} = blurry)"
        if max_side is not None:
            title += f", scored at max side {max_side}px"
        table = Table(title=title, title_justify="left")
        table.add_column("file", overflow="fold")
        table.add_column("size", justify="right")
        table.add_column("score", justify="right")
        table.add_column("verdict")
        for r in rows:
            style = "red" if r["verdict"] == "blurry" else "green"
            table.add_row(
                str(r["path"]), f"{r['width']}x{r['height']}", f"{r['score']:.1f}", f"[{style}]{r['verdict']}[/]"
            )
        out.print(table)
    if failed:
        err.print(f"{len(rows)} scored, {failed} failed")
        raise typer.Exit(1)


class ContentChoice(str, enum.Enum):
    perceptual = "perceptual"
    l1fft = "l1fft"


class ArchChoice(str, enum.Enum):
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
                f"{info['precision']}, {where}, {info['steps_per_epoch']} steps/epoch"
            )
            if info["resumed_from"] is not None:
                err.print(f"resumed from step {info['resumed_from']}")
            if e.metrics:
                err.print(
                    f"validation: {info['val_items']} images; blurred inputs PSNR {e.metrics['val_psnr_blurred']:.2f} dB, "
                    f"SSIM {e.metrics['val_ssim_blurred']:.4f}"
                )
        elif e.kind == "step":
            m = e.metrics
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


@app.command()
def train(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="Training data folder (repeat for several): a make-pairs folder (blurred/+targets/), "
            "blur/+sharp/, a GoPro root, or a folder of sharp photos (blurred on the fly).",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder: checkpoints/, metrics.jsonl, model.safetensors, curves.png.", show_default=False)],
    steps: Annotated[Optional[int], typer.Option(min=1, help="Generator updates in total (each after --critic-iters critic updates).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over the training items (instead of --steps).")] = None,
    crop: Annotated[int, typer.Option(min=16, help="Random crop side in pixels (with random flips).")] = 256,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per process per step (DeblurGAN: 1).")] = 1,
    arch: Annotated[ArchChoice, typer.Option(help="Generator architecture.")] = ArchChoice.deblurgan,
    hparam: Annotated[
        Optional[list[str]],
        typer.Option("--hparam", help="Generator hyperparameter KEY=VALUE (repeat), e.g. ngf=32, n_blocks=6."),
    ] = None,
    critic_hparam: Annotated[
        Optional[list[str]], typer.Option("--critic-hparam", help="PatchGAN critic hyperparameter KEY=VALUE (ndf, n_layers).")
    ] = None,
    content: Annotated[
        ContentChoice,
        typer.Option(help="Content loss: 'perceptual' = MSE of VGG19 conv3_3 features (needs ImageNet VGG19 weights); 'l1fft' = L1 + 0.1 x L1 of the FFT."),
    ] = ContentChoice.perceptual,
    vgg_weights: Annotated[
        Optional[Path], typer.Option(help="torchvision VGG19 state_dict (vgg19-dcbb9e9d.pth); default: the torch hub cache.")
    ] = None,
    content_weight: Annotated[float, typer.Option(min=0.0, help="λ of the content loss.")] = 100.0,
    no_laplacian: Annotated[bool, typer.Option("--no-laplacian", help="Ablation: no Laplacian 4th input channel.")] = False,
    no_gan: Annotated[bool, typer.Option("--no-gan", help="Content loss only: no critic, no adversarial term.")] = False,
    critic_iters: Annotated[int, typer.Option(min=1, help="Critic updates per generator update (on the same batch).")] = 5,
    label_noise: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Per-sample probability that the critic's real and fake roles are swapped in a critic update."),
    ] = 0.1,
    lambda_gp: Annotated[float, typer.Option(min=0.0, help="λ of the WGAN-GP gradient penalty.")] = 10.0,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of both networks (betas 0.5, 0.999).")] = 1e-4,
    decay_start: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of the steps at constant lr; then linear decay towards 0.")
    ] = 0.5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[PrecisionChoice, typer.Option(help="auto = bf16 autocast on CUDA when supported, else fp32.")] = PrecisionChoice.auto,
    gpus: Annotated[Optional[int], typer.Option(min=1, help="Train on N GPUs of this machine (DDP over NCCL, via torch.distributed.run).")] = None,
    procs: Annotated[Optional[int], typer.Option(min=1, help="Processes per node on --device (e.g. --device cpu --procs 2 uses gloo).")] = None,
    nnodes: Annotated[int, typer.Option(min=1, help="Nodes (run the same command on each, with its --node-rank).")] = 1,
    node_rank: Annotated[int, typer.Option(min=0, help="This node's rank (multi-node).")] = 0,
    rdzv_endpoint: Annotated[Optional[str], typer.Option(help="HOST:PORT of node 0 (multi-node).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes per training process.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order, crops and noise.")] = 0,
    save_every: Annotated[int, typer.Option(min=0, help="Checkpoint every N steps (and always at the end).")] = 1000,
    val_every: Annotated[int, typer.Option(min=0, help="Validate every N steps (and always at the end).")] = 500,
    log_every: Annotated[int, typer.Option(min=1, help="Write averaged losses to metrics.jsonl every N steps.")] = 10,
    val_count: Annotated[int, typer.Option(min=0, help="Validation images (0 = every held-out one).")] = 16,
    val_crop: Annotated[int, typer.Option(min=0, help="Center crop of validation images (0 = whole image).")] = 256,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of each source held out for validation (GoPro: its test/ split).")] = 0.05,
    max_blur: Annotated[float, typer.Option(min=1.0, help="Longest synthetic blur streak (px at crop size) for folders of sharp photos.")] = 60.0,
    keep: Annotated[int, typer.Option(min=0, help="Checkpoints to keep (0 = all).")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in OUT/checkpoints (model, optimisers, step, RNG; the recipe comes from the checkpoint).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the deblurring GAN: WGAN-GP + λ x content loss, Laplacian-conditioned generator, label noise.

    Writes OUT/checkpoints/step_N.pt (atomic; --resume continues exactly), OUT/metrics.jsonl,
    OUT/model.safetensors (for `deblur fix --model`) and OUT/curves.png. Several processes (--gpus,
    --procs, --nnodes) are started through torch.distributed.run; only rank 0 logs and saves.
    """
    import json
    import os
    import tempfile

    from deblurcli.console import error_line
    from deblurcli.train import TrainConfig, TrainError, check_gpus, launcher_command, preflight

    if gpus is not None:
        if device not in ("auto", "cuda"):
            raise _fail(f"--gpus needs CUDA, but --device is {device}", 2)
        device = "cuda"
    nproc = gpus or procs or 1
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
        device=device,
        precision=precision.value,
        workers=workers,
        seed=seed,
        save_every=save_every,
        val_every=val_every,
        log_every=log_every,
        val_count=val_count,
        val_crop=val_crop,
        val_fraction=val_fraction,
        max_blur=max_blur,
        keep=keep,
        resume=resume,
    )
    if steps is not None and epochs is not None:
        raise _fail("give --steps or --epochs, not both", 2)
    try:
        if gpus is not None:
            check_gpus(gpus)
        if not resume:
            cfg.validate()
        preflight(cfg)
    except TrainError as e:
        raise _fail(str(e), 2) from None
    except DeblurError as e:
        raise _fail(str(e), 1) from None

    inside_launcher = "LOCAL_RANK" in os.environ
    if (nproc > 1 or nnodes > 1) and not inside_launcher:
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
