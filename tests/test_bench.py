"""bench/report.py: merging shards of a run and the table's derived figures; bench/batch.py's host profile;
bench/selection.py's answer-kept rows."""
import pytest

import bench.report as report


def _row(name, mode, f1, nll, k=1, rate=None):
    n = len(f1)
    return {"row": name, "mode": mode, "rate": rate, "paragraphs": k, "tag": "", "method": "truncate" if mode == "hard"
            else "hyco2", "answers": ["a"] * n, "f1": f1, "em": [0.0] * n,
            "contains": [0.0] * n, "faithful": [1.0] * n, "nll": nll, "doc_tokens": [10] * n,
            "context_tokens": [40] * n, "compress_ms": 1.0, "answer_ms": 2.0, "forward_passes": 1.0, "peak_mib": 5.0}


def _run(shard, f1s, k=1):
    rows = [_row("full context", "full", f1s[0], [1.0] * len(f1s[0]), k),
            _row("no context", "none", f1s[1], [3.0] * len(f1s[1]), k),
            _row("HyCo2 hybrid", "hybrid", f1s[2], [2.0] * len(f1s[2]), k, 0.1),
            _row("truncate", "hard", f1s[3], [2.5] * len(f1s[3]), k, 0.1)]
    return {"machine": "m", "questions": 4, "shards": [shard], "set": "t", "checkpoint": "c", "also": [],
            "seconds": 1.0, "rows": rows, "golds": {str(k): [["g"]] * len(f1s[0])}}


def test_merge_concatenates_shards_and_groups_k():
    a = _run("0/2", [[1.0], [0.0], [0.5], [0.0]])
    b = _run("1/2", [[0.0], [0.0], [1.0], [0.0]])
    c = _run("0/1", [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]], k=5)
    b["rows"] = b["rows"][:3]  # a shard stopped early: only the rows every shard has are kept
    m = report.merge([a, b, c])
    k1 = [r for r in m["rows"] if r["paragraphs"] == 1]
    assert [r["row"] for r in k1] == ["full context", "no context", "HyCo2 hybrid"]
    assert k1[2]["f1"] == [0.5, 1.0] and len(m["golds"]["1"]) == 2 and len(m["golds"]["5"]) == 2
    table = report.qa_tables(m)
    assert "K = 1" in table and "K = 5" in table
    line = next(x for x in table.splitlines() if x.startswith("| HyCo2 hybrid"))
    assert "| 75.0 |" in line and "| 50% |" in line  # F1 mean, NLL recovery (2.0 between 3.0 and 1.0)


def test_merged_shards_are_put_back_in_the_sets_order_so_runs_of_other_shard_counts_pair():
    # five questions with F1 = its index / 10: shards 0/2 (questions 0, 2, 4) and 1/2 (1, 3)
    def shard(i, n, qs):
        run = _run(f"{i}/{n}", [[q / 10 for q in qs]] * 4)
        run["golds"] = {"1": [[f"g{q}"] for q in qs]}
        run["positions"] = {"1": [q for q in qs]}
        return run

    two = report.merge([shard(0, 2, [0, 2, 4]), shard(1, 2, [1, 3])])
    three = report.merge([shard(1, 3, [1, 4]), shard(0, 3, [0, 3]), shard(2, 3, [2])])
    for run in (two, three):
        assert run["golds"]["1"] == [[f"g{q}"] for q in range(5)] and run["positions"]["1"] == list(range(5))
        assert all(r["f1"] == [q / 10 for q in range(5)] for r in run["rows"])
        assert report.in_set_order(run) is run  # once in the set's order, left alone
    report.combine(two, three, "other")  # same questions, same order: pairs
    part = report.merge([shard(0, 3, [0, 3]), shard(2, 3, [2])])  # not every shard: left in shard order
    assert part["golds"]["1"] == [["g0"], ["g3"], ["g2"]]


