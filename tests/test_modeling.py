import json

import pytest
import torch

from hyco2.compressor import HyCo2Compressor
from hyco2.errors import BackboneMismatchError, CheckpointError
from hyco2.modeling import HyCo2Model
from tests.conftest import PARAGRAPH, make_tiny_backbone


def test_round_trip_gives_identical_outputs(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    loaded = HyCo2Compressor(tiny.backbone, HyCo2Model.from_pretrained(tmp_path, tiny.backbone.fingerprint()))
    # float16 storage: compare against the same weights rounded to float16
    tiny.model.load_state_dict({k: v.half().float() for k, v in tiny.model.state_dict().items()})
    a = tiny.compress(PARAGRAPH, "Who built it?", rate=0.3)
    b = loaded.compress(PARAGRAPH, "Who built it?", rate=0.3)
    assert torch.equal(a.soft_embeddings, b.soft_embeddings)
    assert a.kept_positions == b.kept_positions
    assert a.probabilities == b.probabilities


def test_config_records_backbone_and_untrained(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["backbone"] == "tiny-llama"
    assert cfg["backbone_fingerprint"]["hidden_size"] == 64
    assert cfg["trained"] is False


def test_wrong_backbone_is_refused(tiny, tokenizer, tmp_path):
    tiny.save_pretrained(tmp_path)
    other = make_tiny_backbone(tokenizer, layers=3, name="tiny-3-layers")
    with pytest.raises(BackboneMismatchError, match="num_hidden_layers: checkpoint 2 vs loaded 3"):
        HyCo2Model.from_pretrained(tmp_path, other.fingerprint())
    with pytest.raises(BackboneMismatchError):
        HyCo2Compressor.from_pretrained(tmp_path, backbone=other)


def test_missing_or_corrupt_checkpoints_are_clear_errors(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="not a HyCo2 checkpoint"):
        HyCo2Model.from_pretrained(tmp_path)
    tiny.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        HyCo2Model.from_pretrained(tmp_path)


def test_default_checkpoint_is_not_used_for_another_backbone(tiny_backbone):
    comp = HyCo2Compressor.from_pretrained(backbone=tiny_backbone)  # no checkpoint named
    assert comp.checkpoint == "untrained" and comp.untrained
    assert comp.compress(PARAGRAPH, "Who built it?", rate=0.2).untrained is True


def test_config_checks_its_format_version_and_refuses_unknown_keys():
    import pytest

    from hyco2.config import FORMAT_VERSION, HyCo2Config

    old = HyCo2Config.from_dict({"hidden_size": 8, "format_version": 1})
    assert old.kept_gap == "" and old.format_version == FORMAT_VERSION  # version 1 reads as it always did
    with pytest.raises(ValueError, match="upgrade hyco2"):
        HyCo2Config.from_dict({"hidden_size": 8, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="unknown key.*colour"):
        HyCo2Config.from_dict({"hidden_size": 8, "colour": "red"})
