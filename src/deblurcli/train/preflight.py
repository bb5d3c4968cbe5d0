"""Checks before any training process starts: options, --resume, --out, --init, the VGG weights
and every image's header (:func:`preflight`).

Imports :mod:`deblurcli.train.config` and :mod:`deblurcli.train.checkpoint` of the package.
"""

from __future__ import annotations

import os
from pathlib import Path

from deblurcli.errors import DatasetError
from deblurcli.train.checkpoint import (
    apply_recipe,
    build_critic,
    build_generator,
    checkpoint_dir,
    list_checkpoints,
    load_init,
    read_checkpoint_config,
)
from deblurcli.train.config import TrainConfig, TrainError


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
