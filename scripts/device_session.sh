#!/usr/bin/env bash
# One call on a lent GPU machine (see /work/.library/device/METHOD.md), prepared so a session
# that is lent one spends its minutes measuring, not setting up:
#   1. issue 4's GPU check (benchmarks/gpu_check.py): CUDA graphs fp32/fp16 vs the reference;
#   2. issue 5: continue training the shipped model for the rest of BUDGET_S, with the step plan
#      fitted to the measured rate (--fit-to-minutes) so the lr has decayed when time is up;
#      export it and evaluate it on the held-out shapes.
# Everything it makes goes to $OUT, in 8 files (the most the device returns, each <= 16 MB): the
# checkpoint in parts (cat ckpt.part* > pytorch_model.bin), run_meta.tgz (config, training log, the
# GPU check's and the evaluation's logs), train.log, metrics.json and the GPU check's .json/.md.
# Needs the shared data carried with the working tree as .devdata/shared/data
# (mkdir -p .devdata/shared && cp -r ../shared/data .devdata/shared/), and the device's own
# torch/onnxruntime stack.
#   run: bash scripts/device_session.sh        (carry [".devdata"], timeout_s 580)
#   check the plumbing here first: SMOKE=1 OUT=/tmp/devout bash scripts/device_session.sh
set -uo pipefail
OUT=${OUT:?run on the device machine, which sets OUT}
DATA=${DATA:-$PWD/.devdata/shared/data}
BUDGET_S=${BUDGET_S:-540}      # the whole script, inside the call's timeout
RESERVE_S=${RESERVE_S:-80}     # after training: export, evaluation, packing
BATCH=${BATCH:-32}
LR=${LR:-2e-4}
INIT=${INIT:-training/checkpoints/default-v3}
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD" OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
T0=$SECONDS
LOGS=$(mktemp -d)
if [ "${SMOKE:-0}" = 1 ]; then
  DEVICE=cpu WORKERS=2 BATCH=2 CHECK_ARGS="--smoke --device cpu" EVAL_SAMPLES=2 BUDGET_S=${BUDGET_S_SMOKE:-150}
else
  DEVICE=cuda WORKERS=${WORKERS:-14} CHECK_ARGS="" EVAL_SAMPLES=20
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader
fi
python -c "import torch, onnxruntime, numpy, cv2; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__)"

timeout 150 python -m benchmarks.gpu_check $CHECK_ARGS --data "$DATA/images" --out "$OUT" > "$LOGS/gpu_check.log" 2>&1
echo "gpu_check exit $? after $((SECONDS - T0)) s"; tail -n 16 "$LOGS/gpu_check.log"

TRAIN_S=$(( BUDGET_S - RESERVE_S - (SECONDS - T0) ))
MINUTES=$(python -c "print(round($TRAIN_S / 60, 2))")
echo "training for $MINUTES min: batch $BATCH, lr $LR, $WORKERS workers, from $INIT"
RUN=/tmp/finetune
timeout $(( TRAIN_S + 60 )) python -m training.train --out "$RUN" --data "$DATA" \
  --textures training/textures.json --init "$INIT" --inputsize 512 \
  --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --lr "$LR" --warmup-steps "${WARMUP:-300}" --seed 7 --steps 6000 \
  --minutes "$MINUTES" --fit-to-minutes > "$OUT/train.log" 2>&1
echo "train exit $? after $((SECONDS - T0)) s"; tr '\r' '\n' < "$OUT/train.log" | grep -a -E "planned|budget|wrote|Error|error" | tail -n 8
tail -n 2 "$RUN/train_log.jsonl"
python -m chexmask_rt export --checkpoint "$RUN" --output "$RUN/model.onnx" --name chexmask-rt-default \
  --model-version candidate > /dev/null && \
python -m training.evaluate --model "$RUN/model.onnx" --data "$DATA" --textures training/textures.json \
  --samples "$EVAL_SAMPLES" --out "$OUT/metrics.json" > "$LOGS/evaluate.log" 2>&1
echo "evaluate exit $? after $((SECONDS - T0)) s"; python - "$OUT/metrics.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print("wiki_example1", round(m["wiki_example1_mean_px_1024"], 2), "px; held-out all",
      round(m["heldout_shapes_on_real_textures"]["all"]["mean_px"], 2), "px")
EOF
split -b 15M "$RUN/pytorch_model.bin" "$OUT/ckpt.part" && tar czf "$OUT/run_meta.tgz" -C "$RUN" config.json train_log.jsonl -C "$LOGS" .
ls -la "$OUT"; echo "done after $((SECONDS - T0)) s"
