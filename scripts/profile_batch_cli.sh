#!/usr/bin/env bash
# The batch CLI's main process under py-spy on the lent GPU host, where its one process (reading, hashing,
# registering, writing; handing batches to the workers and taking their results) bounds a multi-GPU run:
# which code holds the interpreter lock, by thread. Model set-up as in train_on_gpu.sh (part1, part2;
# py-spy's wheel travels in .gpu/spy, carried instead of .gpu/p4 on a later call: with it in .gpu/whl the
# work call passed the 64 MiB a call carries. Prepare: pip download --no-deps -d .gpu/spy py-spy).
#   bash scripts/profile_batch_cli.sh DOCS [batch CLI arguments]   → $OUT/cli-main.raw (py-spy's raw stacks)
# Sampling: --gil, 50 Hz, no --idle, a few thousand documents. Session 7's first try (250 Hz with --idle, on
# a process with dozens of threads) fell 45 s behind, its raw file was too big to come back, and the run
# timed out.
set -euo pipefail
source scripts/gpu_model.sh bench
export TOKENIZERS_PARALLELISM=true
DOCS=${1:?how many SQuAD paragraphs}; shift
OUT=${OUT:-$WORK/out}; F=$WORK/cli-docs; mkdir -p "$OUT"; rm -rf $F $WORK/cli.db*; mkdir -p $F
python3 - "$DOCS" $F "$DATA" <<'PY'
import sys
from pathlib import Path
from bench.batch import paragraphs, write_documents  # the same folder as bench/batch.py's CLI rows
write_documents(paragraphs(Path(sys.argv[3]) / "squad-v1.0-train.json.gz", int(sys.argv[1])), Path(sys.argv[2]))
PY
SPY=/tmp/spy/py-spy  # the wheel's binary, taken out of the wheel (no pip install needed)
if [ ! -x $SPY ]; then
  mkdir -p /tmp/spy/whl && python3 -m zipfile -e .gpu/spy/py_spy*.whl /tmp/spy/whl
  cp /tmp/spy/whl/py_spy-*.data/scripts/py-spy $SPY && chmod +x $SPY
fi
$SPY record -r 50 --gil -f raw -o "$OUT/cli-main.raw" -- \
  python3 -m hyco2.batch compress $F --db $WORK/cli.db --no-progress "$@"
