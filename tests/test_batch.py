"""Batch mode on real SQLite files with the real default model (no mocks)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyco2.batch.__main__ import main as batch_main
from tests.conftest import PARAGRAPH, ROOT

pytestmark = pytest.mark.integration


def _rows(db: Path, sql: str, args=()):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def _make_folder(tmp_path: Path) -> Path:
    """Good and bad files under ``tmp_path/docs`` (and a file outside it that a symlink points to)."""
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "good.txt").write_text(PARAGRAPH)
    (d / "sub" / "page.html").write_text(f"<html><head><script>var x=1;</script></head><body><p>{PARAGRAPH}</p></body></html>")
    (d / "data.json").write_text(json.dumps({"id": 3, "text": PARAGRAPH}))
    (d / "lines.jsonl").write_text(json.dumps({"content": PARAGRAPH}) + "\n" + json.dumps({"content": "More."}) + "\n")
    (d / "empty.txt").write_text("   \n")
    (d / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (d / "huge.md").write_text("word " * 5000)
    (d / "image.png").write_bytes(b"\x89PNG....")
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the folder")
    (d / "escape.txt").symlink_to(outside)
    return d


@pytest.fixture()
def folder(tmp_path):
    return _make_folder(tmp_path)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """One plain run over the folder (one process, no compile), shared by the tests that compare against it."""
    root = tmp_path_factory.mktemp("plain")
    docs, db = _make_folder(root), root / "one.db"
    assert batch_main([*PLAIN_ARGS, str(docs), "--db", str(db)]) == 0
    return docs, db


PLAIN_ARGS = ["compress", "--rate", "0.2", "--no-progress", "--batch-size", "2", "--store-embeddings"]


def test_good_and_bad_files_give_the_right_rows(folder, tmp_path):
    db = tmp_path / "out.db"
    rc = batch_main(["compress", str(folder), "--db", str(db), "--rate", "0.2", "--max-bytes", "20000",
                     "--no-progress", "--store-embeddings"])
    assert rc == 0
    rows = {r["path"]: r for r in _rows(db, "select d.path, c.* from compressions c join documents d on d.id = c.document_id")}
    for ok in ("good.txt", "sub/page.html", "data.json", "lines.jsonl"):
        assert rows[ok]["status"] == "ok", rows[ok]
        assert rows[ok]["kept_tokens"] == round(0.2 * rows[ok]["original_tokens"])
        assert json.loads(rows[ok]["embedding_shape"]) == [16, 576]
        assert len(rows[ok]["embeddings"]) == 16 * 576 * 2
    assert "var x" not in rows["sub/page.html"]["kept_text"]
    assert "empty" in rows["empty.txt"]["error"]
    assert "NUL" in rows["binary.txt"]["error"]
    assert "UTF-8" in rows["latin1.txt"]["error"]
    assert "max-bytes" in rows["huge.md"]["error"]
    skipped = {r["path"]: r["reason"] for r in _rows(db, "select path, reason from skipped")}
    assert "unsupported" in skipped["image.png"]
    assert "outside the folder" in skipped["escape.txt"]
    assert "escape.txt" not in rows
    run = _rows(db, "select * from runs")[0]
    assert run["status"] == "done" and run["documents_done"] == 4 and run["errors"] == 4
    # foreign keys hold and the database opens with sqlite-utils as is
    import sqlite_utils

    assert sqlite_utils.Database(db)["compressions"].foreign_keys


def _shipped_checkpoints():
    from hyco2.compressor import DEFAULT_CHECKPOINT

    return sorted(str(p) for p in DEFAULT_CHECKPOINT.parent.iterdir() if (p / "config.json").is_file())


@pytest.mark.parametrize("checkpoint", _shipped_checkpoints())
def test_each_shipped_checkpoint_compresses_a_folder(checkpoint, tmp_path):
    """Batch mode runs any adapter's checkpoint unchanged (--checkpoint), soft tokens stored as for HyCo2's."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(PARAGRAPH)
    (docs / "b.txt").write_text(PARAGRAPH.replace("1872", "1873"))
    db = tmp_path / "out.db"
    assert batch_main(["compress", str(docs), "--db", str(db), "--rate", "0.2", "--checkpoint", checkpoint,
                       "--no-progress", "--store-embeddings"]) == 0
    rows = _rows(db, "select c.* from compressions c")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(json.loads(r["embedding_shape"]) == [16, 576] for r in rows)
    assert _rows(db, "select checkpoint from runs")[0]["checkpoint"] == checkpoint


