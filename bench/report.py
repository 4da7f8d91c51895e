"""Turn bench/results/*.json into the README's Markdown tables (so no figure is copied by hand).

    python bench/report.py bench/results/qa-h200.json                  # the QA table
    python bench/report.py bench/results/qa-cpu-60.json --compare bench/results/qa-h200.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyco2.metrics import best_over_golds, f1_score  # noqa: E402

NAMES = {"selective-context": "Selective Context", "llmlingua": "LLMLingua", "longllmlingua": "LongLLMLingua",
         "mig": "COMI MIG"}


def qa_table(run: dict) -> str:
    rows = run["rows"]
    full = next(r["f1"] for r in rows if r["mode"] == "full")
    out = ["| row | rate | EM | F1 | F1 vs full | contains | doc tokens | ratio | compress ms | answer ms | fwd passes | peak MiB |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "-" if r["rate"] is None or r["mode"] == "soft" else f"{r['rate']:.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        name = NAMES.get(r["row"], r["row"])
        out.append(f"| {name} | {rate} | {r['em']:.1f} | {r['f1']:.1f} | {100 * r['f1'] / full:.0f}% | "
                   f"{r['contains']:.1f} | {r['doc_tokens']:.0f} | {ratio} | {r['compress_ms']:.0f} | "
                   f"{r['answer_ms']:.0f} | {r['forward_passes']:.1f} | {r['peak_mib']:.0f} |")
    return "\n".join(out)


def compare(a: dict, b: dict) -> str:
    """F1 of each row of ``a`` next to ``b``'s F1 on the same (first len(a)) questions."""
    n = a["questions"]
    golds = a["golds"]
    out = [f"| row | rate | F1, {a['machine'][:28]} | F1, {b['machine'][:28]} (same {n} questions) |", "|---|---|---|---|"]
    for ra, rb in zip(a["rows"], b["rows"]):
        assert ra["row"] == rb["row"] and ra["rate"] == rb["rate"], (ra["row"], rb["row"])
        f1b = 100 * sum(best_over_golds(f1_score, p, g) for p, g in zip(rb["answers"][:n], golds)) / n
        rate = "-" if ra["rate"] is None or ra["mode"] == "soft" else f"{ra['rate']:.2f}"
        out.append(f"| {NAMES.get(ra['row'], ra['row'])} | {rate} | {ra['f1']:.1f} | {f1b:.1f} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result")
    p.add_argument("--compare", default=None, help="another run of the same rows (first N questions matched)")
    args = p.parse_args()
    run = json.loads(Path(args.result).read_text())
    print(compare(run, json.loads(Path(args.compare).read_text())) if args.compare else qa_table(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
