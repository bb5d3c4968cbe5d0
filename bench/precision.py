"""Benchmark fp32 against bf16 autocast (+ channels_last) for training and inference, per architecture.

For each model (random weights: speed does not depend on the values), in its own process:
- training: crops/s of an Adam step on a batch of 4 random 256x256 crops with L1 loss, one thread
  (how `deblur train --threads 1` runs beside other work);
- inference: seconds for one 1280x720 frame through `Deblurrer` (what `deblur fix` runs), with
  ``--threads`` threads (default 2).
Ratios are against the shipped model's fp32 numbers (`nafnet-s`, the old default recipe) measured
in the same run; on a shared machine compare ratios, not absolute numbers. With ``--quality``, the
shipped model's fp32 and bf16 outputs on real photos are compared (PSNR between them, and the
largest difference in 8-bit levels).

    python bench/precision.py
    python bench/precision.py --models nafnet-s c2f-s --threads 2 --quality ../shared/data/real-blur
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ("nafnet-s", "fp32")


def child(name: str, precision: str, threads: int, steps: int) -> None:
    import torch

    from deblurcli.inference import Deblurrer
    from deblurcli.models import create_model
    from deblurcli.registry import REGISTRY

    entry = REGISTRY[name]
    bf16 = precision == "bf16"
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_model(entry.architecture, **entry.hyperparameters).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(4, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    y = torch.rand(4, 3, 256, 256)
    times = []
    for _ in range(steps + 1):  # the first step warms oneDNN's kernel cache up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = (out.float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    train_cps = 4 / (sum(times[1:]) / steps)
    d = Deblurrer(create_model(entry.architecture, **entry.hyperparameters), device="cpu", precision=precision, threads=threads)
    frame = torch.rand(1, 3, 720, 1280)
    d.deblur(frame[:, :, :256, :256])  # warm-up
    t0 = time.perf_counter()
    d.deblur(frame)
    infer_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"model": name, "precision": precision, "params": params, "train_cps": train_cps, "infer_s": infer_s}))


def measure(name: str, precision: str, threads: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", name, precision, "--threads", str(threads), "--steps", str(steps)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"model": name, "precision": precision, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def quality(folder: Path, threads: int) -> None:
    """The shipped model's bf16 output against its fp32 output on every image of ``folder``."""
    import numpy as np

    from deblurcli.images import read_image
    from deblurcli.inference import Deblurrer
    from deblurcli.registry import DEFAULT_MODEL

    a = Deblurrer(DEFAULT_MODEL, precision="fp32", threads=threads, offline=True)
    b = Deblurrer(DEFAULT_MODEL, precision="bf16", threads=threads, offline=True)
    print(f"\n{DEFAULT_MODEL}: bf16 output vs fp32 output (8-bit, as saved)")
    print(f"{'image':<28}{'PSNR dB':>9}{'max diff':>10}{'pixels differing':>18}")
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            image = read_image(path)
        except Exception:  # noqa: BLE001 - not an image
            continue
        pa, pb = a.deblur_image(image).pixels.astype(np.int32), b.deblur_image(image).pixels.astype(np.int32)
        mse = float(((pa - pb) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(image.max_value**2 / mse)
        print(f"{path.name:<28}{psnr:>9.1f}{int(np.abs(pa - pb).max()):>10}{(pa != pb).mean() * 100:>17.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="*", default=["nafnet-s", "c2f-s", "deblurgan-half"])
    ap.add_argument("--threads", type=int, default=2, help="inference threads (training always uses 1)")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per model")
    ap.add_argument("--quality", type=Path, default=None, help="folder of photos for the bf16-vs-fp32 output check")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threads, args.steps)
        return
    results = [measure(m, p, args.threads, args.steps) for m in args.models for p in ("fp32", "bf16")]
    base = next((r for r in results if (r["model"], r["precision"]) == BASELINE and "error" not in r), None)
    print(f"{'model':<16}{'params':>8}{'prec':>6}{'train crops/s':>15}{'x base':>8}{'720p s':>9}{'x base':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['model']:<16}{'':>8}{r['precision']:>6}  error: {r['error']}")
            continue
        tr = f"{r['train_cps'] / base['train_cps']:.2f}" if base else "-"
        ir = f"{r['infer_s'] / base['infer_s']:.2f}" if base else "-"
        print(f"{r['model']:<16}{r['params'] / 1e6:>7.2f}M{r['precision']:>6}{r['train_cps']:>15.2f}{tr:>8}{r['infer_s']:>9.2f}{ir:>8}")
    print(f"baseline: {BASELINE[0]} {BASELINE[1]}; training 1 thread, batch 4 of 256x256; inference {args.threads} threads")
    if args.quality:
        quality(args.quality, args.threads)


if __name__ == "__main__":
    main()
