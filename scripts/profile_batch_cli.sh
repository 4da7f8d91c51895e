#!/usr/bin/env bash
# The batch CLI's main process under py-spy on the lent GPU host, where its one process (reading, hashing,
# registering, writing; handing batches to the workers and taking their results) bounds a multi-GPU run:
# which code holds the interpreter lock, by thread. Model set-up as in train_on_gpu.sh (part1, part2;
# py-spy's wheel travels in .gpu/whl: pip download --no-deps -d .gpu/whl py-spy).
#   bash scripts/profile_batch_cli.sh DOCS [batch CLI arguments]   → $OUT/cli-main.raw (py-spy's raw stacks)
set -euo pipefail
source scripts/gpu_model.sh bench
export TOKENIZERS_PARALLELISM=true
DOCS=${1:?how many SQuAD paragraphs}; shift
OUT=${OUT:-/root/work/out}; F=/root/work/cli-docs; mkdir -p "$OUT"; rm -rf $F /root/work/cli.db*; mkdir -p $F
python3 - "$DOCS" $F <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "bench")
from batch import paragraphs, write_documents  # bench/batch.py: the same folder as its CLI rows
write_documents(paragraphs(Path("/root/data/squad-v1.0-train.json.gz"), int(sys.argv[1])), Path(sys.argv[2]))
PY
/tmp/site/bin/py-spy record -r 250 --gil -f raw -o "$OUT/cli-main.raw" -- \
  python3 -m batch compress $F --db /root/work/cli.db --no-progress "$@"
