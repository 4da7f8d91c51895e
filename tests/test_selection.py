import random

import pytest

from hyco2.errors import InvalidSettingError
from hyco2.selection import keep_count, select_words_by_budget, select_words_by_threshold


def _random_case(rng: random.Random):
    n = rng.randint(1, 120)
    words, w = [], 0
    for i in range(n):
        if i and rng.random() < 0.6:
            w += 1
        words.append(w)
    return [rng.random() for _ in range(n)], words


def test_budget_is_hit_exactly_in_original_order():
    rng = random.Random(0)
    for _ in range(500):
        scores, words = _random_case(rng)
        k = rng.randint(0, len(scores))
        kept = select_words_by_budget(scores, words, k)
        assert len(kept) == k
        assert kept == sorted(set(kept))


def test_whole_words_are_kept_together_when_they_fit():
    # word 0 = tokens 0,1 (best), word 1 = token 2, word 2 = tokens 3,4
    scores, words = [0.9, 0.1, 0.5, 0.2, 0.2], [0, 0, 1, 2, 2]
    assert select_words_by_budget(scores, words, 2) == [0, 1]
    assert select_words_by_budget(scores, words, 3) == [0, 1, 2]


def test_a_word_is_split_only_when_nothing_else_fits():
    scores, words = [0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0, 0, 0, 1, 1, 1]
    assert select_words_by_budget(scores, words, 2) == [0, 1]


def test_keep_count_rate_and_budget():
    assert keep_count(100, rate=0.1) == 10
    assert keep_count(7, rate=0.01) == 1  # never zero for a rate
    assert keep_count(50, budget=80) == 50
    assert keep_count(50, budget=0) == 0


