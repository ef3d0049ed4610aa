#!/usr/bin/env bash
# Ship a trained checkpoint as the package's default model, redoing every artefact that
# depends on its weights, in the order they depend on each other:
#   bash scripts/ship_default_model.sh training/checkpoints/default-vN N
# 0. the checkpoint's per-landmark offsets (CKPT/landmark_offsets.json, training.landmark_offsets),
#    fitted on synthetic renders; OFFSETS=0 ships without them (for version 7 they cost 1.5 px on
#    the real outer extent, MODEL_CARD.md);
# 1. the engine (runtime/chexmask_rt/models/default.onnx), its metadata naming the version, with the raw
#    decodes as an output (the measures' std over the samples, chexmask_rt.measures);
# 2. the reliability flag's thresholds for it, calibrated on the training patients' real radiographs
#    and judged on the validation patients' (runtime/chexmask_rt/models/default.quality.json);
# 3. the paper's uncertainty experiments (benchmarks/results/uncertainty_behaviour.{json,png}) and the
#    framing sweep (benchmarks/results/framing.{json,png});
# 4. the model card's metrics: on real radiographs, with one call and the second look
#    (CKPT/real_metrics.json, training.evaluate --real), then the synthetic ones with the runtime's
#    engine's default, one call (CKPT/metrics.json), and with the second look (CKPT/metrics_second_look.json),
#    and the overlays of every shared real image (OVERLAYS, default /tmp/overlays-vN: look at them
#    before shipping);
# 5. the README's picture (docs/overlay_chest_pa.png).
# Left to you: MODEL_CARD.md and README.md, tests/test_runtime.py (model id and checkpoint),
# benchmarks/run.py's default checkpoint and scripts/device_session.sh's INIT.
set -euo pipefail
CKPT=${1:?checkpoint folder}
VERSION=${2:?model version}
OVERLAYS=${OVERLAYS:-/tmp/overlays-v$VERSION}
ENGINE=runtime/chexmask_rt/models/default.onnx
export PYTHONPATH="$PWD/runtime:$PWD/export:$PWD"
if [ "${OFFSETS:-1}" = 1 ]; then
  python -m training.landmark_offsets --checkpoint "$CKPT" --textures training/textures.json
else
  rm -f "$CKPT/landmark_offsets.json"  # the export would add a file lying beside the weights
fi
# the second look is off by default: on real radiographs it did not pay for its doubled time (version 8:
# 19.28 -> 18.70 px, better on 14 of 31 images, Wilcoxon p 0.41; MODEL_CARD.md); SECOND_LOOK=1 turns it on
SECOND=()
[ "${SECOND_LOOK:-0}" = 1 ] && SECOND=(--second-look)
python -m chexmask_rt export --checkpoint "$CKPT" --output "$ENGINE" --name chexmask-rt-default \
  --model-version "$VERSION" "${SECOND[@]}" --samples-output --description "HybridGNet (skip), inputsize 512, trained on real shapes + \
thin-plate-spline-warped real radiographs; see MODEL_CARD.md. Research and engineering use, not a medical device."
(cd "$(dirname "$ENGINE")" && sha256sum default.onnx > default.onnx.sha256)  # load() opens only this file
python -m benchmarks.calibrate_quality --real --write
python -m benchmarks.uncertainty_behaviour
python -m benchmarks.framing
python -m training.evaluate --real --model "$ENGINE" --out "$CKPT/real_metrics.json" > /dev/null
python -m training.evaluate --model "$ENGINE" --textures training/textures.json --out "$CKPT/metrics.json" \
  --overlays "$OVERLAYS"
python -m training.evaluate --model "$ENGINE" --textures training/textures.json --second-look \
  --out "$CKPT/metrics_second_look.json"
python -m chexmask_rt predict runtime/chexmask_rt/samples/chest_pa_cc0.jpg --samples 50 --json /tmp/overlay.json \
  --overlay docs/overlay_chest_pa.png
echo "shipped $CKPT as chexmask-rt-default:$VERSION; overlays to look at: $OVERLAYS"
