"""Selective Context (Li et al. 2023): drop the lexical units with the lowest self-information.

Self-information of a token is -log p(token | preceding text) under a small causal LM (here the
backbone, no question); a word's is the sum over its tokens (the chain rule, as in the paper). Words are kept by descending
self-information until the budget is met exactly. One forward pass.
"""
from __future__ import annotations

from ..selection import Selection, select_words_by_budget
from .scoring import token_logprobs, word_sums


class SelectiveContext:
    name = "selective-context"

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        info = (-token_logprobs(encoder.backbone, [([], ctx.ids)])[0]).tolist()
        scores = word_sums(info, ctx.words)
        return Selection(select_words_by_budget(scores, ctx.words, n_keep), scores, forward_passes=1)
