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


#: Kept tokens a stretch when the number of stretches is left to the compressor (``spans=None``): one
#: stretch per this many kept tokens, whole words anywhere below it. Measured on one H200 (s7, 1,295
#: unseen questions): ten passages at 9.1x (~167 kept tokens) read best as 3 stretches, +3.6 F1 and
#: +4.3 answer-contains over whole words, beyond the paired CI; one paragraph at 4-5x (15-22 kept
#: tokens) read as well from words as from one stretch (docs/DESIGN.md).
SPAN_TOKENS = 60


def check_spans(spans: int) -> None:
    check_whole_number("spans", spans, 0)


def auto_spans(n_keep: int) -> int:
    """The number of stretches for ``n_keep`` kept tokens when none is given: one per ``SPAN_TOKENS``."""
    return round(n_keep / SPAN_TOKENS)


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


def _best_window(cum: np.ndarray, starts_ok: np.ndarray, run: np.ndarray, length: int) -> tuple[float, int]:
    """The best window of ``length`` tokens inside ``run`` (consecutive positions), starting at a word's
    first token: (its score sum, its first position); (-inf, -1) if none fits."""
    if len(run) < length:
        return -np.inf, -1
    first = run[: len(run) - length + 1]
    sums = cum[first + length] - cum[first]
    sums = np.where(starts_ok[first], sums, -np.inf)
    i = int(np.argmax(sums))
    return (float(sums[i]), int(first[i])) if np.isfinite(sums[i]) else (-np.inf, -1)


def _grow(kept: np.ndarray, values: np.ndarray, w: np.ndarray, left: int) -> None:
    """Add ``left`` tokens to ``kept`` at the edges of its stretches (never a new stretch): each step takes
    the neighbouring word with the best mean score, the word after a stretch or, if it fits whole, the
    word before it (a stretch keeps starting at a word's first token while it can)."""
    n = len(kept)
    while left:
        best, take = -np.inf, None
        edges = np.flatnonzero(np.diff(np.concatenate([[0], kept.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):  # each stretch is kept[a:b]
            if b < n:
                end = b + 1
                while end < n and w[end] == w[b] and not kept[end] and end - b < left:
                    end += 1
                if values[b:end].mean() > best:
                    best, take = values[b:end].mean(), (b, end)
            if a > 0:
                start = a - 1
                while start > 0 and w[start - 1] == w[a - 1] and not kept[start - 1]:
                    start -= 1
                if a - start <= left and values[start:a].mean() > best:
                    best, take = values[start:a].mean(), (start, a)
        if take is None:  # only the text's last stretch, after a word too long for what is left: its last tokens
            a = int(next(e for e in edges[::2] if e > 0))
            start = a
            while start > 0 and not kept[start - 1] and a - start < left:
                start -= 1
            take = (start, a)
        kept[take[0]: take[1]] = True
        left -= take[1] - take[0]


def select_spans_by_budget(scores: Sequence[float], words: Sequence[int], n_keep: int,
                           spans: int | None) -> list[int]:
    """Positions of exactly ``n_keep`` tokens as at most ``spans`` contiguous stretches of text, in order.

    The decoder reads a stretch of text as it reads any passage, and scattered words as noise: with the
    same kept count, a few whole stretches around the highest keep scores are what a frozen reader can
    use. Greedy: each stretch in turn is the window with the highest score sum among the free positions,
    starting at a word's first token, the budget still left shared equally among the stretches still to
    come; what no free run could hold grows the stretches at their edges, so the count is always exact
    and the stretches never more than ``spans``. ``spans=0``: whole words anywhere
    (:func:`select_words_by_budget`); ``None``: :func:`auto_spans`.
    """
    if spans is None:
        spans = auto_spans(n_keep)
    check_spans(spans)
    n = len(scores)
    if n_keep >= n:
        return list(range(n))
    if n_keep <= 0:
        return []
    if spans == 0:
        return select_words_by_budget(scores, words, n_keep)
    values = np.asarray(scores, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(values)])
    w = np.asarray(words)
    starts_ok = np.concatenate([[True], w[1:] != w[:-1]])
    kept = np.zeros(n, dtype=bool)
    left = n_keep
    for j in range(spans):
        length = -(-left // (spans - j))  # ceil: the stretches still to come share what is left
        free = np.flatnonzero(~kept)
        runs = np.split(free, np.flatnonzero(np.diff(free) != 1) + 1)
        best = max((_best_window(cum, starts_ok, r, length) for r in runs), key=lambda t: t[0])
        if best[1] < 0:  # no free run holds it: the stretches grow instead
            break
        kept[best[1]: best[1] + length] = True
        left -= length
        if left == 0:
            break
    if left:
        _grow(kept, values, w, left)
    return np.flatnonzero(kept).tolist()


def select_by_budget(scores: Sequence[float], words: Sequence[int], n_keep: int, phrases: float = 0.0,
                     spans: int | None = 0) -> list[int]:
    """HyCo2's classifier keeping a budget: scores pulled toward their neighbours (``phrases``), then exactly
    ``n_keep`` tokens as at most ``spans`` stretches (0: whole words anywhere; None: one per ``SPAN_TOKENS``).
    The compressor and stage-3 training both select through it, so the student reads what inference keeps."""
    return select_spans_by_budget(pull_neighbours(scores, words, phrases), words, n_keep, spans)


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
