"""Batch throughput, side by side in one run: the backbone's bare prefill over the same documents (the
floor), the library's compress_batch, and the batch CLI end to end (files → SQLite), in tokens/s and
docs/s, with peak memory.

    python bench/batch.py                                   # CPU: 64 SQuAD paragraphs
    python bench/batch.py --docs 2048 --batch-sizes 64 256 --batch-tokens 65536 --cli-devices cuda:0 all

Rows:
- ``prefill, padding mask``: the backbone's body over fixed-size batches in file order with an
  attention mask (what a plain Hugging Face loop does);
- ``prefill, length-sorted, no mask``: the same tokens batched by length (hyco2.batching) through
  hyco2.forward.right_padded_forward, as the compressor runs them: the floor the compressor is measured
  against. Its inputs reach the GPU as the library's do (pinned, queued: hyco2.transfer); before this
  release they went by plain ``.to(device)``, which waits for the device's queue, so the floor itself
  took turns with the host and came out below what the device does;
- ``compress_batch``: tokenising, the backbone, the adapter and classifier, selection and cl100k counts;
- ``compress_batch's device work only``: the encoder pass, adapter and classifier over the same batches,
  queued back to back (no selection, no counting): what the device must do for compress_batch;
- ``--compile``: the prefill, compress_batch and device-work rows again after Backbone.compile_layers
  (compile time reported apart); ``--cli-compile``: each CLI row again with ``--compile`` (its
  compiling happens while the run's clock runs: on a small folder it does not pay);
- ``CLI``: ``python -m hyco2.batch compress`` in a subprocess on a folder of the same paragraphs (reading
  files, hashing, SQLite writes, whole documents per transaction), timed by the run's own wall clock (model loads excluded:
  the main process's and, with several devices, every worker's, which start before the run),
  for each ``--cli-devices`` value (one device, or ``all`` GPUs) and ``--cli-per-device`` value
  (worker processes on each device).

Then compress_batch's wall clock by step (tokenising every text; queueing each batch's pass: the host
launching its kernels, and any wait for the device inside that; waiting for a pass's outputs; finishing
each batch on the host): when the host's steps add up to the wall clock, one interpreter is the limit.

With ``--profile``, one prefill pass and one compress_batch over the same documents also run under
torch.profiler: wall ms against the device's busy ms (a GPU that waits on the host shows a low busy
share), kernel launches, and the top kernels (with ``--compile``, the compiled layers'). With ``--host-profile``, compress_batch runs again with
the model replaced by a stand-in of the same output shapes: its host work alone, in ms a document, and
where it goes (cProfile; it inflates code that makes many small calls, so read its shares with care); and
the batch CLI's main process alone (``CLI bookkeeping only``: a run whose device pool answers at once
from results made beforehand), the most any number of devices can get out of one writer; and the same
with the answers coming from 4 worker processes (``results from 4 worker processes``): what handing
batches over and taking results back costs that process.

The documents are written to a temporary folder at run time from the SQuAD file (nothing is copied into
the repo).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


if __package__ in (None, ""):  # python bench/batch.py: the repo root on the path, for the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import PeakMemory, machine, sync  # noqa: E402
from hyco2 import CompressionSettings, HyCo2Compressor
from hyco2.backbone import QUANTIZE_CHOICES
from hyco2.batching import length_batches
from hyco2.forward import right_padded_forward
from hyco2.encoder import tokenize_context, tokenize_contexts
from hyco2.transfer import to_device
from hyco2.training.data import read_squad

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def write_documents(texts: list[str], folder: Path) -> None:
    """One text file a paragraph, in order: the folder a CLI row compresses."""
    for i, text in enumerate(texts):
        (folder / f"p{i:05d}.txt").write_text(text, encoding="utf-8")


def paragraphs(path: Path, n: int) -> list[str]:
    seen = dict.fromkeys(ex.paragraph for ex in read_squad(path))
    out = list(seen)[:n]
    if len(out) < n:
        raise SystemExit(f"{path} has only {len(out)} paragraphs; ask for fewer --docs")
    return out


def _seconds(fn, device: torch.device | None = None) -> float:
    """Seconds of ``fn()``; with a ``device``, from an idle device to the end of the work it queued."""
    if device is not None:
        sync(device)
    t0 = time.perf_counter()
    fn()
    if device is not None:
        sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def prefill(comp: HyCo2Compressor, ids: list[list[int]], batch_size: int, sorted_no_mask: bool,
            batch_tokens: int | None) -> float:
    """Seconds for the backbone's body over every document (question prefix included, as compression does)."""
    bb, dev = comp.backbone, comp.backbone.device
    q = comp.encoder.question_ids(None)
    rows = [q + x for x in ids]
    groups = (length_batches([len(r) for r in rows], batch_size, batch_tokens) if sorted_no_mask
              else [list(range(s, min(s + batch_size, len(rows)))) for s in range(0, len(rows), batch_size)])

    def run() -> None:
        for g in groups:  # as the encoder runs it: no autocast (the weights are bf16 on a GPU), copies queued
            L = max(len(rows[i]) for i in g)
            x = torch.full((len(g), L), bb.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(g), L), dtype=torch.long)
            for r, i in enumerate(g):
                x[r, : len(rows[i])] = torch.tensor(rows[i])
                mask[r, : len(rows[i])] = 1
            if sorted_no_mask:
                right_padded_forward(bb.model, input_ids=to_device(x, dev))
            else:
                bb.model.base_model(input_ids=to_device(x, dev), attention_mask=to_device(mask, dev))

    return _seconds(run, dev)


