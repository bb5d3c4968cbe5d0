#!/usr/bin/env bash
# Re-make the bundled default model (weights/nafnet-s.safetensors) from scratch, the way it was made:
# four stages of `deblur train` and one weight average, then an evaluation on the held-out sets and
# the export with the model card's metadata. About 4 hours on a 2-core CPU (1.1-1.5 steps/s);
# unchanged on a CUDA GPU.
#
#   DATA=../shared/data OUT=runs/shipped scripts/train_shipped.sh            # -> OUT/nafnet-s.safetensors
#   cp runs/shipped/nafnet-s.safetensors weights/   # then its sha256 in src/deblurcli/registry.py
#
# 1. scripts/train_default.sh at GAMMA=1.0-2.2, 6000 steps: synthetic camera-motion blur of the
#    sharp photos (camera response gamma drawn per crop) plus real pairs from four videos.
# 2. The same run continued to step 9000 on the sharp photos only (its recipe and optimiser kept).
# 3. Fine-tuned from stage 2 (`--init`: fresh optimiser and schedule) for 5000 steps at gamma 2.2,
#    photos + video pairs, lr 2e-4, seed 3.
# 4. The average of the stage 2 and stage 3 weights (both descend from stage 2: a "model soup"),
#    fine-tuned for 2000 steps at gamma 1.0-2.2, photos + video pairs, lr 1e-4, seed 4.
# Measured on the held-out sets after each stage (README, train section): stage 2 was better on
# Levin, stage 3 on the video pairs; stage 4 is better than both on both.
# Stages that finished are kept; an interrupted one continues (--resume).
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/shipped}
DEBLUR=${DEBLUR:-deblur}
here=$(cd "$(dirname "$0")" && pwd)
hp=(--arch nafnet --hparam width=16 --hparam "enc_blocks=[1,1,1,1]" --hparam middle_blocks=1 --hparam "dec_blocks=[1,1,1,1]")
stills=(--data "$DATA/sharp/bsds300_train200" --data "$DATA/sharp/t91" --data "$DATA/sharp/sun_hays80"
        --data "$DATA/sharp/urban100_subset" --data "$DATA/sharp/mcmaster18")
common=(--no-gan --content l1fft --max-blur 60 --crop 256 --batch-size 2 --workers 0
        --val-every 500 --save-every 250 --val-count 16 --val-crop 256)

# Stage 1 (also makes the pairs and the held-out sets, and evaluates).
DATA="$DATA" OUT="$OUT/stage1" GAMMA=1.0-2.2 STEPS=6000 DEBLUR="$DEBLUR" "$here/train_default.sh"

# Stage 2: stage 1's run, continued on the photos only.
s2="$OUT/stage2/train"
if [ ! -f "$s2/model.safetensors" ] || [ "$(python -c 'import sys; from deblurcli.weights import read_metadata; print(read_metadata(sys.argv[1])["trained_steps"])' "$s2/model.safetensors")" != 9000 ]; then
  if [ ! -d "$s2/checkpoints" ]; then
    mkdir -p "$s2/checkpoints"
    cp "$OUT/stage1/train/checkpoints/step_0006000.pt" "$s2/checkpoints/"
  fi
  "$DEBLUR" train "${stills[@]}" --out "$s2" "${hp[@]}" "${common[@]}" --gamma 1.0-2.2 --lr 4e-4 --steps 9000 --seed 0 --resume
fi

# Stage 3: fine-tune at gamma 2.2 on photos + video pairs.
s3="$OUT/stage3/train"
resume=()
[ -d "$s3/checkpoints" ] && resume=(--resume) || resume=(--init "$s2/model.safetensors")
[ -f "$s3/model.safetensors" ] || "$DEBLUR" train "${stills[@]}" --data "$OUT/stage1/pairs-train" --out "$s3" "${hp[@]}" "${common[@]}" \
  --gamma 2.2 --lr 2e-4 --steps 5000 --seed 3 "${resume[@]}"

# Stage 4: the mean of the stage 2 and 3 weights, fine-tuned at gamma 1.0-2.2.
soup="$OUT/stage4/soup.safetensors"
[ -f "$soup" ] || python - "$s2/model.safetensors" "$s3/model.safetensors" "$soup" <<'PY'
import json, sys
from deblurcli.weights import load_model, save_model

a, b, out = sys.argv[1:]
model, _ = load_model(a)
other = load_model(b)[0].state_dict()
model.load_state_dict({k: (v + other[k]) / 2 if v.is_floating_point() else v for k, v in model.state_dict().items()})
save_model(out, model, metadata={"averaged": json.dumps([a, b])})
PY
s4="$OUT/stage4/train"
[ -d "$s4/checkpoints" ] && resume=(--resume) || resume=(--init "$soup")
[ -f "$s4/model.safetensors" ] || "$DEBLUR" train "${stills[@]}" --data "$OUT/stage1/pairs-train" --out "$s4" "${hp[@]}" "${common[@]}" \
  --gamma 1.0-2.2 --lr 1e-4 --steps 2000 --seed 4 "${resume[@]}"

# Measure (the model card's numbers): Levin 2009 (--linear: its blur is in the stored values; --align 5),
# the held-out video pairs and Kodak24 through the stills engine, against the blurred inputs.
model="$s4/model.safetensors"
for set in levin2009:"$DATA/levin2009":5:--linear video:"$OUT/stage1/pairs-test":0: stills:"$OUT/stage1/stills-test":0:; do
  IFS=: read -r name path align flag <<< "$set"
  "$DEBLUR" evaluate "$path" --identity --align "$align" --json > "$OUT/eval-$name-identity.jsonl"
  "$DEBLUR" evaluate "$path" --model "$model" --align "$align" $flag --json --report "$OUT/report-$name" > "$OUT/eval-$name-model.jsonl"
done
"$DEBLUR" fix "$DATA/real-blur" -o "$OUT/real-blur" --model "$model" --compare --force --json > "$OUT/real-blur.jsonl"

# Export: the same tensors, with metadata naming the model card and the stages.
python - "$model" "$OUT/nafnet-s.safetensors" <<'PY'
import json, sys
from deblurcli.weights import load_model, read_metadata, save_model

src, dst = sys.argv[1:]
model, _ = load_model(src)
meta = read_metadata(src)
keep = {k: meta[k] for k in ("recipe", "architecture", "hyperparameters", "trainer") if k in meta}
keep.update(
    name="nafnet-s",
    model_card="weights/README.md (in the deblurcli source and wheel)",
    trained_steps=str(6000 + 3000 + 5000 + 2000),
    stages=json.dumps([
        "1: scripts/train_default.sh GAMMA=1.0-2.2 STEPS=6000 (photos + video pairs)",
        "2: stage 1 --resume to step 9000 on the photos only",
        "3: --init stage 2, --gamma 2.2 --lr 2e-4 --steps 5000 --seed 3 (photos + video pairs)",
        "4: --init mean(stage 2, stage 3), --gamma 1.0-2.2 --lr 1e-4 --steps 2000 --seed 4 (photos + video pairs)",
    ]),
    training_data="sharp photos: bsds300_train200 t91 sun_hays80 urban100_subset mcmaster18; video pairs: "
    "shaky_forest_walk slow_traffic_small office_meeting_stock vtest (make-pairs --samples 100)",
)
save_model(dst, model, metadata=keep)
print(dst)
PY
echo "done: $OUT"
