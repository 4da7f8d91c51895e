#!/usr/bin/env bash
# Compression fidelity on one lent GPU (issue "Compression fidelity"): train toward the same reader and
# measure against it. Model set-up as in scripts/gpu_model.sh (part1, part2, part3 first, then carry .gpu/p4
# .gpu/whl .gpu/data with call a). Every process writes its JSON as rows come, under $OUT.
#   bash scripts/fidelity_on_gpu.sh a SECONDS   the same-reader teacher cache (HyCo2's reader at rate 1.0, the
#       shipped checkpoint) on SAMPLE training questions; then two stage-3 variants from the shipped checkpoint
#       in parallel (VA: no gap, VB: GAP_B, default KEPT_GAP, between non-adjacent kept spans, at LR_B); meanwhile the shipped
#       checkpoint's baseline on the measurement set (K=1, K=10 from other articles; peers and the soft +
#       LongLLMLingua selection) and its reader-format ablations on the validation articles
#   bash scripts/fidelity_on_gpu.sh measure SECONDS   only the shipped checkpoint's rows (as in a, no training):
#       the measurement set at K=1 and K=10 (other articles) with peers, the hybrid without phrases (--phrases 0) and (K=1) kept tokens at
#       their original positions; the same reader-format ablations on the validation articles
#       (K1_ARGS, K10_ARGS, VAL_ARGS replace each run's rows, e.g. the kept-stretches ablation of session 13:
#       K1_ARGS="--rates 0.15 0.1 --methods --no-ablations --spans 1 2 3" K10_SHARDS=12
#       K10_ARGS="--rates 0.1 --methods longllmlingua --selectors longllmlingua --no-ablations --spans 1 2 3"
#       VAL_ARGS="--rates 0.1 0.15 --methods --no-ablations --spans 1 2 3 4")
#   bash scripts/fidelity_on_gpu.sh b SECONDS [TRAIN_SECONDS]   both variants trained on for TRAIN_SECONDS, then
#       measured beside the shipped checkpoint on the validation articles and the measurement set
set -euo pipefail
phase=${1:?usage: fidelity_on_gpu.sh part1|part2|part3|a SECONDS|b SECONDS [TRAIN_SECONDS]|measure SECONDS|long SECONDS|compare SECONDS}
source scripts/gpu_model.sh "$phase"
export OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # many processes share one GPU, 16 cores
# Seen on one H200 (session 9): 14 processes at once (bench shards + 4 cache builders with eager attention at
# batch 128) ran out of the card's 140 GB, and the cache of 16k questions took 338 s: keep the cache to two
# processes at batch 64, and do not bench beside it.
W=$WORK; mkdir -p $W/bench; OUT=${OUT:-$W/out}; mkdir -p "$OUT"
END=$(( $(date +%s) + ${2:-560} ))
SHIPPED=${BASE:-hyco2/checkpoints/smollm2-135m-instruct}  # BASE=FOLDER starts from another checkpoint (s7 came from s6, commit 738ee30)
QA="--qa $DATA/squad-v1.0-train.json.gz --exclude-articles Southern_California Normans Computational_complexity_theory"
# the long phase trains as s9 and s10 did (batch 256, the cache at 256); session 17 left both out by mistake and
# trained at 128 (a third of s10's examples in the time)
if [ "$phase" = long ]; then BATCH=${BATCH:-256}; TEACHER_BATCH=${TEACHER_BATCH:-256}; fi
RECIPE="--teacher self --target ${TARGET:-filtered} --max-paragraphs ${PARAS:-10} --batch-size ${BATCH:-128}"
GAP=${KEPT_GAP:- …}
K1_SHARDS=${K1_SHARDS:-4}; K10_SHARDS=${K10_SHARDS:-8}
show() { tr '\r' '\n' < "$1" | grep -v -E '^\s*$|Loading weights|Warning' | tail -n "${2:-4}" || true; }
left() { echo $(( END - $(date +%s) )); }
bench() {  # NAME SHARDS K TIMEOUT ARGS...: bench/qa.py shards in the background, one file each (RUN=N: the first N only)
  local name=$1 n=$2 k=$3 t=$4; shift 4
  rm -f $W/bench/$name-s*.json  # an earlier phase's shards of the same name (session 17: 6 compare + 4 measure) would merge in
  for i in $(seq 0 $(( ${RUN:-$n} - 1 ))); do
    timeout "$t" python3 bench/qa.py --data-dir $DATA --paragraphs "$k" --shard "$i/$n" --batch-size 64 \
      --out $W/bench/$name-s$i.json "$@" > $W/bench/$name-s$i.log 2>&1 &
  done
}
bring_back() {  # RUN...: each trained variant's checkpoint into $OUT (at most 8 files come back from a call)
  for v in "$@"; do show $W/train-$v.log 3; cp $W/$v/checkpoint/model.safetensors "$OUT/$v.safetensors" || true
    cp $W/$v/checkpoint/config.json "$OUT/$v-config.json" || true; done
}
merge() {  # NAME: the shards into $OUT/NAME.json and its tables
  python3 bench/report.py --merge $W/bench/$1-s*.json --out "$OUT/$1.json" > "$OUT/$1.md" 2>&1 || show $W/bench/$1-s0.log 8
}
train() {  # RUN INIT SECONDS GAP [LR [ARGS...]]: one variant, resumable, its checkpoint under $W/RUN
  local m; m=$(python3 -c "print(round(($3 - 75) / 60, 2))")
  python3 -m hyco2.training --stage instruct --out $W/$1 --init "$2" $QA --sample-questions "${SAMPLE:-8000}" \
    --teacher-cache $W/cache --steps 0 0 1000000 --minutes 0 0 "$m" $RECIPE --lr 0 0 "${5:-${LR:-1.4e-4}}" \
    --kept-gap "$4" "${@:6}" > $W/train-$1.log 2>&1
}
cache() {  # PROCESSES: the same-reader teacher cache (the shipped checkpoint's reader at rate 1.0) on SAMPLE questions
  local t0 i pids=(); t0=$(date +%s)
  for i in $(seq 0 $(( $1 - 1 ))); do
    python3 -m hyco2.training --stage instruct --out $W/cache-run --init $SHIPPED $QA --sample-questions "${SAMPLE:-8000}" \
      --teacher self --teacher-cache $W/cache --teacher-shard $i/$1 --teacher-batch-size ${TEACHER_BATCH:-64} > $W/cache-$i.log 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait $i || { show $W/cache-0.log 30; exit 1; }; done
  echo "teacher cache: $(( $(date +%s) - t0 )) s"; show $W/cache-0.log 2
}
want() { [[ " ${ONLY:-k1 k10 val} " == *" $1 "* ]]; }  # ONLY="k10 val": some of the measure phase's runs
if [ "$phase" = measure ]; then
  # K1_ARGS, K10_ARGS, VAL_ARGS: other rows for each run (default: session 12's phrases and positions ablation)
  want k1 && bench k1 $K1_SHARDS 1 $(( $(left) - 60 )) ${K1_ARGS:---rates 0.1 0.15 --methods truncate longllmlingua \
    --selectors longllmlingua --no-ablations --phrases 0 --original-positions}
  want k10 && bench k10 $K10_SHARDS 10 $(( $(left) - 60 )) --distractors other --batch-size 32 ${K10_ARGS:---rates 0.1 \
    --methods truncate longllmlingua --selectors longllmlingua --no-ablations --phrases 0}
  want val && bench val 1 1 $(( $(left) - 60 )) --set validation ${VAL_ARGS:---rates 0.1 0.15 --methods --no-ablations \
    --phrases 0 --original-positions}
  wait || true
  for name in ${ONLY:-k1 k10 val}; do merge $name; done  # a minute left for the merges (bootstrap CIs)
  (cd $W/bench && tar czf "$OUT/bench-logs.tgz" *.log)
  for name in ${ONLY:-k1 k10 val}; do tail -n 14 "$OUT/$name.md"; done
