"""SQuAD answer scoring (the official normalisation: lower-case, no punctuation, no articles)."""
from __future__ import annotations

import collections
import re
import string

_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if not pred or not ref:
        return float(pred == ref)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, gold: str) -> float:
    """Substring match after normalisation (the paper's accuracy)."""
    g = normalize_answer(gold)
    return float(bool(g) and g in normalize_answer(prediction))


def best_over_golds(metric, prediction: str, golds: list[str]) -> float:
    return max(metric(prediction, g) for g in golds)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _bootstrap_interval(stat, n: int, samples: int, seed: int, level: float) -> tuple[float, float]:
    """Quantiles of ``stat(indices)`` over ``samples`` resamplings of ``n`` question indices (with
    replacement; one seeded draw, so every interval of a table is made from the same resamples)."""
    import torch

    idx = torch.randint(n, (samples, n), generator=torch.Generator().manual_seed(seed))
    lo, hi = torch.quantile(stat(idx), torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def paired_bootstrap_ci(a: list[float], b: list[float] | None = None, samples: int = 2000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of mean(a) − mean(b) over the same questions (or of mean(a) alone).

    Resamples question indices with replacement, so the pairing between two systems' scores on one
    question is kept: that is what makes a small gap between close rows measurable.
    """
    import torch

    n = len(a)
    if n == 0:
        return float("nan"), float("nan")
    diff = torch.tensor(a, dtype=torch.float64)
    if b is not None:
        diff = diff - torch.tensor(b, dtype=torch.float64)
    return _bootstrap_interval(lambda idx: diff[idx].mean(1), n, samples, seed, level)


def paired_ratio_ci(a: list[float], b: list[float], samples: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of mean(a) / mean(b) over the same questions (paired bootstrap): how much of a
    reference's score (b: the same reader reading everything) a compressed row (a) keeps."""
    import torch

    n = len(a)
    if n == 0 or len(b) != n:
        return float("nan"), float("nan")
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return _bootstrap_interval(lambda idx: x[idx].mean(1) / y[idx].mean(1).clamp(min=1e-12), n, samples, seed, level)


def nll_recovery(nll_row: float, nll_none: float, nll_full: float) -> float:
    """Share of the likelihood gap between no context and full context that a compressed input closes:
    1 = as good as full context, 0 = no better than no context (can be < 0 or > 1)."""
    gap = nll_none - nll_full
    return (nll_none - nll_row) / gap if gap else float("nan")
