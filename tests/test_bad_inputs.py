"""Strangers' inputs, one table: every bad input to the CLI, batch mode, the library and the app ends in
one clear line (exit code 2 on a command line, a HyCo2Error in the library, a message in the page), before
any model loads where it can, and nothing is written."""
import os
import re
import sqlite3

import pytest

from hyco2 import errors
from hyco2.__main__ import main as cli_main
from hyco2.batch.__main__ import main as batch_main
from tests.conftest import PARAGRAPH

# ------------------------------------------------------------------------------------------- files

def _files(tmp):
    """The fixtures the table's {names} refer to, made in a fresh folder per case."""
    (tmp / "ok.txt").write_text(PARAGRAPH)
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp / "empty.txt").write_text("  \n")
    (tmp / "folder").mkdir()
    os.mkfifo(tmp / "pipe.txt")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "a.txt").write_text(PARAGRAPH)
    (tmp / "notsqlite.db").write_text("this is not a database")
    (tmp / "questions-latin1.jsonl").write_bytes('{"file": "a.txt", "question": "caf\xe9?"}\n'.encode("latin-1"))
    (tmp / "questions-bad.jsonl").write_text('{"file": "a.txt"}\n')
    (tmp / "broken-ckpt").mkdir()
    (tmp / "broken-ckpt" / "config.json").write_text("{not json")
    (tmp / "broken-ckpt" / "model.safetensors").write_bytes(b"")
    (tmp / "empty-ckpt").mkdir()


CLI = [  # (argv, what the one line says); every case fails before the model loads unless marked
    (["answer", "missing.txt", "-q", "Who?"], "No such file: missing.txt"),
    (["answer", "{folder}", "-q", "Who?"], "is a folder"),
    (["compress", "{pipe.txt}"], "not a regular file"),
    (["compress", "{latin1.txt}"], "not valid UTF-8"),
    (["compress", "{binary.txt}"], "NUL bytes"),
    (["compress", "{empty.txt}"], "is empty"),
    (["answer", "{ok.txt}"], "answer needs a question"),
    (["answer", "{ok.txt}", "-q", "   "], "question is empty"),
    (["compress", "{ok.txt}", "-q", ""], "question is empty"),
    (["answer", "{ok.txt}", "-q", "Who?", "--max-new-tokens", "0"], "--max-new-tokens: must be at least 1"),
    (["answer", "{ok.txt}", "-q", "Who?", "--max-new-tokens", "lots"], "must be a whole number"),
    (["compress", "{ok.txt}", "--rate", "2"], "rate must be a fraction in (0, 1]"),
    (["compress", "{ok.txt}", "--rate", "0"], "rate must be a fraction"),
    (["compress", "{ok.txt}", "--rate", "nan"], "rate must be a fraction"),
    (["compress", "{ok.txt}", "--budget", "-1"], "budget must be a whole number"),
    (["compress", "{ok.txt}", "--threshold", "1.5"], "threshold must be a probability"),
    (["compress", "{ok.txt}", "--method", "nope"], "Unknown method 'nope'"),
    (["compress", "{ok.txt}", "--selector", "nope"], "Unknown selector 'nope'"),
    (["compress", "{ok.txt}", "--phrases", "2"], "phrases must be a strength in [0, 1]"),
    (["compress", "{ok.txt}", "--spans", "-1"], "--spans: must be at least 0"),
    (["compress", "{ok.txt}", "--spans", "2", "--threshold", "0.5"], "spans applies to"),
    (["compress", "{ok.txt}", "--threshold", "0.5", "--method", "truncate"], "threshold mode needs"),
    (["compress", "{ok.txt}", "--phrases", "0.5", "--method", "llmlingua"], "phrases applies to"),
    (["compress", "{ok.txt}", "--selector", "mig", "--method", "truncate"], "selector only applies"),
    (["compress", "{ok.txt}", "--rate", "0.1", "--budget", "3"], "not allowed with argument"),
    (["compress", "{ok.txt}", "--seed", "-1"], "--seed: must be at least 0"),
    (["compress", "{ok.txt}", "--quantize", "2bit"], "invalid choice: '2bit'"),
    (["compress", "{ok.txt}", "--checkpoint", "{empty-ckpt}"], "is not a HyCo2 checkpoint"),
    (["compress", "{ok.txt}", "--checkpoint", "{broken-ckpt}"], "is not a valid HyCo2 config"),
]

