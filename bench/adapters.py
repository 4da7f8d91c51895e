"""What each soft-token adapter costs, side by side in one run on the same contexts: trainable
parameters (adapter, classifier, and the adapter as a share of the backbone), compress time per context
(``compress_batch``: encoder pass, adapter, classifier, selection) and peak memory.

    python bench/adapters.py --checkpoint hybrid=hyco2/checkpoints/smollm2-135m-instruct \\
        --checkpoint comprexit=hyco2/checkpoints/smollm2-135m-instruct-comprexit --paragraphs 1 10

Quality is bench/qa.py's (``--also TAG=PATH``); this is the price of each adapter's answer.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED, PeakMemory, load_items, machine, sync  # noqa: E402
from hyco2.compressor import DEFAULT_CHECKPOINT, HyCo2Compressor  # noqa: E402
from hyco2.modeling import HyCo2Model  # noqa: E402
from hyco2.training.data import with_distractors  # noqa: E402


def parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(comp: HyCo2Compressor, contexts: list[str], questions: list[str], batch_size: int,
            rate: float) -> dict:
    """Seconds per context of compress_batch (after one warm-up batch) and its peak memory."""
    dev = comp.backbone.device
    comp.compress_batch(contexts[:batch_size], questions[:batch_size], rate=rate, batch_size=batch_size)
    sync(dev)
    with PeakMemory(dev) as peak:
        t0 = time.perf_counter()
        comp.compress_batch(contexts, questions, rate=rate, batch_size=batch_size)
        sync(dev)
        seconds = time.perf_counter() - t0
    return {"compress_ms": 1000 * seconds / len(contexts), "peak_mib": peak.peak}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[], metavar="TAG=PATH",
                   help="a checkpoint to measure (repeat; default: the shipped one as 'hybrid')")
    p.add_argument("--data-dir", default=str(SHARED))
    p.add_argument("--set", default="default")
    p.add_argument("--paragraphs", type=int, nargs="+", default=[1], help="K: paragraphs per context")
    p.add_argument("--questions", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.15)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="JSON output")
    args = p.parse_args(argv)
    specs = [s.split("=", 1) for s in (args.checkpoint or [f"hybrid={DEFAULT_CHECKPOINT}"])]
    if any(len(s) != 2 for s in specs):
        print("error: --checkpoint takes TAG=PATH", file=sys.stderr)
        return 2
    base = HyCo2Compressor.from_pretrained(specs[0][1], device=args.device)
    backbone_params = parameters(base.backbone.model)
    items = load_items(args.set, Path(args.data_dir))
    rows = []
    for k in args.paragraphs:
        chosen = with_distractors(items, k, seed=0, distractors="other" if k > 1 else "article")[: args.questions]
        contexts, questions = [it.context for it in chosen], [it.question for it in chosen]
        for tag, path in specs:
            model = HyCo2Model.from_pretrained(path, fingerprint=base.backbone.fingerprint())
            comp = HyCo2Compressor(base.backbone, model, checkpoint=path)
            row = {"tag": tag, "adapter": model.config.adapter, "paragraphs": k,
                   "adapter_params": parameters(model.adapter), "classifier_params": parameters(model.classifier),
                   **measure(comp, contexts, questions, args.batch_size, args.rate)}
            row["adapter_share"] = row["adapter_params"] / backbone_params
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{machine()}, {args.questions} contexts a K, batch {args.batch_size}, rate {args.rate}\n")
    print("| checkpoint | adapter | K | adapter params | share of backbone | classifier params | compress ms/context "
          "| peak MiB |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tag']} | {r['adapter']} | {r['paragraphs']} | {r['adapter_params'] / 1e6:.2f}M | "
              f"{100 * r['adapter_share']:.2f}% | {r['classifier_params'] / 1e6:.2f}M | {r['compress_ms']:.1f} | "
              f"{r['peak_mib']:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
