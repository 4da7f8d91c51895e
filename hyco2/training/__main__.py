"""Train a HyCo2 compressor: ``python -m hyco2.training --stage all --out runs/default``.

The stage-3 defaults are the last round of the shipped checkpoint's recipe (a same-reader round from
``--init``; the whole chain of rounds is in its config.json, ``training.initialised_from``). The data are
arguments (--qa for stage 3, --text for stages 1-2): SQuAD-style JSON or JSONL of your own trains a
compressor for your data without code changes. Several GPUs: ``torchrun --nproc-per-node 4 -m hyco2.training ...``
(stage 3 and its teacher cache run data-parallel; stages 1-2 run on rank 0's GPU alone).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from pathlib import Path

import torch

from ..adapters import ADAPTERS
from ..backbone import DEFAULT_BACKBONE
from ..compressor import HyCo2Compressor
from ..errors import HyCo2Error
from ..classifier import add_classifier_context, add_question_match
from .data import read_qa, read_texts
from .distill import (RANK_LOSSES, SELECTIONS, TARGETS, TEACHERS, DistillConfig, build_teacher_shard, cached_teacher,
                      prepare_items, teacher_cache, train_distill)
from .trainer import STAGES, StageConfig, Trainer, make_records

MEASUREMENT_ARTICLES = ["Southern_California"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hyco2.training",
        description="Train the HyCo2 adapter and retention classifier over a frozen backbone: "
                    "1 paraphrase pretraining, 2 completion pretraining (both with plain text), "
                    "3 instruction tuning by sequence-level distillation: the full-context teacher answers "
                    "every training question once (cached), and the student, reading soft + kept tokens of "
                    "the question's paragraph among distractors, learns its answers (NLL + KL to the "
                    "teacher's top-k distribution) and its attention saliency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="which stage(s) to run")
    p.add_argument("--out", required=True, help="output folder: stage states, teacher cache, logs, checkpoint")
    p.add_argument("--model", default=DEFAULT_BACKBONE, help="backbone: alias, local folder, .gguf or hub id")
    p.add_argument("--init", default=None, help="start from this HyCo2 checkpoint instead of a fresh adapter")
    p.add_argument("--adapter", choices=list(ADAPTERS), default=None,
                   help="soft-token adapter of a fresh model: HyCo2's hybrid (MLP + Q-Former, gated), "
                        "ComprExIT's (depth gate over every layer + Sinkhorn transport into slots) or COMI's "
                        "(MIG grouping and merging + projector); default hybrid, or the --init checkpoint's")
    p.add_argument("--qa", nargs="+", default=[],
                   help="QA files (stage 3): SQuAD .json / .json.gz, or .jsonl with context/question/answers")
    p.add_argument("--text", nargs="*", default=[],
                   help="plain text for stages 1-2: files, folders, or .jsonl.gz article dumps")
    p.add_argument("--text-paragraphs", type=int, default=60000, help="at most this many text paragraphs")
    p.add_argument("--exclude-articles", nargs="*", default=MEASUREMENT_ARTICLES,
                   help="SQuAD article titles never trained on (the measurement set)")
    p.add_argument("--limit-questions", type=int, default=None, help="use only the first N questions (smoke runs)")
    p.add_argument("--sample-questions", type=int, default=None,
                   help="use a seeded random sample of N questions from every article (a short run)")
    p.add_argument("--steps", type=int, nargs=3, default=[600, 400, 3000], metavar=("P", "C", "I"),
                   help="steps of the paraphrase, completion and instruction stages")
    p.add_argument("--minutes", type=float, nargs=3, default=[None, None, None], metavar=("P", "C", "I"),
                   help="time limit of each stage; the schedule is sized to end when it is reached")
    p.add_argument("--lr", type=float, nargs=3, default=[3e-4, 2e-4, 2e-4], metavar=("P", "C", "I"))
    p.add_argument("--batch-size", type=int, default=32, help="per GPU (stage 3) or in all (stages 1-2)")
    p.add_argument("--teacher", choices=TEACHERS, default="self",
                   help="stage-3 teacher: 'self' is the --init checkpoint's own reader with every token kept "
                        "(soft tokens + the whole paragraph: what compression must not lose against); "
                        "'backbone' the raw backbone reading the paragraph")
    p.add_argument("--kept-gap", default=None,
                   help="text the decoder reads between non-adjacent kept spans (default: the --init "
                        "checkpoint's; '' for none)")
    p.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3],
                   help="stage 3: keep rates drawn per example")
    p.add_argument("--selection", choices=list(SELECTIONS), default="inference",
                   help="stage 3: the student's kept tokens: as the compressor keeps them by default (phrases, "
                        "one stretch per 60 kept tokens), or whole words with the top scores anywhere")
    p.add_argument("--other-articles", type=float, default=0.5,
                   help="stage 3: share of contexts whose distractor paragraphs come from other articles")
    p.add_argument("--target", choices=TARGETS, default="filtered",
                   help="stage-3 answer target: the teacher's greedy answer, the gold span, or the teacher's "
                        "answer where it contains the gold one and the gold span elsewhere")
    p.add_argument("--max-paragraphs", type=int, default=10,
                   help="stage 3 reads the question's paragraph among 0..N-1 others of its article")
    p.add_argument("--max-context-tokens", type=int, default=1024, help="stage-3 context length cap")
    p.add_argument("--kl-weight", type=float, default=1.0)
    p.add_argument("--saliency-weight", type=float, default=1.0,
                   help="stage 3: BCE weight of the keep labels (teacher saliency ∪ gold span)")
    p.add_argument("--rank-weight", type=float, default=3.0,
                   help="stage 3: weight of the listwise loss that ranks the gold answer's tokens first")
    p.add_argument("--rank-loss", choices=RANK_LOSSES, default="each",
                   help="stage 3: span = the gold tokens' softmax mass over the context (one strong token "
                        "satisfies it); each = every gold token above all non-gold ones (the whole answer kept)")
    p.add_argument("--compile", action="store_true",
                   help="stage 3: torch.compile the frozen backbone's layers (see bench/train_step.py for when it pays)")
    p.add_argument("--question-classifier", action="store_true",
                   help="give the classifier the question match (added to an --init checkpoint at scale 0)")
    p.add_argument("--classifier-context", type=int, default=1, metavar="N",
                   help="give the classifier N bidirectional attention layers over question and context, so a "
                        "token's score reads the text after it too (added to an --init checkpoint at output 0)")
    p.add_argument("--teacher-cache", default=None, help="teacher cache folder (default: OUT/teacher); "
                   "built there when missing, reused when complete")
    p.add_argument("--teacher-batch-size", type=int, default=64)
    p.add_argument("--teacher-shard", default=None, metavar="I/N",
                   help="only build shard I of N of the teacher cache, then exit (several processes a GPU)")
    p.add_argument("--soft-tokens", type=int, default=16, help="soft tokens per chunk (a fresh model)")
    p.add_argument("--soft-token-span", type=int, default=None, metavar="N",
                   help="longer chunks get more soft tokens: one per N context tokens, at least --soft-tokens and "
                        "at most --max-soft-tokens (hybrid adapter; 0 = a fixed count; default: the --init "
                        "checkpoint's, else 0)")
    p.add_argument("--max-soft-tokens", type=int, default=64, help="the most soft tokens a chunk gets under a span")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present; torchrun: its GPU)")
    p.add_argument("--quantize", default="none", choices=["auto", "4bit", "8bit", "none"])
    p.add_argument("--held-out", type=int, default=0, metavar="N",
                   help="keep N training questions (stage 3) or records (stages 1-2) out of training and report "
                        "their loss at the end, in the summary and the checkpoint's config (default 0: the "
                        "shipped recipe trained on every question)")
    p.add_argument("--no-resume", action="store_true", help="ignore saved stage states in --out")
    return p.parse_args(argv)


def distributed() -> tuple[int, int, str | None]:
    """(rank, world size, device) under torchrun; (0, 1, None) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl")
        return rank, world, f"cuda:{local}"
    torch.distributed.init_process_group("gloo")
    return rank, world, "cpu"


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    rank, world, dist_device = distributed()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    stages = STAGES if args.stage == "all" else (args.stage,)
    try:
        if "instruct" in stages and not args.qa:
            raise HyCo2Error("stage instruct needs QA data: --qa FILE [FILE ...] (SQuAD JSON or JSONL)")
        if any(s != "instruct" for s in stages) and not args.text:
            raise HyCo2Error("stages paraphrase and completion need plain text: --text FILE_OR_FOLDER [...]")
        for path in [*args.qa, *args.text]:
            if not Path(path).exists():
                raise HyCo2Error(f"no such data file or folder: {path}")
        exclude = set(args.exclude_articles)
        qa = [ex for path in args.qa for ex in read_qa(path, exclude=exclude)]
        if args.limit_questions:
            qa = qa[: args.limit_questions]
        if args.sample_questions and args.sample_questions < len(qa):
            qa = random.Random(args.seed).sample(qa, args.sample_questions)
        texts: list[str] = []
        if any(s != "instruct" for s in stages):
            texts = [t for path in args.text for t in read_texts(path, limit=args.text_paragraphs)]
            texts = texts[: args.text_paragraphs] or list(dict.fromkeys(ex.context for ex in qa))
        device = dist_device or args.device
        if args.init:
            comp = HyCo2Compressor.from_pretrained(args.init, model=args.model, quantize=args.quantize, device=device)
            if args.adapter and args.adapter != comp.model.config.adapter:
                raise HyCo2Error(f"--init {args.init} holds a {comp.model.config.adapter!r} adapter, not "
                                 f"{args.adapter!r}: leave --adapter out, or train a fresh one without --init")
        else:
            comp = HyCo2Compressor.from_pretrained("untrained", model=args.model, quantize=args.quantize,
                                                   device=device, seed=args.seed)
            adapter = args.adapter or "hybrid"
            if args.soft_tokens != comp.model.config.num_soft_tokens or adapter != comp.model.config.adapter:
                comp.model = HyCo2Compressor.fresh_model(comp.backbone, seed=args.seed, adapter=adapter,
                                                         num_soft_tokens=args.soft_tokens).to(comp.backbone.device)
        if args.question_classifier:
            add_question_match(comp.model)
        if args.classifier_context:
            try:
                add_classifier_context(comp.model, args.classifier_context)
            except ValueError as exc:
                raise HyCo2Error(f"--classifier-context: {exc}") from None
        if args.kept_gap is not None:
            comp.model.config.kept_gap = args.kept_gap
        if args.soft_token_span is not None:
            try:
                comp.model.set_soft_token_span(args.soft_token_span, args.max_soft_tokens)
            except ValueError as exc:
                raise HyCo2Error(f"--soft-token-span: {exc}") from None
    except HyCo2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    summaries = []
    for name in stages:
        i = STAGES.index(name)
        if name == "instruct":
            folder = Path(args.teacher_cache or out / "teacher")
            try:
                if args.teacher_shard:
                    r, n = (int(x) for x in args.teacher_shard.split("/"))
                    build_teacher_shard(comp, qa, folder, r, n, args.teacher_batch_size, teacher=args.teacher)
                    return 0
                cache = teacher_cache(comp, qa, folder, rank, world, args.teacher_batch_size, teacher=args.teacher)
            except HyCo2Error as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if args.steps[i] == 0:
                print(f"teacher cache ready: {len(cache)} questions", flush=True)
                continue
            items = prepare_items(comp.backbone, qa, cache, args.target)
            held, items = items[: args.held_out], items[args.held_out:]
            cfg = DistillConfig(target=args.target, batch_size=args.batch_size, lr=args.lr[i], steps=args.steps[i],
                                minutes=args.minutes[i], max_paragraphs=args.max_paragraphs,
                                max_context_tokens=args.max_context_tokens, kl_weight=args.kl_weight, seed=args.seed,
                                saliency_weight=args.saliency_weight, rank_weight=args.rank_weight,
                                rank_loss=args.rank_loss,
                                compile=args.compile, rates=tuple(args.rates), other_articles=args.other_articles,
                                selection=args.selection)
            if args.no_resume and rank == 0:
                (out / "instruct" / "trainer_state.pt").unlink(missing_ok=True)
            barrier(world)
            print(f"stage instruct: {len(items)} questions, teacher {args.teacher}, target {args.target}, "
                  f"{world} process(es)", flush=True)
            summaries.append(train_distill(comp, items, cfg, out, rank=rank, world=world, held_out=held))
            continue
        if rank != 0:
            continue  # the small pretraining stages run on one device
        cfg = StageConfig(name=name, steps=args.steps[i], lr=args.lr[i], batch_size=args.batch_size,
                          max_minutes=args.minutes[i])
        records = make_records(name, texts, rng)
        held, records = records[: args.held_out], records[args.held_out:]
        print(f"stage {name}: {len(records)} records, {cfg.steps} steps", flush=True)
        summaries.append(Trainer(comp, out, seed=args.seed).run_stage(cfg, records, resume=not args.no_resume,
                                                                      held_out=held))
    if rank == 0:
        save_checkpoint(comp, args, out, summaries, qa, texts, exclude, world)
    barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


def save_checkpoint(comp, args, out: Path, summaries, qa, texts, exclude, world: int) -> None:
    config = comp.model.config
    previous = dict(config.training) if args.init else None
    config.trained = True
    dev = comp.backbone.device
    config.training = {
        "stages": [{k: s[k] for k in s if k not in ("history", "config", "held_out_history")} for s in summaries],
        "qa_files": [Path(q).name for q in args.qa], "excluded_articles": sorted(exclude),
        "qa_examples": len(qa), "sample_questions": args.sample_questions, "text_paragraphs": len(texts),
        "seed": args.seed, "batch_size": args.batch_size,
        "teacher": (cached_teacher(Path(args.teacher_cache or out / "teacher"))
                    if args.stage in ("instruct", "all") else None),
        "device": (f"{world} x {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else "cpu"),
    }
    if previous is not None:  # continued training: keep the earlier run's record
        config.training["initialised_from"] = previous
    comp.save_pretrained(out / "checkpoint")
    (out / "history.json").write_text(json.dumps([s.get("history", []) for s in summaries], indent=1))
    print(f"saved checkpoint to {out / 'checkpoint'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
