#!/usr/bin/env bash
# bench/qa.py on every GPU of the lent machine at once: for each K, one process a GPU measures a
# quarter of the questions (two processes share each GPU); merged into $OUT/qa-gpu.json (+ .md).
# Model set-up as in train_on_gpu.sh (part1, part2 first).
#   bash scripts/bench_on_gpu.sh CHECKPOINT [more bench/qa.py arguments]
# PARAGRAPHS="1 5 20" picks the K settings; ARGS_K20="--rates 0.06 --limit 400" adds arguments for one K;
# VALIDATION="..." also measures the validation set (Normans + CCT, K=1) with those bench/qa.py arguments on
# GPU 0 ($OUT/val.json, .md: for choosing between checkpoints without looking at the measurement set);
# BATCH_BENCH="..." then runs bench/batch.py with those arguments (results under $OUT too); with
# BATCH_BASE=FOLDER, also the bench/batch.py of an older checkout in FOLDER (its hyco2, batch and bench,
# this one's checkpoints), right after with BASE_ARGS (default: the same arguments; give the older
# script's subset when it lacks some, e.g. --compile or --profile): before and after on the same machine.
# Prepare it here with: git archive REV hyco2 batch bench ':!hyco2/checkpoints' ':!bench/results' | tar -x -C .gpu/base
set -euo pipefail
source scripts/gpu_model.sh bench
CKPT=${1:?checkpoint folder}; shift
OUT=${OUT:-$WORK/out}; B=$WORK/bench; mkdir -p "$OUT" $B
for K in ${PARAGRAPHS:-1 5}; do
  extra_var=ARGS_K$K; extra=${!extra_var:-}
  for i in $(seq 0 $((NGPU - 1))); do
    CUDA_VISIBLE_DEVICES=$i timeout "${BENCH_TIMEOUT:-480}" python3 bench/qa.py --data-dir $DATA \
      --checkpoint "$CKPT" --paragraphs "$K" --shard "$i/$NGPU" --batch-size 64 --out $B/k$K-s$i.json "$@" $extra \
      > $B/k$K-s$i.log 2>&1 &
  done
done
if [ -n "${VALIDATION:-}" ]; then
  CUDA_VISIBLE_DEVICES=0 timeout "${BENCH_TIMEOUT:-480}" python3 bench/qa.py --data-dir $DATA --set validation \
    --checkpoint "$CKPT" --paragraphs 1 --batch-size 64 --out $B/val.json $VALIDATION > $B/val.log 2>&1 &
fi
wait || true
if [ -n "${VALIDATION:-}" ]; then
  python3 bench/report.py $B/val.json --data-dir $DATA > "$OUT/val.md" 2>&1 || true; cp $B/val.json "$OUT/" || true
fi
tr '\r' '\n' < $B/k1-s0.log | grep -v -E '^\s*$|Loading' | tail -n 4 || true
python3 bench/report.py --merge $B/k*-s*.json --out "$OUT/qa-gpu.json" > "$OUT/qa-gpu.md"
cat "$OUT/qa-gpu.md"
(cd $B && tar czf "$OUT/bench-logs.tgz" *.log)
if [ -n "${BATCH_BENCH:-}" ]; then
  export TOKENIZERS_PARALLELISM=true  # as a user's run has it (the training calls turn it off)
  python3 bench/batch.py --data $DATA/squad-v1.0-train.json.gz --out "$OUT/batch-gpu.json" $BATCH_BENCH \
    > "$OUT/batch-gpu.md" 2>&1 || true
  grep -v Warning "$OUT/batch-gpu.md" | tail -n 40
  if [ -n "${BATCH_BASE:-}" ]; then
    ln -sfn "$PWD/hyco2/checkpoints" "$BATCH_BASE/hyco2/checkpoints"
    PYTHONPATH=/tmp/site:$PWD/$BATCH_BASE python3 "$BATCH_BASE/bench/batch.py" --data $DATA/squad-v1.0-train.json.gz \
      --out "$OUT/batch-gpu-base.json" ${BASE_ARGS:-$BATCH_BENCH} > "$OUT/batch-gpu-base.md" 2>&1 || true
    grep -v Warning "$OUT/batch-gpu-base.md" | tail -n 12
  fi
fi
