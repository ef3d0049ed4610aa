#!/usr/bin/env bash
# Train the shipped default model in one command, seeded:
#   stage 1: textures = wiki_example1 (expert-checked landmarks) warped onto real shapes
#   pseudo-labels: stage 1 labels the other shared radiographs (overlays written for checking)
#   stage 2: fine-tune on all textures (the checked list training/textures.json when present,
#            else the fresh pseudo-labels)
#   export + evaluate both stages.
# Usage: bash training/train_default.sh OUT [cuda|cpu]
# Budgets (minutes of training per stage) come from STAGE1_MIN / STAGE2_MIN; the defaults
# fit the 2-core CPU's 90 minutes with export, pseudo-labels and evaluation, or one short run on
# a GPU (set them to 2.5 / 4).
set -euo pipefail
OUT=${1:?usage: train_default.sh OUT [cuda|cpu]}
DEVICE=${2:-cpu}
DATA=${DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
STAGE1_MIN=${STAGE1_MIN:-35}
STAGE2_MIN=${STAGE2_MIN:-42}
BATCH=${BATCH:-8}
WORKERS=${WORKERS:-1}
STEPS1=${STEPS1:-2500}
STEPS2=${STEPS2:-3000}
LR=${LR:-3e-4}
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
common=(--data "$DATA" --inputsize 512 --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --lr "$LR" --seed 0)
# fit each stage's lr and KL schedules to its time budget; FIT=0 plans STEPS1/STEPS2 instead (how
# the model card's stages 1 and 2 ran)
[ "${FIT:-1}" = 1 ] && common+=(--fit-to-minutes)

$PY -m training.train --out "$OUT/stage1" --steps "$STEPS1" --minutes "$STAGE1_MIN" "${common[@]}"
$PY -m chexmask_rt export --checkpoint "$OUT/stage1" --output "$OUT/stage1.onnx" --name chexmask-rt-default --model-version 1-stage1
$PY -m training.pseudo_labels --model "$OUT/stage1.onnx" --data "$DATA" --out "$OUT/pseudo_labels.json" --overlays "$OUT/pseudo_overlays"
TEXTURES=training/textures.json
[ -f "$TEXTURES" ] || TEXTURES="$OUT/pseudo_labels.json"
$PY -m training.train --out "$OUT/stage2" --textures "$TEXTURES" --init "$OUT/stage1" --steps "$STEPS2" --minutes "$STAGE2_MIN" "${common[@]}"
$PY -m chexmask_rt export --checkpoint "$OUT/stage2" --output "$OUT/stage2.onnx" --name chexmask-rt-default --model-version 1
[ "${EVALUATE:-1}" = 1 ] || exit 0
for s in stage1 stage2; do
  $PY -m training.evaluate --model "$OUT/$s.onnx" --data "$DATA" --textures "$TEXTURES" --out "$OUT/$s.metrics.json" --overlays "$OUT/${s}_overlays" > /dev/null
done
cat "$OUT"/stage*.metrics.json
