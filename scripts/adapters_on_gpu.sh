#!/usr/bin/env bash
# The seeds' other compressors (issue 23) and stretch-shaped training (issue 26) on one lent GPU. Model
# set-up as in scripts/gpu_model.sh: part1, part2, part3 first, then carry .gpu/p4 .gpu/whl .gpu/data with
# the train call, and the bench call right after it on the same warm machine.
#   bash scripts/adapters_on_gpu.sh train SECONDS
#       1. the same-reader teacher cache (the shipped checkpoint's reader at rate 1.0) on SAMPLE training
#          questions, two processes; meanwhile three FRESH adapters (hybrid, comprexit, comi: one recipe,
#          the same data and steps) run stages 1 and 2 on Wikipedia text;
#       2. stage 3 for the three from the cache, and beside them "s8": the shipped checkpoint trained on
#          with the kept tokens the compressor gives (--selection inference); everything until SECONDS.
#       Checkpoints stay in $WORK/<run>/checkpoint for the bench call; a tar of them comes back in $OUT.
#   bash scripts/adapters_on_gpu.sh bench SECONDS
#       bench/qa.py with every checkpoint beside the shipped one (--also), K=1 on the measurement set,
#       K=5 and K=10 (other articles) on every second question (shards 0-1 of 4, 0-3 of 8), s8 against the shipped checkpoint on the
#       validation articles (K=1 and K=10); bench/adapters.py (parameters, compress ms, peak memory).
#   bash scripts/adapters_on_gpu.sh k5 SECONDS   (a fresh machine: part1-3, then carry .gpu/p4 .gpu/whl .gpu/data
#       .gpu/ck) K=5 for the shipped checkpoints and .gpu/ck/hybrid (the fresh hybrid of the train call), every
#       second question, eight shards written straight into $OUT (the bench call's K=5 ran out of time)
set -euo pipefail
phase=${1:?usage: adapters_on_gpu.sh part1|part2|part3|train SECONDS|bench SECONDS|k5 SECONDS}
source scripts/gpu_model.sh "$phase"
export OMP_NUM_THREADS=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # many processes share one GPU
W=$WORK; mkdir -p $W/bench; OUT=${OUT:-$W/out}; mkdir -p "$OUT"
END=$(( $(date +%s) + ${2:-560} ))
SHIPPED=hyco2/checkpoints/smollm2-135m-instruct
QA="--qa $DATA/squad-v1.0-train.json.gz --exclude-articles Southern_California Normans Computational_complexity_theory"
TEXT="--text $DATA/enwiki-head.jsonl.gz"
S3="--teacher self --teacher-cache $W/cache --sample-questions ${SAMPLE:-4000} --target filtered --rank-weight 1 --rank-loss span \
  --classifier-context 0 --max-paragraphs 10 --steps 0 0 1000000"  # session 12's recipe, as measured
# s8 continues the shipped recipe at its batch (128); the fresh three share one recipe at 64 (ComprExIT keeps
# 31 layers of states: four trainings at 128 on one card would pass its 140 GB)
FRESH=${FRESH:-hybrid comprexit comi}
show() { tr '\r' '\n' < "$1" | grep -v -E '^\s*$|Loading weights|Warning' | tail -n "${2:-4}" || true; }
left() { echo $(( END - $(date +%s) )); }
minutes() { python3 -c "print(max(0.2, round($1 / 60, 2)))"; }
if [ "$phase" = train ]; then
  declare -A pre
  t0=$(date +%s)
  for i in 0 1; do
    python3 -m hyco2.training --stage instruct --out $W/cache-run --init $SHIPPED $QA --sample-questions "${SAMPLE:-4000}" \
      --teacher self --teacher-cache $W/cache --teacher-shard $i/2 --teacher-batch-size 64 > $W/cache-$i.log 2>&1 &
    cache[$i]=$!
  done
  for a in $FRESH; do  # stages 1 and 2 of each fresh adapter while the cache is built
    ( python3 -m hyco2.training --stage paraphrase --adapter $a --question-classifier --out $W/$a-p $TEXT \
        --steps 100000 0 0 --minutes ${P_MIN:-1.3} 0 0 --batch-size ${PRE_BATCH:-32} > $W/train-$a-p.log 2>&1 \
      && python3 -m hyco2.training --stage completion --init $W/$a-p/checkpoint --out $W/$a-c $TEXT \
        --steps 0 100000 0 --minutes 0 ${C_MIN:-1.0} 0 --batch-size ${PRE_BATCH:-32} > $W/train-$a-c.log 2>&1 ) &
    pre[$a]=$!
  done
  for i in 0 1; do wait ${cache[$i]} || { show $W/cache-$i.log 30; exit 1; }; done
  echo "teacher cache: $(( $(date +%s) - t0 )) s"; show $W/cache-0.log 2
  M=$(minutes $(( $(left) - 70 )))  # ~50 s to load data and prepare items, ~20 s to save
  python3 -m hyco2.training --stage instruct --init $SHIPPED --out $W/s8 $QA $S3 --selection inference \
    --batch-size ${BATCH:-128} --minutes 0 0 "$M" > $W/train-s8.log 2>&1 &
  for a in $FRESH; do
    wait ${pre[$a]} || { show $W/train-$a-p.log 20; show $W/train-$a-c.log 20; continue; }
    M=$(minutes $(( $(left) - 70 )))
    python3 -m hyco2.training --stage instruct --init $W/$a-c/checkpoint --out $W/$a $QA $S3 \
      --batch-size ${FRESH_BATCH:-64} --minutes 0 0 "$M" > $W/train-$a.log 2>&1 &
  done
  wait || true
  for r in s8 $FRESH; do echo "== $r"; show $W/train-$r.log 3; done
  runs=""; for r in s8 $FRESH; do [ -f $W/$r/checkpoint/model.safetensors ] && runs="$runs $r/checkpoint"; done
  (cd $W && tar czf "$OUT/checkpoints.tgz" $runs && tar czf "$OUT/train-logs.tgz" *.log */history.json) || true
  ls -la "$OUT"
