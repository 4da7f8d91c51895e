"""QA benchmark: full context vs HyCo2 vs ablations vs peers, same backbone, same questions, one run.

    python bench/qa.py                                   # SoCal + XQuAD (~1,300 questions), K=1 and K=5
    python bench/qa.py --limit 60 --paragraphs 1         # a quick CPU check
    python bench/qa.py --shard 0/4 --out a.json          # a quarter (one GPU each), merged by report.py

Per row and per question it records the answer, EM, F1, substring match, faithfulness (F1 between
the row's answer and the full-context answer) and the gold answer's teacher-forced NLL after the row's
prompt; bench/report.py turns that into means, paired-bootstrap CIs and NLL recovery. ``--paragraphs
K`` puts each question's paragraph among K-1 others of its article (seeded), so compression has
distractors to remove. Hard-only methods get the same total budget as HyCo2's hybrid (kept + soft).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from hyco2 import HyCo2Compressor, HyCo2Reader
from hyco2.backbone import QUANTIZE_CHOICES
from hyco2.baselines import available_methods
from hyco2.settings import CompressionSettings
from hyco2.metrics import best_over_golds, contains, exact_match, f1_score
from hyco2.modeling import HyCo2Model
from hyco2.training.data import DISTRACTORS, with_distractors

if __package__ in (None, ""):  # python bench/qa.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import NAMES, SETS, SHARED, PeakMemory, gold_position, load_items, machine  # noqa: E402
from bench.official import ROWS as OFFICIAL_ROWS  # noqa: E402

FIRST = ("truncate", "longllmlingua", "llmlingua")  # measured first, in case a run hits its time limit


KEEP_ALL = "HyCo2 keep-all"  # soft tokens + every token (rate 1.0): the same reader, uncompressed


@contextlib.contextmanager
def reader_gap(comp: HyCo2Compressor, gap: str | None):
    """The checkpoint's reader format with another text between non-adjacent kept spans, for one row."""
    if gap is None:
        yield
        return
    config = comp.model.config
    before, config.kept_gap = config.kept_gap, gap
    try:
        yield
    finally:
        config.kept_gap = before


def run_row(comp: HyCo2Compressor, items, name: str, mode: str, *, method: str = "hyco2", rate=None,
            budgets=None, selector: str = "classifier", batch_size: int = 8, max_new_tokens: int = 24,
            full_answers: list[str] | None = None, tag: str = "", phrases: float | None = None,
            spans: int | None = None, context_tokens: list[int] | None = None, gap: str | None = None,
            positions: str = "contiguous") -> tuple[dict, list]:
    """Compress (if needed), answer and score every item; per-question arrays plus costs."""
    contexts, questions = [it.context for it in items], [it.question for it in items]
    compress_s, passes, comps = 0.0, 0.0, None
    with PeakMemory(comp.backbone.device) as mem, reader_gap(comp, gap):
        if mode in ("hybrid", "soft", "hard"):
            t0 = time.perf_counter()
            settings = CompressionSettings(rate=rate, method=method, selector=selector, phrases=phrases, spans=spans)
            if budgets is not None:  # same total budget as the hybrid row, question by question
                comps = [comp.compress(c, q, settings=settings, budget=b) for c, q, b in zip(contexts, questions, budgets)]
            else:
                comps = comp.compress_batch(contexts, questions, settings=settings, batch_size=batch_size)
            compress_s = (time.perf_counter() - t0) / len(items)
            passes = sum(c.forward_passes for c in comps) / len(comps)
        t0 = time.perf_counter()
        reader = HyCo2Reader(comp, positions=positions)
        answers = reader.answer_batch(contexts, questions, mode, compressions=comps, batch_size=batch_size,
                                      max_new_tokens=max_new_tokens)
        answer_s = (time.perf_counter() - t0) / len(items)
        nll = reader.answer_nll(contexts, questions, [it.answers[0] for it in items], mode, compressions=comps,
                                batch_size=batch_size)
    texts = [a.text for a in answers]
    golds = [it.answers for it in items]
    ref = full_answers if full_answers is not None else texts
    row = {
        "row": name, "tag": tag, "mode": mode, "method": method, "rate": rate, "selector": selector,
        "phrases": settings.phrase_strength if comps is not None else None,
        "spans": settings.to_dict()["spans"] if comps is not None else None, "gap": comp.model.config.kept_gap if gap is None else gap, "positions": positions,
        "answers": texts,
        "em": [best_over_golds(exact_match, t, g) for t, g in zip(texts, golds)],
        "f1": [best_over_golds(f1_score, t, g) for t, g in zip(texts, golds)],
        "contains": [best_over_golds(contains, t, g) for t, g in zip(texts, golds)],
        "faithful": [f1_score(t, r) for t, r in zip(texts, ref)],
        "nll": nll,
        "doc_tokens": [a.document_tokens for a in answers],
        "context_tokens": context_tokens or [len(comp.tokenize(c)) for c in contexts],
        "compress_ms": 1000 * compress_s, "answer_ms": 1000 * answer_s, "forward_passes": passes,
        "peak_mib": mem.peak,
    }
    if comps is not None:  # the gold answer among the kept text: whether a loss is the selection's or the reading's
        row["gold_kept"] = [best_over_golds(contains, c.kept_text, g) for c, g in zip(comps, golds)]
    return row, comps


