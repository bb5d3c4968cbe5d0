"""Benchmark: `deblur score` throughput against decode-only throughput on the same files.

The score should cost little beyond decoding (target ratio >= 0.8). Both are measured in this run,
on the same ~100 files from ../shared/data (Kodak, BSDS, real-blur), best of several rounds.

    python bench/score.py [--files 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deblurcli.blur import score_image
from deblurcli.images import read_image
from deblurcli.inputs import expand_inputs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: shared data not found at {DATA}", file=sys.stderr)
        return 0
    folders = [DATA / "real-blur", DATA / "sharp" / "kodak24", DATA / "sharp" / "bsds300_test100"]
    files = [i.path for i in expand_inputs(folders) if i.error is None][: args.files]

    def run(with_score: bool) -> float:
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for f in files:
                img = read_image(f)
                if with_score:
                    score_image(img)
            best = min(best, time.perf_counter() - t0)
        return best

    run(True)  # warm the page cache and imports
    decode = run(False)
    score = run(True)
    mp = sum(read_image(f).width * read_image(f).height for f in files) / 1e6
    print(f"files: {len(files)} ({mp:.1f} MP), best of {args.rounds} rounds")
    print(f"{'task':<22}{'files/s':>10}{'MP/s':>10}{'ratio':>8}")
    print(f"{'decode only (baseline)':<22}{len(files) / decode:>10.1f}{mp / decode:>10.1f}{1.0:>8.2f}")
    print(f"{'decode + score':<22}{len(files) / score:>10.1f}{mp / score:>10.1f}{decode / score:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
