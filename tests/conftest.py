"""Shared fixtures: a tiny random llama with the default model's real tokenizer (fast), and the real
default model (integration tests, marked ``integration``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from hyco2.backbone import DEFAULT_BACKBONE, converted_path, wrap_model
from hyco2.compressor import HyCo2Compressor

TEST_DATA = ROOT / "tests" / "data"  # small fixtures shipped with the tests (see tests/data/README.md)
SQUAD_MINI = TEST_DATA / "squad-mini.json"

PARAGRAPH = (
    "The lighthouse at Karsten Point was built in 1872 by the engineer Maria Lindqvist. "
    "It stands 41 metres tall and its lamp can be seen from 30 kilometres away. "
    "In 1954 the keepers left, and the light has run automatically ever since. "
    "Visitors can climb its 212 steps every summer between June and August."
)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    return converted_path(DEFAULT_BACKBONE)


@pytest.fixture(scope="session")
def tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(default_model_dir))


def make_tiny_backbone(tokenizer, seed: int = 0, layers: int = 2, name: str = "tiny-llama"):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    return wrap_model(LlamaForCausalLM(cfg), tokenizer, name)


@pytest.fixture(scope="session")
def tiny_backbone(tokenizer):
    return make_tiny_backbone(tokenizer)


@pytest.fixture()
def tiny(tiny_backbone) -> HyCo2Compressor:
    """A compressor on the tiny backbone with a small random adapter (fresh for each test)."""
    model = HyCo2Compressor.fresh_model(tiny_backbone, seed=0, adapter_dim=32, adapter_heads=4,
                                        num_soft_tokens=4, classifier_dim=16)
    return HyCo2Compressor(tiny_backbone, model, checkpoint="untrained")


@pytest.fixture(scope="session")
def squad_paragraph() -> dict:
    data = json.loads(SQUAD_MINI.read_text(encoding="utf-8"))
    para = data["data"][0]["paragraphs"][0]
    qa = next(q for q in para["qas"] if not q.get("is_impossible"))
    return {"context": para["context"], "question": qa["question"], "answers": [a["text"] for a in qa["answers"]]}


@pytest.fixture(scope="session")
def real() -> HyCo2Compressor:
    return HyCo2Compressor.from_pretrained()
