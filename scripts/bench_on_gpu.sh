#!/usr/bin/env bash
# Run bench/qa.py on the lent GPU (set-up as in train_on_gpu.sh: call 1 `train_on_gpu.sh part1`
# carrying .gguf1, then this carrying .gguf2 .whl .data). Extra arguments go to bench/qa.py.
set -euo pipefail
source scripts/gpu_model.sh
python3 bench/qa.py --data .data/squad-v2-dev-subset.json --out "${OUT:-bench/results}/qa-gpu.json" "$@" 2>&1 | grep -v 'it/s'