@pytest.mark.parametrize("kwargs", [{}, {"rate": 0.1, "budget": 3}, {"rate": 0.0}, {"rate": 1.5},
                                    {"rate": float("nan")}, {"budget": -1}, {"budget": 2.5}, {"rate": True}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(InvalidSettingError):
        keep_count(10, **kwargs)


def test_threshold_keeps_whole_words_above_it():
    probs, words = [0.8, 0.1, 0.3, 0.6, 0.2], [0, 0, 1, 2, 3]
    assert select_words_by_threshold(probs, words, 0.5) == [0, 1, 3]
    with pytest.raises(InvalidSettingError):
        select_words_by_threshold(probs, words, 1.0)


def _reference_select(scores, words, n_keep):
    """The original dictionary-and-sort implementation, kept as the specification."""
    n = len(scores)
    if n_keep >= n:
        return list(range(n))
    if n_keep <= 0:
        return []
    positions, wscore = {}, {}
    for i, (s, w) in enumerate(zip(scores, words)):
        positions.setdefault(w, []).append(i)
        wscore[w] = max(wscore.get(w, float("-inf")), float(s))
    kept, left, rest = [], n_keep, []
    for w in sorted(positions, key=lambda w: (-wscore[w], w)):
        if len(positions[w]) <= left:
            kept.extend(positions[w])
            left -= len(positions[w])
            if left == 0:
                break
        else:
            rest.append(w)
    for w in rest:
        if not left:
            break
        take = min(left, len(positions[w]))
        kept.extend(positions[w][:take])
        left -= take
    return sorted(kept)


def test_array_selection_equals_the_reference_greedy_knapsack():
    import random

    from hyco2.selection import select_words_by_budget

    rng = random.Random(0)
    for trial in range(300):
        n = rng.randint(1, 60)
        words, w = [], 0
        for _ in range(n):
            words.append(w)
            if rng.random() < 0.6:
                w += rng.randint(1, 2)  # gaps in word ids happen (segments of a context)
        words = [x + rng.randint(0, 5) * (trial % 2) for x in words] if trial % 7 == 0 else words
        words.sort()
        scores = [round(rng.random(), 1) for _ in range(n)]  # coarse: many ties
        for k in (0, 1, rng.randint(1, n), n - 1, n):
            assert select_words_by_budget(scores, words, k) == _reference_select(scores, words, k), (scores, words, k)


def test_phrases_pull_in_neighbours():
    import pytest

    from hyco2.errors import InvalidSettingError
    from hyco2.selection import pull_neighbours, select_words_by_budget

    scores = [0.1, 0.2, 0.9, 0.1, 0.05, 0.3]
    words = [0, 1, 2, 3, 4, 5]
    assert pull_neighbours(scores, words, 0.0) == scores
    pulled = pull_neighbours(scores, words, 0.5)
    assert pulled == pytest.approx([0.1, 0.45, 0.9, 0.45, 0.15, 0.3])
    assert select_words_by_budget(scores, words, 3) == [1, 2, 5]  # isolated best words
    assert select_words_by_budget(pulled, words, 3) == [1, 2, 3]  # a phrase around the best word
    with pytest.raises(InvalidSettingError):
        pull_neighbours(scores, words, 1.5)


def test_compress_with_phrases_keeps_the_budget(tiny):
    from tests.conftest import PARAGRAPH

    plain = tiny.compress(PARAGRAPH, "Who built it?", budget=12)
    phr = tiny.compress(PARAGRAPH, "Who built it?", budget=12, phrases=0.9)
    assert phr.kept_tokens == plain.kept_tokens == 12
    assert phr.probabilities == plain.probabilities  # shown probabilities stay the classifier's


def test_classifier_selector_shares_the_peers_interface(tiny):
    """HyCo2's classifier behind the Selector interface: its own pass gives the compressor's selection."""
    from hyco2.classifier import ClassifierSelector
    from tests.conftest import PARAGRAPH

    q = "Who built the lighthouse?"
    ctx = tiny.tokenize(PARAGRAPH)
    from hyco2.settings import DEFAULT_PHRASES

    sel = ClassifierSelector(tiny.model, phrases=DEFAULT_PHRASES).select(tiny.encoder, ctx, q, n_keep=12)
    r = tiny.compress(PARAGRAPH, q, budget=12)  # the compressor's default phrase strength
    assert sel.positions == r.kept_positions and sel.forward_passes == 1
    assert sel.scores == pytest.approx(r.probabilities, abs=1e-5)
    given = ClassifierSelector(tiny.model, phrases=DEFAULT_PHRASES).select(tiny.encoder, ctx, q, 12,
                                                                           keep_probabilities=r.probabilities)
    assert given.positions == r.kept_positions and given.forward_passes == 0  # the compressor's pass, reused
    by_threshold = ClassifierSelector(tiny.model, threshold=0.5).select(tiny.encoder, ctx, q, None,
                                                                         keep_probabilities=r.probabilities)
    assert by_threshold.positions == tiny.compress(PARAGRAPH, q, threshold=0.5).kept_positions
    with pytest.raises(InvalidSettingError, match="budget"):
        ClassifierSelector(tiny.model).select(tiny.encoder, ctx, q, None, keep_probabilities=r.probabilities)
    with pytest.raises(ValueError, match="keep probabilities"):
        ClassifierSelector(tiny.model).select(tiny.encoder, ctx, q, 12, keep_probabilities=[0.5])


def _stretches(positions):
    """The kept positions as maximal runs of consecutive positions."""
    runs = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def test_spans_keep_the_budget_exactly_in_at_most_that_many_stretches():
    from hyco2.selection import select_spans_by_budget

    rng = random.Random(1)
    for _ in range(400):
        scores, words = _random_case(rng)
        k = rng.randint(0, len(scores))
        spans = rng.randint(1, 4)
        kept = select_spans_by_budget(scores, words, k, spans)
        assert len(kept) == k and kept == sorted(set(kept))
        if 0 < k < len(scores):
            assert len(_stretches(kept)) <= spans, (scores, words, k, spans)
        if 0 < k <= len(scores) // 2:  # room enough: every stretch starts at a word's first token
            for run in _stretches(kept):
                assert run[0] == 0 or words[run[0]] != words[run[0] - 1], (scores, words, k, spans)


def test_one_span_is_the_best_window_that_starts_at_a_word():
    from hyco2.selection import select_spans_by_budget

    rng = random.Random(2)
    for _ in range(300):
        scores, words = _random_case(rng)
        k = rng.randint(1, len(scores))
        starts = [a for a in range(len(scores) - k + 1) if a == 0 or words[a] != words[a - 1]]
        best = max(sum(scores[a:a + k]) for a in starts)
        kept = select_spans_by_budget(scores, words, k, 1)
        assert kept == list(range(kept[0], kept[0] + k))
        assert sum(scores[p] for p in kept) == pytest.approx(best)


def test_spans_find_the_high_stretches_and_zero_means_words():
    from hyco2.selection import select_spans_by_budget

    scores = [0.1, 0.9, 0.8, 0.1, 0.1, 0.1, 0.7, 0.9, 0.1, 0.95]
    words = list(range(10))
    assert select_spans_by_budget(scores, words, 4, 2) == [1, 2, 6, 7]
    assert select_spans_by_budget(scores, words, 4, 0) == select_words_by_budget(scores, words, 4) == [1, 2, 7, 9]
    with pytest.raises(InvalidSettingError, match="spans"):
        select_spans_by_budget(scores, words, 4, -1)


def test_compress_with_spans_keeps_the_budget_in_stretches(tiny):
    from tests.conftest import PARAGRAPH

    r = tiny.compress(PARAGRAPH, "Who built it?", budget=12, spans=2)
    assert r.kept_tokens == 12 and len(_stretches(r.kept_positions)) <= 2
    with pytest.raises(InvalidSettingError, match="spans"):
        tiny.compress(PARAGRAPH, "Who built it?", threshold=0.5, spans=2)
    with pytest.raises(InvalidSettingError, match="spans"):
        tiny.compress(PARAGRAPH, "Who built it?", rate=0.2, method="truncate", spans=2)


def test_auto_spans_keep_words_for_small_budgets_and_stretches_for_large():
    from hyco2.selection import SPAN_TOKENS, auto_spans, select_spans_by_budget

    rng = random.Random(3)
    scores = [rng.random() for _ in range(2000)]
    words = sorted(rng.randrange(1400) for _ in range(2000))
    small = SPAN_TOKENS // 2 - 1
    assert auto_spans(small) == 0
    assert select_spans_by_budget(scores, words, small, None) == select_words_by_budget(scores, words, small)
    kept = select_spans_by_budget(scores, words, 3 * SPAN_TOKENS, None)
    assert len(kept) == 3 * SPAN_TOKENS and len(_stretches(kept)) <= 3


def test_settings_resolve_the_span_rule(tiny):
    from hyco2.settings import CompressionSettings

    assert CompressionSettings(rate=0.1).span_count is None  # the classifier's rule
    assert CompressionSettings(rate=0.1).to_dict()["spans"] == "1 per 60 kept tokens"
    assert CompressionSettings(threshold=0.5).span_count == 0
    assert CompressionSettings(rate=0.1, method="truncate").span_count == 0
    assert CompressionSettings(rate=0.1, spans=2).to_dict()["spans"] == 2
