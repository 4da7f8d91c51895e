"""The one training loop, for every stage (the nanoGPT way: readable in one sitting).

A stage supplies only its step: a callable that draws its own batch, computes the loss and returns it
with metrics to log (``step(i) -> (loss, metrics)``); optionally an ``evaluate()`` on held-out data. The
loop owns what every stage shares and must do the same way: AdamW with the classifier's own learning
rate, 3% warm-up then linear decay to zero, a time budget that re-sizes the schedule from the measured
speed (so it still ends at zero when time runs out), skipping a step whose loss or gradient is not finite,
data-parallel training (the stage's model wrapped in DDP by the caller; the plan agreed on by all ranks),
resuming from an atomically saved state, and the loss curve.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

STATE_NAME = "trainer_state.pt"


@dataclass
class LoopConfig:
    name: str  # the stage: the progress bar's label and the state file's folder
    steps: int  # at most this many optimizer steps
    lr: float
    batch_size: int  # examples a step on each rank (for examples_seen)
    classifier_lr_mult: float = 1.0  # the retention classifier's learning rate, relative to lr
    minutes: float | None = None  # time budget: the schedule is re-sized to end when it runs out
    save_every: int = 0  # also save the state every N steps (0: only at the end)
    log_every: int = 25  # a history row every N steps
    eval_every: int = 0  # held-out metrics every N steps (0: only at the end), when the stage has them
    warmup: float = 0.03  # share of the steps that warm up
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient-norm clip


def lr_multiplier(step: int, total: int, warmup: float = 0.03) -> float:
    """Linear warm-up over ``warmup``·total steps, then linear decay to 0 at ``total``."""
    warm = max(1, int(warmup * total))
    return min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))


def plan_total(step: int, total: int, elapsed_s: float, per_step_s: float, minutes: float) -> int:
    """The step count that fits the time left at the measured speed, never above ``total``."""
    left = 60 * minutes - elapsed_s
    return min(total, step + max(1, int(left / max(per_step_s, 1e-9))))


def optimizer(model: torch.nn.Module, params: list[torch.nn.Parameter], cfg: LoopConfig) -> torch.optim.AdamW:
    """AdamW over ``params``: the classifier's parameters in a group of their own (its own rate)."""
    head = {id(p) for p in model.classifier.parameters()}
    groups = [{"params": [p for p in params if id(p) not in head], "lr": cfg.lr},
              {"params": [p for p in params if id(p) in head], "lr": cfg.lr * cfg.classifier_lr_mult}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def save_state(path: Path, model: torch.nn.Module, opt, step: int, seen: int, total: int) -> None:
    """Written to a temporary file first, then renamed: a run killed while saving keeps the last state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "examples_seen": seen, "total": total}, tmp)
    tmp.replace(path)


def train(model: torch.nn.Module, params: list[torch.nn.Parameter],
          step_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]], cfg: LoopConfig, out_dir: Path, *,
          evaluate: Callable[[], dict[str, float]] | None = None, rank: int = 0, world: int = 1,
          resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train ``params`` of ``model`` with ``step_fn`` until ``cfg.steps`` or the time budget.

    ``step_fn(i)`` returns the loss of step ``i`` (not yet backpropagated) and metrics to log. With
    ``world > 1`` each rank calls this with the same ``cfg``; the time re-plan takes the slowest rank's.
    Resumes from ``out_dir/cfg.name/trainer_state.pt`` when present (``resume``). Returns the summary:
    steps done, examples seen, speed, the last metrics, the loss curve and the held-out metrics.
    """
    dev = next(model.parameters()).device
    state_file = Path(out_dir) / cfg.name / STATE_NAME
    opt = optimizer(model, params, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    step, seen, total = 0, 0, cfg.steps
    if resume and state_file.is_file():
        state = torch.load(state_file, map_location=dev, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, seen, total = state["step"], state.get("examples_seen", 0), state.get("total", cfg.steps)
        log.warning("Resuming stage %s at step %d (%d examples seen)", cfg.name, step, seen)
    for p in params:
        p.requires_grad_(True)
    model.train()
    history: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    last: dict[str, float] = {}
    skipped, first, t0 = 0, step, time.time()
    t10 = t0
    bar = tqdm(total=total, initial=step, desc=cfg.name, disable=not progress or rank != 0, mininterval=5)

    def run_eval() -> None:
        if evaluate is None:
            return
        model.eval()
        with torch.no_grad():
            held_out.append({"step": step, **evaluate()})
        model.train()

    while step < total:
        if step == first + 10:
            t10 = time.time()  # steps 0-9 include compiling and the allocator's warm-up
        if cfg.minutes is not None and step == first + 30:  # size the schedule from steps 10-29
            planned = torch.tensor([plan_total(step, total, time.time() - t0, (time.time() - t10) / 20,
                                               cfg.minutes)], device=dev)
            if world > 1:
                torch.distributed.all_reduce(planned, op=torch.distributed.ReduceOp.MIN)
            total = int(planned)
            bar.total = total
        if cfg.minutes is not None and time.time() - t0 > 60 * cfg.minutes and world == 1:
            log.warning("Stage %s: time is up at step %d (plan %d)", cfg.name, step, total)
            break
        mult = lr_multiplier(step, total, cfg.warmup)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * mult
        loss, metrics = step_fn(step)
        if torch.isfinite(loss):
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        if torch.isfinite(loss) and torch.isfinite(norm):
            opt.step()
        else:  # one bad batch must not poison the weights: skip it and say so
            skipped += 1
            log.warning("Stage %s step %d: non-finite loss or gradient, step skipped", cfg.name, step)
        opt.zero_grad(set_to_none=True)
        step += 1
        seen += cfg.batch_size * world
        bar.update(1)
        last = {k: float(v) for k, v in metrics.items()}
        if step % cfg.log_every == 0 or step == total or step == first + 1:
            history.append({"step": step, "examples_seen": seen, "seconds": round(time.time() - t0, 1), **last})
            bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("loss", "nll", "kl", "bce", "rank")})
        if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
            run_eval()
        if rank == 0 and cfg.save_every and step % cfg.save_every == 0:
            save_state(state_file, model, opt, step, seen, total)
    bar.close()
    run_eval()
    model.eval()
    for p in params:
        p.requires_grad_(False)
    if rank == 0:
        save_state(state_file, model, opt, step, seen, total)
    seconds = time.time() - t0
    done = step - first
    steady = (done - 10) * cfg.batch_size / (time.time() - t10) if done > 10 else None
    return {"stage": cfg.name, "steps_done": step, "examples_seen": seen, "seconds": round(seconds, 1),
            "skipped_steps": skipped, "gpus": world, "batch_size": cfg.batch_size, "lr": cfg.lr,
            "samples_per_s_per_gpu": round(done * cfg.batch_size / max(seconds, 1e-9), 1),
            "steady_samples_per_s_per_gpu": round(steady, 1) if steady else None,
            "final": {**last, "step": step, "examples_seen": seen} if last else {}, "history": history,
            "held_out": held_out[-1] if held_out else None, "held_out_history": held_out}

