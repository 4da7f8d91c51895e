"""Stage-3 step throughput: where a training step's time goes, and samples/s per GPU by batch size.

    python bench/train_step.py --limit-questions 4000                        # one device, quick
    python bench/train_step.py --teacher-cache /root/work/cache/teacher --batch-sizes 64 128 256 --compile

Prints two tables: (1) one profiled step at the first batch size, split into the step's labelled parts
(``distill/encoder``, ``distill/adapter+classifier``, ``distill/selection``, ``distill/student``, and
the backward) with host and device milliseconds, plus the top device kernels; (2) steady samples/s per
device for each batch size (steps 10+ of a short run of the real training loop,
:func:`hyco2.training.distill.train_distill`), optionally with ``--compile``. The last line,
``best: --batch-size N [--compile]``, is what the fastest row used (scripts/train_on_gpu.sh reads it).
Every run starts from the same checkpoint; nothing is saved but the JSON.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile


if __package__ in (None, ""):  # python bench/train_step.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, PeakMemory, machine, sync  # noqa: E402
from hyco2 import HyCo2Compressor
from hyco2.forward import bf16_autocast
from hyco2.classifier import add_question_match
from hyco2.training.data import read_qa
from hyco2.training.distill import DistillConfig, DistillStep, prepare_items, teacher_cache, train_distill

MEASUREMENT = ["Southern_California", "Normans", "Computational_complexity_theory"]


def load(args) -> HyCo2Compressor:
    comp = HyCo2Compressor.from_pretrained(args.init, device=args.device)
    if args.question_classifier:
        add_question_match(comp.model)
    return comp


def profiled_step(comp, items, cfg: DistillConfig) -> dict:
    """One step (after two warm-up steps) under torch.profiler: host and device ms per labelled part."""
    dev = comp.backbone.device
    model = comp.model
    for p in model.parameters():
        p.requires_grad_(True)
    step = DistillStep(comp.backbone, model, items, cfg, random.Random(0))
    autocast = bf16_autocast(dev)
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    batches = [order[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(3)]
    for b in batches[:2]:
        loss, _ = step(b, autocast)
        loss.backward()
    sync(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        with torch.profiler.record_function("distill/step"):
            loss, _ = step(batches[2], autocast)
        with torch.profiler.record_function("distill/backward"):
            loss.backward()
        sync(dev)
    wall = (time.perf_counter() - t0) * 1e3
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    events = prof.key_averages()

    def device_ms(e) -> float:
        return getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0)) / 1e3

    parts = {e.key: {"host_ms": round(e.cpu_time_total / 1e3, 1), "device_ms": round(device_ms(e), 1)}
             for e in events if e.key.startswith("distill/")}
    kernels = sorted((e for e in events if not e.key.startswith("distill/")),
                     key=lambda e: getattr(e, "self_device_time_total", 0.0), reverse=True)[:12]
    top = [{"name": e.key[:70], "calls": e.count,
            "device_ms": round(getattr(e, "self_device_time_total", 0.0) / 1e3, 1)} for e in kernels]
    launches = sum(e.count for e in events if e.key.startswith(("cudaLaunchKernel", "cuLaunchKernel")))
    return {"batch_size": cfg.batch_size, "wall_ms": round(wall, 1), "parts": parts, "top_kernels": top,
            "kernel_launches": launches}


def throughput(args, items, batch_size: int, compile: bool) -> dict:
    comp = load(args)
    cfg = DistillConfig(target="gold", batch_size=batch_size, steps=args.steps, save_every=0, compile=compile,
                        rank_weight=1.0, max_paragraphs=args.max_paragraphs)
    with tempfile.TemporaryDirectory() as tmp, PeakMemory(comp.backbone.device) as mem:
        t0 = time.perf_counter()
        summary = train_distill(comp, items, cfg, Path(tmp), progress=False)
    return {"batch_size": batch_size, "compile": compile, "steps": summary["steps_done"],
            "seconds": round(time.perf_counter() - t0, 1),
            "steady_samples_per_s": summary["steady_samples_per_s_per_gpu"], "peak_mib": round(mem.peak)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qa", default=str(SHARED / "squad-v1.0-train.json.gz"))
    p.add_argument("--init", default=None, help="checkpoint (default: the shipped one)")
    p.add_argument("--question-classifier", action="store_true", help="as the training CLI's flag")
    p.add_argument("--teacher-cache", default=None, help="a complete teacher cache folder (else built here)")
    p.add_argument("--limit-questions", type=int, default=4000)
    p.add_argument("--max-paragraphs", type=int, default=8)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--steps", type=int, default=30, help="steps per throughput row (the first 10 are warm-up)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile at the best batch size")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="JSON output")
    args = p.parse_args(argv)
    comp = load(args)
    qa = list(read_qa(args.qa, exclude=set(MEASUREMENT)))[: args.limit_questions]
    folder = Path(args.teacher_cache) if args.teacher_cache else Path(tempfile.mkdtemp()) / "teacher"
    cache = teacher_cache(comp, qa, folder, 0, 1, batch_size=256)
    items = prepare_items(comp.backbone, qa, cache, "gold")
    print(f"{machine()}: {len(items)} questions", flush=True)
    prof = profiled_step(comp, items, DistillConfig(target="gold", batch_size=args.batch_sizes[0], rank_weight=1.0,
                                                    max_paragraphs=args.max_paragraphs))
    print(f"\n| part (batch {prof['batch_size']}, one step, {prof['wall_ms']} ms wall, "
          f"{prof['kernel_launches']} kernel launches) | host ms | device ms |\n|---|---|---|")
    for name, v in prof["parts"].items():
        print(f"| {name} | {v['host_ms']} | {v['device_ms']} |")
    print("\n| top kernel | calls | device ms |\n|---|---|---|")
    for k in prof["top_kernels"]:
        print(f"| {k['name']} | {k['calls']} | {k['device_ms']} |")
    del comp
    rows = []
    print("\n| batch size | compile | steps | seconds | steady samples/s | peak MiB |\n|---|---|---|---|---|---|", flush=True)

    def run(b: int, c: bool) -> None:
        try:
            r = throughput(args, items, b, c)
        except Exception as exc:  # noqa: BLE001 - an out-of-memory or compile failure is a result here
            r = {"batch_size": b, "compile": c, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        rows.append(r)
        print(f"| {b} | {c} | {r.get('steps', '-')} | {r.get('seconds', '-')} | "
              f"{r.get('steady_samples_per_s', r.get('error'))} | {r.get('peak_mib', '-')} |", flush=True)

    for b in args.batch_sizes:
        run(b, False)
    ok = [r for r in rows if r.get("steady_samples_per_s")]
    if args.compile and ok:
        run(max(ok, key=lambda r: r["steady_samples_per_s"])["batch_size"], True)
        ok = [r for r in rows if r.get("steady_samples_per_s")]
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "profile": prof, "throughput": rows}, indent=1))
    if ok:
        best = max(ok, key=lambda r: r["steady_samples_per_s"])
        print(f"\nbest: --batch-size {best['batch_size']}" + (" --compile" if best["compile"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
