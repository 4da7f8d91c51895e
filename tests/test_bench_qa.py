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
    # the gold answer among the kept text: always with every token kept, never asked of uncompressed rows
    assert by_name["HyCo2 keep-all"]["gold_kept"] == [1.0] * len(items)
    assert "gold_kept" not in by_name["full context"] and len(by_name["HyCo2 hybrid"]["gold_kept"]) == len(items)
    import bench.report

    table = bench.report.answer_kept(rows).splitlines()
    assert table[2].startswith("| HyCo2 hybrid | 0.30 |") and len(table) == 2 + 6  # the six hybrid rows


def test_the_official_llmlingua_rows_run_at_the_hybrids_budget(qa, tiny, tmp_path):
    """The official package on the tiny model (saved as a folder it loads itself): its two rows come after
    ours, read by the raw backbone, with the cl100k target each question was asked for."""
    pytest.importorskip("llmlingua", reason="the official package is an optional extra (hyco2[peers])")
    from bench.official import ROWS, OfficialLingua, missing
    from hyco2.training.data import read_squad, with_distractors

    assert missing() is None
    tiny.backbone.model.save_pretrained(tmp_path)
    tiny.backbone.tokenizer.save_pretrained(tmp_path)
    official = OfficialLingua(str(tmp_path), "cpu")
    base = read_squad(TEST_DATA / "squad-mini.json")
    items = with_distractors(base, 2, seed=0, distractors="other", max_chars=900)[:2]
    rows: list[dict] = []
    qa.run_setting(tiny, {}, items, 2, [0.3], [], {"batch_size": 2, "max_new_tokens": 3}, lambda msg: None,
                   rows, lambda: None, ablations=False, official=official)
    by_name = {r["row"]: r for r in rows}
    assert list(by_name)[-2:] == list(ROWS)
    hybrid = [c.compressed_tokens for c in tiny.compress_batch([it.context for it in items],
                                                               [it.question for it in items], rate=0.3)]
    for name in ROWS:
        r = by_name[name]
        assert r["mode"] == "hard" and r["rate"] == 0.3 and len(r["f1"]) == len(items)
        assert len(r["target_cl100k"]) == len(items) and all(t >= 1 for t in r["target_cl100k"])
        assert all(0 < d <= n for d, n in zip(r["doc_tokens"], r["context_tokens"]))  # what it kept, read raw
        assert r["compress_ms"] > 0
    assert by_name["HyCo2 hybrid"]["doc_tokens"] == hybrid


def test_the_official_rows_are_skipped_with_a_message_without_the_package(monkeypatch):
    import sys

    from bench.official import missing

    monkeypatch.setitem(sys.modules, "llmlingua", None)  # as if not installed
    assert "pip install 'hyco2[peers]'" in missing()


def test_an_official_row_the_package_cannot_make_is_left_out_with_its_error(qa, tiny, tmp_path):
    """A context longer than the package's 200-token iterative window: llmlingua 0.2.2 slices its KV cache
    as tuples, which recent transformers no longer return; the bench keeps measuring and says why the row
    is missing (or, once the package copes, has the row)."""
    pytest.importorskip("llmlingua", reason="the official package is an optional extra (hyco2[peers])")
    from bench.official import ROWS, OfficialLingua
    from hyco2.training.data import read_squad

    tiny.backbone.model.save_pretrained(tmp_path)
    tiny.backbone.tokenizer.save_pretrained(tmp_path)
    official = OfficialLingua(str(tmp_path), "cpu")
    from dataclasses import replace

    base = read_squad(TEST_DATA / "squad-mini.json")
    size = {it.context: len(tiny.backbone.tokenizer(it.context)["input_ids"]) for it in base}
    pair = next((a, b) for a in base for b in base if a.context != b.context and 200 < size[a.context] + size[b.context] < 215)
    items = [replace(pair[0], context=pair[0].context + "\n\n" + pair[1].context)]  # past 200, inside the window
    rows, failures, said = [], [], []
    qa.run_setting(tiny, {}, items, 1, [0.3], [], {"batch_size": 2, "max_new_tokens": 3}, said.append,
                   rows, lambda: None, ablations=False, official=official, failures=failures)
    made = {r["row"] for r in rows} & set(ROWS)
    failed = {f["row"] for f in failures}
    assert made | failed == set(ROWS) and not made & failed
    for f in failures:
        assert f["error"] and any(f["row"] in line and "row left out" in line for line in said)
