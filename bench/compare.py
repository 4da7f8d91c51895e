"""Two runs of bench/qa.py over the same questions, row by row: are the answers, the answer NLLs and the
document tokens the same? The check a refactor must pass ("behaviour unchanged, measured").

    python bench/qa.py --limit 24 --paragraphs 1 --rates 0.15 --out before.json     # on the old commit
    python bench/qa.py --limit 24 --paragraphs 1 --rates 0.15 --out after.json      # on the new one
    python bench/compare.py before.json after.json --rename "HyCo2 hybrid=HyCo2 hybrid, phrases 0"

``--rename OLD=NEW`` pairs a row of the first run with a row of another name in the second (a default
that changed its name). Exit 1 when a paired row differs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # python bench/compare.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import load  # noqa: E402


def compare(before: dict, after: dict, rename: dict[str, str], tol: float = 1e-6) -> tuple[str, bool]:
    rows_b = {(r["row"], r.get("rate"), r.get("paragraphs")): r for r in after["rows"]}
    lines = ["| row (first run) | row (second run) | rate | K | answers | max abs ΔNLL | doc tokens |",
             "|---|---|---|---|---|---|---|"]
    same_all = True
    for r in before["rows"]:
        name = rename.get(r["row"], r["row"])
        o = rows_b.get((name, r.get("rate"), r.get("paragraphs")))
        if o is None:
            lines.append(f"| {r['row']} | (absent) | {r.get('rate')} | {r.get('paragraphs')} | | | |")
            continue
        answers = r["answers"] == o["answers"]
        dnll = max((abs(a - b) for a, b in zip(r["nll"], o["nll"])), default=0.0)
        docs = r["doc_tokens"] == o["doc_tokens"]
        same_all &= answers and dnll <= tol and docs
        lines.append(f"| {r['row']} | {name} | {r.get('rate')} | {r.get('paragraphs')} | "
                     f"{'same' if answers else 'DIFFER'} | {dnll:.1e} | {'same' if docs else 'DIFFER'} |")
    return "\n".join(lines), same_all


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rename", nargs="*", default=[], metavar="OLD=NEW")
    p.add_argument("--ignore", nargs="*", default=[], metavar="ROW", help="rows of the first run not compared")
    args = p.parse_args()
    before, after = load(Path(args.before)), load(Path(args.after))
    before["rows"] = [r for r in before["rows"] if r["row"] not in args.ignore]
    table, same = compare(before, after, dict(x.split("=", 1) for x in args.rename))
    print(table)
    print("every paired row the same" if same else "some paired rows differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
