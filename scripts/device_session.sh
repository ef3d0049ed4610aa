#!/usr/bin/env bash
# One call on a lent GPU machine (see /work/.library/device/METHOD.md), prepared so a session
# that is lent one spends its minutes measuring, not setting up:
#   1. issue 4's GPU check (benchmarks/gpu_check.py): CUDA graphs fp32/fp16 vs the reference;
#   2. issue 5: continue training the shipped model for TRAIN_MIN minutes with the lr decaying
#      over the planned steps, export it, evaluate it on the held-out shapes.
# Everything it makes goes to $OUT, in 8 files (the most the device returns, each <= 16 MB): the
# checkpoint in parts (cat ckpt.part* > pytorch_model.bin), run_meta.tgz (config + training log).
# Needs the shared data carried with the working tree as .devdata/shared/data
# (cp -r ../shared/data .devdata/shared/), and the device's own torch/onnxruntime stack.
#   run: bash scripts/device_session.sh        (carry [".devdata"], timeout_s 590)
set -uo pipefail
OUT=${OUT:?run on the device machine, which sets OUT}
DATA=${DATA:-$PWD/.devdata/shared/data}
TRAIN_MIN=${TRAIN_MIN:-5.5}
STEPS=${STEPS:-6000}
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD" OPENBLAS_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

timeout 150 python -m benchmarks.gpu_check --data "$DATA/images" --out "$OUT" > "$OUT/gpu_check.log" 2>&1
echo "gpu_check exit $?"; tail -n 12 "$OUT/gpu_check.log"

RUN=/tmp/finetune
timeout $(( ${TRAIN_MIN%.*} * 60 + 120 )) python -m training.train --out "$RUN" --data "$DATA" \
  --textures training/textures.json --init training/checkpoints/default-v2 --inputsize 512 \
  --batch-size 16 --workers 14 --device cuda --lr 2e-4 --seed 7 --steps "$STEPS" --minutes "$TRAIN_MIN" \
  > "$OUT/train.log" 2>&1
echo "train exit $?"; tail -c 400 "$OUT/train.log"; echo
python -m chexmask_rt export --checkpoint "$RUN" --output "$RUN/model.onnx" --name chexmask-rt-default \
  --model-version candidate > /dev/null && \
python -m training.evaluate --model "$RUN/model.onnx" --data "$DATA" --textures training/textures.json \
  --samples 20 --out "$OUT/metrics.json" > /dev/null 2>&1
echo "evaluate exit $?"; python - "$OUT/metrics.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print("wiki_example1", round(m["wiki_example1_mean_px_1024"], 2), "px; held-out all",
      round(m["heldout_shapes_on_real_textures"]["all"]["mean_px"], 2), "px")
EOF
split -b 15M "$RUN/pytorch_model.bin" "$OUT/ckpt.part" && tar czf "$OUT/run_meta.tgz" -C "$RUN" config.json train_log.jsonl
ls -la "$OUT"
