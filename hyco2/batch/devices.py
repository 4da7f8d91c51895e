"""Several devices for one batch run: one worker process per device, each with its own compressor.

Why processes, not threads: each GPU needs its own model copy and its own CUDA context, and the
Python work around a forward (tokenising, selecting, counting) must not share one interpreter lock.
The main process keeps everything else — reading files, skipping what is done, and the one SQLite
writer — so a run on four GPUs is resumable exactly like a run on one (a document commits alone).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import torch

from hyco2.compressor import CompressionResult, HyCo2Compressor
from hyco2.errors import HyCo2Error, HyCo2OutOfMemoryError, InvalidSettingError
from hyco2.settings import CompressionSettings

from .db import result_columns

Items = list[tuple[str | None, int, str]]  # (question, chunk index, text)
#: What a GPU worker compresses once as it starts (DeviceWorker.warm_up).
WARM_UP_TEXT = ("The lighthouse at the harbour mouth was built in 1852 from local granite. Its lamp, first lit by "
                "oil and electrified in 1931, can be seen 18 nautical miles out to sea.")


def parse_devices(spec: str | None, per_device: int = 1) -> list[str]:
    """One entry per worker process: ``cuda:0,cuda:1`` → those; ``all`` → every visible CUDA device;
    ``cpu,cpu`` → two CPU workers; each ``per_device`` times (``cuda:0,cuda:0,cuda:1,cuda:1`` for 2).

    Why several workers on one device: a batch's host work (tokenising, selecting, decoding, counting:
    ~0.5 ms a paragraph, in one interpreter) bounds one worker below what a GPU computes; a second
    worker's host work runs on another core while the first one's batch is on the GPU."""
    check_per_device(per_device)
    if not spec:
        return []
    if spec.strip() == "all":
        if not torch.cuda.is_available():
            raise InvalidSettingError("--devices all needs CUDA devices; none is visible.")
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        devices = [d.strip() for d in spec.split(",") if d.strip()]
        for d in devices:
            if d != "cpu" and not d.startswith("cuda"):
                raise InvalidSettingError(f"Unknown device {d!r} in --devices: use cuda:N, cpu, or all.")
    return [d for d in devices for _ in range(per_device)]


def check_per_device(per_device: int) -> None:
    if isinstance(per_device, bool) or not isinstance(per_device, int) or per_device < 1:
        raise InvalidSettingError(f"--per-device must be a whole number ≥ 1, not {per_device!r}.")


def compress_items(comp: HyCo2Compressor, items: Items, settings: CompressionSettings, batch_size: int,
                   batch_tokens: int | None = None) -> tuple[list[CompressionResult | Exception], int]:
    """Compress with the largest batch that fits; on out-of-memory, halve and retry. All items go to
    ``compress_batch`` at once, which batches them by length (hyco2.batching), so a short text does not
    pad to a long one: the runner hands over several batches' worth for that. One bad item does not
    sink the rest (they are retried one by one). Returns the results, in the items' order, and the
    batch size that worked."""
    size = batch_size
    while True:
        try:
            try:
                return comp.compress_batch([t for _, _, t in items], [q for q, _, _ in items], settings=settings,
                                           batch_size=size, batch_tokens=batch_tokens), size
            except HyCo2OutOfMemoryError:
                raise
            except HyCo2Error:
                out: list[CompressionResult | Exception] = []
                for q, _, t in items:
                    try:
                        out.append(comp.compress(t, q, settings=settings))
                    except HyCo2Error as exc:
                        out.append(exc)
                return out, size
        except HyCo2OutOfMemoryError as exc:
            if size == 1:
                return [exc] * len(items), size
            size = max(1, size // 2)


# -------------------------------------------------------------------- in each worker (process, thread or Ray actor)
class DeviceWorker:
    """One compressor on one device, compressing batches of items: the body of a worker process
    (DevicePool) and of a Ray actor (batch.ray_engine.RayPool) alike."""

    def __init__(self, device: str, checkpoint: str | None, model: str | None, quantize: str,
                 settings: CompressionSettings, batch_size: int, batch_tokens: int | None, compile: bool = False,
                 share: int = 1, embeddings: bool = False):
        threads = max(1, (os.cpu_count() or 1) // share)  # workers on one host share its cores
        torch.set_num_threads(threads)
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))  # the fast tokenizer's pool, unless the user set it
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is not None:  # streams, events and kernels default to this GPU,
            torch.cuda.set_device(dev)  # and no context is opened on cuda:0 by every worker
        comp = HyCo2Compressor.from_pretrained(checkpoint, model=model, quantize=quantize, device=device,
                                               compile=compile)
        self._attach(comp, settings, batch_size, batch_tokens, embeddings)

    @classmethod
    def around(cls, comp: HyCo2Compressor, settings: CompressionSettings, batch_size: int,
               batch_tokens: int | None, embeddings: bool = False) -> "DeviceWorker":
        """A worker around a compressor that is already loaded (the one-device run's own)."""
        worker = cls.__new__(cls)
        worker._attach(comp, settings, batch_size, batch_tokens, embeddings)
        return worker

    def _attach(self, comp: HyCo2Compressor, settings: CompressionSettings, batch_size: int,
                batch_tokens: int | None, embeddings: bool) -> None:
        """What every worker holds, however its compressor came (loaded here, or handed over)."""
        self.comp, self.settings, self.batch_size, self.batch_tokens = comp, settings, batch_size, batch_tokens
        self.embeddings = embeddings  # whether the run stores the soft tokens (else only their count travels)
        if comp.backbone.device.type == "cuda":
            self.warm_up()

    def warm_up(self) -> None:
        """Two short texts through the whole compress step, results dropped. Why: a GPU's first passes
        load its kernels and libraries (and, with ``--compile``, compile the layers); done as the worker
        starts, like loading the model, a run's first batches do not pay for it, and a short run's
        documents/s says what the next thousand documents will take."""
        compress_items(self.comp, [(None, 0, WARM_UP_TEXT), (None, 0, WARM_UP_TEXT[:60])], self.settings,
                       self.batch_size, self.batch_tokens)

    def __call__(self, items: Items) -> list[dict | Exception]:
        """Each item's row columns (:func:`batch.db.result_columns`), or the error that stopped it."""
        out, self.batch_size = compress_items(self.comp, items, self.settings, self.batch_size, self.batch_tokens)
        return [r if isinstance(r, Exception) else result_columns(r, self.embeddings) for r in out]


_worker: list[DeviceWorker] = []


def _init(devices: list[str], counter, worker: dict) -> None:
    """A worker process's start: the next device of the list, and its DeviceWorker (``worker``: the
    keyword arguments every worker shares)."""
    with counter.get_lock():
        device = devices[counter.value % len(devices)]
        counter.value += 1
    _worker.append(DeviceWorker(device, share=len(devices), **worker))


def _work(items: Items) -> list[dict | Exception]:
    return _worker[0](items)


def _ready() -> int:
    return os.getpid()


class LocalPool:
    """One device, in this process, behind the pools' interface: the run's own compressor in one
    background thread. Why: the runner then reads, hashes and writes other documents while a batch is
    on the device (a GPU forward and the tokenizers leave the interpreter lock free), instead of
    taking turns with it."""

    def __init__(self, comp: HyCo2Compressor, settings: CompressionSettings, batch_size: int,
                 batch_tokens: int | None = None, embeddings: bool = False):
        self.devices = [str(comp.backbone.device)]
        self.worker = DeviceWorker.around(comp, settings, batch_size, batch_tokens, embeddings)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="hyco2-compress")

    def submit(self, items: Items) -> Future:
        return self.pool.submit(self.worker, items)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DevicePool:
    """One worker process per device; each batch of items goes to whichever worker is free."""

    def __init__(self, devices: list[str], *, checkpoint: str | None, model: str | None, quantize: str,
                 settings: CompressionSettings, batch_size: int, batch_tokens: int | None = None,
                 compile: bool = False, embeddings: bool = False):
        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        self.devices = devices
        worker = dict(checkpoint=checkpoint, model=model, quantize=quantize, settings=settings,
                      batch_size=batch_size, batch_tokens=batch_tokens, compile=compile, embeddings=embeddings)
        self.pool = ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init,
                                        initargs=(devices, ctx.Value("i", 0), worker))
        self._start_all()

    def _start_all(self) -> None:
        """Start every worker (and load its model) now, not at its first batch: a run's clock, and its
        first batches, should not wait for model loading (on a 4-GPU host a 4,096-document run with the
        workers starting inside it took 15.8 s, against 11.0 s on one device whose model loads first)."""
        pids: set[int] = set()
        try:
            for _ in range(4):
                pids |= {f.result() for f in [self.pool.submit(_ready) for _ in self.devices]}
                if len(pids) >= len(self.devices):
                    return
        except BrokenProcessPool:
            raise HyCo2Error(f"a worker process for --devices {','.join(self.devices)} failed to start (its "
                             "model did not load); run with --device on one of them to see why") from None

    def submit(self, items: Items) -> Future:
        return self.pool.submit(_work, items)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