elif [ "$phase" = a ]; then
  cache 2  # two processes on the one GPU
  T=$(( $(left) - 25 ))
  echo "training two variants for $T s"
  train va $SHIPPED $T "" & train vb $SHIPPED $T "${GAP_B-$GAP}" "${LR_B:-${LR:-1.4e-4}}" &
  wait || true
  bring_back va vb
elif [ "$phase" = b ]; then
  TRAIN=${3:-150}
  if [ "$TRAIN" -gt 60 ]; then
    train va2 $W/va/checkpoint $TRAIN "" & train vb2 $W/vb/checkpoint $TRAIN "${GAP_B-$GAP}" "${LR_B:-${LR:-1.4e-4}}" &
    wait || true
    bring_back va2 vb2  # only new weights: the untrained copies below are already here
  else
    for v in va vb; do mkdir -p $W/${v}2 && cp -r $W/$v/checkpoint $W/${v}2/; done
  fi
  ALSO="--also ${B_NAME:-gap}=$W/vb2/checkpoint base=$SHIPPED"  # B_NAME: the row name of variant b
  bench val2 1 1 $(( $(left) - 15 )) --set validation --checkpoint $W/va2/checkpoint $ALSO --rates 0.1 0.15 \
    --methods --no-ablations
  bench k1b $K1_SHARDS 1 $(( $(left) - 15 )) --checkpoint $W/va2/checkpoint $ALSO --rates 0.1 0.15 --methods \
    --no-ablations --phrases 0
  bench k10b $K10_SHARDS 10 $(( $(left) - 15 )) --distractors other --checkpoint $W/va2/checkpoint $ALSO --rates 0.1 \
    --methods --no-ablations --batch-size 32
  wait || true
  for name in val2 k1b k10b; do merge $name; done
  tail -n 25 "$OUT/val2.md"
