import random

import pytest

from hyco2.errors import InvalidSettingError
from hyco2.selector import keep_count, select_words_by_budget, select_words_by_threshold


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
