#!/usr/bin/env bash
# One call on a lent GPU machine (see /work/.library/device/METHOD.md), prepared so a session
# that is lent one spends its minutes training, not setting up:
#   1. issue 5: continue training the shipped model for most of BUDGET_S, with the step plan
#      fitted to the measured rate (--fit-to-minutes) so the lr has decayed when time is up;
#      the checkpoint goes to $OUT at once, so a later overrun cannot lose it;
#   2. with CHECK=1, issue 4's GPU check (benchmarks/gpu_check.py): CUDA graphs fp32/fp16 vs the
#      reference (measured on an H200 on 2026-11-27, README; off by default: its minute trains).
# Export and evaluation run afterwards on the development machine, which costs no device time:
#   cat OUT/ckpt.part* > CKPT/pytorch_model.bin; tar xzf OUT/run_meta.tgz -C CKPT
#   (with EMA on, OUT/last.part* are the last step's weights: cat them > CKPT/last_iterate/pytorch_model.bin)
#   the published loss retrains the variance head too: refit it before comparing (python -m
#   training.ood_exposure --init CKPT --out CKPT2; version 9's latent sigma comes from that, MODEL_CARD.md),
#   then compare it with the shipped model: python -m training.landmark_offsets --checkpoint CKPT ...,
#   export, then python -m training.evaluate --real --model ENGINE (the real-image figures that choose a
#   model) and the synthetic training.evaluate; scripts/ship_default_model.sh CKPT N does all of that when it ships
# Everything goes to $OUT in at most 8 files (the most the device returns, each <= 16 MB): the
# checkpoint in parts (the weight average, and the last step's weights when EMA is on),
# run_meta.tgz (configs, training log), train.log, gpu_check.tgz.
# Needs the shared data carried with the working tree as .devdata/shared/data, packed small
# (python -m training.pack_device_data: images/, landmarks/ and the training patients' real
# Hannover textures at 512 px, 8.8 MiB; ../shared/data itself is 120 MB, too big), and the device's own
# torch/onnxruntime stack.
#   run: bash scripts/device_session.sh        (carry [".devdata/shared"], timeout_s 600)
#   continue a checkpoint that is not in the repository: copy it to .devdata/NAME, carry that too,
#   and set INIT=.devdata/NAME (a second, shorter call: BUDGET_S=215 LR=5e-5 WARMUP=100)
#   LABELS=shown labels each render by where it shows the texture's landmarks (MODEL_CARD.md, Metrics)
#   SHAPE_JITTER=0 trains on the real shapes only (default 0.75: half of them moved along the
#   training set's main modes, training.data.jitter_shape; MODEL_CARD.md, "Where the error is")
#   FRAMING=0.3 frames that share of the samples wide to tight (training.data.framed_affine; off by
#   default: on the CPU it cost held-out accuracy, MODEL_CARD.md, "Framing")
#   REAL=0 trains on the five shared textures only (default 1: also the packed real textures,
#   real_512/real_textures.json, V7-extent-corrected pseudo-labels; MODEL_CARD.md, "Real radiographs")
#   check the plumbing here first: SMOKE=1 OUT=/tmp/devout bash scripts/device_session.sh
set -uo pipefail
OUT=${OUT:?run on the device machine, which sets OUT}
DATA=${DATA:-$PWD/.devdata/shared/data}
BUDGET_S=${BUDGET_S:-575}      # the whole script, inside the call's timeout
CHECK=${CHECK:-0}
RESERVE_S=${RESERVE_S:-$(( CHECK == 1 ? 65 : 25 ))}  # after training: packing (and the GPU check, about 30 s)
EMA=${EMA:-0.999}              # weight average, half-life about 700 steps (MODEL_CARD.md, stage 8)
BATCH=${BATCH:-64}
LR=${LR:-1e-4}                 # continuing a trained model: small lrs helped most (MODEL_CARD.md, stage 8)
INIT=${INIT:-training/checkpoints/default-v10}
SHAPE_JITTER=${SHAPE_JITTER:-0.75}  # held-out error grows with distance from the training shapes
FRAMING=${FRAMING:-0}
TEXTURES=(training/textures.json)
if [ "${REAL:-1}" = 1 ]; then
  [ -f "$DATA/real_512/real_textures.json" ] || { echo "no packed real textures: python -m training.pack_device_data"; exit 3; }
  TEXTURES+=("$DATA/real_512/real_textures.json")
fi
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD" OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
T0=$SECONDS
if [ "${SMOKE:-0}" = 1 ]; then
  # the GPU check's smoke run takes about 80 s on a 2-core CPU
  DEVICE=cpu WORKERS=2 BATCH=2 CHECK_ARGS="--smoke --device cpu" BUDGET_S=${BUDGET_S_SMOKE:-200} RESERVE_S=$(( CHECK == 1 ? 110 : 40 ))
else
  DEVICE=cuda WORKERS=${WORKERS:-14} CHECK_ARGS=""
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  nproc
fi
python -c "import torch, onnxruntime, numpy, cv2; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__)"

TRAIN_S=$(( BUDGET_S - RESERVE_S - (SECONDS - T0) ))
MINUTES=$(python -c "print(round($TRAIN_S / 60, 2))")
echo "training for $MINUTES min: batch $BATCH, lr $LR, shape jitter $SHAPE_JITTER, framing $FRAMING, $WORKERS workers, from $INIT, textures ${TEXTURES[*]}"
RUN=/tmp/finetune
rm -rf "$RUN" /tmp/gpu_check  # a second call on a warm machine must not append to, or ship, the first one's files
timeout $(( TRAIN_S + 45 )) python -m training.train --out "$RUN" --data "$DATA" \
  --textures "${TEXTURES[@]}" --init "$INIT" --inputsize 512 \
  --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --lr "$LR" --warmup-steps "${WARMUP:-300}" --seed "${SEED:-43}" --steps 6000 --labels "${LABELS:-planned}" --ema "$EMA" --shape-jitter "$SHAPE_JITTER" --framing "$FRAMING" \
  --minutes "$MINUTES" --fit-to-minutes > "$OUT/train.log" 2>&1
echo "train exit $? after $((SECONDS - T0)) s"; tr '\r' '\n' < "$OUT/train.log" | grep -a -E "planned|budget|wrote|Error|error" | tail -n 8
split -b 15M "$RUN/pytorch_model.bin" "$OUT/ckpt.part"
META="config.json train_log.jsonl"
if [ -f "$RUN/last_iterate/pytorch_model.bin" ]; then
  split -b 15M "$RUN/last_iterate/pytorch_model.bin" "$OUT/last.part"
  META="$META last_iterate/config.json"
fi
tar czf "$OUT/run_meta.tgz" -C "$RUN" $META
head -n 2 "$RUN/train_log.jsonl"; tail -n 2 "$RUN/train_log.jsonl"

if [ "$CHECK" = 1 ]; then
  LEFT=$(( BUDGET_S - (SECONDS - T0) ))
  echo "GPU check with $LEFT s left"
  mkdir -p /tmp/gpu_check
  timeout $(( LEFT > 20 ? LEFT : 20 )) python -m benchmarks.gpu_check $CHECK_ARGS --data "$DATA/images" --out /tmp/gpu_check > /tmp/gpu_check/gpu_check.log 2>&1
  echo "gpu_check exit $? after $((SECONDS - T0)) s"; tail -n 16 /tmp/gpu_check/gpu_check.log
  tar czf "$OUT/gpu_check.tgz" -C /tmp/gpu_check .
fi
ls -la "$OUT"; echo "done after $((SECONDS - T0)) s"
