"""Benchmark `deblur fix` inference: seconds per image and peak RSS, per registered model.

Each (model, size) runs in its own process so that its peak RSS (ru_maxrss) is its own. Models have
random weights (speed and memory do not depend on the values). The time covers what `deblur fix`
does per image after decoding: tensor conversion, (tiled) inference, quantisation back to 8 bits.
Networks get noise; the classical `blind` gets flat shapes streaked by 1/60 of the width (on noise it
finds no kernel and keeps the input, which says nothing of what deblurring costs).
Results are printed as a table with ratios against the paper's full-width generator (`deblurgan`)
measured in the same run; on a shared machine compare ratios, not absolute seconds.

    python bench/fix.py                       # 1280x720 and 12 MP for every model, 24 MP RSS check
    python bench/fix.py --models deblurgan nafnet-s --sizes 1280x720
    python bench/fix.py --rss-check 6000x4000 --rss-model deblurgan
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
BASELINE = "deblurgan"


def child(name: str, size: str, tile: int | None) -> None:
    import resource

    import numpy as np
    import torch

    from deblurcli.images import Image
    from deblurcli.inference import Deblurrer
    from deblurcli.models import create_model
    from deblurcli.registry import REGISTRY

    w, h = (int(v) for v in size.split("x"))
    entry = REGISTRY[name]
    torch.manual_seed(0)
    d = Deblurrer(create_model(entry.architecture, **entry.hyperparameters), device="cpu", tile=tile)
    rng = np.random.default_rng(0)
    if entry.weightless:
        # A classical model's work depends on the picture: on noise `blind` finds no kernel it
        # trusts and keeps it. Flat shapes blurred by a streak of 1/60 of the width (21 px at 1280,
        # 100 at 6000) take its whole path.
        import cv2

        pixels = np.full((h, w, 3), 128, np.uint8)
        for _ in range(max(40, h * w // 20000)):
            x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(4, max(5, min(h, w) // 8)))
            cv2.rectangle(pixels, (x - r, y - r), (x + r, y + r // 2), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
        n = max(15, w // 60) | 1
        streak = np.zeros((n, n), np.float32)
        streak[n // 2, :] = 1 / n
        pixels = cv2.filter2D(pixels, -1, streak, borderType=cv2.BORDER_REFLECT)
    else:
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    image = Image(pixels=pixels)
    chosen = d.tile_size(h, w)
    t0 = time.perf_counter()
    d.deblur_image(image)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"model": name, "size": size, "seconds": seconds, "peak_rss_mb": peak_kb / 1024,
                      "tile": chosen, "threads": torch.get_num_threads(),
                      "kept": getattr(d.model, "last_kernels", [0]) == [None]}))


def measure(name: str, size: str, tile: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", name, size]
    if tile is not None:
        cmd += ["--tile", str(tile)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"model": name, "size": size, "error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from deblurcli.registry import REGISTRY

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "WxH"), help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="*", default=list(REGISTRY))
    ap.add_argument("--sizes", nargs="*", default=["1280x720", "4000x3000"])
    ap.add_argument("--tile", type=int, default=None, help="fixed tile size (default: automatic)")
    ap.add_argument("--rss-check", default="6000x4000", help="size of the peak-RSS check ('' to skip)")
    ap.add_argument("--rss-model", default=BASELINE)
    ap.add_argument("--rss-limit-mb", type=float, default=3000.0)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.tile)
        return

    results = [measure(m, s, args.tile) for s in args.sizes for m in args.models]
    base = {r["size"]: r for r in results if r["model"] == BASELINE and "error" not in r}
    print(f"{'model':<16}{'size':>11}{'tile':>7}{'seconds':>10}{'x base':>8}{'peak RSS MB':>13}{'x base':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['model']:<16}{r['size']:>11}  error: {r['error']}")
            continue
        b = base.get(r["size"])
        rt = f"{r['seconds'] / b['seconds']:.2f}" if b else "-"
        rm = f"{r['peak_rss_mb'] / b['peak_rss_mb']:.2f}" if b else "-"
        print(f"{r['model']:<16}{r['size']:>11}{str(r['tile'] or '-'):>7}{r['seconds']:>10.2f}{rt:>8}"
              f"{r['peak_rss_mb']:>13.0f}{rm:>8}{'  (kept the input)' if r.get('kept') else ''}")
    if args.rss_check:
        r = measure(args.rss_model, args.rss_check, args.tile)
        if "error" in r:
            print(f"RSS check {args.rss_check} {args.rss_model}: error: {r['error']}")
            sys.exit(1)
        ok = r["peak_rss_mb"] < args.rss_limit_mb
        print(f"RSS check {args.rss_check} with {args.rss_model}: peak {r['peak_rss_mb']:.0f} MB "
              f"(limit {args.rss_limit_mb:.0f} MB) in {r['seconds']:.1f} s, tile {r['tile']}: {'PASS' if ok else 'FAIL'}"
              f"{' (kept the input: not what a deblurred photo costs)' if r.get('kept') else ''}")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
