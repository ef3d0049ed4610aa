#!/usr/bin/env bash
# One call on a lent GPU machine (see /work/.library/device/METHOD.md), prepared so that a session
# that is lent one spends its minutes training the default model (issue 25), not setting up:
#   1. continue training the shipped model (version 10) for most of BUDGET_S, the step plan fitted
#      to the measured rate (--fit-to-minutes) so that the lr has decayed when time is up; the
#      checkpoint goes to $OUT at once, so a later overrun cannot lose it;
#   2. with CHECK=1, issue 22's GPU check (benchmarks/gpu_check.py; its minute trains less).
#
# Before the call, here: bash scripts/prepare_device_session.sh (the packed data, the native core
# for the machine's Python 3.12 and simplejpeg, all checked on a copy of what the machine receives;
# if that core does not load there, this script builds one there from the carried headers).
# The call (one: its start takes 2-4 of the 15 device minutes, so no second call fits; lower
# BUDGET_S when status's budget_left_s is short):
#   run(command="BUDGET_S=575 bash scripts/device_session.sh", timeout_s=600,
#       carry=[".devdata/shared", "runtime/chexmask_rt/_core.cpython-312-x86_64-linux-gnu.so"])
# $OUT comes back with at most 6 files (7 with CHECK=1), each <= 16 MB: the weight average in
# parts (ckpt.part*), the last step's weights (last.part*), run_meta.tgz (configs, training log),
# train.log and, with CHECK=1, gpu_check.tgz. The rc is 0 only when a checkpoint was written.
#
# After the call, here (no device time), with FILES the reply's files_at folder:
#   mkdir -p CKPT && cat FILES/ckpt.part* > CKPT/pytorch_model.bin && tar xzf FILES/run_meta.tgz -C CKPT
#   (the last step's weights: mkdir -p CKPT/last_iterate && cat FILES/last.part* > CKPT/last_iterate/pytorch_model.bin)
#   python -m training.ood_exposure --init CKPT --out CKPT2 --ridge 1e-3 1e-2 1e-1 1 --steps 300
#       (the published loss retrains the variance head: refit it as versions 9 and 10 were; 7 min)
#   chexmask-rt export --checkpoint CKPT2 --output CAND.onnx --name chexmask-rt-default --model-version 11
#   python -m training.evaluate --real --model CAND.onnx --single-look \
#       --against training/checkpoints/default-v10/real_metrics.json --out CAND_real.json
#       (the real-image figures that choose a model; ship it only if it beats version 10 there:
#        OFFSETS=0 bash scripts/ship_default_model.sh CKPT2 11, which overwrites the shipped engine)
#
# Settings (environment): INIT (default version 10), LR, WARMUP, EMA, BATCH, SEED, REAL=0 (the five
# shared textures only), REAL_REPEAT (the real pseudo-labels listed that many times; 2 as in stage
# 14, which made version 10), SHAPE_JITTER, FRAMING, LABELS=shown (MODEL_CARD.md, Metrics).
# Check the plumbing on this machine first (CPU, 3 minutes; it runs this checkout's Python):
#   source .venv/bin/activate && SMOKE=1 OUT=/tmp/devout bash scripts/device_session.sh
set -uo pipefail
OUT=${OUT:?run on the device machine, which sets OUT}
DATA=${DATA:-$PWD/.devdata/shared/data}
BUDGET_S=${BUDGET_S:-575}      # the whole script, inside the call's timeout
CHECK=${CHECK:-0}
RESERVE_S=${RESERVE_S:-$(( CHECK == 1 ? 65 : 25 ))}  # after training: packing (and the GPU check, about 30 s)
EMA=${EMA:-0.999}              # weight average, half-life about 700 of some 5,000 steps (stage 8: 0.998 over 4,400)
BATCH=${BATCH:-64}
LR=${LR:-1e-4}                 # stage 7's at batch 64, continuing a trained model (MODEL_CARD.md)
INIT=${INIT:-training/checkpoints/default-v10}
SHAPE_JITTER=${SHAPE_JITTER:-0.75}  # held-out error grows with distance from the training shapes
FRAMING=${FRAMING:-0}
TEXTURES=(training/textures.json)
if [ "${REAL:-1}" = 1 ]; then
  [ -f "$DATA/real_512/real_textures.json" ] || { echo "no packed real textures: python -m training.pack_device_data"; exit 3; }
  for _ in $(seq "${REAL_REPEAT:-2}"); do TEXTURES+=("$DATA/real_512/real_textures.json"); done
