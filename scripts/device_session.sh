#!/usr/bin/env bash
# One call on a lent GPU machine (see /work/.library/device/METHOD.md), prepared so a session
# that is lent one spends its minutes training, not setting up:
#   1. issue 5: continue training the shipped model for most of BUDGET_S, with the step plan
#      fitted to the measured rate (--fit-to-minutes) so the lr has decayed when time is up;
#      the checkpoint goes to $OUT at once, so a later overrun cannot lose it;
#   2. issue 4's GPU check (benchmarks/gpu_check.py): CUDA graphs fp32/fp16 vs the reference.
# Export and evaluation run afterwards on the development machine, which costs no device time:
#   cat OUT/ckpt.part* > CKPT/pytorch_model.bin; tar xzf OUT/run_meta.tgz -C CKPT
# Everything goes to $OUT in at most 8 files (the most the device returns, each <= 16 MB): the
# checkpoint in parts, run_meta.tgz (config, training log), train.log, the GPU check's .json/.md/log.
# Needs the shared data carried with the working tree as .devdata/shared/data
# (mkdir -p .devdata/shared && cp -r ../shared/data .devdata/shared/), and the device's own
# torch/onnxruntime stack.
#   run: bash scripts/device_session.sh        (carry [".devdata/shared"], timeout_s 600)
#   continue a checkpoint that is not in the repository: copy it to .devdata/NAME, carry that too,
#   and set INIT=.devdata/NAME (a second, shorter call: BUDGET_S=215 RESERVE_S=45 LR=1e-4 WARMUP=100)
#   LABELS=shown labels each render by where it shows the texture's landmarks (MODEL_CARD.md, Metrics)
#   check the plumbing here first: SMOKE=1 OUT=/tmp/devout bash scripts/device_session.sh
set -uo pipefail
OUT=${OUT:?run on the device machine, which sets OUT}
DATA=${DATA:-$PWD/.devdata/shared/data}
BUDGET_S=${BUDGET_S:-575}      # the whole script, inside the call's timeout
RESERVE_S=${RESERVE_S:-65}     # after training: packing, the GPU check (about 30 s)
BATCH=${BATCH:-64}
LR=${LR:-2e-4}
INIT=${INIT:-training/checkpoints/default-v4}
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD" OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
T0=$SECONDS
if [ "${SMOKE:-0}" = 1 ]; then
  # the GPU check's smoke run takes about 80 s on a 2-core CPU
  DEVICE=cpu WORKERS=2 BATCH=2 CHECK_ARGS="--smoke --device cpu" BUDGET_S=${BUDGET_S_SMOKE:-200} RESERVE_S=110
else
  DEVICE=cuda WORKERS=${WORKERS:-14} CHECK_ARGS=""
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  nproc
fi
python -c "import torch, onnxruntime, numpy, cv2; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__)"

TRAIN_S=$(( BUDGET_S - RESERVE_S - (SECONDS - T0) ))
MINUTES=$(python -c "print(round($TRAIN_S / 60, 2))")
echo "training for $MINUTES min: batch $BATCH, lr $LR, $WORKERS workers, from $INIT"
RUN=/tmp/finetune
timeout $(( TRAIN_S + 45 )) python -m training.train --out "$RUN" --data "$DATA" \
  --textures training/textures.json --init "$INIT" --inputsize 512 \
  --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --lr "$LR" --warmup-steps "${WARMUP:-300}" --seed "${SEED:-11}" --steps 6000 --labels "${LABELS:-planned}" \
  --minutes "$MINUTES" --fit-to-minutes > "$OUT/train.log" 2>&1
echo "train exit $? after $((SECONDS - T0)) s"; tr '\r' '\n' < "$OUT/train.log" | grep -a -E "planned|budget|wrote|Error|error" | tail -n 8
split -b 15M "$RUN/pytorch_model.bin" "$OUT/ckpt.part" && tar czf "$OUT/run_meta.tgz" -C "$RUN" config.json train_log.jsonl
head -n 2 "$RUN/train_log.jsonl"; tail -n 2 "$RUN/train_log.jsonl"

LEFT=$(( BUDGET_S - (SECONDS - T0) ))
echo "GPU check with $LEFT s left"
timeout $(( LEFT > 20 ? LEFT : 20 )) python -m benchmarks.gpu_check $CHECK_ARGS --data "$DATA/images" --out "$OUT" > "$OUT/gpu_check.log" 2>&1
echo "gpu_check exit $? after $((SECONDS - T0)) s"; tail -n 16 "$OUT/gpu_check.log"
ls -la "$OUT"; echo "done after $((SECONDS - T0)) s"
