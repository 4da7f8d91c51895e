#!/usr/bin/env bash
# The design card's quantized backbone on one lent GPU: the default backbone in bf16, NF4 (--quantize 4bit)
# and int8 (8bit) through bitsandbytes, one after another on the same questions (so the timings do not share
# the card): F1, contains, gold NLL, compress and answer time, peak GPU memory (bench/qa.py records them).
# bitsandbytes travels in three parts beside the model's (a call carries 64 MiB with the repo). Prepare here:
#   pip download --no-deps -d /tmp/bnb bitsandbytes && split -b 14500000 /tmp/bnb/bitsandbytes-*.whl /tmp/bnb/bnb.
#   mv /tmp/bnb/bnb.aa .gpu/p1/; mv /tmp/bnb/bnb.ab .gpu/p2/; mv /tmp/bnb/bnb.ac .gpu/p3/
#   basename /tmp/bnb/bitsandbytes-*.whl > .gpu/p1/bnb.name
# then, back to back: part1, part2, part3 (carry .gpu/pN each), and
#   bash scripts/quantize_on_gpu.sh run SECONDS    (carry .gpu/p4 .gpu/whl .gpu/data)
# LIMIT (default 400) questions of the measurement set, K=1, rate 0.15 (the checkpoint's default).
set -euo pipefail
phase=${1:?usage: quantize_on_gpu.sh part1|part2|part3|run SECONDS}
source scripts/gpu_model.sh "$phase"
END=$(( $(date +%s) + ${2:-400} ))
OUT=${OUT:-$WORK/out}; mkdir -p "$OUT" $WORK
if ! python3 -c "import bitsandbytes" 2>/dev/null; then
  name=$(cat $MODEL_DIR/bnb.name)
  cat $MODEL_DIR/bnb.a? > /tmp/$name
  python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/$name 2>&1 | grep -v WARNING || true
fi
python3 -c "import bitsandbytes, torch; print('bitsandbytes', bitsandbytes.__version__, 'torch', torch.__version__)"
for q in bf16 4bit 8bit; do
  t=$(( END - $(date +%s) - 10 ))
  [ "$t" -gt 20 ] || { echo "no time left for $q"; break; }
  timeout "$t" python3 bench/qa.py --data-dir $DATA --quantize $q --limit "${LIMIT:-400}" --paragraphs 1 \
    --rates 0.15 --methods --no-ablations --batch-size 64 --out "$OUT/quant-$q.json" > $WORK/quant-$q.log 2>&1 \
    || { echo "$q stopped:"; tr '\r' '\n' < $WORK/quant-$q.log | grep -v -E 'Loading|^\s*$' | tail -n 5; }
  python3 bench/report.py "$OUT/quant-$q.json" > "$OUT/quant-$q.md" 2>&1 || true
  grep -E "^\| (full context|HyCo2 keep-all|HyCo2 hybrid) \|" "$OUT/quant-$q.md" | head -3 | sed "s/^/$q /"
done
