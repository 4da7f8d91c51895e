"""Budgeted selection of whole words in original order, and the interface every selector shares.

A selector (HyCo2's retention classifier, or a peer from :mod:`hyco2.baselines`) answers one question:
which ``n_keep`` tokens of this context stay verbatim. The compressor calls every one of them the same
way (:class:`Selector`), so benchmark, app and batch pick one by name.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import InvalidSettingError

if TYPE_CHECKING:
    from .encoder import ContextEncoder, TokenizedContext


@dataclass
class Selection:
    positions: list[int]  # kept token positions, original order, exactly n_keep of them (budget mode)
    scores: list[float] | None = None  # per-token importance, if the method has one
    forward_passes: int = 0  # backbone forwards spent


class Selector(Protocol):
    """``select`` keeps exactly ``n_keep`` tokens (``None``: the selector's threshold decides).

    ``keep_probabilities``: HyCo2's keep probabilities for this context when the compressor's encoder
    pass already made them (with the soft tokens); the classifier reads them instead of a second pass,
    a peer runs its own scoring and may ignore them.
    """

    name: str

    def select(self, encoder: "ContextEncoder", ctx: "TokenizedContext", question: str | None,
               n_keep: int | None, seed: int = 0,
               keep_probabilities: Sequence[float] | None = None) -> Selection: ...


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_rate(rate: float) -> None:
    if not _number(rate) or math.isnan(rate) or not 0.0 < rate <= 1.0:
        raise InvalidSettingError(f"rate must be a fraction in (0, 1], not {rate!r}.")


def check_whole_number(name: str, value: int, minimum: int = 1, unit: str = "") -> None:
    """``value`` is an int (not a bool) of at least ``minimum``, else an error that names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSettingError(f"{name} must be a whole number{unit} ≥ {minimum}, not {value!r}.")


def check_budget(budget: int) -> None:
    check_whole_number("budget", budget, 0, " of tokens")


def check_threshold(threshold: float) -> None:
    if not _number(threshold) or not 0.0 < threshold < 1.0:
        raise InvalidSettingError(f"threshold must be a probability in (0, 1), not {threshold!r}.")


def check_phrase_strength(strength: float) -> None:
    if not _number(strength) or not 0.0 <= strength <= 1.0:
        raise InvalidSettingError(f"phrases must be a strength in [0, 1], not {strength!r}.")


def keep_count(n_tokens: int, rate: float | None = None, budget: int | None = None) -> int:
    """How many tokens to keep: ``round(rate·n)`` (at least 1) or ``min(budget, n)``, exactly one given."""
    if (rate is None) == (budget is None):
        raise InvalidSettingError("Give exactly one of rate (a fraction) or budget (a token count).")
    if rate is not None:
        check_rate(rate)
        return max(1, min(n_tokens, round(rate * n_tokens)))
    check_budget(budget)
    return min(budget, n_tokens)


def word_scores(scores: Sequence[float], words: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each word's score, the highest score of its tokens (one strong token saves the word), in word
    order; and each token's index into that array. Word ids need only be sorted, not contiguous."""
    _, inv = np.unique(np.asarray(words), return_inverse=True)
    best = np.full(int(inv.max()) + 1 if len(inv) else 0, -np.inf)
    np.maximum.at(best, inv, np.asarray(scores, dtype=np.float64))
    return best, inv


def select_words_by_budget(scores: Sequence[float], words: Sequence[int], n_keep: int) -> list[int]:
    """Positions of exactly ``n_keep`` tokens, whole words first, in original order.

    Greedy knapsack over words by score (ties: the earlier word); if a gap remains that no whole
    word fits, the best remaining word gives its first tokens, so the count is always exact. Word
    scores, sizes and the ordering are array operations: this runs for every example of every
    training step and for every chunk of long documents.
    """
    n = len(scores)
    if n_keep >= n:
        return list(range(n))
    if n_keep <= 0:
        return []
    best, inv = word_scores(scores, words)
    size = np.bincount(inv, minlength=len(best))
    order = np.lexsort((np.arange(len(best)), -best))  # best score first, then the earlier word
    keep = np.zeros(len(best), dtype=bool)
    left, rest = n_keep, []
    for w, k in zip(order.tolist(), size[order].tolist()):
        if k <= left:
            keep[w] = True
            left -= k
            if left == 0:
                break
        else:
            rest.append(w)
    mask = keep[inv]
    for w in rest:  # in score order: split the best word that did not fit
        if not left:
            break
        first = np.flatnonzero(inv == w)[:left]
        mask[first] = True
        left -= len(first)
    return np.flatnonzero(mask).tolist()


def pull_neighbours(scores: Sequence[float], words: Sequence[int], strength: float) -> list[float]:
    """Phrase mode: every word's score rises to at least ``strength`` × the score of the better of its
    two neighbouring words, so a kept word tends to come with the words beside it ("engineer Maria
    Lindqvist" rather than "Lindqvist"). 0 changes nothing; per token, the word's new score."""
    check_phrase_strength(strength)
    if strength == 0.0 or not len(scores):
        return list(scores)
    best, inv = word_scores(scores, words)
    left = np.concatenate([[-np.inf], best[:-1]])
    right = np.concatenate([best[1:], [-np.inf]])
    pulled = np.maximum(best, strength * np.maximum(left, right))
    return pulled[inv].tolist()


def select_words_by_threshold(probs: Sequence[float], words: Sequence[int], threshold: float) -> list[int]:
    """Every token of every word whose (max) probability reaches ``threshold``, in original order."""
    check_threshold(threshold)
    best, inv = word_scores(probs, words)
    return np.flatnonzero(best[inv] >= threshold).tolist()