def official_row(comp: HyCo2Compressor, official, items, name: str, rate: float, targets: list[int], kw) -> dict:
    """The official package compresses each context to its target (cl100k tokens); the raw backbone reads
    what it kept as the context. Its seconds are the package's, question by question."""
    from dataclasses import replace  # noqa: PLC0415

    t0 = time.perf_counter()
    try:
        kept = [official.compress(it.context, it.question, t, name) for it, t in zip(items, targets)]
    except Exception as exc:  # noqa: BLE001 - the package's own failure is the finding: say it, measure the rest
        return {"row": name, "rate": rate, "error": f"{type(exc).__name__}: {exc}"[:300]}
    seconds = (time.perf_counter() - t0) / len(items)
    row, _ = run_row(comp, [replace(it, context=k) for it, k in zip(items, kept)], name, "full", **kw)
    row.update(mode="hard", method=name, rate=rate, compress_ms=1000 * seconds, target_cl100k=targets)
    return row


def run_setting(comp: HyCo2Compressor, others: dict[str, HyCo2Compressor], items, k: int, rates, methods,
                kw, log, rows: list[dict], save, phrases: float | None = None, ablations: bool = True,
                selectors: tuple[str, ...] = (), gaps: tuple[str, ...] = (), original_positions: bool = False,
                spans: tuple[int, ...] = (), official=None, failures: list | None = None) -> None:
    """Every row for one K: full, none, keep-all (each checkpoint: the same reader reading every token,
    the reference a compression is measured against), soft, and per rate hybrid (each checkpoint), the
    reader-format and selection ablations, hard only, peers (``ablations=False`` leaves out soft only and
    hard only). Rows are appended to ``rows`` and saved as they come, so a run stopped at its time limit
    keeps them."""

    failures = failures if failures is not None else []

    def add(row: dict) -> dict:
        row["paragraphs"] = k
        rows.append(row)
        save()
        n = len(row["f1"])
        log(f"  K={k} {row['row']:<34} rate={row['rate']}  F1={100 * sum(row['f1']) / n:.1f}  "
            f"contains={100 * sum(row['contains']) / n:.1f}  nll={sum(row['nll']) / n:.2f}")
        return row

    full = add(run_row(comp, items, "full context", "full", **kw)[0])
    kw = {**kw, "full_answers": full["answers"], "context_tokens": full["context_tokens"]}  # same for every row
    add(run_row(comp, items, "no context", "none", **kw)[0])
    add(run_row(comp, items, KEEP_ALL, "hybrid", rate=1.0, **kw)[0])
    for tag, other in others.items():
        add(run_row(other, items, f"{KEEP_ALL} ({tag})", "hybrid", rate=1.0, tag=tag, **kw)[0])
    if ablations:  # each checkpoint's soft tokens alone (the adapters compared at 16 tokens, nothing kept)
        add(run_row(comp, items, "HyCo2 soft only", "soft", rate=rates[0], **kw)[0])
        for tag, other in others.items():
            add(run_row(other, items, f"HyCo2 soft only ({tag})", "soft", rate=rates[0], tag=tag, **kw)[0])
    for rate in rates:
        hybrid, comps = run_row(comp, items, "HyCo2 hybrid", "hybrid", rate=rate, **kw)
        add(hybrid)
        budgets = [c.compressed_tokens for c in comps]
        for tag, other in others.items():
            add(run_row(other, items, f"HyCo2 hybrid ({tag})", "hybrid", rate=rate, tag=tag, **kw)[0])
        if phrases is not None:  # the shipped default's ablation (e.g. 0: no phrases)
            add(run_row(comp, items, f"HyCo2 hybrid, phrases {phrases:g}", "hybrid", rate=rate, phrases=phrases,
                        **kw)[0])
        for n in spans:  # the kept text as at most n stretches (same kept count)
            label = f"HyCo2 hybrid, {n} spans" if n else "HyCo2 hybrid, whole words"
            add(run_row(comp, items, label, "hybrid", rate=rate, spans=n, **kw)[0])
        for gap in gaps:
            add(run_row(comp, items, f"HyCo2 hybrid, gap {gap.strip() or repr(gap)}", "hybrid", rate=rate, gap=gap,
                        **kw)[0])
        if original_positions:  # reader-format ablation: kept tokens at their place in the context
            add(run_row(comp, items, "HyCo2 hybrid, original positions", "hybrid", rate=rate, positions="original",
                        **kw)[0])
            if phrases is not None:
                add(run_row(comp, items, f"HyCo2 hybrid, phrases {phrases:g}, original positions", "hybrid",
                            rate=rate, phrases=phrases, positions="original", **kw)[0])
        if ablations:
            add(run_row(comp, items, "HyCo2 hard only", "hard", rate=rate, budgets=budgets, **kw)[0])
        for m in sorted(methods, key=lambda m: m not in FIRST):  # the strongest peers first
            add(run_row(comp, items, m, "hard", method=m, rate=rate, budgets=budgets, **kw)[0])
        for sel in dict.fromkeys([*selectors, *(["mig"] if "mig" in methods else [])]):
            add(run_row(comp, items, f"HyCo2 soft + {NAMES.get(sel, sel)} selection", "hybrid", rate=rate,
                        selector=sel, **kw)[0])
        if official is not None:  # the llmlingua package itself, at the hybrid's budget question by question
            targets = [max(1, round(c.compressed_tokens / c.context_tokens * c.cl100k_context_tokens)) for c in comps]
            for name in OFFICIAL_ROWS:
                row = official_row(comp, official, items, name, rate, targets, kw)
                if "error" in row:
                    log(f"  K={k} {name} rate={rate}: the package failed ({row['error']}); row left out")
                    failures.append({**row, "paragraphs": k})
                else:
                    add(row)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=sorted(SETS), default="default", help="which questions")
    p.add_argument("--data-dir", default=str(SHARED), help="folder holding the SQuAD JSON files")
    p.add_argument("--paragraphs", type=int, nargs="+", default=[1, 5],
                   help="K: the question's paragraph among K-1 others of its article")
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25], help="HyCo2 keep rates")
    p.add_argument("--methods", nargs="*", default=None,
                   help=f"hard-selection peers to include (default: all of {available_methods()[1:]})")
    p.add_argument("--limit", type=int, default=None, help="first N questions only (quick runs)")
    p.add_argument("--shard", default="0/1", help="i/n: measure every n-th question from the i-th (one GPU each)")
    p.add_argument("--checkpoint", default=None, help="HyCo2 checkpoint (default: the shipped one)")
    p.add_argument("--also", nargs="*", default=[], metavar="TAG=PATH",
                   help="more checkpoints measured as extra hybrid rows on the same questions")
    p.add_argument("--ablations", action=argparse.BooleanOptionalAction, default=True,
                   help="the soft-only and hard-only rows (--no-ablations: checkpoints and peers only)")
    p.add_argument("--phrases", type=float, default=None,
                   help="also measure the hybrid with this phrase strength (0-1; e.g. 0: without phrases); the "
                        "'HyCo2 hybrid' row selects with the default strength, 0.9")
    p.add_argument("--distractors", choices=DISTRACTORS, default="article",
                   help="K>1: the other paragraphs come from the question's article (a long document) or only "
                        "from other articles (a retrieved document list)")
    p.add_argument("--selectors", nargs="*", default=[], metavar="PEER",
                   help="also measure HyCo2's soft tokens beside these peers' selections (e.g. longllmlingua): "
                        "selection compared at the same reader")
    p.add_argument("--original-positions", action="store_true",
                   help="also measure the hybrid with kept tokens at their original position ids (reader-format "
                        "ablation; with --phrases, that row too)")
    p.add_argument("--spans", nargs="*", type=int, default=[], metavar="N",
                   help="also measure the hybrid keeping its tokens as at most N contiguous stretches (0: whole words "
                        "anywhere; the 'HyCo2 hybrid' row keeps one stretch per 60 kept tokens)")
    p.add_argument("--official", action="store_true",
                   help="also the official llmlingua package's LLMLingua and LongLLMLingua (extra hyco2[peers]) at "
                        "the hybrid's budget; skipped with a message when the package is absent")
    p.add_argument("--official-model", default=None,
                   help="the folder or hub id the official package loads as its scorer (default: the backbone's)")
    p.add_argument("--gaps", nargs="*", default=[], metavar="TEXT",
                   help="also measure the hybrid with TEXT between non-adjacent kept spans (reader-format ablation)")
    p.add_argument("--model", default=None, help="backbone (default: the checkpoint's)")
    p.add_argument("--device", default=None)
    p.add_argument("--quantize", default="auto", choices=QUANTIZE_CHOICES,
                   help="backbone weights (e.g. 4bit: NF4 through bitsandbytes on CUDA); recorded in the output")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--out", default=None, help="JSON output (default: bench/results/qa-<device>.json)")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    base = load_items(args.set, Path(args.data_dir))
    if args.limit:
        base = base[: args.limit]
    shard, shards = (int(x) for x in args.shard.split("/"))
    if not base:
        print("error: no questions selected", file=sys.stderr)
        return 2
    comp = HyCo2Compressor.from_pretrained(args.checkpoint, model=args.model, device=args.device,
                                           quantize=args.quantize)
    others = {}
    for spec in args.also:
        tag, path = spec.split("=", 1)
        model = HyCo2Model.from_pretrained(path, fingerprint=comp.backbone.fingerprint())
        others[tag] = HyCo2Compressor(comp.backbone, model, checkpoint=path)
    methods = args.methods if args.methods is not None else available_methods()[1:]
    kw = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens}

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(f"{len(base)} questions (shard {args.shard}), checkpoint {comp.checkpoint}, on {machine()}")
    official = None
    if args.official:
        from bench.official import OfficialLingua, missing, scorer_source  # noqa: PLC0415

        why = missing()
        if why:
            log(why)
        else:
            official = OfficialLingua(args.official_model or scorer_source(comp.backbone.name), str(comp.backbone.device))
    rows: list[dict] = []
    failures: list[dict] = []  # rows a package failed to make, with its error
    golds: dict[str, list] = {}
    positions: dict[str, list[int]] = {}
    t0 = time.time()
    dev = "gpu" if comp.backbone.device.type == "cuda" else "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"qa-{dev}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "machine": machine(), "questions": len(base), "shards": [args.shard], "set": args.set,
            "distractors": args.distractors,
            "checkpoint": comp.checkpoint, "also": args.also, "seconds": round(time.time() - t0, 1),
            "quantize": args.quantize, "weights": comp.backbone.weights,
            "rows": rows, "golds": golds, "positions": positions, "failed_rows": failures,
        }))
        tmp.replace(out)

    for k in args.paragraphs:
        items = with_distractors(base, k, seed=0, distractors=args.distractors)[shard::shards]
        golds[str(k)] = [it.answers for it in items]
        positions[str(k)] = [gold_position(it) for it in items]
        run_setting(comp, others, items, k, args.rates, methods, kw, log, rows, save, args.phrases,
                    args.ablations, tuple(args.selectors), tuple(args.gaps), args.original_positions,
                    tuple(args.spans), official, failures)
    log(f"wrote {out} in {time.time() - t0:.0f} s")
    if shards == 1:
        from bench.report import qa_tables  # noqa: PLC0415 - only for the printed tables

        print(qa_tables(json.loads(out.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
