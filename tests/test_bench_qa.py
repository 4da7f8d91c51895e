"""bench/qa.py's rows on the tiny model: the same-reader reference, the reader-format and selection
ablations, and peers at the same total budget, each row over the same questions."""
import math

import pytest

from tests.conftest import TEST_DATA



@pytest.fixture(scope="module")
def qa():
    import bench.qa

    return bench.qa


def test_every_row_over_the_same_questions_with_the_same_reader_reference(qa, tiny):
    from hyco2.training.data import read_squad, with_distractors

    base = read_squad(TEST_DATA / "squad-mini.json")
    items = with_distractors(base, 2, seed=0, distractors="other", max_chars=900)[:3]  # one tiny window
    rows: list[dict] = []
    qa.run_setting(tiny, {}, items, 2, [0.3], ["truncate"], {"batch_size": 2, "max_new_tokens": 3},
                   lambda msg: None, rows, lambda: None, phrases=0.0, selectors=("longllmlingua",), gaps=(" …",),
                   original_positions=True)
    by_name = {r["row"]: r for r in rows}
    assert list(by_name) == [
        "full context", "no context", "HyCo2 keep-all", "HyCo2 soft only", "HyCo2 hybrid",
        "HyCo2 hybrid, phrases 0", "HyCo2 hybrid, gap …", "HyCo2 hybrid, original positions",
        "HyCo2 hybrid, phrases 0, original positions", "HyCo2 hard only", "truncate",
        "HyCo2 soft + LongLLMLingua selection"]
    k = tiny.model.config.num_soft_tokens
    ctx = by_name["full context"]["context_tokens"]
    assert by_name["full context"]["doc_tokens"] == ctx
    assert by_name["HyCo2 keep-all"]["doc_tokens"] == [n + k for n in ctx]  # every token beside the soft ones
    hybrid = by_name["HyCo2 hybrid"]["doc_tokens"]
    assert hybrid == [max(1, round(0.3 * n)) + k for n in ctx]
    for name in ("HyCo2 hard only", "truncate"):  # the same total budget as the hybrid, question by question
        assert by_name[name]["doc_tokens"] == hybrid
    assert by_name["HyCo2 soft + LongLLMLingua selection"]["doc_tokens"] == hybrid
    assert by_name["HyCo2 hybrid, original positions"]["doc_tokens"] == hybrid
    assert by_name["HyCo2 hybrid, original positions"]["positions"] == "original"
    assert by_name["HyCo2 hybrid, original positions"]["nll"] != by_name["HyCo2 hybrid"]["nll"]
    assert by_name["HyCo2 hybrid"]["phrases"] == 0.9 and by_name["HyCo2 hybrid, phrases 0"]["phrases"] == 0.0
    assert by_name["truncate"]["phrases"] == 0.0 and by_name["full context"]["phrases"] is None
    for r in rows:
        assert len(r["f1"]) == len(r["contains"]) == len(r["nll"]) == len(items)
        assert all(c in (0.0, 1.0) for c in r["contains"]) and all(math.isfinite(x) for x in r["nll"])
