"""The two pretraining stages' step over a frozen backbone (see docs/DESIGN.md, "Training stages"), run
on the one loop (loop.py); stage 3's step, instruction tuning, is in distill.py.

One step: the frozen backbone encodes the contexts (no grad); the adapter makes soft tokens and the
classifier keep probabilities (grad); the student decoder reads soft + kept tokens and is scored on
the target; the teacher (same backbone, full context) gives the KL target and, through its
attention from the target back to the context, per-token saliency labels for the classifier.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..compressor import HyCo2Compressor
from ..forward import attention_implementation, bf16_autocast, end_of_turn, forward_on_targets
from ..encoder import TokenizedContext, span_positions, tokenize_context
from ..prompting import (COMPLETION_INSTRUCTION, KEPT, PARAPHRASE_INSTRUCTIONS, SOFT, embed_prompt,
                         prompt_parts)
from ..selection import keep_count, select_words_by_budget
from .data import split_for_completion
from .loop import LoopConfig, train

log = logging.getLogger(__name__)
STAGES = ("paraphrase", "completion", "instruct")
PRETRAINING = STAGES[:2]  # run here; stage 3 runs in distill.py (cached teacher, vectorised step)


@dataclass
class StageConfig:
    name: str
    steps: int
    batch_size: int = 32
    lr: float = 1e-4
    max_minutes: float | None = None  # stop early (and save) when the time is up
    rates: tuple[float, ...] = (0.1, 0.15, 0.25, 0.4)
    kl_weight: float = 2.0
    saliency_weight: float = 1.0
    saliency_top: float = 0.15
    classifier_lr_mult: float = 10.0  # a fresh head on frozen states takes a larger step than the adapter  # share of context tokens labelled salient from teacher attention
    max_context_tokens: int = 384
    max_target_tokens: int = 48
    save_every: int = 200


@dataclass
class Record:
    """One training example, whatever the stage."""

    context: str
    question: str | None  # what the encoder is conditioned on
    user_text: str  # decoder instruction with SOFT/KEPT placeholders for the document
    teacher_text: str | None  # the same with KEPT standing for the full context, None = no teacher
    target: str
    answer_spans: list[tuple[int, int]] = field(default_factory=list)  # characters labelled "keep"


def make_records(stage: str, texts: list[str], rng: random.Random) -> list[Record]:
    recs: list[Record] = []
    if stage == "paraphrase":
        for t in texts:
            instr = rng.choice(PARAPHRASE_INSTRUCTIONS)
            recs.append(Record(t, instr, f"Document: {SOFT}\n{instr}", None, t))
    elif stage == "completion":
        for t in texts:
            prefix, cont = split_for_completion(t, rng)
            if len(prefix) < 50:
                continue
            recs.append(Record(prefix, COMPLETION_INSTRUCTION, f"Document: {SOFT}{KEPT}\n{COMPLETION_INSTRUCTION}",
                               f"Document: {KEPT}\n{COMPLETION_INSTRUCTION}", cont))
    else:
        raise ValueError(f"make_records builds the pretraining stages {PRETRAINING}; stage 3 ({stage!r}) "
                         "trains through hyco2.training.distill")
    return recs


def _truncate(ctx: TokenizedContext, n: int) -> TokenizedContext:
    if len(ctx) <= n:
        return ctx
    end = ctx.offsets[n - 1][1]
    return TokenizedContext(ctx.text[:end], ctx.ids[:n], ctx.offsets[:n], ctx.words[:n])


def _span_labels(ctx: TokenizedContext, spans: list[tuple[int, int]]) -> torch.Tensor:
    y = torch.zeros(len(ctx))
    y[span_positions(ctx, spans)] = 1.0
    return y


def upper_layer_attention(attentions) -> torch.Tensor:
    """(B, T, T) attention averaged over the heads and the upper half of the layers, one layer at a
    time in float32 (stacking every layer first would hold them all in memory twice)."""
    half = attentions[len(attentions) // 2:]
    return sum(a.float().mean(1) for a in half) / len(half)


def saliency_labels(att: torch.Tensor, start: int, n: int, prompt_len: int, n_target: int,
                    top: float) -> torch.Tensor:
    """0/1 labels: context tokens the target attends to far more than the rest of the prompt does.

    Raw attention mostly lands on "sink" tokens (sentence-final periods, the first token) whatever
    is asked; dividing by the attention each token gets from the prompt after the context removes
    them. The top ``top`` share of tokens by that ratio are labelled 1.
    """
    to_ctx = att[:, start:start + n]  # (T, n)
    answer = to_ctx[prompt_len - 1:prompt_len - 1 + n_target].mean(0)
    after = to_ctx[start + n:prompt_len - 1]
    base = after.mean(0) if after.shape[0] else to_ctx[start:start + n].mean(0)
    ratio = answer / (base + 1e-4)
    k = max(1, round(top * n))
    y = torch.zeros(n, device=att.device)
    y[torch.topk(ratio, min(k, n)).indices] = 1.0
    return y


class Trainer:
    def __init__(self, compressor: HyCo2Compressor, out_dir: str | Path, seed: int = 0):
        self.c = compressor
        self.bb = compressor.backbone
        self.out = Path(out_dir)
        self.seed = seed
        self.device = self.bb.device
        self.eos = end_of_turn(self.bb)
        self.history: list[dict[str, Any]] = []

    def _autocast(self):
        return bf16_autocast(self.device)

    def trainable(self, stage: str) -> list[torch.nn.Parameter]:
        m = self.c.model
        if stage == "paraphrase":
            return list(m.adapter.parameters())
        return list(m.parameters())

    def step(self, cfg: StageConfig, batch: list[Record], rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        """One batch's loss (not yet backpropagated: the loop does that) and its metrics."""
        bb, model = self.bb, self.c.model
        ctxs = [_truncate(tokenize_context(bb, r.context), cfg.max_context_tokens) for r in batch]
        enc = self.c.encoder.encode(ctxs, [r.question for r in batch])
        rate = rng.choice(cfg.rates)
        limit = 4 * cfg.max_target_tokens if cfg.name == "paraphrase" else cfg.max_target_tokens
        targets = [bb.tokenizer(r.target, add_special_tokens=False)["input_ids"][:limit] + [self.eos] for r in batch]
        with self._autocast():
            soft, keep_logits = model(enc)
            keep_logits = keep_logits.float()
        probs = torch.sigmoid(keep_logits)
        student = []
        for i, (r, ctx) in enumerate(zip(batch, ctxs)):
            kept_ids = scale = None
            if KEPT in r.user_text:
                p = probs[i, : len(ctx)]
                kept = select_words_by_budget(p.tolist(), ctx.words, keep_count(len(ctx), rate))
                kept_ids = [ctx.ids[k] for k in kept]
                pk = p[kept]
                scale = 1.0 + pk - pk.detach()  # straight-through: task gradient reaches p
            n_soft = self.c.model.config.soft_token_count(len(ctx))
            student.append(embed_prompt(bb, prompt_parts(bb, r.user_text), soft=soft[i, :n_soft], kept_ids=kept_ids,
                                        kept_scale=scale))
        with self._autocast():
            s_logits, tids, tmask, _, _ = forward_on_targets(bb.model, student, targets)
        nll = F.cross_entropy(s_logits[tmask], tids[tmask])
        metrics = {"nll": float(nll.detach())}
        loss = nll
        if batch[0].teacher_text is not None:
            kl, bce = self._teacher_terms(cfg, batch, ctxs, targets, s_logits, tmask, keep_logits)
            loss = loss + cfg.kl_weight * kl + cfg.saliency_weight * bce
            metrics.update(kl=float(kl.detach()), bce=float(bce.detach()))
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def _teacher_terms(self, cfg, batch, ctxs, targets, s_logits, tmask, keep_logits):
        bb = self.bb
        prompts, ctx_starts = [], []
        with torch.no_grad():
            for r, ctx in zip(batch, ctxs):
                parts = prompt_parts(bb, r.teacher_text)
                before = 0
                for kind, ids in parts.parts:
                    if kind == "kept":
                        break
                    before += len(ids)
                ctx_starts.append(before)
                prompts.append(embed_prompt(bb, parts, kept_ids=ctx.ids))
            with attention_implementation(bb.model, "eager"), self._autocast():
                t_logits, _, _, lens, atts = forward_on_targets(bb.model, prompts, targets, want_attention=True)
            upper = upper_layer_attention(atts)  # (B, T, T)
        kl = F.kl_div(F.log_softmax(s_logits[tmask], -1), F.log_softmax(t_logits[tmask], -1),
                      log_target=True, reduction="batchmean")
        bce_terms = []
        for i, (r, ctx) in enumerate(zip(batch, ctxs)):
            n, nt = len(ctx), len(targets[i])
            start = ctx_starts[i]
            y = saliency_labels(upper[i], start, n, lens[i], nt, cfg.saliency_top)
            y = torch.maximum(y, _span_labels(ctx, r.answer_spans).to(y.device))
            bce_terms.append(F.binary_cross_entropy_with_logits(keep_logits[i, :n], y))
        return kl, torch.stack(bce_terms).mean()

    # ------------------------------------------------------------------ the stage, on the one loop
    def run_stage(self, cfg: StageConfig, records: list[Record], resume: bool = True,
                  held_out: list[Record] | None = None) -> dict[str, Any]:
        """Train one pretraining stage with :func:`hyco2.training.loop.train`; ``held_out`` records (never
        trained on) give the held-out loss at the end."""
        if not records:
            raise ValueError(f"stage {cfg.name}: no training records")
        rng = random.Random(self.seed * 7919 + STAGES.index(cfg.name))
        order: list[int] = []

        def step(_: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch = []
            while len(batch) < cfg.batch_size:
                if not order:
                    order.extend(range(len(records)))
                    rng.shuffle(order)
                batch.append(records[order.pop()])
            return self.step(cfg, batch, rng)

        def evaluate() -> dict[str, float]:
            eval_rng = random.Random(self.seed)  # the same rates and batches at every evaluation
            rows = [self.step(cfg, held_out[i:i + cfg.batch_size], eval_rng)[1]
                    for i in range(0, len(held_out), cfg.batch_size)]
            return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

        loop = LoopConfig(name=cfg.name, steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size,
                          classifier_lr_mult=cfg.classifier_lr_mult, minutes=cfg.max_minutes,
                          save_every=cfg.save_every, log_every=20)
        summary = train(self.c.model, self.trainable(cfg.name), step, loop, self.out,
                        evaluate=evaluate if held_out else None, resume=resume)
        summary.update(records=len(records), config=asdict(cfg))
        summary["history"] = [{"stage": cfg.name, **h} for h in summary["history"]]
        self.history.extend(summary["history"])
        stage_dir = self.out / cfg.name
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "history"},
                                                           indent=2))
        return summary
