#!/usr/bin/env bash
# The ablation of the paper's two ideas at one budget: scripts/train_default.sh four times, with and
# without the Laplacian input channel (LAPLACIAN) and with and without the WGAN-GP loss (GAN), on the
# same pairs and the same number of steps; then a Markdown table of the held-out results.
#
#   DATA=../shared/data OUT=runs/ablation STEPS=600 scripts/ablation.sh
#
# Every knob of train_default.sh passes through (STEPS, CROP, BATCH, ARCH, HPARAMS...). LR is left to
# train_default.sh unless set: then the GAN runs use the paper's 1e-4 and the content-only runs 4e-4,
# each objective at its own rate. Runs already finished are kept (train_default.sh resumes).
# CONFIGS picks runs: NAME = lap{0,1}-gan{0,1}[-seedN] (default: the four without a seed suffix, seed
# 0); a -seedN twin of a run measures the seed-to-seed spread that the differences must beat. On a
# CPU a GAN step costs ~20x a content-only step (5 critic updates with a gradient penalty): at the
# default 256 px crops 1500 GAN steps take ~5 h, so the CPU ablation in README with all four runs is
#   CROP=128 STEPS=1000 LR=2e-4 CONFIGS="lap1-gan0 lap0-gan0 lap1-gan1 lap0-gan1 lap1-gan0-seed1"
# (2 h 20 min on this 2-core CPU: ~4.5 min per content-only run, ~1 h per GAN run, evaluations included).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/ablation}
here=$(cd "$(dirname "$0")" && pwd)
CONFIGS=${CONFIGS:-"lap1-gan0 lap0-gan0 lap1-gan1 lap0-gan1"}
first=""
for name in $CONFIGS; do
  if ! [[ $name =~ ^lap([01])-gan([01])(-seed([0-9]+))?$ ]]; then
    echo "error: CONFIGS entry '$name' is not lap{0,1}-gan{0,1}[-seedN]" >&2; exit 2
  fi
  lap=${BASH_REMATCH[1]}; gan=${BASH_REMATCH[2]}; seed=${BASH_REMATCH[4]:-0}
  dir="$OUT/$name"
  mkdir -p "$dir"
  if [ -n "$first" ]; then
    # The same pairs for every run: make-pairs finds them complete and keeps them.
    for d in pairs-train pairs-test stills-test; do
      [ -e "$dir/$d" ] || ln -s "$(cd "$first/$d" && pwd)" "$dir/$d"
    done
  fi
  DATA="$DATA" OUT="$dir" LAPLACIAN="$lap" GAN="$gan" SEED="$seed" "$here/train_default.sh"
  first=${first:-$dir}
done
python - "$OUT" $CONFIGS <<'PY'
import json, statistics, sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]
sets = ("levin2009", "video", "stills")


def summary(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


print("| run | Laplacian | GAN | val PSNR (blurred -> end) | " + " | ".join(f"{s} gain (dB)" for s in sets)
      + " | real-blur blur score, median x |")
print("|---|---|---|---|" + "---|" * len(sets) + "---|")
for name in names:
    d = out / name
    vals = [json.loads(l) for l in (d / "train" / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v.get("kind") == "val"]
    start, end = vals[0]["val_psnr_blurred"], vals[-1]["val_psnr"]
    gains = [f"{summary(d / f'eval-{s}-model.jsonl')['psnr_gain']:+.2f}" for s in sets]
    # Sharpness where there is no ground truth: after/before blur score of the real camera-shake photos.
    fixed = [json.loads(l) for l in (d / "real-blur.jsonl").read_text().splitlines()]
    sharpen = statistics.median(r["after"] / r["before"] for r in fixed if r.get("status") == "done")
    print(f"| {name} | {'yes' if 'lap1' in name else 'no'} | {'yes' if 'gan1' in name else 'no'} | "
          f"{start:.2f} -> {end:.2f} (step {vals[-1]['step']}) | " + " | ".join(gains) + f" | {sharpen:.2f} |")
PY
