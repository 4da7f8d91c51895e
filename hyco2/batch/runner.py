"""Compress a folder into the SQLite log: resumable (a document commits whole or not at all), faults logged."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path

import sqlite_utils
from tqdm.auto import tqdm

import hyco2
from hyco2.chunking import chunk_bounds
from hyco2.compressor import HyCo2Compressor
from hyco2.encoder import tokenize_context
from hyco2.errors import HyCo2Error, HyCo2OutOfMemoryError
from hyco2.settings import CompressionSettings

from .db import insert_compressions
from .devices import DevicePool, LocalPool
from .documents import DEFAULT_MAX_BYTES, JSON_FIELDS, Found, discover, extract_text, sha256


@dataclass
class BatchSettings:
    """Everything that changes a compression's output; its hash decides what counts as done."""

    compression: CompressionSettings = field(default_factory=CompressionSettings)  # how much, by whom
    chunk_tokens: int | None = None
    json_fields: tuple[str, ...] = JSON_FIELDS
    store_embeddings: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES

    def to_dict(self) -> dict:
        """As runs record them: the compression settings resolved (the phrase strength that was used)."""
        return {**asdict(self), "compression": self.compression.to_dict()}

    def output_key(self, model: str, checkpoint_sha: str) -> str:
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("max_bytes",)}
        blob = json.dumps({"settings": relevant, "model": model, "checkpoint": checkpoint_sha}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Files a reader thread reads in one task (see BatchRunner._read_ahead).
READ_GROUP = 64


@dataclass
class _Read:
    """A file as a reader thread left it: its bytes, or why there are none, and its modification time."""

    found: Found
    raw: bytes | None
    error: HyCo2Error | None
    mtime: float | None = None


@dataclass
class _Doc:
    found: Found
    doc_id: int | None = None
    items: list[tuple[str | None, int, str]] = field(default_factory=list)  # (question, chunk, text)
    error: HyCo2Error | None = None
    results: list[dict | Exception] = field(default_factory=list)  # each item's row columns, or its error


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def checkpoint_sha(comp: HyCo2Compressor) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(comp.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_stale_runs(db: sqlite_utils.Database) -> None:
    """Runs left 'running' by a process that is gone (killed) become 'interrupted'."""
    for row in db.query("select id, versions from runs where status = 'running'"):
        pid = json.loads(row["versions"] or "{}").get("pid")
        if not _pid_alive(pid):
            db["runs"].update(row["id"], {"status": "interrupted"})


def split_chunks(comp: HyCo2Compressor, text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` backbone tokens, cut where hyco2.chunking cuts (blank lines, then
    sentence ends, never inside a word)."""
    ctx = tokenize_context(comp.backbone, text)
    if len(ctx) <= limit:
        return [text]
    pieces = (text[ctx.offsets[s][0]:ctx.offsets[e - 1][1]] for s, e in chunk_bounds(ctx, limit))
    return [p for p in pieces if p.strip()]


class BatchRunner:
    def __init__(self, db: sqlite_utils.Database, comp: HyCo2Compressor, settings: BatchSettings,
                 questions: dict[str, list[str]] | None = None, default_question: str | None = None,
                 batch_size: int = 8, workers: int = 2, progress: bool = True, pool: DevicePool | None = None,
                 batch_tokens: int | None = None):
        # the checkpoint's default rate written in, so the hash and the rows say what was used
        settings = replace(settings, compression=comp.settings(settings.compression))
        self.db, self.comp, self.s, self.c = db, comp, settings, settings.compression
        self.questions = questions or {}
        self.default_question = default_question
        self.batch_size = max(1, batch_size)
        self.batch_tokens = batch_tokens  # padded tokens a forward may hold (None: rows only)
        self.workers = max(1, workers)
        self.progress = progress
        self.pool = pool  # several devices: batches go to worker processes; None: this process's device
        # one device: hand over 8 batches' worth at once, so they are batched by length (measured on the
        # 2-core CPU: padding in file order cost ~40% of a batch-8 forward); several: one batch each, so
        # every worker has work
        self.pool_batches = 1 if pool is not None else 8
        self._pool: DevicePool | LocalPool | None = None  # the pool of the run under way
        self.ckpt = checkpoint_sha(comp)
        self.key = settings.output_key(comp.backbone.name, self.ckpt)
        self.limit = settings.chunk_tokens or comp.max_context_tokens
        self.stats = {"done": 0, "skipped": 0, "errors": 0, "tokens_before": 0, "tokens_after": 0}

    # ----------------------------------------------------------------- bookkeeping
    def _start_run(self, root: Path) -> int:
        mark_stale_runs(self.db)
        versions = {"hyco2": hyco2.__version__, "python": platform.python_version(), "pid": os.getpid()}
        for mod in ("torch", "transformers"):
            versions[mod] = __import__(mod).__version__
        return self.db["runs"].insert({
            "started_at": _now(), "status": "running", "root": str(root), "settings_hash": self.key,
            "settings": json.dumps(self.s.to_dict()), "model": self.comp.backbone.name,
            "checkpoint": self.comp.checkpoint, "checkpoint_sha256": self.ckpt, "versions": json.dumps(versions),
        }).last_pk

    def _questions_for(self, rel: str) -> list[str | None]:
        return list(self.questions.get(rel, [])) or [self.default_question]

    def _done(self, doc_id: int, question: str | None) -> bool:
        rows = self.db.conn.execute(
            "select 1 from compressions where document_id = ? and settings_hash = ? and question = ? "
            "and (status = 'ok' or error_kind = 'input') limit 1", [doc_id, self.key, question or ""]).fetchall()
        return bool(rows)

    def _read(self, found: Found) -> _Read:
        try:
            st = found.path.stat()
            if st.st_size > self.s.max_bytes:
                return _Read(found, None, HyCo2Error(f"file is {st.st_size} bytes, over --max-bytes "
                                                     f"{self.s.max_bytes}"), st.st_mtime)
            return _Read(found, found.path.read_bytes(), None, st.st_mtime)
        except OSError as exc:
            return _Read(found, None, HyCo2Error(f"cannot read: {exc.strerror or exc}"))

    def _read_ahead(self, todo: list[Found]) -> Iterator[_Read]:
        """The files in order, read by the reader threads a few groups ahead of the caller.

        Why groups, and only a few ahead: a thread-pool task per small file cost more than reading it
        (creating 4,096 futures up front was a third of the main thread's time, measured with py-spy on
        the 2-core CPU), and reading every file ahead, as ``Executor.map`` does, held a whole folder's
        bytes in memory."""
        groups = (todo[i:i + READ_GROUP] for i in range(0, len(todo), READ_GROUP))
        with ThreadPoolExecutor(self.workers) as readers:
            ahead = deque(readers.submit(self._read_group, g) for g in islice(groups, 2 * self.workers))
            while ahead:
                done = ahead.popleft().result()
                nxt = next(groups, None)
                if nxt is not None:
                    ahead.append(readers.submit(self._read_group, nxt))
                yield from done

    def _read_group(self, group: list[Found]) -> list[_Read]:
        return [self._read(f) for f in group]

    # ----------------------------------------------------------------- the run
    def run(self, root: Path, pattern: str = "**/*") -> dict:
        root = Path(root)
        if not root.is_dir():
            raise HyCo2Error(f"No such folder: {root}")
        started = time.perf_counter()
        run_id = self._start_run(root)
        status = "failed"
        try:
            found = discover(root, pattern)
            with self.db.conn:
                for f in found:
                    if f.skip_reason:
                        self.db["skipped"].insert({"run_id": run_id, "path": f.rel, "reason": f.skip_reason})
            todo = [f for f in found if not f.skip_reason]
            bar = tqdm(total=len(todo), unit="doc", disable=not self.progress, desc="compress")
            pending: list[_Doc] = []
            n_items = 0
            inflight: deque[tuple[list[_Doc], Future | None]] = deque()
            self._pool = self.pool or LocalPool(self.comp, self.c, self.batch_size, self.batch_tokens,
                                                self.s.store_embeddings)
            for read in self._read_ahead(todo):
                doc = self._prepare(read)
                if doc is None:
                    self.stats["skipped"] += 1
                    bar.update(1)
                    continue
                pending.append(doc)
                n_items += len(doc.items)
                if n_items >= self.batch_size * self.pool_batches:
                    self._flush(run_id, pending, bar, inflight)
                    pending, n_items = [], 0
            if pending:
                self._flush(run_id, pending, bar, inflight)
            while inflight:
                self._write_oldest(run_id, inflight, bar)
            bar.close()
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if self._pool is not None and self._pool is not self.pool:
                self._pool.close()  # the run's own thread (a pool given to the runner is the caller's)
            self._pool = None
            self.db["runs"].update(run_id, {
                "finished_at": _now(), "status": status, "documents_done": self.stats["done"],
                "documents_skipped": self.stats["skipped"], "errors": self.stats["errors"],
                "wall_seconds": round(time.perf_counter() - started, 3)})
        return {"run_id": run_id, **self.stats, "seconds": time.perf_counter() - started}

    def _prepare(self, read: _Read) -> _Doc | None:
        """Register the document; None if everything for it is already done."""
        f, raw, err = read.found, read.raw, read.error
        doc = _Doc(f)
        if raw is None:
            digest, size = "unreadable:" + f.rel, 0
        else:
            digest, size = sha256(raw), len(raw)
        # registered in the transaction that writes the document's rows (_write): no commit of its own;
        # on the connection itself (sqlite-utils' execute costs ~7x the statement here)
        conn = self.db.conn
        existing = conn.execute("select id from documents where path = ? and sha256 = ?", [f.rel, digest]).fetchone()
        questions = self._questions_for(f.rel)
        if existing:  # a document seen before: what is done for these settings is skipped
            doc.doc_id = existing[0]
            questions = [q for q in questions if not self._done(doc.doc_id, q)]
        else:  # a new one (or a changed file): nothing of it can be done yet
            doc.doc_id = conn.execute("insert into documents (path, size, sha256, mtime) values (?, ?, ?, ?)",
                                      [f.rel, size, digest, read.mtime]).lastrowid
        if not questions:
            return None
        try:
            if err is not None:
                raise err
            text = extract_text(f.path, raw, self.s.json_fields)
            # HyCo2 compresses a document of any length as one result (chunked inside, one row with
            # per-chunk segments); peers read one window, and --chunk-tokens asks for separate pieces
            whole = self.c.classifier_selects and not self.s.chunk_tokens
            chunks = [text] if whole else split_chunks(self.comp, text, self.limit)
        except HyCo2Error as exc:
            doc.error = exc
            doc.items = [(q, 0, "") for q in questions]
            return doc
        doc.items = [(q, i, c) for q in questions for i, c in enumerate(chunks)]
        return doc

    def _flush(self, run_id: int, docs: list[_Doc], bar, inflight: deque) -> None:
        """Hand ``docs`` to the pool (a worker compresses them while this process goes on reading) and
        write the oldest batches in flight once more than two per device are out."""
        items = [it for d in docs if d.error is None for it in d.items]
        inflight.append((docs, self._pool.submit(items) if items else None))
        while len(inflight) > 2 * len(self._pool.devices):
            self._write_oldest(run_id, inflight, bar)

    def _write_oldest(self, run_id: int, inflight: deque, bar) -> None:
        docs, future = inflight.popleft()
        self._write(run_id, docs, future.result() if future is not None else [], bar)

    def _write(self, run_id: int, docs: list[_Doc], results: list, bar) -> None:
        """The rows of whole documents in one transaction: a document is all there or not at all, so a
        killed run loses at most the documents of its last group, which the next run redoes (what makes a
        run resumable). One transaction per group, not per document: each commit and each insert cost
        about as much as the rest of a document's bookkeeping."""
        work = [d for d in docs if d.error is None for _ in d.items]
        for d, r in zip(work, results):
            d.results.append(r)
        rows = []
        for d in docs:
            mine = [self._row(run_id, d.doc_id, q, chunk, d.error if d.error is not None else d.results[idx])
                    for idx, (q, chunk, _) in enumerate(d.items)]
            self.stats["errors" if any(r["status"] == "error" for r in mine) else "done"] += 1
            rows += mine
        with self.db.conn:  # these documents (and their registration in _prepare) or none of them
            insert_compressions(self.db, rows)
        bar.update(len(docs))
        bar.set_postfix(saved=self.stats["tokens_before"] - self.stats["tokens_after"], errors=self.stats["errors"])

    def _row(self, run_id: int, doc_id: int, question: str | None, chunk: int, r: dict | Exception) -> dict:
        """A ``compressions`` row: the run's columns around a worker's columns (or its error)."""
        base = {"run_id": run_id, "document_id": doc_id, "settings_hash": self.key, "chunk": chunk,
                "question": question or "", "method": self.c.label, "rate": self.c.rate,
                "budget": self.c.budget, "threshold": self.c.threshold, "created_at": _now()}
        if isinstance(r, Exception):
            kind = "runtime" if isinstance(r, HyCo2OutOfMemoryError) else "input"
            return {**base, "status": "error", "error_kind": kind, "error": str(r)}
        self.stats["tokens_before"] += r["original_tokens"]
        self.stats["tokens_after"] += r["kept_tokens"] + r["soft_tokens"]
        return {**base, "status": "ok", **r}


