"""Train a HyCo2 compressor: ``python -m hyco2.training --stage all --out runs/default``.

Defaults train the shipped checkpoint from the data in ../shared/data (the measurement article
Southern_California and XQuAD are never read); point --qa and --text at your own files to train on
your data without code changes.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import torch

from ..backbone import DEFAULT_BACKBONE
from ..compressor import HyCo2Compressor
from ..errors import HyCo2Error
from .data import read_qa, read_texts
from .trainer import STAGES, StageConfig, Trainer, make_records

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_QA = [SHARED / "squad-v1-train-subset.json", SHARED / "squad-v2-dev-subset.json"]
MEASUREMENT_ARTICLES = ["Southern_California"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hyco2.training",
        description="Train the HyCo2 adapter and retention classifier over a frozen backbone: "
                    "1 paraphrase pretraining, 2 completion pretraining, 3 instruction tuning with KL "
                    "distillation from the full-context teacher.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="which stage(s) to run")
    p.add_argument("--out", required=True, help="output folder: stage states, logs and the final checkpoint")
    p.add_argument("--model", default=DEFAULT_BACKBONE, help="backbone: alias, local folder, .gguf or hub id")
    p.add_argument("--init", default=None, help="start from this HyCo2 checkpoint instead of a fresh adapter")
    p.add_argument("--qa", nargs="+", default=[str(x) for x in DEFAULT_QA],
                   help="QA files: SQuAD .json or .jsonl with context/question/answers")
    p.add_argument("--text", nargs="*", default=None,
                   help="plain-text files/folders for stages 1-2 (default: the QA files' paragraphs)")
    p.add_argument("--exclude-articles", nargs="*", default=MEASUREMENT_ARTICLES,
                   help="SQuAD article titles never trained on (the measurement set)")
    p.add_argument("--steps", type=int, nargs=3, default=[600, 400, 1000], metavar=("P", "C", "I"),
                   help="steps of the paraphrase, completion and instruction stages")
    p.add_argument("--minutes", type=float, nargs=3, default=[None, None, None], metavar=("P", "C", "I"),
                   help="time limit of each stage; the stage stops and saves when it is reached")
    p.add_argument("--lr", type=float, nargs=3, default=[3e-4, 2e-4, 1e-4], metavar=("P", "C", "I"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--soft-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    p.add_argument("--quantize", default="none", choices=["auto", "4bit", "8bit", "none"])
    p.add_argument("--no-resume", action="store_true", help="ignore saved stage states in --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    try:
        exclude = set(args.exclude_articles)
        qa = [ex for path in args.qa for ex in read_qa(path, exclude=exclude)]
        texts = ([t for path in args.text for t in read_texts(path)] if args.text
                 else list(dict.fromkeys(ex.context for ex in qa)))
        if args.init:
            comp = HyCo2Compressor.from_pretrained(args.init, model=args.model, quantize=args.quantize,
                                                   device=args.device)
        else:
            comp = HyCo2Compressor.from_pretrained("untrained", model=args.model, quantize=args.quantize,
                                                   device=args.device, seed=args.seed)
            if args.soft_tokens != comp.model.config.num_soft_tokens:
                comp.model = HyCo2Compressor.fresh_model(comp.backbone, seed=args.seed,
                                                         num_soft_tokens=args.soft_tokens).to(comp.backbone.device)
    except HyCo2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(comp, out, seed=args.seed)
    rng = random.Random(args.seed)
    stages = STAGES if args.stage == "all" else (args.stage,)
    summaries = []
    for name in stages:
        i = STAGES.index(name)
        cfg = StageConfig(name=name, steps=args.steps[i], lr=args.lr[i], batch_size=args.batch_size,
                          max_minutes=args.minutes[i])
        records = make_records(name, qa, texts, rng)
        print(f"stage {name}: {len(records)} records, {cfg.steps} steps", flush=True)
        summaries.append(trainer.run_stage(cfg, records, resume=not args.no_resume))
    config = comp.model.config
    previous = dict(config.training) if args.init else None
    config.trained = True
    config.training = {
        "stages": [{k: s[k] for k in ("stage", "steps_done", "seconds", "records", "final")} for s in summaries],
        "qa_files": [Path(q).name for q in args.qa], "excluded_articles": sorted(exclude),
        "qa_examples": len(qa), "text_paragraphs": len(texts), "seed": args.seed, "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name() if comp.backbone.device.type == "cuda" else "cpu",
    }
    if previous is not None:  # continued training: keep the earlier run's record
        config.training["initialised_from"] = previous
    comp.save_pretrained(out / "checkpoint")
    (out / "history.json").write_text(json.dumps(trainer.history, indent=1))
    print(f"saved checkpoint to {out / 'checkpoint'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
