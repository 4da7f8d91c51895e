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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "squad-v2-dev-subset.json"))
    p.add_argument("--articles", nargs="*", default=["Southern_California"])
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25])
    p.add_argument("--methods", nargs="*", default=None, help="default: every method")
    p.add_argument("--phrases", type=float, nargs="*", default=[],
                   help="also HyCo2's classifier at these phrase strengths (0: whole words anywhere; default 0.9)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    items = read_squad(args.data, include=set(args.articles) if args.articles else None)[: args.limit]
    comp = HyCo2Compressor.from_pretrained(device=args.device)
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
            rows.append({"method": m, "rate": rate, "answer_kept": 100 * kept / len(items)})
            print(f"  {m:<18} rate={rate}: {rows[-1]['answer_kept']:.1f}%", flush=True)
            save()
    print(f"\n{len(items)} questions; kept tokens only (HyCo2 without its soft tokens); machine: {machine()}\n")
    print("| method | " + " | ".join(f"answer kept @ {r}" for r in args.rates) + " |")
    print("|---|" + "---|" * len(args.rates))
    for m, _ in variants:
        cells = [f"{r['answer_kept']:.1f}%" for r in rows if r["method"] == m]
        print(f"| {m} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
