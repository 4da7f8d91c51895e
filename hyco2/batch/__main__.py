"""``python -m hyco2.batch {compress,report,export}``: compress folders of documents into SQLite."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from hyco2.errors import HyCo2Error
from hyco2.options import QUANTIZE_CHOICES
from hyco2.settings import CompressionSettings, add_arguments, whole_number
from hyco2.text import GENERIC_INSTRUCTION

from .db import open_db
from .documents import DEFAULT_MAX_BYTES, JSON_FIELDS, discover

# report and export start without torch: the model's modules load only for compress
GENERIC_QUESTION_NOTE = f"Without a question, the encoder reads the instruction {GENERIC_INSTRUCTION!r}."

EPILOG = f"""
Resumable: run the same command again after a crash or Ctrl-C; documents already compressed with
the same settings, model and checkpoint (same file hash) are skipped, changed files are redone.
Each document is committed in its own transaction. {GENERIC_QUESTION_NOTE}
Examples:
  python -m hyco2.batch compress assets/examples --db out.db --rate 0.2
  python -m hyco2.batch compress docs/ --db out.db --glob '**/*.md' --questions questions.jsonl
  python -m hyco2.batch compress big/ --db out.db --devices all                  # every GPU here, one worker each
  python -m hyco2.batch compress big/ --db out.db --engine ray --devices all     # every GPU of a Ray cluster
  python -m hyco2.batch report out.db
  python -m hyco2.batch export out.db --format csv --out kept.csv
