# Sourced by the *_on_gpu.sh scripts: join the two halves of the default model sent in two calls,
# install the carried wheels, and convert the model once into $HYCO2_CACHE. See train_on_gpu.sh.
cat /root/m/gg.aa .gguf2/gg.ab > /root/m/model.gguf
echo "$(cat .gguf2/sha256)  /root/m/model.gguf" | sha256sum -c -
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HYCO2_CACHE=/root/hyco2-cache
python3 -c "from hyco2.backbone import convert_gguf, cache_dir; convert_gguf('/root/m/model.gguf', cache_dir() / 'backbones' / 'smollm2-135m-instruct')" 2>&1 | grep -v 'it/s'
nvidia-smi --query-gpu=name,memory.total --format=csv
