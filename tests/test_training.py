"""CPU smoke training on the tiny backbone: every stage runs, learns something, and resumes."""
import json
import random

import pytest
import torch

from hyco2.errors import HyCo2Error
from hyco2.training import StageConfig, Trainer, make_records, read_jsonl, read_qa, read_texts
from hyco2.training.data import QAExample, split_for_completion
from tests.conftest import PARAGRAPH

QA = [QAExample(PARAGRAPH, "Who built the lighthouse?", ["Maria Lindqvist"], [PARAGRAPH.index("Maria Lindqvist")]),
      QAExample(PARAGRAPH, "How many steps does it have?", ["212"], [PARAGRAPH.index("212")])]


def test_readers(tmp_path):
    jl = tmp_path / "qa.jsonl"
    jl.write_text(json.dumps({"context": PARAGRAPH, "question": "How tall?", "answers": "41 metres"}) + "\n\n")
    rows = read_jsonl(jl)
    assert rows[0].answers == ["41 metres"] and rows[0].answer_starts == [PARAGRAPH.index("41 metres")]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(PARAGRAPH + "\n\nshort\n\n" + PARAGRAPH)
    (tmp_path / "docs" / "b.md").write_bytes(b"\x00\x01binary")
    assert read_texts(tmp_path / "docs") == [PARAGRAPH, PARAGRAPH]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "x"}\n')
    with pytest.raises(HyCo2Error, match="bad.jsonl:1"):
        read_jsonl(bad)
    with pytest.raises(HyCo2Error, match="No such data file"):
        read_qa(tmp_path / "missing.json")


def test_squad_split_by_article():
    from tests.conftest import SQUAD_MINI as path

    train = read_qa(path, exclude={"Southern_California"})
    test = read_qa(path, include={"Southern_California"})
    assert train and test
    assert not {e.context for e in train} & {e.context for e in test}


def test_completion_split_targets_the_last_words():
    prefix, cont = split_for_completion(PARAGRAPH, random.Random(0))
    assert prefix + cont == PARAGRAPH
    assert 5 <= len(cont.split()) <= 45


def test_pretraining_stages_train_only_the_adapter_and_resume(tiny, tmp_path):
    backbone_before = {k: v.clone() for k, v in tiny.backbone.model.state_dict().items()}
    rng = random.Random(0)
    texts = [PARAGRAPH, PARAGRAPH.replace("1872", "1873")]
    trainer = Trainer(tiny, tmp_path, seed=0)
    for stage in ("paraphrase", "completion"):
        before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
        cfg = StageConfig(stage, steps=2, batch_size=2, lr=1e-3, max_target_tokens=8, max_context_tokens=64)
        summary = trainer.run_stage(cfg, make_records(stage, texts, rng))
        assert summary["steps_done"] == 2 and summary["skipped_steps"] == 0
        assert all(v == v for v in summary["final"].values())  # no NaN
        changed = [k for k, v in tiny.model.state_dict().items() if not torch.equal(v, before[k])]
        assert any(k.startswith("adapter.") for k in changed)
        assert any(k.startswith("classifier.") for k in changed) == (stage != "paraphrase")
    for k, v in tiny.backbone.model.state_dict().items():
        assert torch.equal(v, backbone_before[k]), f"backbone weight {k} changed"
    # resume: a stage with saved state at its last step does no further steps
    cfg = StageConfig("completion", steps=2, batch_size=2, max_target_tokens=8, max_context_tokens=64)
    again = trainer.run_stage(cfg, make_records("completion", texts, rng))
    assert again["steps_done"] == 2 and again["final"] == {}
    with pytest.raises(ValueError, match="distill"):
        make_records("instruct", texts, rng)


def test_training_help_explains_the_stages(capsys):
    from hyco2.training import __main__ as cli

    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "paraphrase" in out and "KL" in out and "--exclude-articles" in out
    assert cli.parse_args(["--out", "x"]).exclude_articles == ["Southern_California"]


