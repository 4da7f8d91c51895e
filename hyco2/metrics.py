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
