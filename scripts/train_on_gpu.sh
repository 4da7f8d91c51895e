#!/usr/bin/env bash
# Train HyCo2 on the lent GPU machine (no internet, 64 MiB a call): see scripts/gpu_model.sh for the
# one-time preparation and the two calls that bring the model. Then, in a third call:
#   bash scripts/train_on_gpu.sh ablate SECONDS   four stage-3 variants (V0..V3, one GPU each on 4 GPUs) from the
#                 shipped checkpoint, after a teacher cache built on all GPUs; done SECONDS after the start;
#                 the checkpoints stay in $WORK/v*/checkpoint for a bench call on the same warm machine
#   bash scripts/train_on_gpu.sh profile SECONDS   the teacher cache, then bench/train_step.py on GPU 0 (where a
#                 step's time goes; samples/s by batch size, and with torch.compile), while GPU 1 times
#                 bench/long.py (100k tokens); the step table stays in $WORK for a later ddp call
#   bash scripts/train_on_gpu.sh ddp SECONDS [INIT]   stage 3 on all GPUs with torchrun (DDP), resumable; the
#                 teacher cache first, then training sized to end SECONDS after the call's start
#                 (TARGET=gold|filtered|teacher, PARAS=max paragraphs, RUN=folder name under $WORK (default
#                 ddp; a new name to continue from an earlier call's checkpoint); BATCH=N per GPU, or auto: the fastest
#                 row of an earlier profile call, or max: 512 on cards of > 120 GB (H200), else 256 (peak memory
#                 grows ~linearly: 53 GB at 256); the learning rate scaled by sqrt(N/64); checkpoint under $OUT)
# Checkpoints and results come back under $OUT.
set -euo pipefail
phase=${1:?usage: train_on_gpu.sh part1|part2|ablate SECONDS|profile SECONDS|ddp SECONDS [INIT]}
source scripts/gpu_model.sh "$phase"
W=$WORK; mkdir -p $W; OUT=${OUT:-$W/out}; mkdir -p "$OUT"
SHIPPED=hyco2/checkpoints/smollm2-135m-instruct
QA="--qa $DATA/squad-v1.0-train.json.gz --exclude-articles Southern_California Normans Computational_complexity_theory"
show() { tr '\r' '\n' < "$1" | grep -v -E '^\s*$|Loading weights' | tail -n "${2:-4}" || true; }
cache() {  # the full-context teacher's answers for every training question: two processes a GPU
  N=$((2 * NGPU))
  [ -f $W/cache/teacher/shard-0-of-$N.pt ] && return 0
  for i in $(seq 0 $((N - 1))); do
    CUDA_VISIBLE_DEVICES=$((i % NGPU)) python3 -m hyco2.training --stage instruct --teacher backbone --out $W/cache --init $SHIPPED \
      $QA --teacher-shard $i/$N --teacher-batch-size 256 > $W/cache-$i.log 2>&1 &
  done
  wait
  for i in $(seq 0 $((N - 1))); do [ -f $W/cache/teacher/shard-$i-of-$N.pt ] || { show $W/cache-$i.log 40; exit 1; }; done
  show $W/cache-0.log 2
}
if [ "$phase" = ablate ]; then
  # variants (one GPU each, round robin), as extra arguments of the training CLI; override with V0..V3
  V[0]=${V0:---target gold}
  V[1]=${V1:---target gold --question-classifier --rank-weight 1 --rank-loss span --classifier-context 0}
  V[2]=${V2:---target filtered --question-classifier --rank-weight 1 --rank-loss span --classifier-context 0}
  V[3]=${V3:---target gold --question-classifier --rank-weight 1 --rank-loss span --classifier-context 0 --saliency-weight 0}
  END=$(( $(date +%s) + ${2:-560} ))
  t0=$(date +%s); cache; echo "teacher cache: $(( $(date +%s) - t0 )) s"
  M=$(python3 -c "print(round(($END - $(date +%s) - 80) / 60, 2))")  # ~60 s data loading, saving
  echo "training each variant for $M minutes"
  for i in 0 1 2 3; do
    CUDA_VISIBLE_DEVICES=$((i % NGPU)) python3 -m hyco2.training --stage instruct --teacher backbone --out $W/v$i --init $SHIPPED $QA \
      --teacher-cache $W/cache/teacher --max-paragraphs "${PARAS:-8}" --steps 0 0 1000000 \
      --minutes 0 0 "$M" --batch-size 64 ${V[$i]} > $W/train-v$i.log 2>&1 &
  done
  wait
  for i in 0 1 2 3; do
    echo "== v$i: ${V[$i]}"; show $W/train-v$i.log 2
    cp $W/v$i/checkpoint/model.safetensors "$OUT/v$i.safetensors" 2>/dev/null || echo "v$i: no checkpoint"
  done
  (cd $W && tar czf "$OUT/ablate.tgz" cache-*.log train-v*.log v*/checkpoint/config.json v*/history.json)