"""


SQLITE_HEADER = b"SQLite format 3\x00"


def check_db(path: str, *, create: bool) -> None:
    """The database path, checked before any model loads: an existing SQLite file, or (``create``) a new
    file in a folder that exists and can be written."""
    p = Path(path)
    if p.exists():
        if not p.is_file():
            raise HyCo2Error(f"--db {path} is not a file (a folder?): give the path of a SQLite file.")
        with open(p, "rb") as fh:
            head = fh.read(16)
        if head and head != SQLITE_HEADER:
            raise HyCo2Error(f"--db {path} is not a SQLite database: give a new file name or an earlier run's "
                             f"database.")
        if create and not _can_write(p, folder=False):
            raise HyCo2Error(f"--db {path} is read-only: give a file you can write.")
        return
    if not create:
        raise HyCo2Error(f"No such database: {path}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise HyCo2Error(f"--db {path}: the folder {folder} does not exist; create it first.")
    if not _can_write(folder, folder=True):
        raise HyCo2Error(f"--db {path}: the folder {folder} cannot be written; choose another place.")


def _can_write(path: Path, *, folder: bool) -> bool:
    """Whether this process can write there, by trying: permission bits do not bind root, and a read-only
    mount or a pseudo file system (/proc) refuses whatever they say. A folder gets a probe file, removed at
    once; a file is opened for appending, which changes nothing."""
    if not os.access(path, os.W_OK):
        return False
    try:
        if folder:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".hyco2-probe-"):
                pass
        else:
            with open(path, "ab"):
                pass
    except OSError:
        return False
    return True


def run_lock(db_path: str):
    """One writing run per database at a time: a second run waits for the first (and says so), then
    skips what it did. Taken before the model loads; released when the run ends, or by the OS if it dies."""
    from filelock import FileLock, Timeout

    lock = FileLock(f"{db_path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another hyco2-batch run is writing to {db_path}: waiting for it to finish (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
        lock.acquire()
    return lock


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hyco2-batch", description="Compress folders of documents with HyCo2, "
                                "logging every file, setting and result into SQLite.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compress", help="compress every matching document under a folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("docs_dir", help="folder with the documents (.txt .md .html .json .jsonl)")
    c.add_argument("--db", required=True, help="SQLite file to create or extend")
    c.add_argument("--glob", default="**/*", help="which files, relative to the folder")
    add_arguments(c, budget_help="tokens kept verbatim per row: a whole document, or one --chunk-tokens piece")
    q = c.add_mutually_exclusive_group()
    q.add_argument("--question", default=None, help="one question for every document")
    q.add_argument("--questions", default=None,
                   help="JSONL with {\"file\": relative path, \"question\": ...} lines (several per file allowed)")
    c.add_argument("--model", default=None, help="backbone (default: the checkpoint's)")
    c.add_argument("--checkpoint", default=None, help="HyCo2 checkpoint folder (default: the shipped one)")
    c.add_argument("--quantize", default="auto", choices=QUANTIZE_CHOICES)
    c.add_argument("--device", default=None)
    c.add_argument("--batch-size", type=whole_number(1), default=None,
                   help="chunks per forward; halves itself on out-of-memory (default: 1 on CPU, where padding "
                        "costs more than batching saves, 32 on CUDA; see bench/batch.py)")
    c.add_argument("--batch-tokens", type=whole_number(1), default=None,
                   help="at most this many padded tokens a forward (texts are batched by length; default: "
                        "no limit beyond --batch-size)")
    c.add_argument("--devices", default=None,
                   help="several devices, one worker process each: cuda:0,cuda:1,… or all (every visible GPU); "
                        "one writer, resumable as ever (default: --device)")
    c.add_argument("--per-device", type=whole_number(1), default=1,
                   help="worker processes on each device (of --devices, or --device): on a GPU, 2-4 run one "
                        "worker's tokenising and selecting while another's batch computes (see bench/batch.py)")
    c.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: the compress step on Ray actors, one per --devices entry (all: every GPU of the "
                        "cluster, on any node); this process still reads and writes, so resuming is unchanged "
                        "(needs pip install 'hyco2[ray]')")
    c.add_argument("--ray-address", default=None,
                   help="with --engine ray: the cluster to join (default: $RAY_ADDRESS, else a local one)")
    c.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone's layers on each device (GPU: the bare forward ~2.8x faster "
                        "on an H200, after ~20 s of compiling; worth it for large folders)")
    c.add_argument("--workers", type=whole_number(1), default=2, help="threads that read and extract files")
    c.add_argument("--chunk-tokens", type=whole_number(1), default=None,
                   help="split longer documents into chunks of this many backbone tokens (default: the window)")
    c.add_argument("--max-bytes", type=whole_number(1), default=DEFAULT_MAX_BYTES, help="larger files become error rows")
    c.add_argument("--json-fields", nargs="+", default=list(JSON_FIELDS), help="fields read from .json/.jsonl")
    c.add_argument("--store-embeddings", action="store_true", help="store the soft tokens as float16 blobs")
    c.add_argument("--no-progress", action="store_true")
    r = sub.add_parser("report", help="print totals per run")
    r.add_argument("db")
    e = sub.add_parser("export", help="write the kept texts as JSONL or CSV")
    e.add_argument("db")
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    e.add_argument("--run", type=int, default=None, help="only this run's results")
    e.add_argument("--all", action="store_true",
                   help="every run's results (default: each document's newest, from the last run that compressed it)")
    e.add_argument("--out", default="-", help="output file (default: standard output)")
    return p


def load_questions(path: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    file = Path(path)
    if file.is_dir():
        raise HyCo2Error(f"--questions {path} is a folder: give a JSONL file.")
    if not file.is_file():
        raise HyCo2Error(f"No such questions file: {path}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HyCo2Error(f"--questions {path} is not UTF-8 (byte {exc.start}): save it as UTF-8, e.g. "
                         f"iconv -f latin1 -t utf-8.") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                out.setdefault(row["file"], []).append(row["question"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise HyCo2Error(f"{path}:{n}: expected {{\"file\": ..., \"question\": ...}}") from None
    return out


REPORT_SQL = """
select r.id as run, r.status, r.started_at, r.documents_done as done, r.documents_skipped as skipped,
       r.errors, coalesce(sum(c.original_tokens), 0) as tokens_before,
       coalesce(sum(c.kept_tokens + c.soft_tokens), 0) as tokens_after,
       round(avg(c.ratio), 2) as mean_ratio, r.wall_seconds,
       round(r.documents_done / nullif(r.wall_seconds, 0), 2) as docs_per_s
from runs r left join compressions c on c.run_id = r.id and c.status = 'ok'
group by r.id order by r.id
"""

EXPORT_SQL = """
with rows as (
  select d.path, c.chunk, c.question, c.method, c.original_tokens, c.kept_tokens, c.soft_tokens, c.ratio,
         c.kept_text, c.run_id, c.settings_hash, r.settings,
         max(c.run_id) over (partition by d.path) as newest_run
  from compressions c join documents d on d.id = c.document_id join runs r on r.id = c.run_id
  where c.status = 'ok' and (:run is null or c.run_id = :run))
select path, chunk, question, method, original_tokens, kept_tokens, soft_tokens, ratio, kept_text, run_id,
       settings_hash, settings