def test_resume_skips_done_and_redoes_changed_files(folder, tmp_path):
    db = tmp_path / "out.db"
    args = ["compress", str(folder), "--db", str(db), "--glob", "*.txt", "--budget", "12", "--no-progress"]
    assert batch_main(args) == 0
    first = _rows(db, "select count(*) n from compressions")[0]["n"]
    assert batch_main(args) == 0
    assert _rows(db, "select count(*) n from compressions")[0]["n"] == first
    assert _rows(db, "select documents_skipped s from runs where id = 2")[0]["s"] == 4  # good + 3 input errors
    (folder / "good.txt").write_text(PARAGRAPH + " It was repainted red in 2001.")
    assert batch_main(args) == 0
    good = _rows(db, "select c.run_id from compressions c join documents d on d.id = c.document_id "
                     "where d.path = 'good.txt' and c.status = 'ok' order by c.id")
    assert [g["run_id"] for g in good] == [1, 3]


def test_glob_outside_the_folder_is_refused(folder, tmp_path, capsys):
    assert batch_main(["compress", str(folder), "--db", str(tmp_path / "x.db"), "--glob", "../*"]) == 2
    assert "must stay inside the folder" in capsys.readouterr().err


def test_long_documents_are_chunked(tmp_path):
    d = tmp_path / "long"
    d.mkdir()
    (d / "long.txt").write_text("\n\n".join([PARAGRAPH] * 4))
    db = tmp_path / "c.db"
    assert batch_main(["compress", str(d), "--db", str(db), "--chunk-tokens", "120", "--rate", "0.1",
                       "--no-progress"]) == 0
    chunks = _rows(db, "select chunk, original_tokens from compressions order by chunk")
    assert len(chunks) >= 4 and all(c["original_tokens"] <= 120 for c in chunks)


def test_a_document_longer_than_the_window_is_one_compression(tmp_path):
    d = tmp_path / "book"
    d.mkdir()
    (d / "book.txt").write_text("\n\n".join([PARAGRAPH] * 110))  # ~8.6k tokens: over the 7,936-token window
    db = tmp_path / "b.db"
    assert batch_main(["compress", str(d), "--db", str(db), "--rate", "0.05", "--no-progress"]) == 0
    rows = _rows(db, "select chunk, original_tokens, kept_tokens, soft_tokens, segments from compressions")
    assert len(rows) == 1 and rows[0]["chunk"] == 0 and rows[0]["original_tokens"] > 7936
    segments = json.loads(rows[0]["segments"])
    assert len(segments) >= 2 and sum(n for _, n in segments) == rows[0]["kept_tokens"]
    assert rows[0]["soft_tokens"] == 16 * len(segments)
    # resumable as before: the same command again does nothing new
    assert batch_main(["compress", str(d), "--db", str(db), "--rate", "0.05", "--no-progress"]) == 0
    assert len(_rows(db, "select id from compressions")) == 1


def _numbered_docs(folder: Path, n: int) -> Path:
    """``n`` versions of the paragraph, each with its own year, as files doc00.txt …"""
    folder.mkdir()
    for i in range(n):
        (folder / f"doc{i:02d}.txt").write_text(PARAGRAPH.replace("1872", str(1800 + i)))
    return folder


def _compress_command(folder: Path, db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hyco2.batch", "compress", str(folder), "--db", str(db), "--batch-size", "1",
            "--no-progress", *args]


@pytest.mark.parametrize("workers", [[], ["--devices", "cpu,cpu"], ["--engine", "ray", "--devices", "cpu,cpu"]],
                         ids=["one-process", "two-workers", "ray"])
