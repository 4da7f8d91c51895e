"""Selection quality without a decoder: how often does the gold answer survive, verbatim, in the kept
tokens? This isolates the hard view from the (weak) reader.

    python bench/selection.py                       # Southern_California, rates 0.1 and 0.25
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


if __package__ in (None, ""):  # python bench/selection.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, machine  # noqa: E402
from hyco2 import HyCo2Compressor
from hyco2.baselines import available_methods
from hyco2.metrics import normalize_answer
from hyco2.training.data import read_squad


def gold_tokens(result, item) -> list[int]:
    """The context tokens that overlap the first gold answer's characters (none when its start is unknown)."""
    start = item.answer_starts[0] if item.answer_starts else -1
    if start < 0 or result.tokenized is None:
        return []
    end, ctx = start + len(item.answers[0]), result.tokenized
    return [t for t, (a, b) in enumerate(ctx.offsets) if a < end and b > start and ctx.text[a:b].strip()]


def kept_shares(results, items) -> dict[str, float]:
    """Of the questions whose gold span maps onto tokens: the share with part of it kept but not all, and,
    where the method scores tokens (HyCo2's classifier), the share whose best-scored gold token is among the
    20 best of the context: a ranking that finds the answer but keeps only a piece of it shows here."""
    part = top = mapped = scored = 0
    for r, it in zip(results, items):
        gold = gold_tokens(r, it)
        if not gold:
            continue
        mapped += 1
        kept = set(r.kept_positions)
        n_kept = sum(g in kept for g in gold)
        part += 0 < n_kept < len(gold)
        if r.probabilities:
            scored += 1
            best = max(r.probabilities[g] for g in gold)
            top += sum(p > best for p in r.probabilities) < 20
    return {"answer_part_kept": 100 * part / max(mapped, 1),
            "best_gold_token_top20": 100 * top / scored if scored else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "squad-v2-dev-subset.json"))
    p.add_argument("--articles", nargs="*", default=["Southern_California"])
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25])
    p.add_argument("--methods", nargs="*", default=None, help="default: every method")
    p.add_argument("--phrases", type=float, nargs="*", default=[],
                   help="also HyCo2's classifier at these phrase strengths (0: whole words anywhere; default 0.9)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--checkpoint", default=None, help="a HyCo2 checkpoint folder (default: the shipped one)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    items = read_squad(args.data, include=set(args.articles) if args.articles else None)[: args.limit]
    comp = HyCo2Compressor.from_pretrained(args.checkpoint, device=args.device)
    methods = args.methods or available_methods()
    variants = [(m, {"method": m}) for m in methods] + [(f"hyco2, phrases {x:g}", {"phrases": x}) for x in args.phrases]
    rows = []
    out = Path(args.out or Path(__file__).parent / "results" / "selection-cpu.json")

    def save() -> None:  # after every row: a run cut short keeps what it measured
        out.write_text(json.dumps({"machine": machine(), "questions": len(items), "rows": rows}, indent=1))

    for rate in args.rates:
        for m, kw in variants:
            results = comp.compress_batch([i.context for i in items], [i.question for i in items], rate=rate, **kw)
            kept = sum(any(normalize_answer(a) in normalize_answer(r.kept_text) for a in i.answers)
                       for r, i in zip(results, items))
            rows.append({"method": m, "rate": rate, "answer_kept": 100 * kept / len(items),
                         **kept_shares(results, items)})
            print(f"  {m:<18} rate={rate}: {rows[-1]['answer_kept']:.1f}% (part of it: "
                  f"{rows[-1]['answer_part_kept']:.1f}%)", flush=True)
            save()
    print(f"\n{len(items)} questions; kept tokens only (HyCo2 without its soft tokens); machine: {machine()}\n")
    print("whole: the gold answer in the kept text; part: some of its tokens kept, not all; top 20: its best-scored "
          "token among the context's 20 best (scoring methods only)\n")
    print("| method | " + " | ".join(f"whole / part / top 20 @ {r}" for r in args.rates) + " |")
    print("|---|" + "---|" * len(args.rates))
    for m, _ in variants:
        cells = [f"{r['answer_kept']:.1f}% / {r['answer_part_kept']:.1f}% / "
                 + ("-" if r["best_gold_token_top20"] is None else f"{r['best_gold_token_top20']:.1f}%")
                 for r in rows if r["method"] == m]
        print(f"| {m} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