from rows where :everything or run_id = newest_run
order by path, run_id, question, chunk
"""


def report(db_path: str) -> int:
    db = open_db(db_path)
    rows = list(db.query(REPORT_SQL))
    if not rows:
        print("no runs in this database")
        return 0
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))
    errors = list(db.query("select d.path, c.error from compressions c join documents d on d.id = c.document_id "
                           "where c.status = 'error' group by d.path order by d.path"))
    for e in errors:
        print(f"error  {e['path']}: {e['error']}")
    for s in db.query("select path, reason from skipped group by path order by path"):
        print(f"skipped  {s['path']}: {s['reason']}")
    return 0


def export(db_path: str, fmt: str, run: int | None, out: str, everything: bool = False) -> int:
    """Each document's newest results (the last run that compressed it), or with ``everything`` every run's;
    each row names the settings that made it (their hash and the run's settings as JSON)."""
    check_db(db_path, create=False)
    rows = list(open_db(db_path).query(EXPORT_SQL, {"run": run, "everything": int(everything)}))
    fh = sys.stdout if out == "-" else open(out, "w", encoding="utf-8", newline="")
    try:
        if fmt == "jsonl":
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if fh is not sys.stdout:
            fh.close()
    print(f"exported {len(rows)} rows", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "report":
            check_db(args.db, create=False)
            return report(args.db)
        if args.command == "export":
            return export(args.db, args.format, args.run, args.out, args.all)
        from hyco2.backbone import default_device
        from hyco2.compressor import HyCo2Compressor

        from .devices import DevicePool, parse_devices
        from .ray_engine import RayPool
        from .runner import BatchRunner, BatchSettings

        if not Path(args.docs_dir).is_dir():
            raise HyCo2Error(f"No such folder: {args.docs_dir}")
        check_db(args.db, create=True)
        questions = load_questions(args.questions) if args.questions else None
        compression = CompressionSettings.from_args(args)  # bad settings fail before the model loads
        ray = args.engine == "ray"
        # --per-device N without --devices: N workers on this run's one device
        spec = args.devices or ((args.device or str(default_device())) if args.per_device > 1 else None)
        devices = [] if ray else parse_devices(spec, args.per_device)
        if len(devices) == 1:
            args.device, devices = devices[0], []
        discover(Path(args.docs_dir), args.glob, check_only=True)  # a bad --glob fails here, not after the load
        lock = run_lock(args.db)  # every check passed: wait for any other run on this database
        # with workers elsewhere this process only reads, tokenises and writes: its copy stays on the CPU
        elsewhere = bool(devices) or ray
        comp = HyCo2Compressor.from_pretrained(args.checkpoint, model=args.model, quantize=args.quantize,
                                               device="cpu" if elsewhere else args.device,
                                               compile=args.compile and not elsewhere)
        settings = BatchSettings(compression=compression, chunk_tokens=args.chunk_tokens,
                                 json_fields=tuple(args.json_fields), store_embeddings=args.store_embeddings,
                                 max_bytes=args.max_bytes)
        on_gpu = comp.backbone.device.type == "cuda" or any(d.startswith("cuda") for d in devices) or (
            ray and any(k in (args.devices or "") for k in ("cuda", "all")))
        batch_size = args.batch_size or (32 if on_gpu else 1)
        workers = dict(checkpoint=args.checkpoint, model=args.model, quantize=args.quantize, settings=compression,
                       batch_size=batch_size, batch_tokens=args.batch_tokens, compile=args.compile,
                       embeddings=args.store_embeddings)
        pool = (RayPool(args.devices, address=args.ray_address, per_device=args.per_device, **workers) if ray
                else DevicePool(devices, **workers) if devices else None)
        runner = BatchRunner(open_db(args.db), comp, settings, questions=questions, default_question=args.question,
                             batch_size=batch_size, workers=args.workers, progress=not args.no_progress, pool=pool,
                             batch_tokens=args.batch_tokens)
        try:
            s = runner.run(Path(args.docs_dir), args.glob)
        finally:
            if pool is not None:
                pool.close()
            lock.release()
        saved = s["tokens_before"] - s["tokens_after"]
        print(f"run {s['run_id']}: {s['done']} compressed, {s['skipped']} already done, {s['errors']} with errors; "
              f"{s['tokens_before']} → {s['tokens_after']} backbone tokens ({saved} saved) in {s['seconds']:.1f} s. "
              f"Totals: python -m hyco2.batch report {args.db}")
        return 0
    except HyCo2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was committed stays; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