def test_position_table_splits_f1_by_where_the_paragraph_was():
    run = _run("0/1", [[1.0, 0.0, 1.0], [0.0] * 3, [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], k=3)
    run["positions"] = {"3": [1, 2, 2]}
    table = report.qa_tables(run)
    assert "F1 by the position" in table
    line = next(x for x in table.splitlines() if x.startswith("| truncate @"))
    assert line.split("|")[2:4] == [" 100.0 ", " 0.0 "]  # paragraph 1: 1.0; paragraph 2: mean(0, 0)
    assert "(n=2)" in table and "paragraph 3 (n=0)" in table


def test_combine_adds_another_checkpoints_rows_over_the_same_questions(tmp_path):
    import gzip
    import json

    import pytest

    base = _run("0/1", [[1.0, 0.0], [0.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    other = _run("0/1", [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    both = report.combine(base, other, "new")
    names = [r["row"] for r in both["rows"]]
    assert names == ["full context", "no context", "HyCo2 hybrid (new)", "HyCo2 hybrid", "truncate"]
    assert both["rows"][2]["f1"] == [1.0, 1.0] and len(base["rows"]) == 4  # the base run is not changed
    path = tmp_path / "run.json.gz"
    path.write_bytes(gzip.compress(json.dumps(both).encode()))
    assert report.load(path) == both
    report.LABELS.update({"HyCo2 hybrid": "-"})  # "-" leaves a row out of the tables
    try:
        assert "| HyCo2 hybrid |" not in report.qa_tables(both) and "HyCo2 hybrid (new)" in report.qa_tables(both)
    finally:
        report.LABELS.clear()
    other["golds"]["1"] = [["x"]] * 2
    with pytest.raises(SystemExit, match="same questions"):
        report.combine(base, other, "new")


def test_host_profile_times_the_host_work_and_puts_the_model_back(tiny):
    import bench.batch as batch_bench

    texts = ["The lighthouse was built in 1872 by Maria Lindqvist.", "Rye sourdough ferments for 36 hours.",
             "The comet returns about every 74 years."]
    before = tiny.compress_batch(texts, None, rate=0.3)
    h = batch_bench.host_profile(tiny, texts, 0.3, 2, None, top=5)
    assert h["seconds"] > 0 and h["ms_per_doc"] > 0 and 0 < len(h["top"]) <= 5
    assert "forward" not in vars(tiny.model) and "encode" not in vars(tiny.encoder)
    after = tiny.compress_batch(texts, None, rate=0.3)
    assert [r.kept_positions for r in after] == [r.kept_positions for r in before]

def test_peers_from_adds_missing_peer_rows_and_wins_compares_checkpoints():
    import pytest

    new = _run("0/1", [[1.0, 0.0, 1.0], [0.0] * 3, [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    new["rows"].insert(3, dict(_row("HyCo2 hybrid (previous)", "hybrid", [0.0, 1.0, 0.0], [2.0] * 3, 1, 0.1),
                               tag="previous"))
    old = _run("0/1", [[1.0, 0.0, 1.0], [0.0] * 3, [0.0] * 3, [1.0, 1.0, 1.0]])  # its truncate row differs
    old["rows"].append(dict(_row("longllmlingua", "hard", [0.5] * 3, [2.2] * 3, 1, 0.1), method="longllmlingua"))
    old["rows"].append(dict(_row("llmlingua", "hard", [0.5] * 3, [2.2] * 3, 1, 0.25), method="llmlingua"))  # no 0.25 here
    both = report.peers_from(new, old)
    names = [r["row"] for r in both["rows"]]
    assert names == ["full context", "no context", "HyCo2 hybrid", "HyCo2 hybrid (previous)", "truncate",
                     "longllmlingua"]  # the run's own truncate row stays; the peer it lacked comes after it
    assert both["rows"][4]["f1"] == [0.0, 1.0, 0.0] and len(new["rows"]) == 5
    wins = report.wins([r for r in both["rows"]]).splitlines()
    new_vs_old = next(x for x in wins if "| HyCo2 hybrid | 100.0 | HyCo2 hybrid (previous) |" in x)
    assert "+66.7" in new_vs_old  # paired difference of the two checkpoints' F1 over the same questions
    assert not any(x.startswith("| 0.10 | HyCo2 hybrid (previous) | 33.3 | HyCo2 hybrid |") for x in wins)
    assert sum("LongLLMLingua" in x for x in wins) == 2  # both checkpoints against the added peer
    # rows record the phrase strength they used (0.9 by default): that alone does not make one an ablation
    default = [dict(r, phrases=0.9) if r["mode"] == "hybrid" else r for r in both["rows"]]
    assert report.wins(default) == report.wins(both["rows"])
    ablation = dict(_row("HyCo2 hybrid, phrases 0", "hybrid", [0.0] * 3, [2.0] * 3, 1, 0.1), phrases=0.0)
    assert report.wins([*both["rows"], ablation]).count("| HyCo2 hybrid, phrases 0 |") == 0
    old["golds"]["1"] = [["x"]] * 3
    with pytest.raises(SystemExit, match="same questions"):
        report.peers_from(new, old)


def test_compare_pairs_rows_and_says_when_answers_or_likelihoods_differ():
    import bench.compare as compare

    a = _run("0/1", [[1.0, 0.0], [0.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    b = _run("0/1", [[1.0, 0.0], [0.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    b["rows"][2]["row"] = "HyCo2 hybrid, renamed"
    table, same = compare.compare(a, b, {"HyCo2 hybrid": "HyCo2 hybrid, renamed"})
    assert same and "| HyCo2 hybrid | HyCo2 hybrid, renamed |" in table
    b["rows"][3]["nll"] = [2.5, 2.6]
    assert not compare.compare(a, b, {"HyCo2 hybrid": "HyCo2 hybrid, renamed"})[1]


def test_versus_compares_each_checkpoint_with_the_reference_row_by_row():
    run = _run("0/1", [[1.0, 0.0, 1.0], [0.0] * 3, [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    rows = run["rows"]
    for tag, f1 in (("comi", [0.0, 1.0, 1.0]), ("hybrid", [0.0, 0.0, 1.0])):
        rows.append(dict(_row(f"HyCo2 hybrid ({tag})", "hybrid", f1, [2.0] * 3, 1, 0.1), tag=tag))
        rows.append(dict(_row(f"HyCo2 soft only ({tag})", "soft", f1[::-1], [2.0] * 3, 1, 0.1), tag=tag))
    table = report.versus(rows, "hybrid").splitlines()
    comi = next(x for x in table if x.startswith("| HyCo2 hybrid | 0.10 | comi |"))
    assert "| 66.7 | 33.3 | +33.3 [" in comi  # paired over the same three questions
    assert any(x.startswith("| HyCo2 soft only | - | comi |") for x in table)
    assert any(x.startswith("| HyCo2 hybrid | 0.10 | the run’s own |") for x in table)
    assert not any("| hybrid |" in x for x in table[2:])  # the reference is not compared with itself
    assert "against hybrid" in report.qa_tables({**run, "rows": rows}, reference="hybrid")


@pytest.mark.integration
def test_selection_bench_measures_hyco2_at_other_phrase_strengths(tmp_path):
    """bench/selection.py: how often the gold answer survives in the kept tokens, per method and, with
    --phrases, for HyCo2's classifier at other phrase strengths (the real default model, 3 questions)."""
    import json

    import bench.selection
    from tests.conftest import SQUAD_MINI

    out = tmp_path / "sel.json"
    assert bench.selection.main(["--data", str(SQUAD_MINI), "--articles", "Southern_California", "--rates", "0.3",
                                 "--methods", "truncate", "--phrases", "0", "--limit", "3", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["truncate", "hyco2, phrases 0"]
    counts = [3 * r["answer_kept"] / 100 for r in rows]  # a share of 3 questions: 0, 1, 2 or 3 of them
    assert all(abs(c - round(c)) < 1e-9 and 0 <= round(c) <= 3 for c in counts)
    # whole and part of the answer are disjoint; only the scoring method (the classifier) has a rank
    assert all(r["answer_kept"] + r["answer_part_kept"] <= 100 + 1e-9 for r in rows)
    assert rows[0]["best_gold_token_top20"] is None and 0 <= rows[1]["best_gold_token_top20"] <= 100


def test_selection_bench_finds_the_gold_tokens_and_the_part_kept(tiny):
    """The gold span maps onto the tokens that overlap its characters; keeping some of them is "part"."""
    from bench.selection import gold_tokens, kept_shares
    from hyco2.training.data import QAExample
    from tests.conftest import PARAGRAPH

    item = QAExample(PARAGRAPH, "Who built the lighthouse?", ["Maria Lindqvist"], [PARAGRAPH.index("Maria Lindqvist")])
    r = tiny.compress(PARAGRAPH, item.question, budget=len(tiny.tokenize(PARAGRAPH)))  # everything kept
    gold = gold_tokens(r, item)
    assert "".join(r.tokenized.text[a:b] for a, b in (r.tokenized.offsets[t] for t in gold)).strip() == "Maria Lindqvist"
    assert kept_shares([r], [item])["answer_part_kept"] == 0.0
    r.kept_positions = [p for p in r.kept_positions if p != gold[-1]]
    assert kept_shares([r], [item])["answer_part_kept"] == 100.0
    assert gold_tokens(r, QAExample(PARAGRAPH, "?", ["x"], [-1])) == []
