"""Batch-mode throughput: documents/s and tokens/s at several batch sizes, one run, one table.

    python bench/batch.py                 # 120 SQuAD paragraphs as .txt files, batch sizes 1 8 32
    python bench/batch.py --docs 400 --batch-sizes 1 16 64 --device cuda

The documents are written to a temporary folder at run time from the SQuAD file (nothing is copied
into the repo); each batch size gets a fresh SQLite database, so every row does the same work.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from batch.db import open_db
from batch.runner import BatchRunner, BatchSettings
from bench.qa import machine
from hyco2 import HyCo2Compressor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "squad-v1-train-subset.json"))
    p.add_argument("--docs", type=int, default=120)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    data = json.loads(Path(args.data).read_text(encoding="utf-8"))["data"]
    paragraphs = [para["context"] for art in data for para in art["paragraphs"]][: args.docs]
    comp = HyCo2Compressor.from_pretrained(device=args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i, text in enumerate(paragraphs):
            (docs / f"p{i:04d}.txt").write_text(text, encoding="utf-8")
        comp.compress(paragraphs[0], None, rate=args.rate)  # warm-up outside the timings
        for bs in args.batch_sizes:
            db = open_db(str(Path(tmp) / f"bs{bs}.db"))
            runner = BatchRunner(db, comp, BatchSettings(rate=args.rate), batch_size=bs, progress=False)
            s = runner.run(docs)
            rows.append({"batch_size": bs, "docs": s["done"], "seconds": s["seconds"],
                         "docs_per_s": s["done"] / s["seconds"], "tokens_per_s": s["tokens_before"] / s["seconds"],
                         "tokens_before": s["tokens_before"], "tokens_after": s["tokens_after"]})
            print(f"  batch {bs}: {rows[-1]['docs_per_s']:.1f} docs/s", flush=True)
    print(f"\n{len(paragraphs)} documents (SQuAD paragraphs), rate {args.rate}; machine: {machine()}\n")
    print("| batch size | docs | seconds | docs/s | context tokens/s | tokens before → after |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['docs']} | {r['seconds']:.1f} | {r['docs_per_s']:.1f} | "
              f"{r['tokens_per_s']:.0f} | {r['tokens_before']} → {r['tokens_after']} |")
    dev = "gpu" if comp.backbone.device.type == "cuda" else "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"batch-{dev}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
