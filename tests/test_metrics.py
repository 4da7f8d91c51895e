from hyco2.metrics import best_over_golds, contains, exact_match, f1_score, normalize_answer


def test_normalisation_follows_squad():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"


def test_scores():
    assert exact_match("the France.", "France") == 1.0
    assert f1_score("in northern France", "France") == 0.5
    assert f1_score("Germany", "France") == 0.0
    assert contains("It is in France, I think", "france") == 1.0
    assert best_over_golds(f1_score, "10th century", ["10th and 11th centuries", "10th century"]) == 1.0


def test_paired_bootstrap_sees_a_consistent_small_gap():
    from hyco2.metrics import paired_bootstrap_ci

    base = [float(i % 7) for i in range(300)]
    better = [x + 0.1 for x in base]  # always 0.1 better on the same questions
    lo, hi = paired_bootstrap_ci(better, base)
    assert 0.099 < lo <= hi < 0.101  # paired: no spread at all
    lo, hi = paired_bootstrap_ci(base)  # unpaired CI of the mean brackets it
    assert lo < sum(base) / len(base) < hi
    noisy = [x + (1 if i % 2 else -1) for i, x in enumerate(base)]
    lo, hi = paired_bootstrap_ci(noisy, base)
    assert lo < 0 < hi  # a gap that flips sign question by question is not significant


def test_nll_recovery():
    from hyco2.metrics import nll_recovery

    assert nll_recovery(2.0, nll_none=3.0, nll_full=1.0) == 0.5
    assert nll_recovery(1.0, 3.0, 1.0) == 1.0
    assert nll_recovery(3.5, 3.0, 1.0) < 0
