"""hyco2.settings: the one validated settings value, and the options every command line builds it from."""
from __future__ import annotations

import argparse

import pytest

from hyco2.errors import InvalidSettingError
from hyco2.settings import CompressionSettings, add_arguments


def test_defaults_and_labels():
    s = CompressionSettings()
    assert (s.rate, s.budget, s.threshold, s.method, s.selector, s.seed) == (None, None, None, "hyco2", "classifier", 0)
    assert s.classifier_selects and s.soft and s.label == "hyco2"
    assert CompressionSettings(selector="mig").label == "hyco2+mig"
    assert not CompressionSettings(method="truncate").soft
    assert CompressionSettings().with_default_rate(0.15).rate == 0.15
    assert CompressionSettings(budget=7).with_default_rate(0.15) == CompressionSettings(budget=7)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rate=0.1, budget=5), "at most one"),
    (dict(rate=0.0), "rate"), (dict(rate=1.5), "rate"), (dict(rate=float("nan")), "rate"), (dict(rate=True), "rate"),
    (dict(budget=-1), "budget"), (dict(budget=2.5), "budget"),
    (dict(threshold=1.0), "threshold"),
    (dict(method="nope"), "Unknown method"), (dict(selector="nope"), "Unknown selector"),
    (dict(method="truncate", selector="mig"), "selector only applies"),
    (dict(method="truncate", threshold=0.5), "threshold mode needs"),
    (dict(selector="mig", phrases=0.5), "phrases applies"),
    (dict(phrases=2.0), "phrases"), (dict(seed="x"), "seed"),
])
def test_bad_settings_fail_with_a_readable_message(kwargs, match):
    with pytest.raises(InvalidSettingError, match=match):
        CompressionSettings(**kwargs)


def test_build_lays_keywords_over_a_value():
    base = CompressionSettings(budget=40, method="longllmlingua", seed=3)
    assert CompressionSettings.build(base, rate=0.2) == CompressionSettings(rate=0.2, method="longllmlingua", seed=3)
    assert CompressionSettings.build(base, rate=None, method=None) == base  # None = not given
    with pytest.raises(InvalidSettingError, match="Unknown setting"):
        CompressionSettings.build(base, colour="red")
    with pytest.raises(InvalidSettingError, match="must be a CompressionSettings"):
        CompressionSettings.build({"rate": 0.1})


def test_command_line_options_round_trip():
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert CompressionSettings.from_args(p.parse_args([])) == CompressionSettings()
    args = p.parse_args(["--budget", "30", "--method", "hyco2", "--selector", "mig", "--seed", "4"])
    assert CompressionSettings.from_args(args) == CompressionSettings(budget=30, selector="mig", seed=4)
    with pytest.raises(SystemExit):  # rate, budget and threshold exclude each other on the command line too
        p.parse_args(["--rate", "0.1", "--budget", "3"])
    with pytest.raises(InvalidSettingError, match="threshold"):
        CompressionSettings.from_args(p.parse_args(["--threshold", "0.5", "--method", "truncate"]))


def test_compressor_takes_the_value_or_keywords_alike(tiny):
    from tests.conftest import PARAGRAPH

    s = CompressionSettings(budget=9)
    a, b = tiny.compress(PARAGRAPH, "Who built it?", settings=s), tiny.compress(PARAGRAPH, "Who built it?", budget=9)
    assert a.kept_positions == b.kept_positions and a.kept_tokens == 9
    c = tiny.compress(PARAGRAPH, "Who built it?", settings=s, rate=0.5)  # a keyword overrides the value's amount
    assert c.kept_tokens == round(0.5 * c.context_tokens)
    assert tiny.settings().rate == tiny.model.config.default_rate
