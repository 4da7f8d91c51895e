"""QA benchmark: full context vs HyCo2 vs ablations vs peers, same backbone, same questions, one run.

    python bench/qa.py                      # Southern_California, rates 0.1 and 0.25, every method
    python bench/qa.py --limit 40 --methods truncate random

Prints a Markdown table and writes JSON (every answer included) to bench/results/.
Hard-only methods get the same total token budget as HyCo2's hybrid (kept + soft), so each row
at a rate compares like with like.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyco2 import HyCo2Compressor  # noqa: E402
from hyco2.baselines import available_methods  # noqa: E402
from hyco2.metrics import best_over_golds, contains, exact_match, f1_score  # noqa: E402
from hyco2.training.data import read_squad  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated GPU memory during a block, in MiB."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0.0, threading.Event()

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import os

    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def run_row(comp: HyCo2Compressor, items, name: str, mode: str, method: str = "hyco2", rate=None,
            budget_from=None, selector: str = "classifier", batch_size: int = 8, max_new_tokens: int = 24) -> dict:
    """Compress (if needed) and answer every item; return the row's scores and costs."""
    contexts, questions = [it.context for it in items], [it.question for it in items]
    compress_s = 0.0
    passes = 0
    comps = None
    with PeakMemory(comp.backbone.device) as mem:
        if mode in ("hybrid", "soft", "hard"):
            t0 = time.perf_counter()
            if budget_from is not None:  # same total budget as the hybrid row
                comps = []
                for c, q, ref in zip(contexts, questions, budget_from):
                    comps.append(comp.compress(c, q, budget=ref.compressed_tokens, method=method))
            else:
                comps = comp.compress_batch(contexts, questions, rate=rate, method=method, selector=selector,
                                            batch_size=batch_size)
            compress_s = (time.perf_counter() - t0) / len(items)
            passes = sum(c.forward_passes for c in comps) / len(comps)
        answers = comp.answer_batch(contexts, questions, mode, compressions=comps, batch_size=batch_size,
                                    max_new_tokens=max_new_tokens)
    golds = [it.answers for it in items]
    n = len(items)
    ctx_tokens = [len(comp.tokenize(c)) for c in contexts]
    doc_tokens = [a.document_tokens for a in answers]
    return {
        "row": name, "mode": mode, "method": method, "rate": rate,
        "em": 100 * sum(best_over_golds(exact_match, a.text, g) for a, g in zip(answers, golds)) / n,
        "f1": 100 * sum(best_over_golds(f1_score, a.text, g) for a, g in zip(answers, golds)) / n,
        "contains": 100 * sum(best_over_golds(contains, a.text, g) for a, g in zip(answers, golds)) / n,
        "doc_tokens": sum(doc_tokens) / n,
        "ratio": sum(ctx_tokens) / sum(doc_tokens) if sum(doc_tokens) else None,
        "compress_ms": 1000 * compress_s,
        "answer_ms": 1000 * sum(a.latency_s for a in answers) / n,
        "forward_passes": passes,
        "peak_mib": mem.peak,
        "answers": [a.text for a in answers],
    }


def table(rows: list[dict]) -> str:
    head = ("| row | rate | EM | F1 | contains | doc tokens | ratio | compress ms | answer ms | fwd passes | peak MiB |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        rate = "-" if r["rate"] is None else f"{r['rate']:.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        lines.append(f"| {r['row']} | {rate} | {r['em']:.1f} | {r['f1']:.1f} | {r['contains']:.1f} | "
                     f"{r['doc_tokens']:.0f} | {ratio} | {r['compress_ms']:.0f} | {r['answer_ms']:.0f} | "
                     f"{r['forward_passes']:.1f} | {r['peak_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "squad-v2-dev-subset.json"), help="SQuAD JSON file")
    p.add_argument("--articles", nargs="*", default=["Southern_California"],
                   help="article titles to measure on (empty: all)")
    p.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25], help="HyCo2 keep rates")
    p.add_argument("--methods", nargs="*", default=None,
                   help=f"hard-selection peers to include (default: all of {available_methods()[1:]})")
    p.add_argument("--limit", type=int, default=None, help="first N questions only (quick runs)")
    p.add_argument("--checkpoint", default=None, help="HyCo2 checkpoint (default: the shipped one)")
    p.add_argument("--model", default=None, help="backbone (default: the checkpoint's)")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--out", default=None, help="JSON output (default: bench/results/qa-<device>.json)")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    items = read_squad(args.data, include=set(args.articles) if args.articles else None)
    if args.limit:
        items = items[: args.limit]
    if not items:
        print("error: no questions selected", file=sys.stderr)
        return 2
    comp = HyCo2Compressor.from_pretrained(args.checkpoint, model=args.model, device=args.device)
    methods = args.methods if args.methods is not None else available_methods()[1:]
    kw = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens}
    rows = []

    def add(row: dict) -> None:
        rows.append(row)
        print(f"  {row['row']:<28} rate={row['rate']}  F1={row['f1']:.1f}  EM={row['em']:.1f}", flush=True)

    print(f"{len(items)} questions, checkpoint {comp.checkpoint}, on {machine()}", flush=True)
    add(run_row(comp, items, "full context", "full", **kw))
    add(run_row(comp, items, "no context", "none", **kw))
    add(run_row(comp, items, "HyCo2 soft only (16)", "soft", rate=args.rates[0], **kw))
    for rate in args.rates:
        hybrid = comp.compress_batch([i.context for i in items], [i.question for i in items], rate=rate,
                                     batch_size=args.batch_size)
        add(run_row(comp, items, "HyCo2 hybrid", "hybrid", rate=rate, **kw))
        add(run_row(comp, items, "HyCo2 hybrid, MIG selector", "hybrid", rate=rate, selector="mig", **kw))
        add(run_row(comp, items, "HyCo2 hard only", "hard", rate=rate, budget_from=hybrid, **kw))
        for m in methods:
            add(run_row(comp, items, m, "hard", method=m, rate=rate, budget_from=hybrid, **kw))
    text = table(rows)
    print(f"\n{len(items)} questions of {', '.join(args.articles) or 'all articles'}; machine: {machine()}\n")
    print(text)
    dev = "gpu" if comp.backbone.device.type == "cuda" else "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"qa-{dev}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "questions": len(items), "checkpoint": comp.checkpoint,
                               "data": Path(args.data).name, "articles": args.articles, "rows": rows,
                               "golds": [i.answers for i in items]}, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
