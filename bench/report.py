"""Turn bench/results/*.json into the README's Markdown tables (so no figure is copied by hand).

    python bench/report.py bench/results/qa-gpu.json               # the QA tables, one per K
    python bench/report.py --merge a.json b.json c.json d.json --out qa-gpu.json   # shards of one run
    python bench/report.py old.json --legacy                       # runs made before per-question arrays
    python bench/report.py new.json --peers-from old.json --out both.json.gz   # the peers' rows of an earlier run

Means over questions; CIs are 95% paired bootstraps over questions (hyco2.metrics); "recovery" is
the share of the gold answer's NLL gap between no context and full context that the row closes.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path


if __package__ in (None, ""):  # python bench/report.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import NAMES, gold_position, load_items  # noqa: E402
from hyco2.metrics import mean, nll_recovery, paired_bootstrap_ci, paired_ratio_ci  # noqa: E402
PEERS = ("truncate", "llmlingua", "longllmlingua")


def load(path: Path) -> dict:
    """A run's JSON, plain or gzipped (the stored GPU runs are .json.gz: several MB of per-question arrays),
    its questions in the set's order (:func:`in_set_order`)."""
    raw = path.read_bytes()
    return in_set_order(json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))


def in_set_order(run: dict) -> dict:
    """The run's per-question arrays in the question set's own order. Shard i of n measures questions
    i, i+n, i+2n, ... and a merged run holds its shards one after another, so two runs of the same
    questions merged from different numbers of shards hold them in different orders; only the set's
    order pairs them. A run of part of the set (not every shard), or of one shard, is left as it is."""
    shards = [tuple(map(int, s.split("/"))) for s in run.get("shards", [])]
    if run.get("order") == "set" or len(shards) <= 1:
        return run
    n = shards[0][1]
    if any(m != n for _, m in shards) or sorted(i for i, _ in shards) != list(range(n)):
        return run
    total = len(next(iter(run["golds"].values())))
    index = [i + j * n for i, _ in shards for j in range((total - i + n - 1) // n)]  # set position of each
    if len(index) != total or any(len(g) != total for g in run["golds"].values()):
        return run
    at = sorted(range(total), key=index.__getitem__)  # set position -> position in the run

    def ordered(values):
        return [values[p] for p in at] if isinstance(values, list) and len(values) == total else values

    rows = [{k: ordered(v) for k, v in r.items()} for r in run["rows"]]
    return {**run, "rows": rows, "golds": {k: ordered(v) for k, v in run["golds"].items()},
            "positions": {k: ordered(v) for k, v in run.get("positions", {}).items()}, "order": "set"}


def merge(runs: list[dict]) -> dict:
    """Shards of one run → one run. Shards measuring the same K (same rows, disjoint questions) are
    concatenated question-wise; groups of different K are then put side by side."""
    failed = [f for r in runs for f in r.get("failed_rows", [])]
    gone = {(f["row"], f["rate"], f["paragraphs"]) for f in failed}  # a row one shard could not make: out of all
    runs = [{**r, "rows": [x for x in r["rows"] if (x["row"], x["rate"], x["paragraphs"]) not in gone]} for r in runs]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(sorted(r["golds"])), []).append(r)
    merged = [_merge_same(g) for _, g in sorted(groups.items())]
    out = dict(merged[0])
    out["rows"] = [row for m in merged for row in m["rows"]]
    out["golds"] = {k: v for m in merged for k, v in m["golds"].items()}
    out["positions"] = {k: v for m in merged for k, v in m.get("positions", {}).items()}
    out["shards"] = [s for m in merged for s in m["shards"]]
    out["seconds"] = max(m["seconds"] for m in merged)
    out["failed_rows"] = failed
    return in_set_order(out)


def _merge_same(runs: list[dict]) -> dict:
    first = runs[0]
    out = {**first, "shards": [s for r in runs for s in r["shards"]], "seconds": max(r["seconds"] for r in runs)}
    out["golds"] = {k: [g for r in runs for g in r["golds"][k]] for k in first["golds"]}
    out["positions"] = {k: [g for r in runs for g in r.get("positions", {}).get(k, [])] for k in first["golds"]}
    rows = []
    common = min(len(r["rows"]) for r in runs)  # a shard stopped at its time limit has fewer rows
    for i, row in enumerate(first["rows"][:common]):
        parts = [r["rows"][i] for r in runs]
        assert all(p["row"] == row["row"] and p["rate"] == row["rate"] for p in parts), row["row"]
        merged = dict(row)
        for key, value in row.items():
            if isinstance(value, list):
                merged[key] = [v for p in parts for v in p[key]]
            elif key in ("compress_ms", "answer_ms", "forward_passes"):
                n = [len(p["f1"]) for p in parts]
                merged[key] = sum(p[key] * m for p, m in zip(parts, n)) / sum(n)
            elif key == "peak_mib":
                merged[key] = max(p[key] for p in parts)
        rows.append(merged)
    out["rows"] = rows
    return out


def combine(base: dict, extra: dict, tag: str, ks: list[int] | None = None) -> dict:
    """Another run's checkpoint rows (soft, hybrid, hard only of its primary checkpoint) beside a run's
    own, for the K both measured on the same questions in the same order (checked by the gold answers);
    named with ``tag``. Rows the two share by construction (full, none, peers) are taken from ``base``."""
    out = dict(base, rows=list(base["rows"]))
    for k in ks if ks is not None else sorted({r["paragraphs"] for r in extra["rows"]}):
        if base["golds"].get(str(k)) != extra["golds"].get(str(k)):
            raise SystemExit(f"K={k}: the two runs did not measure the same questions in the same order")
        new = [dict(r, row=f"{r['row']} ({tag})", tag=tag) for r in extra["rows"]
               if r["paragraphs"] == k and not r["tag"] and r["mode"] in ("soft", "hybrid", "hard")
               and r["method"] == "hyco2"]
        at = max(i for i, r in enumerate(out["rows"]) if r["paragraphs"] == k and r["mode"] == "none") + 1
        out["rows"][at:at] = new
    out["also"] = [*base.get("also", []), f"{tag}={extra.get('checkpoint')}"]
    return out


def peers_from(base: dict, other: dict, ks: list[int] | None = None) -> dict:
    """The peers' rows (hard methods other than HyCo2's) of another run over the same questions, beside a
    run's own, where the run lacks them: a peer's selection does not depend on the HyCo2 checkpoint, so a
    run that measured a new checkpoint need not spend device time measuring the peers again."""
    out = dict(base, rows=list(base["rows"]))
    for k in ks if ks is not None else sorted({r["paragraphs"] for r in base["rows"]}):
        if base["golds"].get(str(k)) != other["golds"].get(str(k)):
            raise SystemExit(f"K={k}: the two runs did not measure the same questions in the same order")
        have = {(r["method"], r["rate"]) for r in out["rows"] if r["paragraphs"] == k}
        rates = {r["rate"] for r in out["rows"] if r["paragraphs"] == k}
        for r in other["rows"]:  # a peer at a rate this run did not measure has nothing to stand beside
            if r["paragraphs"] != k or r["mode"] != "hard" or r["method"] == "hyco2" \
                    or (r["method"], r["rate"]) in have or r["rate"] not in rates:
                continue
            at = max(i for i, x in enumerate(out["rows"]) if x["paragraphs"] == k and x["rate"] == r["rate"]) + 1
            out["rows"].insert(at, dict(r))
    out["peers_from"] = [*base.get("peers_from", []), f"{other.get('machine')}, checkpoint {other.get('checkpoint')}"]
    return out


LABELS: dict[str, str] = {}  # row name -> README label (--label; "-" leaves the row out)


def _name(r: dict) -> str:
    return LABELS.get(r["row"], NAMES.get(r["row"], r["row"]))


def qa_table(rows: list[dict]) -> str:
    full = next(r for r in rows if r["mode"] == "full")
    none = next(r for r in rows if r["mode"] == "none")
    n_full, n_none = mean(full["nll"]), mean(none["nll"])
    out = ["| row | rate | F1 | ΔF1 vs full [95% CI] | EM | faithful | gold NLL | recovery | contains | doc tokens "
           "| ratio | compress ms | fwd passes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "-" if r["rate"] is None or r["mode"] == "soft" else f"{r['rate']:.2f}"
        doc, ctx = sum(r["doc_tokens"]), sum(r["context_tokens"])
        ratio = f"{ctx / doc:.1f}x" if doc and r["mode"] != "full" else ("1.0x" if r["mode"] == "full" else "-")
        if r is full:
            delta = "-"
        else:
            lo, hi = paired_bootstrap_ci(r["f1"], full["f1"])
            delta = f"{100 * (mean(r['f1']) - mean(full['f1'])):+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        rec = nll_recovery(mean(r["nll"]), n_none, n_full)
        out.append(f"| {_name(r)} | {rate} | {100 * mean(r['f1']):.1f} | {delta} | {100 * mean(r['em']):.1f} | "
                   f"{100 * mean(r['faithful']):.1f} | {mean(r['nll']):.2f} | {100 * rec:.0f}% | "
                   f"{100 * mean(r['contains']):.1f} | {doc / len(r['f1']):.0f} | {ratio} | {r['compress_ms']:.0f} | "
                   f"{r['forward_passes']:.1f} |")
    return "\n".join(out)


def is_keep_all(r: dict) -> bool:
    """The same reader reading every token: HyCo2's soft tokens + the whole context (rate 1.0)."""
    return r["mode"] == "hybrid" and r["rate"] == 1.0 and r.get("selector", "classifier") == "classifier"


def _diff(a: list[float], b: list[float]) -> tuple[str, str]:
    lo, hi = paired_bootstrap_ci(a, b)
    sig = "yes, ahead" if lo > 0 else ("yes, behind" if hi < 0 else "no")
    return f"{100 * (mean(a) - mean(b)):+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]", sig


def wins(rows: list[dict]) -> str:
    """HyCo2 hybrid minus each peer (and truncation), and minus HyCo2's soft tokens beside a peer's selection,
    F1 and contains points with paired 95% CIs, per rate; the run's own checkpoint also minus each other
    checkpoint's hybrid row (``--also`` / ``--combine``): whether a new checkpoint beats the shipped one is a
    paired question over the same answers, not two CIs side by side."""
    out = ["| rate | hybrid row | its F1 | vs | their F1 | ΔF1 [95% CI] | its contains | their contains "
           "| Δcontains [95% CI] | significant (F1 / contains) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    hybrids = [r for r in rows if r["mode"] == "hybrid" and r.get("selector", "classifier") == "classifier"
               and not is_keep_all(r) and not is_variant(r)]
    for h in hybrids:
        for r in rows:
            other_checkpoint = r["mode"] == "hybrid" and r.get("tag") and not h.get("tag") and not is_keep_all(r)
            other_selection = (r["mode"] == "hybrid" and r.get("selector", "classifier") != "classifier"
                               and r.get("tag", "") == h.get("tag", ""))
            if r is h or r["rate"] != h["rate"] or (r["mode"] != "hard" and not other_checkpoint
                                                    and not other_selection):
                continue
            d_f1, s_f1 = _diff(h["f1"], r["f1"])
            d_c, s_c = _diff(h["contains"], r["contains"])
            out.append(f"| {h['rate']:.2f} | {_name(h)} | {100 * mean(h['f1']):.1f} | {_name(r)} | "
                       f"{100 * mean(r['f1']):.1f} | {d_f1} | {100 * mean(h['contains']):.1f} | "
                       f"{100 * mean(r['contains']):.1f} | {d_c} | {s_f1} / {s_c} |")
    return "\n".join(out)


def is_variant(r: dict) -> bool:
    """An ablation of the default row ("HyCo2 hybrid, phrases 0", "…, 2 spans", "…, gap …"): its label
    says what it changes after a comma. Rows record the phrase strength they used, so a value there does
    not mark an ablation (the default itself is 0.9)."""
    return ", " in r["row"].split(" (")[0]


def base_name(r: dict) -> str:
    """The row's name without its checkpoint's tag: "HyCo2 hybrid (comi)" → "HyCo2 hybrid"."""
    tag = r.get("tag", "")
    return r["row"][: -len(tag) - 3] if tag and r["row"].endswith(f" ({tag})") else r["row"]


def versus(rows: list[dict], reference: str) -> str:
    """Every checkpoint's rows minus the same row of checkpoint ``reference`` (its tag; "" = the run's own),
    F1 and contains points with paired 95% CIs: adapters trained with one recipe, compared question by question."""
    ref = {(base_name(r), r["mode"], r["rate"]): r for r in rows if r.get("tag", "") == reference}
    out = ["| row | rate | checkpoint | its F1 | reference F1 | ΔF1 [95% CI] | its contains | reference contains "
           "| Δcontains [95% CI] |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        other = ref.get((base_name(r), r["mode"], r["rate"]))
        if other is None or other is r or r["mode"] not in ("soft", "hybrid"):
            continue
        d_f1, _ = _diff(r["f1"], other["f1"])
        d_c, _ = _diff(r["contains"], other["contains"])
        rate = "-" if r["mode"] == "soft" else f"{r['rate']:.2f}"
        out.append(f"| {base_name(r)} | {rate} | {r.get('tag') or 'the run’s own'} | {100 * mean(r['f1']):.1f} | "
                   f"{100 * mean(other['f1']):.1f} | {d_f1} | {100 * mean(r['contains']):.1f} | "
                   f"{100 * mean(other['contains']):.1f} | {d_c} |")
    return "\n".join(out) if len(out) > 2 else ""


def same_reader(rows: list[dict]) -> str:
    """What compression loses against the same reader reading everything: each HyCo2 row's F1 and contains
    as a share of its checkpoint's keep-all row (soft tokens + every token), with paired-bootstrap 95% CIs
    of the ratio. Rows of the raw backbone (full context, peers) are not in it: their reader is another."""
    refs = {r.get("tag", ""): r for r in rows if is_keep_all(r)}
    if not refs:
        return ""
    out = ["| row | rate | ratio | F1 | keep-all F1 | F1 kept [95% CI] | contains | keep-all contains "
           "| contains kept [95% CI] | EM | words |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = refs.get(r.get("tag", ""))
        if ref is None or r["mode"] != "hybrid":
            continue
        doc, ctx = sum(r["doc_tokens"]), sum(r["context_tokens"])
        cells = []
        for key in ("f1", "contains"):
            lo, hi = paired_ratio_ci(r[key], ref[key])
            cells += [f"{100 * mean(r[key]):.1f}", f"{100 * mean(ref[key]):.1f}",
                      f"{100 * mean(r[key]) / max(1e-9, 100 * mean(ref[key])):.0%} [{lo:.0%}, {hi:.0%}]"]
        words = mean([len(a.split()) for a in r["answers"]])
        out.append(f"| {_name(r)} | {r['rate']:.2f} | {ctx / max(1, doc):.1f}x | " + " | ".join(cells)
                   + f" | {100 * mean(r['em']):.1f} | {words:.1f} |")
    return "\n".join(out)


def answer_kept(rows: list[dict]) -> str:
    """Where a compressed answer is lost: how often the gold answer is in the kept text, and how often the
    answer contains it when it was kept and when it was not, beside the same reader's keep-all answer on
    those questions. Contains alike in both groups means the reader does not use what was kept."""
    refs = {r.get("tag", ""): r for r in rows if is_keep_all(r)}
    out = ["| row | rate | gold answer kept | contains, kept | contains, not kept | keep-all contains, kept |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if r["mode"] != "hybrid" or "gold_kept" not in r or is_keep_all(r):
            continue
        kept = [g > 0 for g in r["gold_kept"]]
        ref = refs.get(r.get("tag", ""), {}).get("contains")

        def share(values, where):
            picked = [v for v, w in zip(values, kept) if w == where]
            return f"{100 * mean(picked):.1f}" if picked else "-"

        out.append(f"| {_name(r)} | {r['rate']:.2f} | {100 * mean(kept):.1f} | {share(r['contains'], True)} | "
                   f"{share(r['contains'], False)} | {share(ref, True) if ref else '-'} |")
    return "\n".join(out) if len(out) > 2 else ""


def gold_positions(run: dict, k: int, data_dir: str | None = None) -> list[int] | None:
    """Each question's paragraph position (1..K): stored by bench/qa.py, or rebuilt for older runs from
    the data they measured (same set, seed and shard order), checked against the run's gold answers."""
    stored = run.get("positions", {}).get(str(k))
    if stored:
        return stored
    if data_dir is None or k == 1:
        return None
    from hyco2.training.data import with_distractors

    base = load_items(run["set"], Path(data_dir))[: run.get("questions")]  # as qa.py: --limit, then distractors
    items = with_distractors(base, k, seed=0)
    shards = sorted({s for s in run["shards"]}, key=lambda s: int(s.split("/")[0]))
    ordered = items if run.get("order") == "set" else \
        [it for s in shards for it in items[int(s.split("/")[0])::int(s.split("/")[1])]]
    if [it.answers for it in ordered] != run["golds"][str(k)]:
        return None  # not the data this run measured
    return [gold_position(it) for it in ordered]


def position_table(rows: list[dict], positions: list[int], k: int) -> str:
    """F1 by where the question's paragraph sits among the K (lost in the middle?)."""
    keep = [r for r in rows if r["mode"] in ("full", "hybrid") or r["row"] in ("truncate", "longllmlingua")]
    counts = [positions.count(p) for p in range(1, k + 1)]
    out = ["| row | " + " | ".join(f"paragraph {p} (n={n})" for p, n in zip(range(1, k + 1), counts)) + " |",
           "|---|" + "---|" * k]
    for r in keep:
        cells = []
        for p in range(1, k + 1):
            f1 = [f for f, q in zip(r["f1"], positions) if q == p]
            cells.append(f"{100 * mean(f1):.1f}" if f1 else "-")
        rate = "" if r["rate"] is None or r["mode"] == "soft" else f" @ {r['rate']:.2f}"
        out.append(f"| {_name(r)}{rate} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def qa_tables(run: dict, data_dir: str | None = None, reference: str | None = None) -> str:
    parts = [f"{len(next(iter(run['golds'].values())))} questions ({run.get('set', '')}), {run['machine']}, "
             f"checkpoint {run['checkpoint']}, {run['seconds']:.0f} s"]
    for k in sorted({r["paragraphs"] for r in run["rows"]}):
        rows = [r for r in run["rows"] if r["paragraphs"] == k and LABELS.get(r["row"]) != "-"]
        where = " (distractors from other articles)" if k > 1 and run.get("distractors") == "other" else ""
        parts += [f"\n#### K = {k} paragraph{'s' if k > 1 else ''}{where}\n", qa_table(rows), "", wins(rows)]
        reader = same_reader(rows)
        if reader:
            parts += ["", "Against the same reader reading every token (keep-all):", "", reader]
        kept = answer_kept(rows)
        if kept:
            parts += ["", "Where the answer is lost (the gold answer in the kept text or not):", "", kept]
        against = versus(rows, reference) if reference is not None else ""
        if against:
            parts += ["", f"Each checkpoint against {reference or 'the run’s own'}, row by row (paired):", "", against]
        positions = gold_positions(run, k, data_dir) if k > 1 else None
        if positions:
            parts += ["", f"F1 by the position of the question's paragraph among the {k}:", "",
                      position_table(rows, positions, k)]
        for failed in (f for f in run.get("failed_rows", []) if f["paragraphs"] == k):
            parts += ["", f"{failed['row']} at rate {failed['rate']}: no row, the package failed ({failed['error']})."]
    return "\n".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="one run, or its shards with --merge")
    p.add_argument("--merge", action="store_true", help="merge shards of one run")
    p.add_argument("--out", default=None, help="where --merge / --combine write the run (.json, or .json.gz)")
    p.add_argument("--label", nargs="*", default=[], metavar="ROW=LABEL", help="rename rows in the tables")
    p.add_argument("--combine", nargs=2, metavar=("RUN", "TAG"), default=None,
                   help="add another run's checkpoint rows over the same questions, named (TAG)")
    p.add_argument("--peers-from", default=None, metavar="RUN",
                   help="add another run's peer rows (LLMLingua, LongLLMLingua, ...) over the same questions")
    p.add_argument("--combine-k", type=int, nargs="*", default=None, help="only these K of the --combine run")
    p.add_argument("--versus", default=None, metavar="TAG",
                   help="also each checkpoint's rows minus those of the checkpoint tagged TAG ('' = the run's own)")
    p.add_argument("--data-dir", default=None,
                   help="SQuAD folder, to rebuild paragraph positions for runs that did not store them")
    args = p.parse_args()
    LABELS.update(dict(x.split("=", 1) for x in args.label))
    runs = [load(Path(f)) for f in args.results]
    run = merge(runs) if args.merge else runs[0]
    if args.combine:
        run = combine(run, load(Path(args.combine[0])), args.combine[1], args.combine_k)
    if args.peers_from:
        run = peers_from(run, load(Path(args.peers_from)), args.combine_k)
    if (args.merge or args.combine or args.peers_from) and args.out:
        path = Path(args.out)
        data = json.dumps(run).encode()
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    print(qa_tables(run, args.data_dir, args.versus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
