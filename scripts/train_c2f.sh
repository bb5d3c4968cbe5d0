#!/usr/bin/env bash
# Train the coarse-to-fine model (c2f, whitened input) for blur at the scale of 720p footage,
# resumably, and score it on the held-out 720p sets. One command; run it again (same OUT) to continue
# where it stopped.
#
#   DATA=../shared/data OUT=/work/runs/c2f STEPS=20000 scripts/train_c2f.sh
#
# - Data: scripts/make_720p_sets.py writes OUT/data/train1280 (27 Debian photos, long side 1280 px) and
#   the held-out sets OUT/data/heldout720-g1.0 and -g2.2 (24 frames of 1280x720 from 8 other photos,
#   streaks 20-120 px, averaged in stored values and in linear light; and small720-g1.0, 8 frames
#   with 10-25 px streaks). Urban100 and Sun-Hays80 photos are trained on as they are (up to
#   1024 px). `deblur make-pairs` makes 15 real pairs from each of four of the shared videos
#   (OUT/data/video-train); shaky_handheld.mp4 stays held out.
# - Recipe: content loss only (the GAN lost 0.9-2.6 dB in the ablation, README), L1 + 0.1 FFT,
#   Adam 2e-4 (LR) with the generator's gradient clipped to norm 10 (typical norms are 3-15; at 5e-4
#   without clipping one bad batch undid ~1000 steps), batch 4 of 256 px crops (CROP), streaks up
#   to 25 px (MAX_BLUR; c2f-w's second stage: from its first stage, 5000 steps at 25 px beat 6000
#   at 60 px on small blur, Levin and the video, and neither gained on 20-120 px; c2f-s, trained at
#   120, makes 10-25 px blur worse), the whitened input (WHITEN=1, the c2f `whiten` hparam), camera gamma 1.0 or 2.2
#   per crop, half and half (blur averaged in stored values, as in GoPro's blur/ and Levin's set,
#   and in linear light; a uniform draw on [1.0, 2.2] is mostly > 1 and taught the model to darken),
#   in half of the linear-light crops near-white pixels made 2-20x brighter than white before the
#   blur (--highlights 0.5: lamps leave saturated streaks), bf16 on bf16 CPUs, one compute thread
#   (THREADS) and one loader worker.
# - Continuing: with checkpoints in OUT/train/checkpoints the run resumes exactly (--resume; STEPS
#   may be raised). Without them (a new machine), a new run starts from INIT, by default the
#   committed work-in-progress weights training/c2f-w.safetensors (WHITEN=0: c2f-s.safetensors; a
#   fresh optimiser and schedule); INIT= (empty) starts from scratch. c2f-w was made from scratch by
#   `OUT=runs/w60 INIT= STEPS=4000 MAX_BLUR=60 scripts/train_c2f.sh`, then continued by
#   `OUT=runs/s4c STEPS=5000 scripts/train_c2f.sh` (training/README.md). training/c2f-wc.safetensors
#   (session 5, coarse scales that work) continues with `INIT=training/c2f-wc.safetensors
#   RESIDUAL=correction MAX_BLUR=60`.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/c2f}
STEPS=${STEPS:-20000}
THREADS=${THREADS:-1}
# On a GPU machine: DEVICE=cuda BATCH=16 WORKERS=12 (the loader workers draw each crop's blur and the
# GPU renders it: deblur train --blur-on auto; bench/loader.py says how many workers keep it fed).
DEVICE=${DEVICE:-auto}
BATCH=${BATCH:-4}
CROP=${CROP:-256}
MAX_BLUR=${MAX_BLUR:-25}
LR=${LR:-2e-4}
WORKERS=${WORKERS:-1}
# Whitened input (the c2f `whiten` hparam: gradients and Laplacian amplified); WHITEN=0 = the
# older c2f-s input (its committed weights are training/c2f-s.safetensors).
WHITEN=${WHITEN:-1}
if [ "$WHITEN" = 1 ]; then wtag=c2f-w; whp=(--hparam whiten=true); else wtag=c2f-s; whp=(); fi
# RESIDUAL (the c2f `residual` hparam): what each finer scale adds to; `blurred` (its own blurred
# image, as c2f-w was trained), `prior` (the upsampled coarser estimate) or `correction` (the
# blurred image plus the coarser scale's upsampled change); the same weights, so INIT still fits.
RESIDUAL=${RESIDUAL:-blurred}
[ "$RESIDUAL" = blurred ] || whp+=(--hparam "residual=$RESIDUAL")
INIT=${INIT-$(dirname "$0")/../training/$wtag.safetensors}
DEBLUR=${DEBLUR:-deblur}
here=$(cd "$(dirname "$0")" && pwd)

[ -d "$OUT/data/heldout720-g2.2" ] || python "$here/make_720p_sets.py" --data "$DATA" --out "$OUT/data"
v="$DATA/videos"
[ -f "$OUT/data/video-train/pairs.jsonl" ] || "$DEBLUR" make-pairs "$v/office_meeting_stock.mp4" "$v/shaky_forest_walk.mp4" \
  "$v/slow_traffic_small.mp4" "$v/vtest.avi" -o "$OUT/data/video-train" --samples 15 --seed 0

train="$OUT/train"
start=()
if [ -d "$train/checkpoints" ] && ls "$train/checkpoints"/step_*.pt >/dev/null 2>&1; then
  start=(--resume)
elif [ -n "$INIT" ] && [ -f "$INIT" ]; then
  start=(--init "$INIT")
fi
"$DEBLUR" train --data "$OUT/data/train1280" --data "$DATA/sharp/urban100_subset" --data "$DATA/sharp/sun_hays80" \
  --data "$OUT/data/video-train" \
  --out "$train" --arch c2f --hparam width=16 --hparam levels=4 --hparam blocks=1 --hparam middle_blocks=2 --hparam scales=3 "${whp[@]}" \
  --no-gan --content l1fft --lr "$LR" --clip-grad 10 --batch-size "$BATCH" --crop "$CROP" --max-blur "$MAX_BLUR" --gamma 1.0,2.2 --highlights 0.5 \
  --steps "$STEPS" --threads "$THREADS" --workers "$WORKERS" --device "$DEVICE" --save-every 100 --val-every 100 --val-count 16 --seed 0 \
  "${start[@]}"

for set in heldout720-g1.0 heldout720-g2.2 small720-g1.0; do
  [ -d "$OUT/data/$set" ] || continue  # small720 is missing from data made before it existed
  "$DEBLUR" evaluate "$OUT/data/$set" --model "$train/model.safetensors" --ssim matlab --json | tail -n 1 > "$OUT/eval-$set.json"
done
cat "$OUT"/eval-*.json
