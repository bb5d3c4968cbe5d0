"""Benchmark: can the stills engine feed `deblur train`? Crops/s of one loader process against the step.

    python bench/loader.py                                  # c2f recipe of scripts/train_c2f.sh, CPU or GPU
    python bench/loader.py PHOTOS_DIR --max-blur 25 120 --batch 16 --device cuda --seconds 30

Measured in the same run, per streak length (``--max-blur``, px at crop size):

- **loader**: crops/s of one process making training crops from photos as a loader worker does
  with ``--blur-on loader`` (``TrainDataset.sample``: crop, stills-engine blur at γ 1.0 or 2.2,
  highlights, flips), one OpenCV thread;
- **draw**: the same process with ``--blur-on device``, where it only draws the samples
  (``TrainDataset.draw``: every random choice and matrix, no warps) and collates them;
- **step**: crops/s of the training step alone (``train_step`` of the trainer, on batches already on
  the device; bf16 where ``--precision auto`` picks it), the most the trainer could take;
- **render**: crops/s of ``render_batch`` on the step's device (the warps of ``--blur-on device``);
- **workers needed**: step / loader and step / draw, the loader processes one trainer needs
  (``WORKERS`` of ``scripts/train_c2f.sh``) with each setting; above the machine's free cores the
  trainer waits on its loader. With ``--blur-on device`` the device also renders: it then trains at
  most 1 / (1/step + 1/render) crops/s (**device-bound**).

Timings on a shared machine move: compare the ratios, not the absolute rates. Needs photos
(default ``../shared/data/sharp/debian-photos``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "sharp" / "debian-photos"
# The model and recipe of scripts/train_c2f.sh (the one a GPU run would use).
C2F_HPARAMS = {"width": 16, "levels": 4, "blocks": 1, "middle_blocks": 2, "scales": 3, "whiten": True}


def rate(make, count: int, seconds: float) -> float:
    """Calls/s of ``make(i)`` (i = 0, 1, ... modulo ``count``) in this process over about ``seconds``."""
    make(0)  # the first call imports the engine
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        make(n % count)
        n += 1
    return n / (time.perf_counter() - t0)


def draw_batch(dataset, i: int, batch: int):
    """Batch ``i`` of ``batch`` samples as a loader worker makes it with ``--blur-on device``."""
    from deblurcli.data import collate_drawn

    return collate_drawn([dataset.draw((i * batch + k) % len(dataset)) for k in range(batch)])


def render_rate(dataset, device, batch: int, seconds: float) -> float:
    """Crops/s of ``render_batch`` on ``device`` over batches drawn beforehand."""
    import torch

    from deblurcli.data import render_batch

    batches = [draw_batch(dataset, i, batch) for i in range(4)]

    def one(i: int) -> None:
        render_batch(batches[i], device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return rate(one, len(batches), seconds) * batch


def step_rate(cfg, dataset, seconds: float) -> tuple[float, Any, str]:
    """Crops/s of the trainer's step on one fixed batch; returns (rate, device, precision)."""
    import torch

    from deblurcli.train.loop import _make_networks, compute_setup, train_step

    device, precision, autocast = compute_setup(cfg)
    nets, _ = _make_networks(cfg, None, rank=0, world=1, device=device)
    pairs = [dataset[i % len(dataset)] for i in range(cfg.batch_size)]
    blurred, sharp = (torch.stack(x).to(device, memory_format=nets.memory_format) for x in zip(*pairs, strict=True))

    def run(steps: int) -> None:
        for _ in range(steps):
            train_step(nets, cfg, blurred, sharp, factor=1.0, autocast=autocast, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(3)  # warm-up: oneDNN/cuDNN pick their kernels on the first calls
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run(1 if device.type == "cpu" else 10)
        n += 1 if device.type == "cpu" else 10
    return n * cfg.batch_size / (time.perf_counter() - t0), device, precision


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS, help="folder of sharp photos")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--max-blur", type=float, nargs="+", default=[25.0, 60.0, 120.0])
    p.add_argument("--batch", type=int, default=4, help="training batch (scripts/train_c2f.sh: 4; on a GPU: 16)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="the step's compute threads on a CPU")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each timing")
    args = p.parse_args(argv)
    if not args.photos.is_dir():
        print(f"error: no photo folder at {args.photos} (pass one; the shared data is absent)", file=sys.stderr)
        return 2

    import cv2

    from deblurcli.data import TrainDataset, open_sources
    from deblurcli.errors import DeblurError
    from deblurcli.train.config import TrainConfig

    cv2.setNumThreads(1)  # a loader worker's share of the machine: one core
    items = [it for s in open_sources([args.photos]) for it in s.train]
    print(f"{len(items)} photos from {args.photos}; crop {args.crop}, batch {args.batch}; {os.cpu_count()} cores")
    head = ("max blur", "loader", "draw", "step", "render", "workers needed: loader / device", "device-bound")
    print(" | ".join(head) + "   (crops/s, but the workers)")
    for max_blur in args.max_blur:
        dataset = TrainDataset(items, crop=args.crop, max_blur=max_blur, gamma_set=(1.0, 2.2), highlights=0.5)
        dataset.preload()
        cfg = TrainConfig(data=[str(args.photos)], out="", arch="c2f", hparams=dict(C2F_HPARAMS), gan=False,
                          content="l1fft", lr=2e-4, clip_grad=10.0, batch_size=args.batch, crop=args.crop,
                          device=args.device, threads=args.threads)
        fed = rate(dataset.sample, len(dataset), args.seconds)
        drawn = rate(lambda i, d=dataset: draw_batch(d, i, args.batch), len(dataset), args.seconds) * args.batch
        try:
            taken, device, precision = step_rate(cfg, dataset, args.seconds)
        except DeblurError as e:  # e.g. --device cuda without a GPU
            print(f"error: {e}", file=sys.stderr)
            return 2
        rendered = render_rate(dataset, device, args.batch, args.seconds)
        bound = 1.0 / (1.0 / taken + 1.0 / rendered)
        print(f"{max_blur:>8.0f} | {fed:>6.1f} | {drawn:>5.1f} | {taken:>5.1f} | {rendered:>6.1f} | "
              f"{taken / fed:>6.2f} / {taken / drawn:.2f} | {bound:.1f}   (on {device}, {precision})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