elif [ "$phase" = bench ]; then
  ALSO="s8=$W/s8/checkpoint"
  for a in $FRESH; do [ -f $W/$a/checkpoint/config.json ] && ALSO="$ALSO $a=$W/$a/checkpoint"; done
  bench() {  # NAME RUN SHARDS K ARGS...: the first RUN of SHARDS shards of bench/qa.py in the background (every
    # SHARDS-th question: a share of the set with the distractors of the whole run; --limit would shrink their pool)
    local name=$1 run=$2 n=$3 k=$4; shift 4
    for i in $(seq 0 $((run - 1))); do
      timeout $(( $(left) - 40 )) python3 bench/qa.py --data-dir $DATA --paragraphs "$k" --shard "$i/$n" \
        --batch-size 64 --out $W/bench/$name-s$i.json "$@" > $W/bench/$name-s$i.log 2>&1 &
    done
  }
  bench k1 ${K1_RUN:-6} ${K1_SHARDS:-6} 1 --also $ALSO --rates 0.15 --methods
  bench k5 ${K5_RUN:-2} ${K5_SHARDS:-4} 5 --also $ALSO --rates 0.15 --methods --no-ablations
  bench k10 ${K10_RUN:-4} ${K10_SHARDS:-8} 10 --also $ALSO --distractors other --rates 0.1 --methods --no-ablations \
    --batch-size 32
  bench val 1 ${VAL_SHARDS:-1} 1 --also s8=$W/s8/checkpoint --set validation --rates 0.1 0.15 \
    --methods --no-ablations
  bench val10 ${VAL10_RUN:-3} ${VAL10_SHARDS:-3} 10 --also s8=$W/s8/checkpoint --set validation --distractors other \
    --rates 0.1 --methods --no-ablations --batch-size 32
  CK="--checkpoint shipped=$SHIPPED"
  for spec in $ALSO; do CK="$CK --checkpoint $spec"; done
  timeout $(( $(left) - 40 )) python3 bench/adapters.py $CK --data-dir $DATA --paragraphs 1 10 --questions 256 \
    --batch-size 64 --out $W/bench/adapters.json > $W/bench/adapters.md 2> $W/bench/adapters.log &
  wait || true
  : > "$OUT/tables.md"  # at most 8 files come back: five JSON, one page of tables, the costs, the logs
  for name in k1 k5 k10 val val10; do
    echo "# $name" >> "$OUT/tables.md"
    python3 bench/report.py --merge $W/bench/$name-s*.json --out "$OUT/$name.json" >> "$OUT/tables.md" 2>&1 \
      || show $W/bench/$name-s0.log 8
  done
  cp $W/bench/adapters.json "$OUT/" 2>/dev/null || show $W/bench/adapters.log 10
  echo "# adapters" >> "$OUT/tables.md"; cat $W/bench/adapters.md >> "$OUT/tables.md" 2>/dev/null || true
  (cd $W/bench && tar czf "$OUT/bench-logs.tgz" *.log)
  grep -A 30 "^# val" "$OUT/tables.md" | head -n 40; tail -n 12 $W/bench/adapters.md 2>/dev/null || true
elif [ "$phase" = k5 ]; then
  ALSO="comprexit=$SHIPPED-comprexit comi=$SHIPPED-comi"
  [ -f .gpu/ck/hybrid/config.json ] && ALSO="$ALSO hybrid=.gpu/ck/hybrid"
  for i in $(seq ${K5_FROM:-0} $(( ${K5_FROM:-0} + 7 ))); do  # K5_FROM=8 on the same warm machine: the other half
    timeout $(( $(left) - 10 )) python3 bench/qa.py --data-dir $DATA --paragraphs 5 --shard "$i/16" --batch-size 64 \
      --out "$OUT/k5-s$i.json" --also $ALSO --rates 0.15 --methods --no-ablations > $W/k5-$i.log 2>&1 &
  done
  wait || true
  show $W/k5-${K5_FROM:-0}.log 14
fi
