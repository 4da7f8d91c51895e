"""The SQLite log of batch runs (created with sqlite-utils; opens in Datasette as is)."""
from __future__ import annotations

import json

import numpy as np
import sqlite_utils

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # report and export open a database without torch
    from hyco2.compressor import CompressionResult

SCHEMA_VERSION = 1

#: The ``compressions`` table: one row per document, question and chunk under one settings hash.
COMPRESSION_COLUMNS: dict[str, type] = {
    "id": int, "run_id": int, "document_id": int, "settings_hash": str, "chunk": int, "question": str,
    "method": str, "rate": float, "budget": int, "threshold": float, "status": str, "error_kind": str,
    "error": str, "original_tokens": int, "kept_tokens": int, "soft_tokens": int,
    "cl100k_original": int, "cl100k_kept": int, "ratio": float, "kept_text": str,
    "kept_positions": str, "encode_s": float, "select_s": float, "total_s": float,
    "embeddings": bytes, "embedding_shape": str, "segments": str, "created_at": str,
}
_WRITTEN = tuple(COMPRESSION_COLUMNS)[1:]  # every column but the id, which SQLite assigns
_INSERT_COMPRESSION = (f"insert or replace into compressions ({', '.join(_WRITTEN)}) "
                       f"values ({', '.join('?' * len(_WRITTEN))})")


def open_db(path: str) -> sqlite_utils.Database:
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 30000")  # a reader (report, export) waits for a writer's commit
    db.enable_wal()  # readers (report, Datasette) never block a running batch
    # WAL + synchronous=NORMAL: a commit no longer waits for fsync (measured 1.8k → 8.4k commits/s on the
    # CI machine's disk); each transaction stays atomic and survives a killed process (what resuming
    # relies on); only a power cut can lose the last commits, which the next run then redoes.
    db.execute("PRAGMA synchronous = NORMAL")
    ensure_schema(db)
    return db


def ensure_schema(db: sqlite_utils.Database) -> None:
    if "runs" not in db.table_names():
        db["runs"].create({
            "id": int, "started_at": str, "finished_at": str, "status": str, "root": str,
            "settings": str, "settings_hash": str, "model": str, "checkpoint": str, "checkpoint_sha256": str,
            "versions": str, "documents_done": int, "documents_skipped": int, "errors": int,
            "wall_seconds": float,
        }, pk="id", not_null={"started_at", "status", "settings_hash"})
    if "documents" not in db.table_names():
        db["documents"].create({"id": int, "path": str, "size": int, "sha256": str, "mtime": float},
                               pk="id", not_null={"path", "sha256"})
        db["documents"].create_index(["path", "sha256"], unique=True)
    if "compressions" not in db.table_names():
        db["compressions"].create(COMPRESSION_COLUMNS, pk="id",
                                  not_null={"run_id", "document_id", "settings_hash", "status"},
                                  foreign_keys=[("run_id", "runs", "id"), ("document_id", "documents", "id")])
        db["compressions"].create_index(["document_id", "settings_hash", "question", "chunk"], unique=True)
        db["compressions"].create_index(["run_id"])
    else:  # a log from an older release: the columns added since
        have = db["compressions"].columns_dict
        for name, kind in COMPRESSION_COLUMNS.items():
            if name not in have:
                db["compressions"].add_column(name, kind)
    if "skipped" not in db.table_names():
        db["skipped"].create({"id": int, "run_id": int, "path": str, "reason": str}, pk="id",
                             foreign_keys=[("run_id", "runs", "id")])


def result_columns(r: CompressionResult, embeddings: bool = False) -> dict:
    """A compression's own columns of its ``compressions`` row (the run, document and settings columns
    are the writer's), as plain values; the soft tokens as float16 bytes only when the run stores them.

    Why workers send these instead of the result: a result carries its context, tokenisation, per-token
    scores and soft tokens, and unpickling even a data-less tensor in the writer process cost ~110 µs a
    document against ~10 for these columns (measured on the 2-core CPU); the writer is the one process
    every worker waits on."""
    cols = {"original_tokens": r.context_tokens, "kept_tokens": r.kept_tokens, "soft_tokens": r.soft_tokens,
            "cl100k_original": r.cl100k_context_tokens, "cl100k_kept": r.cl100k_kept_tokens,
            "ratio": round(r.ratio, 4), "kept_text": r.kept_text, "kept_positions": json.dumps(r.kept_positions),
            "encode_s": r.timings.get("encode_s"), "select_s": r.timings.get("select_s"),
            "total_s": r.timings.get("total_s"), "segments": json.dumps(r.segments) if r.segments else None}
    if embeddings and r.soft_embeddings is not None:
        emb = r.soft_embeddings.float().numpy().astype(np.float16)
        cols["embeddings"] = emb.tobytes()
        cols["embedding_shape"] = json.dumps(list(emb.shape))
    return cols


def insert_compressions(db: sqlite_utils.Database, rows: list[dict]) -> None:
    """``rows`` into ``compressions``, each replacing the row of the same document, settings, question and
    chunk (a redone error), in one ``executemany`` on the connection (the caller's transaction). Why not
    sqlite-utils' ``insert_all``: it inspects every value and rebuilds the statement for each chunk of
    rows, ~50 µs a document in the writer, the one process every worker waits on."""
    unknown = set().union(*rows) - set(_WRITTEN)
    if unknown:  # a column the schema lacks would be dropped without a word
        raise ValueError(f"compressions has no column {sorted(unknown)}: add it to COMPRESSION_COLUMNS")
    db.conn.executemany(_INSERT_COMPRESSION, [tuple(r.get(c) for c in _WRITTEN) for r in rows])