elif [ "$phase" = profile ]; then
  END=$(( $(date +%s) + ${2:-330} ))
  t0=$(date +%s); cache; echo "teacher cache: $(( $(date +%s) - t0 )) s"
  [ "$NGPU" -gt 1 ] && (CUDA_VISIBLE_DEVICES=1 python3 bench/long.py --data $DATA/enwiki-head.jsonl.gz \
    --device cuda --out "$OUT/long-gpu.json" > $W/long-gpu.md 2>$W/long-gpu.log; cp $W/long-gpu.md "$OUT/") &
  CUDA_VISIBLE_DEVICES=0 timeout $(( END - $(date +%s) )) python3 bench/train_step.py --teacher-cache $W/cache/teacher --qa $DATA/squad-v1.0-train.json.gz \
    --batch-sizes ${BATCHES:-64 128 256} --compile --out "$OUT/train-step.json" > $W/train-step.md 2>$W/train-step.log || true
  wait
  cp $W/train-step.md "$OUT/"; cat $W/train-step.md; show $W/train-step.log 5; cat $W/long-gpu.md 2>/dev/null || true
elif [ "$phase" = ddp ]; then
  END=$(( $(date +%s) + ${2:-560} )); INIT=${3:-$SHIPPED}
  t0=$(date +%s); cache; echo "teacher cache: $(( $(date +%s) - t0 )) s"
  if [ "${BATCH:-}" = max ]; then
    MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | sort -n | head -n 1)
    BATCH=$([ "$MIB" -gt 120000 ] && echo 512 || echo 256)
  fi
  STEP="--batch-size ${BATCH:-64}"
  if [ "${BATCH:-}" = auto ]; then
    STEP=$(grep -h '^best:' $W/train-step.md 2>/dev/null | tail -n 1 | cut -d: -f2-); STEP=${STEP:- --batch-size 64}
  fi
  LR=$(python3 -c "import sys; b = int(sys.argv[sys.argv.index('--batch-size') + 1]); print(1e-4 * (b / 64) ** 0.5)" $STEP)
  M=$(python3 -c "print(round(($END - $(date +%s) - 75) / 60, 2))")  # ~60 s data loading, 15 s saving
  echo "training for $M minutes on $NGPU GPUs:$STEP --lr 0 0 $LR"
  R=${RUN:-ddp}  # a second call on the same warm machine: RUN=ddp2 ... ddp SECONDS $WORK/ddp/checkpoint
  torchrun --nproc-per-node "$NGPU" -m hyco2.training --stage instruct --teacher backbone --out $W/$R --init "$INIT" $QA \
    --teacher-cache $W/cache/teacher --target "${TARGET:-filtered}" --max-paragraphs "${PARAS:-8}" \
    --steps 0 0 1000000 --minutes 0 0 "$M" $STEP --lr 0 0 "$LR" ${EXTRA:-} > $W/train-$R.log 2>&1
  show $W/train-$R.log 6
  cp $W/$R/checkpoint/model.safetensors "$OUT/$R.safetensors"
  (cd $W && tar czf "$OUT/$R.tgz" train-$R.log $R/checkpoint/config.json $R/history.json)
fi
