"""What every soft-token adapter must do on the tiny backbone, whichever the checkpoint names: shapes,
gradients that reach its own parameters and never the frozen backbone, a save/load round trip, and the
compressor and its reader running it unchanged."""
import pytest
import torch

from hyco2.adapters import ADAPTERS
from hyco2.compressor import HyCo2Compressor
from hyco2.errors import CheckpointError
from hyco2.modeling import HyCo2Model
from hyco2.reader import HyCo2Reader

from conftest import PARAGRAPH


def _compressor(tiny_backbone, adapter: str) -> HyCo2Compressor:
    model = HyCo2Compressor.fresh_model(tiny_backbone, seed=0, adapter=adapter, adapter_dim=32, adapter_heads=4,
                                        num_soft_tokens=4, classifier_dim=16)
    return HyCo2Compressor(tiny_backbone, model, checkpoint="untrained")


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_soft_tokens_have_the_backbone_width_and_padding_changes_nothing(tiny_backbone, adapter):
    comp = _compressor(tiny_backbone, adapter)
    ctxs = [comp.tokenize(PARAGRAPH), comp.tokenize("A short one about the lamp.")]
    enc = comp.encoder.encode(ctxs, ["How tall is it?", "What is lit?"])
    assert (enc.context_layers is not None) == (adapter == "comprexit")
    with torch.no_grad():
        soft, logits = comp.model(enc)
        alone, _ = comp.model(comp.encoder.encode(ctxs[1:], ["What is lit?"]))
    assert soft.shape == (2, 4, tiny_backbone.hidden_size)
    assert logits.shape == enc.context_mask.shape
    assert torch.isfinite(soft).all()
    assert torch.allclose(soft[1], alone[0], atol=1e-4)  # the longer row's padding did not leak in


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_gradients_reach_the_adapter_and_not_the_backbone(tiny_backbone, adapter):
    comp = _compressor(tiny_backbone, adapter)
    comp.model.train()
    enc = comp.encoder.encode([comp.tokenize(PARAGRAPH)], ["Who built the lighthouse?"])
    soft, _ = comp.model(enc)
    soft.pow(2).mean().backward()
    grads = {n: p.grad for n, p in comp.model.adapter.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())
    if adapter == "comi":  # the grouping and merge have no parameters: the projector is what trains
        assert all(grads[n] is not None for n in grads if n.startswith("projector"))
    assert all(p.grad is None for p in tiny_backbone.model.parameters())
    assert not enc.context_states.requires_grad  # the encoder's pass was frozen


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_save_and_load_round_trip(tiny_backbone, adapter, tmp_path):
    comp = _compressor(tiny_backbone, adapter)
    comp.save_pretrained(tmp_path / "ckpt")
    loaded = HyCo2Model.from_pretrained(tmp_path / "ckpt", fingerprint=tiny_backbone.fingerprint())
    assert loaded.config.adapter == adapter
    assert type(loaded.adapter) is type(comp.model.adapter)
    enc = comp.encoder.encode([comp.tokenize(PARAGRAPH)], ["How tall is it?"])
    with torch.no_grad():
        a, b = comp.model(enc).soft_tokens, loaded(enc).soft_tokens
    assert torch.allclose(a, b, atol=2e-2, rtol=2e-2)  # float16 on disk


@pytest.mark.parametrize("adapter", ["comprexit", "comi"])
def test_the_reader_answers_through_any_adapter(tiny_backbone, adapter):
    comp = _compressor(tiny_backbone, adapter)
    reader = HyCo2Reader(comp)
    for mode in ("hybrid", "soft"):  # soft + kept tokens, and soft tokens alone
        out = reader.answer(PARAGRAPH, "How tall is the lighthouse?", mode=mode, rate=0.3, max_new_tokens=3)
        assert out.compression.soft_tokens == 4 and out.compression.kept_tokens > 0
        assert isinstance(out.text, str)


def test_an_unknown_adapter_is_refused_with_the_known_ones(tiny_backbone, tmp_path):
    comp = _compressor(tiny_backbone, "hybrid")
    comp.model.config.adapter = "perceiver"
    comp.model.config.save(tmp_path)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in comp.model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unknown adapter 'perceiver': one of hybrid, comprexit, comi"):
        HyCo2Model.from_pretrained(tmp_path)
