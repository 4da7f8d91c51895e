"""``python -m hyco2`` on the real default model."""
import json

import pytest

from hyco2.__main__ import main
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
LIGHTHOUSE = str(ROOT / "assets" / "examples" / "lighthouse.txt")


def test_compress_json_has_exact_counts(capsys):
    assert main(["compress", LIGHTHOUSE, "-q", "How tall is the tower?", "--budget", "25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kept_tokens"] == 25 and out["soft_tokens"] == 16 and out["untrained"] is False
    assert out["ratio"].endswith("x")


def test_answer_prints_both_sides(capsys):
    assert main(["answer", LIGHTHOUSE, "-q", "Who built the lighthouse at Karsten Point?", "--rate", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "full:" in out and "compressed:" in out and "16 soft" in out


@pytest.mark.parametrize("argv, message", [
    (["compress", "/no/such/file.txt"], "No such file"),
    (["answer", LIGHTHOUSE], "needs a question"),
    (["compress", LIGHTHOUSE, "--method", "zip"], "Unknown method"),
    (["compress", LIGHTHOUSE, "--model", "./missing-model"], "Unknown model"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_methods_lists_hyco2_and_peers(capsys):
    assert main(["methods"]) == 0
    assert capsys.readouterr().out.split() == ["hyco2", "truncate", "random", "selective-context", "llmlingua",
                                               "longllmlingua", "mig"]


def test_answer_over_several_files_and_a_long_one(capsys, tmp_path):
    files = sorted(str(p) for p in (ROOT / "assets" / "examples").iterdir() if p.suffix in (".txt", ".md"))
    assert len(files) >= 2
    assert main(["answer", *files, "-q", "Who built the lighthouse at Karsten Point?", "--rate", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "full:" in out and f"{len(files)} chunks" in out  # one chunk per document here
    long_file = tmp_path / "long.txt"  # longer than the 8k window: full context cannot read it
    long_file.write_text("\n\n".join([(ROOT / "assets" / "examples" / "lighthouse.txt").read_text()] * 42))
    assert main(["compress", str(long_file), "-q", "Who built it?", "--rate", "0.05", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["chunks"] >= 2 and r["context_tokens"] > 8000 and r["kept_tokens"] == round(0.05 * r["context_tokens"])
