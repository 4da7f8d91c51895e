#!/usr/bin/env bash
# Train HyCo2 on the lent GPU machine (no internet, 64 MiB a call): see scripts/gpu_model.sh for the
# one-time preparation and the two calls that bring the model. Then, in a third call:
#   bash scripts/train_on_gpu.sh ablate SECONDS   four variants (two a GPU on 2 GPUs) from the shipped checkpoint (stage 3),
#                 after a teacher cache built on all GPUs; validation of each; all done SECONDS after the start
#   bash scripts/train_on_gpu.sh ddp SECONDS [INIT]   stage 3 on all GPUs with torchrun (DDP), resumable; the
#                 teacher cache first, then training sized to end SECONDS after the call's start
#                 (TARGET=gold|filtered|teacher, PARAS=max paragraphs; checkpoint under $OUT)
# Checkpoints and results come back under $OUT.
set -euo pipefail
phase=${1:?usage: train_on_gpu.sh part1|part2|ablate MINUTES|ddp MINUTES [INIT]}
source scripts/gpu_model.sh "$phase"
W=/root/work; mkdir -p $W; OUT=${OUT:-$W/out}; mkdir -p "$OUT"
SHIPPED=hyco2/checkpoints/smollm2-135m-instruct
QA="--qa /root/data/squad-v1.0-train.json.gz --exclude-articles Southern_California Normans Computational_complexity_theory"
show() { tr '\r' '\n' < "$1" | grep -v -E '^\s*$|Loading weights' | tail -n "${2:-4}" || true; }
cache() {  # the full-context teacher's answers for every training question: two processes a GPU
  N=$((2 * NGPU))
  [ -f $W/cache/teacher/shard-0-of-$N.pt ] && return 0
  for i in $(seq 0 $((N - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % NGPU)) python3 -m hyco2.training --stage instruct --out $W/cache --init $SHIPPED \
      $QA --teacher-shard $i/$N --teacher-batch-size 256 > $W/cache-$i.log 2>&1 &
  done
  wait
  for i in $(seq 0 $((N - 1))); do [ -f $W/cache/teacher/shard-$i-of-$N.pt ] || { show $W/cache-$i.log 40; exit 1; }; done
  show $W/cache-0.log 2
}
if [ "$phase" = ablate ]; then
  END=$(( $(date +%s) + ${2:-560} ))
  t0=$(date +%s); cache; echo "teacher cache: $(( $(date +%s) - t0 )) s"
  M=$(python3 -c "print(round(($END - $(date +%s) - 60 - 125) / 60, 2))")  # 60 s set-up, 125 s validation
  echo "training each variant for $M minutes"
  variants=("filtered 8" "teacher 8" "gold 8" "filtered 1")
  for i in 0 1 2 3; do
    set -- ${variants[$i]}
    CUDA_VISIBLE_DEVICES=$((i % NGPU)) python3 -m hyco2.training --stage instruct --out $W/v$i --init $SHIPPED $QA \
      --teacher-cache $W/cache/teacher --target "$1" --max-paragraphs "$2" --steps 0 0 1000000 \
      --minutes 0 0 "$M" --batch-size 64 > $W/train-v$i.log 2>&1 &
  done
  wait
  for i in 0 1 2 3; do
    CUDA_VISIBLE_DEVICES=$((i % NGPU)) timeout 120 python3 bench/qa.py --set validation --data-dir /root/data --paragraphs 1 5 \
      --rates 0.1 --methods truncate --checkpoint $W/v$i/checkpoint --batch-size 64 \
      $( [ $i = 0 ] && echo --also shipped=$SHIPPED ) --out $W/val-v$i.json > $W/val-v$i.log 2>&1 &
  done
  wait
  for i in 0 1 2 3; do
    echo "== v$i ${variants[$i]}"; show $W/train-v$i.log 3; grep -E "K=. (HyCo2|full|trunc)" $W/val-v$i.log || show $W/val-v$i.log 5
    cp $W/v$i/checkpoint/model.safetensors "$OUT/v$i.safetensors"
  done
  (cd $W && tar czf "$OUT/ablate.tgz" cache-*.log train-v*.log val-v*.log val-v*.json v*/checkpoint/config.json)
elif [ "$phase" = ddp ]; then
  END=$(( $(date +%s) + ${2:-560} )); INIT=${3:-$SHIPPED}
  t0=$(date +%s); cache; echo "teacher cache: $(( $(date +%s) - t0 )) s"
  M=$(python3 -c "print(round(($END - $(date +%s) - 75) / 60, 2))")  # ~60 s data loading, 15 s saving
  echo "training for $M minutes on $NGPU GPUs"
  torchrun --nproc-per-node "$NGPU" -m hyco2.training --stage instruct --out $W/ddp --init "$INIT" $QA \
    --teacher-cache $W/cache/teacher --target "${TARGET:-filtered}" --max-paragraphs "${PARAS:-8}" \
    --steps 0 0 1000000 --minutes 0 0 "$M" --batch-size 64 > $W/train-ddp.log 2>&1
  show $W/train-ddp.log 6
  cp $W/ddp/checkpoint/model.safetensors "$OUT/ddp.safetensors"
  (cd $W && tar czf "$OUT/ddp.tgz" train-ddp.log ddp/checkpoint/config.json ddp/history.json)
fi
