"""hyco2.compat: LLMLingua's PromptCompressor call over HyCo2, with LLMLingua's keys and exact budgets."""
import random
import re

import pytest

from hyco2.compat import PromptCompressor
from hyco2.counting import count_cl100k
from hyco2.errors import InvalidSettingError
from tests.conftest import PARAGRAPH

KEYS = {"compressed_prompt", "origin_tokens", "compressed_tokens", "ratio", "rate", "saving"}


@pytest.fixture()
def pc(tiny):
    return PromptCompressor(compressor=tiny)


def test_llmlinguas_keys_and_exact_budgets_over_random_cases(pc, tiny):
    rng = random.Random(0)
    for case in range(12):
        n_docs = rng.choice([1, 1, 2, 3])
        docs = [PARAGRAPH.replace("1872", str(1800 + rng.randrange(200)))[: rng.randrange(120, len(PARAGRAPH))]
                for _ in range(n_docs)]
        context = docs if n_docs > 1 or rng.random() < 0.5 else docs[0]
        total = sum(len(tiny.tokenize(d)) for d in docs)
        kwargs = ({"target_token": rng.randrange(1, total)} if rng.random() < 0.5
                  else {"rate": rng.choice([0.1, 0.25, 0.5])})
        out = pc.compress_prompt(context, instruction="Answer briefly.", question="Who built it?", **kwargs)
        assert KEYS <= set(out), case
        if "target_token" in kwargs:
            assert out["kept_tokens"] == kwargs["target_token"], case  # exact, over all documents
        else:
            joined = out["result"].context_tokens
            assert out["kept_tokens"] == max(1, round(kwargs["rate"] * joined)), case
        prompt = out["compressed_prompt"]
        assert prompt.startswith("Answer briefly.") and prompt.endswith("Who built it?")
        assert out["compressed_tokens"] == count_cl100k(prompt) < out["origin_tokens"] or out["kept_tokens"] == total
        assert re.fullmatch(r"\d+\.\dx", out["ratio"]) and re.fullmatch(r"\d+\.\d%", out["rate"])
        assert out["saving"].startswith(", Saving $")


def test_soft_tokens_and_a_peer_on_request(pc, tiny):
    out = pc.compress_prompt(PARAGRAPH, question="Who built it?", target_token=10, soft_tokens=True)
    assert out["soft_embeddings"].shape == (tiny.model.config.num_soft_tokens, 64)
    peer = PromptCompressor(compressor=tiny, method="truncate").compress_prompt(PARAGRAPH, target_token=10)
    assert peer["kept_tokens"] == 10 and peer["result"].method == "truncate"


def test_what_hyco2_cannot_honour_names_the_closest_option(pc):
    with pytest.raises(InvalidSettingError, match="force_tokens.*closest here: the question="):
        pc.compress_prompt(PARAGRAPH, force_tokens=["\n"])
    with pytest.raises(InvalidSettingError, match="rank_method.*method="):
        pc.compress_prompt(PARAGRAPH, rank_method="longllmlingua")
    with pytest.raises(InvalidSettingError, match="unknown argument 'ratee'"):
        pc.compress_prompt(PARAGRAPH, ratee=0.5)
    with pytest.raises(InvalidSettingError, match="target_token must be a whole number"):
        pc.compress_prompt(PARAGRAPH, target_token="200")
    with pytest.raises(InvalidSettingError, match="empty list"):
        pc.compress_prompt([])
    with pytest.raises(InvalidSettingError, match="takes model_name, device_map"):
        PromptCompressor(model_config={"revision": "main"})