def test_cli_defaults_are_the_shipped_checkpoints_last_round():
    """`python -m hyco2.training` with no recipe flags trains as the shipped checkpoint's last round did
    (data, batch and time are the user's: they are not the recipe)."""
    from hyco2.compressor import DEFAULT_CHECKPOINT  # noqa: PLC0415
    from hyco2.training.__main__ import parse_args  # noqa: PLC0415

    shipped = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["training"]
    last, args = shipped["stages"][-1], parse_args(["--out", "x"])
    assert shipped["teacher"].split()[0] == args.teacher == "self"
    assert (last["target"], last["rates"], last["max_paragraphs"], last["other_articles"]) == \
        (args.target, args.rates, args.max_paragraphs, args.other_articles)
    assert (last["rank_weight"], last["saliency_weight"], last["lr"], last["selection"]) == \
        (args.rank_weight, args.saliency_weight, args.lr[2], args.selection)
    assert (last.get("rank_loss", "span"), last.get("classifier_context", 0)) == \
        (args.rank_loss, args.classifier_context)


def test_saliency_labels_ignore_attention_sinks():
    from hyco2.training.trainer import saliency_labels

    # prompt: 2 tokens, context of 5 at [2, 7), 3 question tokens, then 2 target rows (prompt_len = 10)
    att = torch.full((12, 12), 0.01)
    att[:, 2] = 0.5  # context token 0 is a sink: everyone attends to it
    att[9:11, 5] = 0.4  # only the target rows attend to context token 3
    y = saliency_labels(att, start=2, n=5, prompt_len=10, n_target=2, top=0.2)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.integration
def test_cli_stage3_smoke_on_the_real_model(tmp_path, capsys):
    """The new data path end to end on CPU: SQuAD file → teacher cache (two shards) → stage 3 → checkpoint."""
    from hyco2.compressor import DEFAULT_CHECKPOINT
    from hyco2.training import __main__ as cli
    from tests.conftest import SQUAD_MINI

    common = ["--stage", "instruct", "--qa", str(SQUAD_MINI), "--exclude-articles", "Southern_California",
              "--limit-questions", "4", "--init", str(DEFAULT_CHECKPOINT), "--teacher-batch-size", "2",
              "--teacher-cache", str(tmp_path / "teacher")]
    for shard in ("0/2", "1/2"):
        assert cli.main([*common, "--out", str(tmp_path / "c"), "--teacher-shard", shard]) == 0
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == ["shard-0-of-2.pt", "shard-1-of-2.pt",
                                                                       "teacher.json"]
    out = tmp_path / "run"
    assert cli.main([*common, "--out", str(out), "--steps", "0", "0", "2", "--batch-size", "2",
                     "--max-paragraphs", "2", "--soft-token-span", "32"]) == 0
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    stage = config["training"]["stages"][0]
    assert stage["stage"] == "instruct" and stage["steps_done"] == 2 and stage["examples_seen"] == 4
    assert config["soft_token_span"] == stage["soft_token_span"] == 32  # longer chunks, more soft tokens
    assert config["training"]["initialised_from"]  # continued training keeps the earlier record
    assert config["training"]["teacher"] == f"self {DEFAULT_CHECKPOINT}"  # the frozen reference that answered
    # the same folder refuses another teacher's answers instead of mixing them
    assert cli.main([*common, "--out", str(tmp_path / "d"), "--teacher", "backbone", "--steps", "0", "0", "1"]) == 2
    # a fresh ComprExIT or COMI adapter trains through every stage on the same data and the same cached
    # reader's answers (the shipped checkpoint's, above), and its checkpoint says which adapter it holds
    text = tmp_path / "text.txt"
    text.write_text("\n\n".join(p for p in json.loads(SQUAD_MINI.read_text())["data"][0]["paragraphs"][0]
                                  ["context"].split(". ")))
    fresh = [a for a in common if a not in ("--init", str(DEFAULT_CHECKPOINT))]
    fresh[fresh.index("instruct")] = "all"
    for adapter in ("comprexit", "comi"):
        out = tmp_path / adapter
        assert cli.main([*fresh, "--adapter", adapter, "--text", str(text), "--out", str(out),
                         "--steps", "1", "1", "1", "--batch-size", "2", "--max-paragraphs", "2"]) == 0
        config = json.loads((out / "checkpoint" / "config.json").read_text())
        assert config["adapter"] == adapter and config["trained"]
        assert [s["stage"] for s in config["training"]["stages"]] == ["paraphrase", "completion", "instruct"]
        assert config["training"]["teacher"] == f"self {DEFAULT_CHECKPOINT}"
        assert config["layer_states"] == (31 if adapter == "comprexit" else 0)  # SmolLM2-135M: 30 layers + 1
    # --init's adapter is the one trained; another is refused, and a fresh adapter cannot be its own teacher
    assert cli.main([*common, "--out", str(tmp_path / "e"), "--adapter", "comi"]) == 2
    assert cli.main([*common, "--out", str(tmp_path / "e"), "--soft-token-span", "-1"]) == 2
    assert cli.main([*fresh[:-2], "--teacher-cache", str(tmp_path / "empty"), "--adapter", "comi", "--text",
                     str(text), "--out", str(tmp_path / "f"), "--steps", "0", "0", "1"]) == 2
    err = capsys.readouterr().err
    assert "--soft-token-span: soft_token_span must be 0" in err
    assert "holds a 'hybrid' adapter, not 'comi'" in err and "--teacher self needs a trained reader" in err