elif [ "$phase" = long ]; then
  # The same-reader cache on SAMPLE questions (CACHE_PROCS processes at TEACHER_BATCH), then two variants from
  # the shipped checkpoint side by side, compiled layers, until SECONDS: NAME_A with ARGS_A, NAME_B with ARGS_B.
  # Session 15 (defaults): s9a the recipe, s9b rates at and below the default. Session 16, the classifier's
  # recall: NAME_A=s10a ARGS_A="--rank-loss each --rank-weight 3" NAME_B=s10b
  # ARGS_B="--rank-loss each --rank-weight 3 --classifier-context 1" (s10b shipped as s10). Session 17, more soft
  # tokens for longer chunks: NAME_A=s11a ARGS_A=" " (the recipe's defaults, from s10 and its refreshed teacher)
  # NAME_B=s11b ARGS_B="--soft-token-span 32 --max-soft-tokens 32" (run at batch 128, before the defaults above)
  A=${NAME_A:-s9a}; B=${NAME_B:-s9b}
  cache ${CACHE_PROCS:-3}
  T=$(( $(left) - 30 ))
  echo "training two variants for $T s"
  train $A $SHIPPED $T "" "${LR:-2e-4}" --selection inference --compile ${ARGS_A:-} &
  train $B $SHIPPED $T "" "${LR:-2e-4}" --selection inference --compile ${ARGS_B:---rates 0.05 0.08 0.1 0.12 0.15 0.2} &
  wait || true
  bring_back $A $B
  (cd $W && tar czf "$OUT/train-logs.tgz" *.log $A/history.json $B/history.json) || true
elif [ "$phase" = compare ]; then
  # Session 15: RUNS (default "s9a s9b": the long phase's NAME_A NAME_B on this warm machine) beside the shipped
  # checkpoint: the validation articles (K=1 at 0.10 / 0.15, K=10 other articles at 0.10: the shipping rule), the
  # measurement set at K=1 (0.15) and K=10 (RATES10, default 0.10, K10_RUN of K10_SHARDS shards). Session 17:
  # RATES10="0.09 0.1" (a run with up to 32 soft tokens at 0.09 reads as many positions as 16 at 0.10)
  ALSO="--also"; for r in ${RUNS:-s9a s9b}; do ALSO="$ALSO $r=$W/$r/checkpoint"; done
  t=$(( $(left) - 50 ))
  bench val 2 1 $t --set validation $ALSO --rates 0.1 0.15 --methods --no-ablations
  bench val10 3 10 $t --set validation --distractors other $ALSO --rates ${RATES10:-0.1} --methods --no-ablations \
    --batch-size 32
  bench k1 6 1 $t $ALSO --rates 0.15 --methods --no-ablations
  RUN=${K10_RUN:-4} bench k10 ${K10_SHARDS:-8} 10 $t --distractors other $ALSO --rates ${RATES10:-0.1} --methods --no-ablations \
    --batch-size 32
  wait || true
  for name in val val10 k1 k10; do  # four runs and one page of tables: at most 8 files come back
    echo "# $name" >> "$OUT/tables.md"
    python3 bench/report.py --merge $W/bench/$name-s*.json --out "$OUT/$name.json.gz" >> "$OUT/tables.md" 2>&1 \
      || show $W/bench/$name-s0.log 8
  done
  (cd $W/bench && tar czf "$OUT/bench-logs.tgz" *.log)
  grep -B2 -A8 "same reader" "$OUT/tables.md" | cut -c1-220 || true
fi
