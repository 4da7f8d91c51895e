"""Command line: ``python -m hyco2 {prepare,compress,answer,methods}``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .backbone import DEFAULT_BACKBONE
from .options import QUANTIZE_CHOICES
from .errors import ContextTooLongError, HyCo2Error
from .settings import CompressionSettings, add_arguments, whole_number
from .text import as_text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="UTF-8 text file(s) with the context ('-' reads standard input); several files are "
                        "several documents, each compressed in its own chunks; any length")
    p.add_argument("-q", "--question", default=None, help="the question (compress: optional)")
    add_arguments(p)
    p.add_argument("--model", default=None, help=f"backbone (default {DEFAULT_BACKBONE})")
    p.add_argument("--checkpoint", default=None, help="HyCo2 checkpoint folder (default: the shipped one)")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE_CHOICES)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hyco2", description="HyCo2 hybrid context compression.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="convert the packaged default model once (so the first run is fast)")
    sub.add_parser("methods", help="list the compression methods")
    c = sub.add_parser("compress", help="compress a text; print the kept text and counts (--json for all)")
    _common(c)
    c.add_argument("--json", action="store_true", help="print the full result as JSON")
    a = sub.add_parser("answer", help="answer a question from the full and the compressed context, side by side")
    _common(a)
    a.add_argument("--max-new-tokens", type=whole_number(1), default=32, help="longest answer, in tokens")
    return p


def _read(path: str) -> str:
    """A context file as checked text, before any model loads: a folder, a pipe or device, bytes that are
    not UTF-8 and binary data are each a one-line error."""
    import os
    import stat

    if path == "-":
        return as_text(sys.stdin.buffer.read(), "standard input")
    file = Path(path)
    if file.is_dir():
        raise HyCo2Error(f"{path} is a folder: give a text file (batch mode reads folders: hyco2-batch).")
    if not file.exists():
        raise HyCo2Error(f"No such file: {path}")
    if not stat.S_ISREG(os.stat(file).st_mode):
        raise HyCo2Error(f"{path} is not a regular file (a named pipe or device): give a text file, or '-' "
                         f"for standard input.")
    return as_text(file.read_bytes(), path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "prepare":
            from .backbone import converted_path

            print(f"default backbone ready at {converted_path(DEFAULT_BACKBONE)}")
            return 0
        if args.command == "methods":
            from .baselines import available_methods

            print("\n".join(available_methods()))
            return 0
        from .compressor import HyCo2Compressor
        from .reader import HyCo2Reader

        # cheap checks before the model loads
        if args.command == "answer" and args.question is None:
            raise HyCo2Error("answer needs a question: -q 'your question'")
        if args.question is not None and not args.question.strip():
            raise HyCo2Error("The question is empty: -q 'your question' (compress: leave -q out for none).")
        settings = CompressionSettings.from_args(args)
        texts = [_read(f) for f in args.files]
        source = {"documents": texts} if len(texts) > 1 else {"context": texts[0]}
        comp = HyCo2Compressor.from_pretrained(args.checkpoint, model=args.model, quantize=args.quantize,
                                               device=args.device)
        if args.command == "compress":
            r = comp.compress(question=args.question, **source, settings=settings, progress=True)
            if args.json:
                print(json.dumps(r.to_dict(), indent=2, ensure_ascii=False))
            else:
                print(r.kept_text.strip())
                chunks = f" in {len(r.segments)} chunks" if r.segments else ""
                print(f"\n[{r.method}] {r.context_tokens} → {r.kept_tokens} kept + {r.soft_tokens} soft tokens "
                      f"({r.ratio:.1f}x){chunks}; cl100k {r.cl100k_context_tokens} → {r.cl100k_kept_tokens}"
                      + ("; budget cut to fit the decoder's window" if r.rate_adjusted else "")
                      + ("; UNTRAINED checkpoint" if r.untrained else ""))
            return 0
        r = comp.compress(question=args.question, **source, settings=settings, progress=True)
        mode = "hybrid" if r.soft_tokens else "hard"
        reader = HyCo2Reader(comp)
        small = reader.answer(question=args.question, mode=mode, compression=r, max_new_tokens=args.max_new_tokens,
                            **source)
        print(f"question:   {args.question}")
        try:
            full = reader.answer(question=args.question, mode="full", max_new_tokens=args.max_new_tokens, **source)
            print(f"full:       {full.text}    [{full.document_tokens} context tokens, {full.latency_s:.2f} s]")
        except ContextTooLongError as exc:
            print(f"full:       (does not fit the backbone's window: {exc.n_tokens} > {exc.limit} tokens)")
        chunks = f", {len(r.segments)} chunks" if r.segments else ""
        print(f"compressed: {small.text}    [{small.document_tokens} tokens = {r.kept_tokens} kept + "
              f"{r.soft_tokens} soft, {r.ratio:.1f}x{chunks}, {r.timings['total_s'] + small.latency_s:.2f} s]")
        print(f"kept:       {r.kept_text.strip()}")
        return 0
    except HyCo2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