def test_killed_run_resumes_with_each_document_exactly_once(tmp_path, workers):
    """Killed mid-run (the whole process group: with --devices, the workers too; with Ray, the driver,
    whose death takes its local cluster down), then run again."""
    n_docs = 14
    db = tmp_path / "kill.db"
    cmd = _compress_command(_numbered_docs(tmp_path / "many", n_docs), db, "--rate", "0.2", *workers)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done_at_kill = 0
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                done_at_kill = _rows(db, "select count(*) n from compressions")[0]["n"]
            except sqlite3.OperationalError:
                done_at_kill = 0
            if done_at_kill >= 3:
                break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done_at_kill < n_docs, "the process must be killed mid-run for this test to mean anything"
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    per_doc = _rows(db, "select document_id, count(*) n from compressions where status = 'ok' group by document_id")
    assert len(per_doc) == n_docs and all(r["n"] == 1 for r in per_doc)
    runs = _rows(db, "select status from runs order by id")
    assert runs[0]["status"] == "interrupted" and runs[-1]["status"] == "done"


def test_two_runs_on_one_database_at_once_both_end_cleanly_with_every_document_once(tmp_path):
    """The second run waits for the first (and says so), then finds every document done."""
    n_docs = 6
    db = tmp_path / "shared.db"
    cmd = _compress_command(_numbered_docs(tmp_path / "shared", n_docs), db, "--budget", "8")
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("Traceback" in err or "locked" in err for _, err in outs), outs
    assert sum("waiting for it to finish" in err for _, err in outs) == 1  # the second said why it waited
    per_doc = _rows(db, "select document_id, count(*) n from compressions where status = 'ok' group by document_id")
    assert len(per_doc) == n_docs and all(r["n"] == 1 for r in per_doc)
    runs = _rows(db, "select status, documents_done, documents_skipped from runs order by id")
    assert [r["status"] for r in runs] == ["done", "done"]
    assert sorted((r["documents_done"], r["documents_skipped"]) for r in runs) == [(0, n_docs), (n_docs, 0)]


@pytest.mark.parametrize("workers", [["--device", "cpu", "--per-device", "2", "--batch-tokens", "4096"],
                                     ["--engine", "ray", "--devices", "cpu,cpu"], ["--compile"]],
                         ids=["two-workers", "ray", "compiled"])
def test_several_workers_give_the_same_rows_as_one(plain_run, tmp_path, workers):
    """--per-device 2: two worker processes on this process's device (--devices cpu,cpu); --engine ray: one actor per device on a local Ray
    cluster (the real model on CPU); --compile: this process's device with compiled layers. One writer
    either way; the rows are those of a plain run."""
    folder, one = plain_run
    two = tmp_path / "two.db"
    assert batch_main([*PLAIN_ARGS, str(folder), "--db", str(two)] + workers) == 0
    sql = ("select d.path, c.status, c.error, c.kept_text, c.kept_positions, c.segments, c.settings_hash, "
           "length(c.embeddings) as embedding_bytes "
           "from compressions c join documents d on d.id = c.document_id order by d.path, c.chunk")
    assert _rows(one, sql) == _rows(two, sql) and len(_rows(one, sql)) >= 6
    assert {r["embedding_bytes"] for r in _rows(two, sql) if r["status"] == "ok"} == {16 * 576 * 2}


def test_workers_send_row_columns_with_soft_tokens_only_when_the_run_stores_them(tiny):
    from hyco2.batch.devices import DeviceWorker

    items = [(None, 0, PARAGRAPH), ("Who?", 0, PARAGRAPH[:80])]
    k, d = tiny.model.config.num_soft_tokens, tiny.model.config.hidden_size
    for embeddings in (False, True):
        out = DeviceWorker.around(tiny, tiny.settings(rate=0.2), 2, None, embeddings=embeddings)(items)
        assert all(type(v) in (int, float, str, bytes, type(None)) for r in out for v in r.values())  # no tensors
        assert [len(r.get("embeddings", b"")) for r in out] == [k * d * 2 if embeddings else 0] * 2  # float16
        assert all(r["soft_tokens"] == k and r["kept_tokens"] == len(json.loads(r["kept_positions"])) > 0
                   and r["kept_text"] for r in out)  # the soft tokens still counted


def test_a_warmed_up_worker_gives_the_rows_of_a_cold_one(tiny):
    """GPU workers compress two texts as they start (DeviceWorker.warm_up): nothing of it may stay."""
    from hyco2.batch.devices import DeviceWorker

    items = [(None, 0, PARAGRAPH), ("Who?", 0, PARAGRAPH[:80])]
    cold = DeviceWorker.around(tiny, tiny.settings(rate=0.2), 2, None)(items)
    warm = DeviceWorker.around(tiny, tiny.settings(rate=0.2), 2, None)
    warm.warm_up()
    untimed = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert untimed(warm(items)) == untimed(cold) and warm.batch_size == 2


