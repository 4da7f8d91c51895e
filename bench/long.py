"""Long-document timing: one text of ~N backbone tokens (Wikipedia articles from ../shared/data joined),
compressed in one call, with seconds and peak memory.

    python bench/long.py                       # ~100k tokens, rate 0.05, on this machine's device
    python bench/long.py --tokens 20000 --device cuda
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path


if __package__ in (None, ""):  # python bench/long.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, PeakMemory, machine  # noqa: E402

from hyco2 import HyCo2Compressor


def wikipedia_text(path: Path, n_chars: int) -> str:
    parts, total = [], 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"].strip()
            if text:
                parts.append(text)
                total += len(text)
            if total >= n_chars:
                break
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=100_000, help="about this many backbone tokens")
    p.add_argument("--rate", type=float, default=0.05)
    p.add_argument("--data", default=str(SHARED / "enwiki-36k-articles.jsonl.gz"))
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="JSON output")
    args = p.parse_args(argv)
    comp = HyCo2Compressor.from_pretrained(device=args.device)
    text = wikipedia_text(Path(args.data), 5 * args.tokens)  # ~4.5 characters a token; trimmed below
    ids = comp.backbone.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(ids["input_ids"]) > args.tokens:
        text = text[: ids["offset_mapping"][args.tokens - 1][1]]
    with PeakMemory(comp.backbone.device) as mem:
        t0 = time.perf_counter()
        r = comp.compress(text, "What happened, and when?", rate=args.rate, progress=True)
        seconds = time.perf_counter() - t0
    row = {"machine": machine(), "context_tokens": r.context_tokens, "chunks": len(r.segments or [0]),
           "kept_tokens": r.kept_tokens, "soft_tokens": r.soft_tokens, "ratio": round(r.ratio, 1),
           "rate_adjusted": r.rate_adjusted, "seconds": round(seconds, 1), "peak_mib": round(mem.peak)}
    print("| machine | context tokens | chunks | kept + soft | ratio | seconds | peak MiB |\n|---|---|---|---|---|---|---|")
    print(f"| {row['machine']} | {row['context_tokens']:,} | {row['chunks']} | {row['kept_tokens']} + "
          f"{row['soft_tokens']} | {row['ratio']}x | {row['seconds']} | {row['peak_mib']:,} |")
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