BATCH = [  # (argv, message); --db is always {tmp}/out.db unless given, and must not appear
    (["compress", "{nowhere}", "--db", "{out.db}"], "No such folder"),
    (["compress", "{docs}", "--db", "{tmp}/no/such/folder/out.db"], "does not exist; create it first"),
    (["compress", "{docs}", "--db", "{folder}"], "is not a file"),
    (["compress", "{docs}", "--db", "/proc/hyco2-out.db"], "cannot be written"),  # read-only for root too
    (["compress", "{docs}", "--db", "{notsqlite.db}"], "is not a SQLite database"),
    (["compress", "{docs}", "--db", "{out.db}", "--chunk-tokens", "-5"], "--chunk-tokens: must be at least 1"),
    (["compress", "{docs}", "--db", "{out.db}", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["compress", "{docs}", "--db", "{out.db}", "--batch-tokens", "x"], "must be a whole number"),
    (["compress", "{docs}", "--db", "{out.db}", "--workers", "0"], "--workers: must be at least 1"),
    (["compress", "{docs}", "--db", "{out.db}", "--per-device", "0"], "--per-device: must be at least 1"),
    (["compress", "{docs}", "--db", "{out.db}", "--max-bytes", "0"], "--max-bytes: must be at least 1"),
    (["compress", "{docs}", "--db", "{out.db}", "--rate", "1.5"], "rate must be a fraction"),
    (["compress", "{docs}", "--db", "{out.db}", "--method", "nope"], "Unknown method"),
    (["compress", "{docs}", "--db", "{out.db}", "--questions", "missing.jsonl"], "No such questions file"),
    (["compress", "{docs}", "--db", "{out.db}", "--questions", "{folder}"], "is a folder"),
    (["compress", "{docs}", "--db", "{out.db}", "--questions", "{questions-latin1.jsonl}"], "is not UTF-8"),
    (["compress", "{docs}", "--db", "{out.db}", "--questions", "{questions-bad.jsonl}"], "expected {\"file\""),
    (["compress", "{docs}", "--db", "{out.db}", "--glob", "../*"], "must stay inside the folder"),
    (["report", "{out.db}"], "No such database"),
    (["export", "{out.db}"], "No such database"),
    (["report", "{notsqlite.db}"], "is not a SQLite database"),
    (["export", "{folder}"], "is not a file"),
]


def _fill(argv, tmp):
    names = {p.name: str(p) for p in tmp.iterdir()} | {"tmp": str(tmp), "nowhere": str(tmp / "nowhere"),
                                                      "out.db": str(tmp / "out.db")}
    return [re.sub(r"\{([^}]+)\}", lambda m: names[m.group(1)], a) for a in argv]


def _listing(tmp):
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))


def _refused(main, argv, tmp_path, capsys, monkeypatch) -> str:
    """Run one command line on the fixtures: it must exit 2 with no traceback and write nothing; its stderr."""
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    try:
        code = main(_fill(argv, tmp_path))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert _listing(tmp_path) == before  # nothing written: no database, no lock file, nothing else
    return err


@pytest.mark.parametrize("argv, message", CLI, ids=[" ".join(a[:1] + a[2:]) or a[0] for a, _ in CLI])
def test_cli_bad_input_is_one_clear_line(argv, message, tmp_path, capsys, monkeypatch):
    err = _refused(cli_main, argv, tmp_path, capsys, monkeypatch)
    assert message in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


@pytest.mark.parametrize("argv, message", BATCH, ids=[" ".join(a[:1] + a[3:]) for a, _ in BATCH])
def test_batch_bad_input_is_one_clear_line_and_writes_nothing(argv, message, tmp_path, capsys, monkeypatch):
    err = _refused(batch_main, argv, tmp_path, capsys, monkeypatch)
    assert message in err, err
    assert (tmp_path / "notsqlite.db").read_text() == "this is not a database"  # never overwritten


def test_batch_refuses_a_read_only_database_before_the_model_loads(tmp_path, capsys):
    """An earlier run's database that cannot be written: one line, exit 2, the file unchanged, no lock file.
    Permission bits do not bind root (CI's containers), so as root the file is made immutable instead."""
    import subprocess

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(PARAGRAPH)
    db = tmp_path / "old.db"
    sqlite3.connect(db).execute("create table t (x)").connection.close()
    before = db.read_bytes()
    db.chmod(0o444)
    immutable = os.geteuid() == 0
    if immutable:
        made = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
        if made.returncode:
            pytest.skip(f"running as root and chattr +i is refused here ({made.stderr.strip()}): no read-only file")
    try:
        code = batch_main(["compress", str(tmp_path / "docs"), "--db", str(db)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "is read-only" in err and "Traceback" not in err
        assert db.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "old.db"]  # no lock file beside it
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)], check=True)


