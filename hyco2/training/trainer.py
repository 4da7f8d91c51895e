"""The two pretraining stages over a frozen backbone (see docs/DESIGN.md, "Training stages");
stage 3, instruction tuning, is in distill.py.

One step: the frozen backbone encodes the contexts (no grad); the adapter makes soft tokens and the
classifier keep probabilities (grad); the student decoder reads soft + kept tokens and is scored on
the target; the teacher (same backbone, full context) gives the KL target and, through its
attention from the target back to the context, per-token saliency labels for the classifier.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..compressor import HyCo2Compressor
from ..forward import attention_implementation, bf16_autocast, end_of_turn, forward_on_targets
from ..encoder import TokenizedContext, span_positions, tokenize_context
from ..prompting import (COMPLETION_INSTRUCTION, KEPT, PARAPHRASE_INSTRUCTIONS, SOFT, embed_prompt,
                         prompt_parts)
from ..selection import keep_count, select_words_by_budget
from .data import split_for_completion

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

    def step(self, cfg: StageConfig, batch: list[Record], rng: random.Random) -> dict[str, float]:
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
            student.append(embed_prompt(bb, prompt_parts(bb, r.user_text), soft=soft[i], kept_ids=kept_ids,
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
        if torch.isfinite(loss):
            loss.backward()
        return metrics

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

    # ------------------------------------------------------------------ the loop
    def run_stage(self, cfg: StageConfig, records: list[Record], resume: bool = True) -> dict[str, Any]:
        if not records:
            raise ValueError(f"stage {cfg.name}: no training records")
        stage_dir = self.out / cfg.name
        params = self.trainable(cfg.name)
        head = {id(p) for p in self.c.model.classifier.parameters()}
        groups = [{"params": [p for p in params if id(p) not in head], "lr": cfg.lr},
                  {"params": [p for p in params if id(p) in head], "lr": cfg.lr * cfg.classifier_lr_mult}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
        # Linear decay to 0 over plan["total"] steps, 3% warm-up. With a time limit the total is re-sized
        # after 10 steps from the measured speed, so the schedule still ends at 0 when time runs out.
        plan = {"total": cfg.steps}

        def lr_at(step: int) -> float:
            warm = max(1, int(0.03 * plan["total"]))
            return min((step + 1) / warm, max(0.0, (plan["total"] - step) / max(1, plan["total"] - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        start_step = 0
        state_file = stage_dir / "trainer_state.pt"
        if resume and state_file.is_file():
            state = torch.load(state_file, map_location=self.device, weights_only=False)
            self.c.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_step = state["step"]
            plan["total"] = state.get("total", cfg.steps)
            log.warning("Resuming stage %s at step %d", cfg.name, start_step)
        rng = random.Random(self.seed * 7919 + STAGES.index(cfg.name))
        order: list[int] = []
        for p in params:
            p.requires_grad_(True)
        self.c.model.train()
        t0 = time.time()
        bar = tqdm(range(start_step, cfg.steps), desc=cfg.name, initial=start_step, total=cfg.steps)
        step, last, skipped = start_step, {}, 0
        for step in bar:
            if step >= plan["total"] or (cfg.max_minutes is not None and time.time() - t0 > 60 * cfg.max_minutes):
                log.warning("Stage %s: stopping at step %d (plan %d)", cfg.name, step, plan["total"])
                break
            if cfg.max_minutes is not None and step in (start_step + 10, start_step + 40):
                # size the schedule to the time left: first from the start-up-heavy first 10 steps,
                # then again from the speed of steps 10-40
                now = time.time()
                if step == start_step + 10:
                    t10 = now
                    per_step = (now - t0) / 10
                else:
                    per_step = (now - t10) / 30
                left = 60 * cfg.max_minutes - (now - t0)
                plan["total"] = min(cfg.steps, step + max(1, int(left / per_step)))
                bar.total = plan["total"]
            batch = []
            while len(batch) < cfg.batch_size:
                if not order:
                    order = list(range(len(records)))
                    rng.shuffle(order)
                batch.append(records[order.pop()])
            last = self.step(cfg, batch, rng)
            norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
            if finite(last["loss"]) and torch.isfinite(norm):
                opt.step()
            else:  # one bad batch must not poison the weights: skip it and say so
                skipped += 1
                log.warning("Stage %s step %d: non-finite loss/gradient, step skipped", cfg.name, step)
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()})
            if step % 20 == 0:
                self.history.append({"stage": cfg.name, "step": step, **last})
            if cfg.save_every and (step + 1) % cfg.save_every == 0:
                self._save_state(stage_dir, opt, sched, step + 1, plan["total"])
        else:
            step = cfg.steps
        self.c.model.eval()
        for p in self.c.model.parameters():
            p.requires_grad_(False)
        self._save_state(stage_dir, opt, sched, step, plan["total"])
        summary = {"stage": cfg.name, "steps_done": step, "seconds": round(time.time() - t0, 1),
                   "records": len(records), "final": last, "skipped_steps": skipped, "config": asdict(cfg)}
        (stage_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        # the loss curve travels with the summary, as stage 3's does, into the run's history.json
        return {**summary, "history": [h for h in self.history if h["stage"] == cfg.name]}

    def _save_state(self, stage_dir: Path, opt, sched, step: int, total: int) -> None:
        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = stage_dir / "trainer_state.pt.tmp"
        torch.save({"model": self.c.model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "step": step, "total": total}, tmp)
        tmp.replace(stage_dir / "trainer_state.pt")


def finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