def test_ray_devices_follow_the_cluster():
    from hyco2.batch.ray_engine import ray_devices
    from hyco2.errors import InvalidSettingError

    assert ray_devices("all", {"GPU": 3.0, "CPU": 64.0}) == ["cuda"] * 3
    assert ray_devices("cuda:0,cuda:5", {}) == ["cuda", "cuda"] and ray_devices("cpu,cpu", {}) == ["cpu", "cpu"]
    assert ray_devices(None, {}) == ["cpu"]
    with pytest.raises(InvalidSettingError, match="no GPUs"):
        ray_devices("all", {"CPU": 2.0})
    with pytest.raises(InvalidSettingError, match="Unknown device"):
        ray_devices("tpu:0", {})
    assert ray_devices("all", {"GPU": 2.0}, per_device=3) == ["cuda"] * 6 and ray_devices(None, {}, 2) == ["cpu"] * 2


def test_per_device_repeats_each_device():
    from hyco2.batch.devices import parse_devices
    from hyco2.errors import InvalidSettingError

    assert parse_devices("cuda:0,cuda:1", per_device=2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert parse_devices("cpu") == ["cpu"] and parse_devices(None, 3) == []
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidSettingError, match="--per-device"):
            parse_devices("cpu", per_device=bad)


def test_a_bad_per_device_is_refused_before_the_model_loads(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse's own one-line error
        batch_main(["compress", str(folder), "--db", str(tmp_path / "x.db"), "--per-device", "0"])
    assert exit_.value.code == 2
    assert "--per-device: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_bad_devices_are_refused(folder, tmp_path, capsys):
    assert batch_main(["compress", str(folder), "--db", str(tmp_path / "x.db"), "--devices", "tpu:0,cpu"]) == 2
    assert "Unknown device" in capsys.readouterr().err


def test_report_and_export(folder, tmp_path, capsys):
    db = tmp_path / "r.db"
    batch_main(["compress", str(folder), "--db", str(db), "--glob", "*.txt", "--rate", "0.3", "--no-progress"])
    capsys.readouterr()
    assert batch_main(["report", str(db)]) == 0
    out = capsys.readouterr().out
    assert "tokens_before" in out and "binary.txt" in out
    csv_path = tmp_path / "k.csv"
    assert batch_main(["export", str(db), "--format", "csv", "--out", str(csv_path)]) == 0
    text = csv_path.read_text()
    assert text.startswith("path,chunk,question") and "good.txt" in text
    assert batch_main(["report", str(tmp_path / "nope.db")]) == 2
    # a second run with other settings: export gives each document's newest rows, --all every run's
    assert batch_main(["compress", str(folder), "--db", str(db), "--glob", "*.txt", "--budget", "7",
                       "--no-progress"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    newest, every = tmp_path / "newest.jsonl", tmp_path / "all.jsonl"
    assert batch_main(["export", str(db), "--out", str(newest)]) == 0
    assert batch_main(["export", str(db), "--out", str(every), "--all"]) == 0
    rows = [json.loads(line) for line in newest.read_text().splitlines()]
    both = [json.loads(line) for line in every.read_text().splitlines()]
    good = [r for r in rows if r["path"] == "good.txt"]
    assert len(good) == 1 and good[0]["kept_tokens"] == 7 and json.loads(good[0]["settings"])["compression"]["budget"] == 7
    assert [r["run_id"] for r in both if r["path"] == "good.txt"] == [1, 2] and len(both) == 2 * len(rows)
    assert len({r["settings_hash"] for r in both}) == 2


def test_compressions_are_written_by_column_and_replace_their_key(tmp_path):
    from hyco2.batch.db import insert_compressions, open_db

    db = open_db(str(tmp_path / "log.db"))
    db["runs"].insert({"id": 1, "started_at": "t", "status": "running", "settings_hash": "h"})
    db["documents"].insert({"id": 1, "path": "a.txt", "sha256": "x"})
    key = {"run_id": 1, "document_id": 1, "settings_hash": "h", "question": "", "chunk": 0}
    with db.conn:
        insert_compressions(db, [{**key, "status": "error", "error_kind": "runtime", "error": "out of memory"}])
    with db.conn:  # the same document, settings, question and chunk again: the error row gives way
        insert_compressions(db, [{**key, "status": "ok", "kept_text": "kept", "embeddings": b"\x00\x01"}])
    rows = list(db.query("select status, error, kept_text, embeddings from compressions"))
    assert rows == [{"status": "ok", "error": None, "kept_text": "kept", "embeddings": b"\x00\x01"}]
    with pytest.raises(ValueError, match="no column"):
        insert_compressions(db, [{**key, "status": "ok", "not_a_column": 1}])


def test_a_log_from_an_older_release_gets_the_new_columns(tmp_path):
    import sqlite_utils

    from hyco2.batch.db import COMPRESSION_COLUMNS, open_db

    old = sqlite_utils.Database(str(tmp_path / "old.db"))
    old["compressions"].create({k: v for k, v in COMPRESSION_COLUMNS.items() if k not in ("segments", "embeddings")},
                               pk="id")
    old.close()
    assert set(open_db(str(tmp_path / "old.db"))["compressions"].columns_dict) == set(COMPRESSION_COLUMNS)


def test_files_are_read_ahead_in_groups_in_order(tiny, tmp_path, monkeypatch):
    """The reader threads read a few groups of files ahead of the writer (not the whole folder at once):
    every file comes back once, in order, with its bytes or why there are none."""
    import hyco2.batch.runner as runner
    from hyco2.batch.db import open_db
    from hyco2.batch.documents import discover
    from hyco2.settings import CompressionSettings

    monkeypatch.setattr(runner, "READ_GROUP", 3)  # 23 files: 8 groups, 4 read ahead by the 2 threads
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(23):
        (docs / f"f{i:02d}.txt").write_text("x" * (200 if i % 5 == 0 else i + 1))
    run = runner.BatchRunner(open_db(str(tmp_path / "r.db")), tiny,
                             runner.BatchSettings(compression=CompressionSettings(rate=0.5), max_bytes=100),
                             progress=False, workers=2)
    got = list(run._read_ahead(discover(docs, "**/*")))
    assert [r.found.rel for r in got] == [f"f{i:02d}.txt" for i in range(23)]
    for i, r in enumerate(got):
        if i % 5 == 0:
            assert r.raw is None and "over --max-bytes 100" in str(r.error)
        else:
            assert r.raw == b"x" * (i + 1) and r.error is None and r.mtime == (docs / f"f{i:02d}.txt").stat().st_mtime


def test_discover_never_leaves_the_folder(tmp_path):
    """Each folder is resolved once and a file only when it is a link: a linked folder that leads out,
    a link to a file outside and a broken link are refused; links inside the folder are followed."""
    from hyco2.batch.documents import discover

    root, outside = tmp_path / "docs", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    (root / "a" / "ok.txt").write_text("yes")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "inner").symlink_to(root / "a", target_is_directory=True)
    (root / "to_secret.txt").symlink_to(outside / "secret.txt")
    (root / "to_ok.txt").symlink_to(root / "a" / "ok.txt")
    (root / "broken.txt").symlink_to(tmp_path / "missing.txt")
    found = {f.rel: f for f in discover(root, "**/*")}
    assert found["a/ok.txt"].skip_reason is None and found["a/ok.txt"].path == (root / "a" / "ok.txt").resolve()
    assert found["to_ok.txt"].skip_reason is None and found["to_ok.txt"].path == (root / "a" / "ok.txt").resolve()
    assert "outside the folder" in found["to_secret.txt"].skip_reason
    assert found["broken.txt"].skip_reason == "broken symbolic link"
    through = {f.rel: f for f in discover(root, "*/*.txt")}  # this pattern goes through linked folders
    assert "outside the folder" in through["out/secret.txt"].skip_reason
    assert through["inner/ok.txt"].skip_reason is None and through["inner/ok.txt"].path == (root / "a" / "ok.txt").resolve()
    linked_root = tmp_path / "docs-link"  # the folder named through a link: its files are inside it
    linked_root.symlink_to(root, target_is_directory=True)
    assert discover(linked_root, "a/*")[0].skip_reason is None
