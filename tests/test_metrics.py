from hyco2.metrics import best_over_golds, contains, exact_match, f1_score, normalize_answer


def test_normalisation_follows_squad():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"


def test_scores():
    assert exact_match("the France.", "France") == 1.0
    assert f1_score("in northern France", "France") == 0.5
    assert f1_score("Germany", "France") == 0.0
    assert contains("It is in France, I think", "france") == 1.0
    assert best_over_golds(f1_score, "10th century", ["10th and 11th centuries", "10th century"]) == 1.0
