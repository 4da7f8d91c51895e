"""The retention classifier (local view) and budgeted selection of whole words in original order."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .baselines.base import Selection
from .config import HyCo2Config
from .errors import InvalidSettingError

if TYPE_CHECKING:
    from .encoder import ContextEncoder, TokenizedContext
    from .modeling import HyCo2Model


class RetentionClassifier(nn.Module):
    """Keep-probability logit for every context token, from its backbone hidden state.

    The plain head (an MLP on each token's state) learned which tokens look important in general —
    measured: on unseen SQuAD paragraphs it kept nearly the same names for every question. With
    ``config.classifier_question`` it adds a question match: the cosine between a projection of each
    context token and projections of the question's tokens, its best match over the question,
    times a learned scale that starts at 0 (so an upgraded checkpoint begins exactly where it was).
    """

    def __init__(self, config: HyCo2Config):
        super().__init__()
        D, c = config.hidden_size, config.classifier_dim
        self.net = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, c), nn.GELU(), nn.Linear(c, 1))
        self.question_match = config.classifier_question
        if self.question_match:
            self.match_norm = nn.LayerNorm(D)
            self.context_proj = nn.Linear(D, c, bias=False)
            self.question_proj = nn.Linear(D, c, bias=False)
            self.match_scale = nn.Parameter(torch.zeros(()))

    def forward(self, states: torch.Tensor, question_states: torch.Tensor | None = None,
                question_mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.net(states).squeeze(-1)  # (B, L)
        if self.question_match:
            if question_states is None or question_mask is None:
                raise ValueError("this classifier matches against the question: pass its states and mask")
            k = F.normalize(self.context_proj(self.match_norm(states)), dim=-1)
            q = F.normalize(self.question_proj(self.match_norm(question_states)), dim=-1)
            sim = torch.einsum("blc,bqc->blq", k, q).masked_fill(~question_mask[:, None, :], -1.0)
            logits = logits + self.match_scale * sim.amax(-1)
        return logits


def add_question_match(model: nn.Module) -> None:
    """Give a trained checkpoint's classifier the question match (scale 0: same outputs until trained)."""
    config = model.config
    if config.classifier_question:
        return
    config.classifier_question = True
    head = RetentionClassifier(config).to(next(model.parameters()).device)
    head.net.load_state_dict(model.classifier.net.state_dict())
    model.classifier = head


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_rate(rate: float) -> None:
    if not _number(rate) or math.isnan(rate) or not 0.0 < rate <= 1.0:
        raise InvalidSettingError(f"rate must be a fraction in (0, 1], not {rate!r}.")


def check_budget(budget: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidSettingError(f"budget must be a whole number of tokens ≥ 0, not {budget!r}.")


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


class ClassifierSelector:
    """HyCo2's trained retention classifier behind the same interface as every peer
    (:class:`hyco2.baselines.Selector`), with a budget (``n_keep``) or a ``threshold``.

    Inside the compressor the classifier's probabilities come from the encoder pass that also makes the
    soft tokens, so :meth:`select_scored` takes them as given; :meth:`select` runs that pass itself.
    """

    name = "classifier"

    def __init__(self, model: "HyCo2Model", threshold: float | None = None, phrases: float = 0.0):
        check_phrase_strength(phrases)
        self.model, self.threshold, self.phrases = model, threshold, phrases

    @torch.no_grad()
    def select(self, encoder: "ContextEncoder", ctx: "TokenizedContext", question: str | None,
               n_keep: int | None, seed: int = 0) -> Selection:
        _, logits = self.model(encoder.encode([ctx], [question]))
        sel = self.select_scored(ctx, torch.sigmoid(logits[0, : len(ctx)]).float().tolist(), n_keep)
        sel.forward_passes = 1
        return sel

    def select_scored(self, ctx: "TokenizedContext", probs: Sequence[float], n_keep: int | None) -> Selection:
        """Whole words by keep probability: every word at or above the threshold, or exactly ``n_keep``
        tokens (``n_keep`` is ignored in threshold mode)."""
        scores = pull_neighbours(probs, ctx.words, self.phrases)
        if self.threshold is not None:
            kept = select_words_by_threshold(scores, ctx.words, self.threshold)
        elif n_keep is None:
            raise InvalidSettingError("The classifier needs a budget (n_keep) or a threshold.")
        else:
            kept = select_words_by_budget(scores, ctx.words, n_keep)
        return Selection(kept, list(probs), 0)