LIBRARY = [  # (call on the tiny compressor / reader, error class, message)
    (lambda c, r: c.compress(None), errors.EmptyInputError, "context is missing"),
    (lambda c, r: c.compress(b"caf\xe9"), errors.InvalidTextError, "not valid UTF-8"),
    (lambda c, r: c.compress("a\x00b\x00c"), errors.InvalidTextError, "NUL bytes"),
    (lambda c, r: c.compress(PARAGRAPH, "  "), errors.EmptyInputError, "question is empty"),
    (lambda c, r: c.compress(PARAGRAPH, rate=0), errors.InvalidSettingError, "rate must be"),
    (lambda c, r: c.compress(PARAGRAPH, budget=2.5), errors.InvalidSettingError, "budget must be"),
    (lambda c, r: c.compress(PARAGRAPH, settings={"rate": 0.1}), errors.InvalidSettingError, "must be a Compression"),
    (lambda c, r: r.answer(PARAGRAPH, "Who?", rat=0.1), errors.InvalidSettingError, "Unknown setting"),
    (lambda c, r: c.compress(documents=[]), errors.InvalidSettingError, "non-empty list"),
    (lambda c, r: c.compress(documents="one text"), errors.InvalidSettingError, "non-empty list"),
    (lambda c, r: c.compress_batch([PARAGRAPH], batch_size=0), errors.InvalidSettingError, "batch_size"),
    (lambda c, r: c.compress_batch(PARAGRAPH), errors.InvalidSettingError, "takes a list"),
    (lambda c, r: c.compress_batch([PARAGRAPH], ["a", "b"]), errors.InvalidSettingError, "1 contexts but 2"),
    (lambda c, r: r.answer(PARAGRAPH, "Who?", max_new_tokens=0), errors.InvalidSettingError, "max_new_tokens"),
    (lambda c, r: r.answer(PARAGRAPH, "Who?", mode="loud"), errors.InvalidSettingError, "mode must be one of"),
    (lambda c, r: r.answer_nll([PARAGRAPH], ["Who?"], ["x"], "hybrid"), errors.InvalidSettingError, "compressions"),
]


@pytest.mark.parametrize("call, error, message", LIBRARY, ids=[m for _, _, m in LIBRARY])
def test_library_bad_input_is_a_hyco2_error(call, error, message, tiny):
    from hyco2.reader import HyCo2Reader

    with pytest.raises(error, match=message.replace("(", r"\(")) as info:
        call(tiny, HyCo2Reader(tiny))
    assert isinstance(info.value, errors.HyCo2Error)


@pytest.mark.parametrize("name", ["empty-ckpt", "broken-ckpt"])
def test_a_broken_checkpoint_is_refused_before_the_backbone_loads(name, tmp_path, monkeypatch):
    from hyco2 import HyCo2Compressor
    import hyco2.compressor as compressor

    _files(tmp_path)
    monkeypatch.setattr(compressor, "load_backbone", lambda *a, **k: pytest.fail("the backbone loaded"))
    with pytest.raises(errors.CheckpointError):
        HyCo2Compressor.from_pretrained(tmp_path / name)


APP = [  # (context, question, control, rate, budget, threshold, message in the page)
    ("", "What?", "rate", 0.2, 30, 0.5, "empty"),
    ("abc\x00def", "What?", "rate", 0.2, 30, 0.5, "NUL"),
    (PARAGRAPH, "  ", "rate", 0.2, 30, 0.5, "question is empty"),
    (PARAGRAPH, "What?", "budget", 0.2, -3, 0.5, "budget must be"),
    (PARAGRAPH, "What?", "threshold", 0.2, 30, 1.0, "threshold must be"),
    ("word " * 60_001, "What?", "rate", 0.2, 30, 0.5, "300,005 characters; this app reads at most 60,000"),
]


@pytest.mark.integration
@pytest.mark.parametrize("context, question, control, rate, budget, threshold, message", APP,
                         ids=[m for *_, m in APP])
def test_app_bad_input_is_a_message_in_the_page(context, question, control, rate, budget, threshold, message):
    import gradio as gr

    from hyco2.app import callbacks

    with pytest.raises(gr.Error, match=message):
        list(callbacks.run(context, question, control, rate, budget, "hyco2", "smollm2-135m-instruct",
                           threshold=threshold))


@pytest.mark.integration
def test_a_named_pipe_in_the_folder_is_a_skipped_row_not_a_hang(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(PARAGRAPH)
    os.mkfifo(docs / "pipe.txt")
    db = tmp_path / "out.db"
    assert batch_main(["compress", str(docs), "--db", str(db), "--no-progress", "--budget", "8"]) == 0
    con = sqlite3.connect(db)
    try:
        assert con.execute("select reason from skipped where path = 'pipe.txt'").fetchone()[0].startswith(
            "not a regular file")
        assert con.execute("select count(*) from compressions where status = 'ok'").fetchone()[0] == 1
    finally:
        con.close()


def test_every_command_names_itself_and_shares_one_default_rate():
    """Console scripts print their own names in usage lines; the CLI, batch mode and the app all fall back
    to the checkpoint's rate."""
    from hyco2.__main__ import build_parser as cli_parser
    from hyco2.app.callbacks import default_rate
    from hyco2.batch.__main__ import build_parser as batch_parser
    from hyco2.compressor import DEFAULT_CHECKPOINT
    from hyco2.config import HyCo2Config

    assert cli_parser().prog == "hyco2" and batch_parser().prog == "hyco2-batch"
    assert default_rate() == HyCo2Config.load(DEFAULT_CHECKPOINT).default_rate == 0.15
    for parser in (cli_parser(), batch_parser()):
        sub = parser._subparsers._group_actions[0].choices["compress"]
        assert sub.get_default("rate") is None  # no rate of their own: the checkpoint's