fi
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD${PYTHONPATH:+:$PYTHONPATH}" OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1
# the carried simplejpeg for Python 3.12 (prepare_device_session.sh), only where none is installed
python -c "import simplejpeg" 2>/dev/null || export PYTHONPATH="$PYTHONPATH:$DATA/../site"
T0=$SECONDS
if [ "${SMOKE:-0}" = 1 ]; then
  mkdir -p "$OUT"  # the machine makes it; here the caller names it
  # the GPU check's smoke run takes about 80 s on a 2-core CPU
  DEVICE=cpu WORKERS=2 BATCH=2 CHECK_ARGS="--smoke --device cpu" BUDGET_S=${BUDGET_S_SMOKE:-200} RESERVE_S=$(( CHECK == 1 ? 110 : 40 ))
else
  DEVICE=cuda WORKERS=${WORKERS:-14} CHECK_ARGS=""
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  nproc
fi
# the carried core, built here for Python 3.12; where it does not load (other system libraries), built
# there from the checkout and the carried ONNX Runtime headers (about a minute)
if ! python -c "import chexmask_rt._core" 2>/dev/null && [ -d "$DATA/../ort-include" ]; then
  echo "building the native core for this machine's $(python --version)"
  cmake -S . -B /tmp/core_build -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v python)" \
    -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" -DONNXRUNTIME_INCLUDE_DIR="$DATA/../ort-include" \
    -DCHEXMASK_RT_PYTHON_OUTPUT_DIR="$PWD/runtime/chexmask_rt" > /tmp/core_build.log 2>&1 \
    && cmake --build /tmp/core_build -j"$(nproc)" --target _core >> /tmp/core_build.log 2>&1 \
    || tail -n 20 /tmp/core_build.log
fi
# what training imports, before a second of training: the native core and simplejpeg are carried
python -c "import torch, numpy, cv2, chexmask_rt._core, training.train; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__)" \
  || { echo "cannot import the training code: run scripts/prepare_device_session.sh and carry its paths (header)"; exit 4; }

TRAIN_S=$(( BUDGET_S - RESERVE_S - (SECONDS - T0) ))
MINUTES=$(python -c "print(round($TRAIN_S / 60, 2))")
echo "training for $MINUTES min: batch $BATCH, lr $LR, shape jitter $SHAPE_JITTER, framing $FRAMING, $WORKERS workers, from $INIT, textures ${TEXTURES[*]}"
RUN=/tmp/finetune
[ "${SMOKE:-0}" = 1 ] && RUN=$(mktemp -d)  # a shared development machine: never another run's folder
rm -rf "$RUN" /tmp/gpu_check  # a second call on a warm machine must not append to, or ship, the first one's files
timeout $(( TRAIN_S + 45 )) python -m training.train --out "$RUN" --data "$DATA" \
  --textures "${TEXTURES[@]}" --init "$INIT" --inputsize 512 \
  --batch-size "$BATCH" --workers "$WORKERS" --device "$DEVICE" --lr "$LR" --warmup-steps "${WARMUP:-300}" --seed "${SEED:-43}" --steps 6000 --labels "${LABELS:-planned}" --ema "$EMA" --shape-jitter "$SHAPE_JITTER" --framing "$FRAMING" \
  --minutes "$MINUTES" --fit-to-minutes > "$OUT/train.log" 2>&1
echo "train exit $? after $((SECONDS - T0)) s"; tr '\r' '\n' < "$OUT/train.log" | grep -a -E "planned|budget|wrote|Error|error" | tail -n 8
[ -f "$RUN/pytorch_model.bin" ] || { echo "no checkpoint written: see train.log"; exit 5; }
split -b 15M "$RUN/pytorch_model.bin" "$OUT/ckpt.part"
META="config.json train_log.jsonl"
if [ -f "$RUN/last_iterate/pytorch_model.bin" ]; then
  split -b 15M "$RUN/last_iterate/pytorch_model.bin" "$OUT/last.part"
  META="$META last_iterate/config.json"
fi
tar czf "$OUT/run_meta.tgz" -C "$RUN" $META
head -n 1 "$RUN/train_log.jsonl"; tail -n 1 "$RUN/train_log.jsonl"

if [ "$CHECK" = 1 ]; then
  LEFT=$(( BUDGET_S - (SECONDS - T0) ))
  echo "GPU check with $LEFT s left"
  mkdir -p /tmp/gpu_check
  timeout $(( LEFT > 20 ? LEFT : 20 )) python -m benchmarks.gpu_check $CHECK_ARGS --data "$DATA/images" --out /tmp/gpu_check > /tmp/gpu_check/gpu_check.log 2>&1
  echo "gpu_check exit $? after $((SECONDS - T0)) s"; tail -n 16 /tmp/gpu_check/gpu_check.log
  tar czf "$OUT/gpu_check.tgz" -C /tmp/gpu_check .
fi
ls -la "$OUT"; echo "done after $((SECONDS - T0)) s"