def test_cli_refuses_missing_data_with_a_message(tmp_path, capsys):
    from hyco2.training import __main__ as cli

    assert cli.main(["--stage", "instruct", "--out", str(tmp_path)]) == 2
    assert "--qa" in capsys.readouterr().err
    assert cli.main(["--stage", "instruct", "--out", str(tmp_path), "--qa", str(tmp_path / "nope.json")]) == 2
    assert "no such data file" in capsys.readouterr().err
    assert cli.main(["--stage", "paraphrase", "--out", str(tmp_path)]) == 2
    assert "--text" in capsys.readouterr().err


def test_pretraining_summary_carries_its_loss_curve(tiny, tmp_path):
    cfg = StageConfig("paraphrase", steps=2, batch_size=2, lr=1e-3, max_target_tokens=8, max_context_tokens=64)
    summary = Trainer(tiny, tmp_path, seed=0).run_stage(cfg, make_records("paraphrase", [PARAGRAPH], random.Random(0)))
    assert summary["history"] and all(h["stage"] == "paraphrase" for h in summary["history"])


@pytest.mark.integration
def test_stage3_under_torchrun_on_two_cpu_processes(tmp_path):
    """The DDP path of the one loop (gloo, two processes on the CPU): both ranks train, the plan and the
    examples seen count both, rank 0 saves one checkpoint, and the held-out loss is reported."""
    import subprocess
    import sys

    from hyco2.compressor import DEFAULT_CHECKPOINT
    from tests.conftest import ROOT, SQUAD_MINI

    common = ["--stage", "instruct", "--qa", str(SQUAD_MINI), "--exclude-articles", "Southern_California",
              "--limit-questions", "6", "--init", str(DEFAULT_CHECKPOINT), "--teacher-batch-size", "2",
              "--teacher-cache", str(tmp_path / "teacher"), "--device", "cpu"]
    cache = subprocess.run([sys.executable, "-m", "hyco2.training", *common, "--out", str(tmp_path / "c"),
                            "--steps", "0", "0", "0"], cwd=ROOT, capture_output=True, text=True)
    assert cache.returncode == 0, cache.stderr[-2000:]
    out = tmp_path / "ddp"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                          "29517", "-m", "hyco2.training", *common, "--out", str(out), "--steps", "0", "0", "2",
                          "--batch-size", "1", "--max-paragraphs", "2", "--held-out", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    stage = json.loads((out / "checkpoint" / "config.json").read_text())["training"]["stages"][0]
    assert stage["gpus"] == 2 and stage["steps_done"] == 2 and stage["examples_seen"] == 4
    assert stage["held_out_records"] == 2 and stage["held_out"]["nll"] > 0