def timed_compress(comp: HyCo2Compressor, texts: list[str], rate: float, batch_size: int,
                   batch_tokens: int | None) -> tuple[float, float | None]:
    """Seconds and peak device MiB of one compress_batch over every document."""
    dev = comp.backbone.device
    with PeakMemory(dev) as mem:
        seconds = _seconds(lambda: comp.compress_batch(texts, None, rate=rate, batch_size=batch_size,
                                                       batch_tokens=batch_tokens), dev)
    return seconds, mem.peak


def compress_phases(comp: HyCo2Compressor, texts: list[str], rate: float, batch_size: int,
                    batch_tokens: int | None) -> dict[str, float]:
    """Where one compress_batch's wall clock goes, from timers around its steps: tokenising every text
    (before any batch), queueing each batch's encoder pass (the host launching it), waiting for a pass's
    outputs (the host idle: the device is behind), and finishing each batch on the host (selection,
    decoding, counting). Queue + finish is the host's work; wait is the device's lead over it."""
    import hyco2.compressor as compressor
    from hyco2.transfer import HostCopy

    spent = dict.fromkeys(("tokenise", "queue", "wait", "finish"), 0.0)

    def timed(name, fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return run

    patches = [(compressor, "tokenize_contexts", timed("tokenise", compressor.tokenize_contexts)),
               (comp, "_queue_batch", timed("queue", comp._queue_batch)),
               (HostCopy, "wait", timed("wait", HostCopy.wait)),
               (comp, "_finish_batch", timed("finish", comp._finish_batch))]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, fn in patches:
        setattr(obj, name, fn)
    try:
        wall = _seconds(lambda: comp.compress_batch(texts, None, rate=rate, batch_size=batch_size,
                                                    batch_tokens=batch_tokens), comp.backbone.device)
    finally:
        for obj, name, fn in saved:
            if obj is comp:
                delattr(obj, name)  # the class's method again
            else:
                setattr(obj, name, fn)
    spent["finish"] -= spent["wait"]  # finishing a batch starts by waiting for its outputs
    return {"wall": wall, **spent, "other": wall - sum(spent.values())}


@torch.no_grad()
def device_pass(comp: HyCo2Compressor, texts: list[str], batch_size: int, batch_tokens: int | None) -> float:
    """Seconds of compress_batch's device work alone: the encoder pass, adapter and classifier over the
    same length-sorted batches, queued back to back (texts tokenised beforehand, no selection)."""
    toks = tokenize_contexts(comp.backbone, texts)
    groups = length_batches([len(t) for t in toks], batch_size, batch_tokens)

    def run() -> None:
        for g in groups:  # each batch's outputs dropped as the next is queued, as compress_batch does
            comp.model(comp.encoder.encode([toks[i] for i in g], [None] * len(g)))

    return _seconds(run, comp.backbone.device)


class StandInModel:
    """Replaces the compressor's encoder pass with zeros and seeded random keep scores of the right
    shapes, inside a ``with`` block: what is left of ``compress_batch`` is its host work (tokenising,
    question ids, selection, decoding, counting), timed apart from any model."""

    def __init__(self, comp: HyCo2Compressor):
        self.comp = comp

    def __enter__(self) -> "StandInModel":
        comp, gen = self.comp, torch.Generator().manual_seed(0)
        k, d = comp.model.config.num_soft_tokens, comp.model.config.hidden_size

        def shapes(contexts, questions):
            [comp.encoder.question_ids(q) for q in dict.fromkeys(questions)]  # host work the real pass does
            return len(contexts), max(len(c) for c in contexts)

        def scores(shape):
            return torch.zeros(shape[0], k, d), torch.randn(shape, generator=gen)

        comp.encoder.encode, comp.model.forward = shapes, scores  # instance attributes over the methods
        return self

    def __exit__(self, *exc) -> None:
        del self.comp.encoder.encode, self.comp.model.forward  # the classes' methods again


def host_profile(comp: HyCo2Compressor, texts: list[str], rate: float, batch_size: int,
                 batch_tokens: int | None, top: int = 12) -> dict:
    """compress_batch's host work alone (StandInModel): seconds (best of three), and where it goes
    (cProfile's functions by own time, from a fourth run)."""
    import cProfile
    import pstats

    with StandInModel(comp):
        run = lambda: comp.compress_batch(texts, None, rate=rate, batch_size=batch_size, batch_tokens=batch_tokens)
        best = min(_seconds(run) for _ in range(3))
        prof = cProfile.Profile()
        prof.runcall(run)
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # (cc, nc, tottime, cumtime, callers)
    return {"seconds": best, "ms_per_doc": 1e3 * best / len(texts),
            "top": [{"function": f"{Path(f).name}:{line}({name})", "calls": v[1], "own_s": round(v[2], 4)}
                    for (f, line, name), v in rows]}


def batch_package():
    """Batch mode's runner, devices and database modules (imported only by the rows that use them)."""
    import importlib

    return tuple(importlib.import_module(f"hyco2.batch.{m}") for m in ("runner", "devices", "db"))


class StandInPool:
    """A device pool that answers every batch from results computed beforehand: what is left of a CLI
    run is its main process's own work (reading, hashing, registering, writing SQLite), which no number
    of devices can go past. With ``processes``, the answers come from that many worker processes (as
    ``--devices`` runs them), so the main process also pays for handing batches over and taking results
    back; without, they come at once."""

    def __init__(self, results: dict[str, object], devices: int = 4, processes: bool = False):
        self.results, self.devices, self.pool = results, ["stand-in"] * devices, None
        if processes:
            import multiprocessing as mp
            import pickle
            from concurrent.futures import ProcessPoolExecutor

            self._file = tempfile.NamedTemporaryFile(suffix=".pkl")
            pickle.dump(results, self._file)
            self._file.flush()
            self.pool = ProcessPoolExecutor(devices, mp_context=mp.get_context("spawn"),
                                            initializer=_stand_in_load, initargs=(self._file.name,))
            list(self.pool.map(_stand_in_answer, [[]] * devices))  # started before the clock, as DevicePool's

    def submit(self, items):
        from concurrent.futures import Future

        if self.pool is not None:
            return self.pool.submit(_stand_in_answer, items)
        future: Future = Future()
        future.set_result([self.results[text] for _, _, text in items])
        return future

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self._file.close()


_stand_in_results: dict[str, object] = {}  # in a StandInPool's worker process


def _stand_in_load(path: str) -> None:
    import pickle

    with open(path, "rb") as fh:
        _stand_in_results.update(pickle.load(fh))


def _stand_in_answer(items) -> list:
    return [_stand_in_results[text] for _, _, text in items]


def runner_ceiling(comp: HyCo2Compressor, folder: Path, texts: list[str], rate: float, batch_size: int,
                   batch_tokens: int | None, processes: bool = False) -> float:
    """Seconds of a batch run over ``folder`` with a :class:`StandInPool` (best of two, fresh databases)."""
    runner, _, db = batch_package()
    with StandInModel(comp):
        made = comp.compress_batch(texts, None, rate=rate, batch_size=batch_size, batch_tokens=batch_tokens)
    results = {t: db.result_columns(r) for t, r in zip(texts, made)}  # what a worker sends back
    best = float("inf")
    for i in range(2):
        path = folder.parent / f"ceiling-{i}-{processes}.db"
        for old in folder.parent.glob(path.name + "*"):  # a fresh database (and its WAL) every time
            old.unlink()
        settings = runner.BatchSettings(compression=CompressionSettings(rate=rate))
        pool = StandInPool(results, processes=processes)
        try:
            run = runner.BatchRunner(db.open_db(str(path)), comp, settings, batch_size=batch_size, progress=False,
                                     pool=pool, batch_tokens=batch_tokens)
            best = min(best, run.run(folder)["seconds"])
        finally:
            pool.close()
    return best


def profiled(fn, dev: torch.device) -> dict:
    """``fn()`` once under torch.profiler: wall ms, the device's busy ms (kernels and copies; one stream,
    so they do not overlap), kernel launches, the top kernels by device time and the top operators by
    their own host time (what the host spends queueing: launches, copies, waits)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    sync(dev)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        fn()
        sync(dev)
    wall = (time.perf_counter() - t0) * 1e3
    events = prof.key_averages()
    busy = [e for e in events if getattr(e, "self_device_time_total", 0.0) > 0]
    top = sorted(busy, key=lambda e: e.self_device_time_total, reverse=True)[:8]
    host = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    return {"wall_ms": round(wall, 1), "device_ms": round(sum(e.self_device_time_total for e in busy) / 1e3, 1),
            "launches": sum(e.count for e in events if e.key.startswith(("cudaLaunchKernel", "cuLaunchKernel"))),
            "top": [{"name": e.key[:60], "calls": e.count, "device_ms": round(e.self_device_time_total / 1e3, 1)}
                    for e in top],
            "host_top": [{"name": e.key[:60], "calls": e.count, "host_ms": round(e.self_cpu_time_total / 1e3, 1)}
                         for e in host]}


def cli_run(folder: Path, db: Path, device: str, batch_size: int, batch_tokens: int | None, rate: float,
            quantize: str = "auto", compile: bool = False, per_device: int = 1) -> dict:
    cmd = [sys.executable, "-m", "hyco2.batch", "compress", str(folder), "--db", str(db), "--rate", str(rate),
           "--batch-size", str(batch_size), "--no-progress", "--quantize", quantize, "--per-device", str(per_device)]
    cmd += ["--compile"] if compile else []
    cmd += ["--devices", device] if device == "all" or "," in device else ["--device", device]
    if batch_tokens:
        cmd += ["--batch-tokens", str(batch_tokens)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch CLI failed on {device}: {proc.stderr[-2000:]}")
    con = sqlite3.connect(db)
    seconds, docs = con.execute("select wall_seconds, documents_done from runs order by id desc limit 1").fetchone()
    tokens = con.execute("select sum(original_tokens) from compressions where status = 'ok'").fetchone()[0]
    con.close()
    return {"seconds": seconds, "docs": docs, "tokens": tokens, "process_seconds": wall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "squad-v1.0-train.json.gz"), help="SQuAD JSON (.gz) file")
    p.add_argument("--docs", type=int, default=64, help="distinct paragraphs to compress")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="rows a forward")
    p.add_argument("--batch-tokens", type=int, default=None, help="padded-token cap a forward (sorted rows)")
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--device", default=None, help="device of the in-process rows (default: cuda if present)")
    p.add_argument("--cli-devices", nargs="*", default=None,
                   help="one CLI run each: a device (cpu, cuda:0) or 'all' / 'cuda:0,cuda:1' for one worker "
                        "process a GPU (default: the --device)")
    p.add_argument("--cli-per-device", type=int, nargs="+", default=[1],
                   help="one CLI run each per --cli-devices entry: worker processes on each device")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE_CHOICES,
                   help="backbone weights for every row (bf16: bfloat16, ~2x on a CPU with AVX-512 BF16)")
    p.add_argument("--compile", action="store_true",
                   help="then compile the backbone's layers (Backbone.compile_layers) and time the prefill, "
                        "compress_batch and device-work rows (and compress_batch by step) again")
    p.add_argument("--cli-compile", action="store_true",
                   help="each CLI run once more with --compile (its compiling inside the run's clock)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one prefill and one compress_batch pass (device busy vs wall, top kernels)")
    p.add_argument("--host-profile", action="store_true",
                   help="also time compress_batch's host work alone, the model replaced by a stand-in, and "
                        "list where it goes (cProfile); and the batch CLI's bookkeeping alone (a stand-in pool "
                        "answering at once, and one answering from 4 worker processes)")
    p.add_argument("--out", default=None, help="JSON file for the rows (default: bench/results/batch-<dev>.json)")
    args = p.parse_args(argv)
    texts = paragraphs(Path(args.data), args.docs)
    comp = HyCo2Compressor.from_pretrained(device=args.device, quantize=args.quantize)
    dev = comp.backbone.device
    ids = [tokenize_context(comp.backbone, t).ids for t in texts]
    n_tokens = sum(map(len, ids))
    comp.compress_batch(texts[:8], None, rate=args.rate)  # warm-up outside the timings
    prefill(comp, ids[:64], 8, True, None)
    rows = []
    phases: dict[str, dict[str, float]] = {}  # compress_batch's wall clock by step
    out = Path(args.out or ROOT / "bench" / "results" / f"batch-{'gpu' if dev.type == 'cuda' else 'cpu'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(**more: object) -> None:
        """The JSON so far: after every row, so that a run cut short (a lent machine's time limit) keeps them."""
        out.write_text(json.dumps({"machine": machine(), "gpus": torch.cuda.device_count(), "rows": rows,
                                   "weights": comp.backbone.weights, "docs": len(texts), "tokens": n_tokens,
                                   "rate": args.rate, "phases": phases, **more}, indent=1))

    def add(name: str, bs: int | None, seconds: float, peak: float | None, tokens: int = n_tokens,
            docs: int = len(texts), bt: int | None = None) -> None:
        rows.append({"row": name, "batch_size": bs, "batch_tokens": bt, "seconds": seconds, "docs": docs,
                     "tokens": tokens, "tokens_per_s": tokens / seconds, "docs_per_s": docs / seconds,
                     "peak_mib": peak})
        print(f"  {name:<40} batch {bs}: {tokens / seconds:,.0f} tokens/s", flush=True)
        save()

    for bs in args.batch_sizes:
        for sorted_no_mask, name in ((False, "prefill, padding mask"), (True, "prefill, length-sorted, no mask")):
            with PeakMemory(dev) as mem:
                s = prefill(comp, ids, bs, sorted_no_mask, args.batch_tokens if sorted_no_mask else None)
            add(name, bs, s, mem.peak, bt=args.batch_tokens if sorted_no_mask else None)
        add("compress_batch", bs, *timed_compress(comp, texts, args.rate, bs, args.batch_tokens), bt=args.batch_tokens)
        add("compress_batch's device work only (no selection)", bs, device_pass(comp, texts, bs, args.batch_tokens),
            None, bt=args.batch_tokens)
        phases[f"batch {bs}"] = compress_phases(comp, texts, args.rate, bs, args.batch_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        write_documents(texts, folder)
        for device in args.cli_devices or [str(dev)]:
            for n, compiled in itertools.product(args.cli_per_device, (False, True) if args.cli_compile else (False,)):
                bs = max(args.batch_sizes)
                name = f"{device.replace(':', '_').replace(',', '+')}-{n}{'-compiled' if compiled else ''}.db"
                r = cli_run(folder, Path(tmp) / name, device, bs, args.batch_tokens, args.rate, args.quantize,
                            compiled, n)
                how = (f", {n} per device" if n > 1 else "") + (", --compile" if compiled else "")
                add(f"CLI end to end ({device}{how})", bs, r["seconds"], None, tokens=r["tokens"], docs=r["docs"],
                    bt=args.batch_tokens)
        if args.host_profile:
            bs = max(args.batch_sizes)
            add("CLI bookkeeping only (stand-in pool)", bs, runner_ceiling(comp, folder, texts, args.rate, bs,
                                                                           args.batch_tokens), None, bt=args.batch_tokens)
            add("CLI bookkeeping, results from 4 worker processes (stand-in workers)", bs,
                runner_ceiling(comp, folder, texts, args.rate, bs, args.batch_tokens, processes=True), None,
                bt=args.batch_tokens)
    if args.compile:
        bs = max(args.batch_sizes)
        t0 = time.perf_counter()
        comp.backbone.compile_layers()
        prefill(comp, ids, bs, True, args.batch_tokens)  # compiles (dynamic shapes: once, or a few times)
        comp.compress_batch(texts, None, rate=args.rate, batch_size=bs, batch_tokens=args.batch_tokens)
        print(f"  compiling and warming up: {time.perf_counter() - t0:.1f} s", flush=True)
        with PeakMemory(dev) as mem:
            s = prefill(comp, ids, bs, True, args.batch_tokens)
        add("prefill, length-sorted, compiled layers", bs, s, mem.peak, bt=args.batch_tokens)
        add("compress_batch, compiled layers", bs, *timed_compress(comp, texts, args.rate, bs, args.batch_tokens),
            bt=args.batch_tokens)
        add("compress_batch's device work only, compiled layers", bs, device_pass(comp, texts, bs, args.batch_tokens),
            None, bt=args.batch_tokens)
        phases[f"batch {bs}, compiled layers"] = compress_phases(comp, texts, args.rate, bs, args.batch_tokens)
    profiles = {}
    if args.profile and dev.type != "cuda":
        print("--profile reads the GPU's timeline: nothing to profile on the CPU", file=sys.stderr)
    elif args.profile:
        bs = max(args.batch_sizes)
        profiles["prefill"] = profiled(lambda: prefill(comp, ids, bs, True, args.batch_tokens), dev)
        profiles["compress_batch"] = profiled(lambda: comp.compress_batch(
            texts, None, rate=args.rate, batch_size=bs, batch_tokens=args.batch_tokens), dev)
    host = None
    if args.host_profile:
        bs = max(args.batch_sizes)
        host = host_profile(comp, texts, args.rate, bs, args.batch_tokens)
        add("compress_batch, host work only (stand-in model)", bs, host["seconds"], None, bt=args.batch_tokens)
    floor = {r["batch_size"]: r["tokens_per_s"] for r in rows if r["row"] == "prefill, length-sorted, no mask"}
    print(f"\n{len(texts)} SQuAD paragraphs, {n_tokens:,} context tokens, rate {args.rate}, weights "
          f"{comp.backbone.weights}; machine: {machine()}\n")
    print("| row | batch | tokens/s | docs/s | vs floor | seconds | peak MiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        model_ran = "stand-in" not in r["row"]  # the host-only row has no floor to compare with
        rel = r["tokens_per_s"] / floor[r["batch_size"]] if model_ran and r["batch_size"] in floor else None
        batch = str(r["batch_size"]) + (f" / {r['batch_tokens']} tok" if r["batch_tokens"] else "")
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        print(f"| {r['row']} | {batch} | {r['tokens_per_s']:,.0f} | {r['docs_per_s']:.1f} | "
              f"{'-' if rel is None else f'{rel:.2f}'} | {r['seconds']:.2f} | {peak} |")
    if phases:
        print("\ncompress_batch's wall clock by step (seconds): tokenise every text; queue a batch's pass (host); "
              "wait for a pass (host idle); finish a batch (host: selection, decoding, counting)\n\n"
              "| run | wall | tokenise | queue | wait | finish | other |\n|---|---|---|---|---|---|---|")
        for name, ph in phases.items():
            print(f"| {name} | " + " | ".join(f"{ph[k]:.2f}" for k in ("wall", "tokenise", "queue", "wait", "finish",
                                                                         "other")) + " |")
    for name, pr in profiles.items():
        print(f"\n{name} under the profiler: {pr['wall_ms']:.0f} ms wall, device busy {pr['device_ms']:.0f} ms "
              f"({pr['device_ms'] / pr['wall_ms']:.0%}), {pr['launches']} kernel launches\n\n"
              "| top kernel | calls | device ms |\n|---|---|---|")
        for k in pr["top"]:
            print(f"| {k['name']} | {k['calls']} | {k['device_ms']} |")
        print("\n| top host op (own time: where queueing goes) | calls | host ms |\n|---|---|---|")
        for k in pr["host_top"]:
            print(f"| {k['name']} | {k['calls']} | {k['host_ms']} |")
    if host:
        print(f"\ncompress_batch's host work: {host['ms_per_doc']:.3f} ms a document (stand-in model); by own time:\n\n"
              "| function | calls | own s |\n|---|---|---|")
        for f in host["top"]:
            print(f"| {f['function']} | {f['calls']} | {f['own_s']} |")
    save(profiles=profiles, host_profile=host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
