"""The peers on the real default backbone: exact budgets, order, determinism, and real selection."""
import pytest

from hyco2.baselines import available_methods, get_selector
from hyco2.baselines.scoring import sentences
from hyco2.errors import InvalidSettingError

pytestmark = pytest.mark.integration

PEERS = ["selective-context", "llmlingua", "longllmlingua", "mig"]

NEEDLE = "The access code for the harbour vault is 4417."
HAYSTACK = (
    "The town market opens at eight and sells fish, bread and cheese. "
    "Most visitors arrive by the coastal train, which runs every hour in summer. "
    f"{NEEDLE} "
    "The old church on the hill was repainted white two years ago. "
    "Children swim at the north beach, where the water is calm and shallow."
)


def test_every_method_is_registered():
    assert available_methods()[:1] == ["hyco2"]
    assert set(PEERS) | {"truncate", "random"} <= set(available_methods())
    with pytest.raises(InvalidSettingError):
        get_selector("llmlingua-9000")


@pytest.mark.parametrize("method", PEERS + ["truncate", "random"])
def test_budget_exact_in_order_and_deterministic(real, squad_paragraph, method):
    ctx, q = squad_paragraph["context"], squad_paragraph["question"]
    n = len(real.tokenize(ctx))
    for budget in (10, 37):
        a = real.compress(ctx, q, budget=budget, method=method, seed=3)
        b = real.compress(ctx, q, budget=budget, method=method, seed=3)
        assert a.kept_tokens == budget
        assert a.kept_positions == sorted(set(a.kept_positions))
        assert a.kept_positions == b.kept_positions
        assert a.soft_tokens == 0 and a.context_tokens == n
    assert real.compress(ctx, q, rate=0.2, method=method).kept_tokens == round(0.2 * n)


@pytest.mark.parametrize("method", PEERS)
def test_the_relevant_sentence_survives(real, method):
    def needle_words_kept(r) -> bool:
        kept = set(r.kept_text.split())
        return {"access", "code", "vault"} <= kept

    q = "What is the access code for the harbour vault?"
    assert needle_words_kept(real.compress(HAYSTACK, q, rate=0.3, method=method))
    # random dropping keeps all three words with probability about 0.3**3
    rnd = [real.compress(HAYSTACK, q, rate=0.3, method="random", seed=s) for s in range(8)]
    assert sum(map(needle_words_kept, rnd)) <= 1


def test_selective_context_keeps_the_most_surprising_word(real):
    r = real.compress(HAYSTACK, None, rate=0.15, method="selective-context")
    assert "4417" in r.kept_text.replace(" ", "")


def test_question_aware_methods_prefer_the_needle_sentence(real):
    ctx = real.tokenize(HAYSTACK)
    needle = next(s for s in sentences(ctx) if "4417" in real.backbone.tokenizer.decode([ctx.ids[p] for p in s]))
    for method in ("longllmlingua", "mig"):
        r = real.compress(HAYSTACK, "What is the access code for the harbour vault?", rate=0.25, method=method)
        inside = len(set(r.kept_positions) & set(needle)) / len(needle)
        assert inside > 0.5, (method, inside, r.kept_text)


def test_mig_redundancy_term_lowers_duplicate_keeps(real):
    from hyco2.baselines.mig import MIGSelector

    repeated = ("The bridge was closed for repairs in March. " * 2
                + "Ferries carried commuters across the river instead. "
                + "The repairs cost four million euros and ended in June.")
    ctx = real.tokenize(repeated)
    first, second = sentences(ctx)[0], sentences(ctx)[1]
    q = "What happened to the bridge?"

    def duplicate_keeps(selector) -> int:
        """Tokens kept in both copies at the same place: the same words paid for twice."""
        kept = set(selector.select(real.encoder, ctx, q, n_keep=len(first) + 6).positions)
        return sum(a in kept and b in kept for a, b in zip(first, second))

    with_redundancy, without = MIGSelector(), MIGSelector()
    without.b = 0.0
    assert duplicate_keeps(without) >= 2
    assert duplicate_keeps(with_redundancy) < duplicate_keeps(without)


def test_mig_as_hyco2_hard_view(real, squad_paragraph):
    r = real.compress(squad_paragraph["context"], squad_paragraph["question"], rate=0.2, selector="mig")
    assert r.method == "hyco2+mig" and r.soft_tokens == 16
    assert r.kept_tokens == round(0.2 * r.context_tokens)
