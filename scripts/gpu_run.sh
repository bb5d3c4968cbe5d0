#!/usr/bin/env bash
# One GPU run of the c2f recipe (scripts/train_c2f.sh's model and losses) inside a device lease:
# 15 minutes of device time in all, start-up included, and 64 MiB of working tree (the tracked
# files are ~53 MB, so ~11 MB are left for data). Two halves:
#
#   scripts/gpu_run.sh pack     # here: .carry/photos, the 27 training Debian photos at 1280 px as
#                               # JPEG (6.8 MB; made by scripts/make_720p_sets.py if DATA_OUT lacks them)
#   # on the device machine (carry [".carry"]), in one call with a timeout that leaves a rerun:
#   MINUTES=8 scripts/gpu_run.sh train
#
# `train` first measures the loader against the GPU's step (bench/loader.py, ~1 min; BENCH=0 skips
# it), then trains for MINUTES of wall time from training/c2f-w.safetensors (INIT), with the crops'
# blur rendered on the GPU (--blur-on device) and WORKERS loader processes drawing it; the learning
# rate stays constant (the run is cut by time, not by a step count). It leaves in $OUT (or OUT_DIR):
# model.safetensors (the newest checkpoint's generator), metrics.jsonl, curves.png, train.log and
# loader.txt. Score the model here, on the held-out sets (the device cannot carry them):
#   deblur evaluate /work/data/heldout720-g1.0 --model OUT/model.safetensors --ssim matlab
# The held-out 20-120 px sets want long streaks: MAX_BLUR (px at the 256 px crop) defaults to 60,
# where the CPU runs used 25 (training/README.md: at 60 nothing changed on them in 6000 CPU steps).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
photos=.carry/photos

pack() {
  local data=${DATA:-../shared/data} made=${DATA_OUT:-/work/data}
  [ -d "$made/train1280" ] || python scripts/make_720p_sets.py --data "$data" --out "$made"
  rm -rf "$photos.tmp" && mkdir -p "$photos.tmp"
  python - "$made/train1280" "$photos.tmp" <<'EOF'
import sys
from pathlib import Path

from PIL import Image

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for p in sorted(src.glob("*.png")):
    Image.open(p).convert("RGB").save(dst / (p.stem + ".jpg"), quality=95)
EOF
  rm -rf "$photos" && mv "$photos.tmp" "$photos"
  echo "$(ls "$photos" | wc -l) photos, $(du -sh "$photos" | cut -f1), in $here/$photos (carry: .carry)"
}

train() {
  local out=${OUT_DIR:-${OUT:?set OUT (the device tool does) or OUT_DIR}} run=${RUN:-/tmp/gpu_run}
  local minutes=${MINUTES:-8} device=${DEVICE:-cuda} batch=${BATCH:-16} workers=${WORKERS:-14}
  local init=${INIT-training/c2f-w.safetensors} py=${PYTHON:-python3}
  [ -d "$photos" ] || { echo "error: no $photos here (run 'scripts/gpu_run.sh pack' and carry .carry)" >&2; exit 2; }
  export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  mkdir -p "$out"
  if [ "${BENCH:-1}" = 1 ]; then
    "$py" bench/loader.py "$photos" --device "$device" --batch "$batch" --max-blur 25 120 --seconds "${BENCH_SECONDS:-8}" \
      | tee "$out/loader.txt"
  fi
  local start=()
  [ -n "$init" ] && start=(--init "$init")
  rm -rf "$run"
  # Cut by time: timeout's exit 124 is the expected end; the newest checkpoint is the result.
  timeout "$((minutes * 60))" "$py" -m deblurcli train --data "$photos" --out "$run" \
    --arch c2f --hparam width=16 --hparam levels=4 --hparam blocks=1 --hparam middle_blocks=2 --hparam scales=3 \
    --hparam whiten=true --no-gan --content l1fft --lr "${LR:-2e-4}" --decay-start 1.0 --clip-grad 10 \
    --batch-size "$batch" --crop 256 --max-blur "${MAX_BLUR:-60}" --gamma 1.0,2.2 --highlights 0.5 \
    --steps 10000000 --device "$device" --workers "$workers" --blur-on device --save-every "${SAVE_EVERY:-200}" \
    --val-every "${SAVE_EVERY:-200}" --val-count 16 --seed "${SEED:-0}" "${start[@]}" > "$out/train.log" 2>&1 \
    || [ $? = 124 ] || { tail -n 20 "$out/train.log" >&2; exit 1; }
  "$py" scripts/export_checkpoint.py "$run" "$out/model.safetensors"
  cp "$run/metrics.jsonl" "$out/"
  # The run was cut before its own end, which draws the curves: draw them from its metrics.
  "$py" -c "import sys; from deblurcli.train import plot_metrics; plot_metrics(sys.argv[1], sys.argv[2])" \
    "$run/metrics.jsonl" "$out/curves.png"
  tail -n 3 "$out/train.log"
}

case "${1:-}" in
  pack) pack ;;
  train) train ;;
  *) echo "usage: scripts/gpu_run.sh pack|train (see the comments at its top)" >&2; exit 2 ;;
esac
