"""LongLLMLingua (Jiang et al. 2024): question-aware coarse ranking, then contrastive pruning.

1. Coarse: each sentence is ranked by how well it predicts the question: the mean log p(question |
   sentence) (one batched forward over all sentences); the best sentences are kept, in original
   order, until twice the budget.
2. Fine: contrastive perplexity of each kept token: log p(x_i | question, x_<i) − log p(x_i | x_<i)
   (two forwards over the coarse text); the words the question makes most expected are kept.
Forward passes: number of sentences + 2.
"""
from __future__ import annotations

from ..encoder import GENERIC_INSTRUCTION
from ..selection import Selection, select_words_by_budget
from .llmlingua import coarse_by_rank
from .scoring import sentences, token_logprobs, word_means


class LongLLMLingua:
    name = "longllmlingua"
    coarse_factor = 2.0

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        bb = encoder.backbone
        tok = bb.tokenizer
        q_ids = tok(" Question: " + (question or GENERIC_INSTRUCTION), add_special_tokens=False)["input_ids"]
        units = sentences(ctx)
        lp = token_logprobs(bb, [([ctx.ids[p] for p in u], q_ids) for u in units])
        relevance = [float(x.mean()) for x in lp]
        order = sorted(range(len(units)), key=lambda u: -relevance[u])
        coarse = coarse_by_rank(units, order, min(len(ctx), int(self.coarse_factor * n_keep)))
        ids = [ctx.ids[p] for p in coarse]
        q_prefix = tok("Question: " + (question or GENERIC_INSTRUCTION) + "\n", add_special_tokens=False)["input_ids"]
        with_q, without_q = token_logprobs(bb, [(q_prefix, ids), ([], ids)])
        contrast = (with_q - without_q).tolist()
        words = [ctx.words[p] for p in coarse]
        local = select_words_by_budget(word_means(contrast, words), words, n_keep)
        scores = [0.0] * len(ctx)
        for p, c in zip(coarse, contrast):
            scores[p] = c
        return Selection(sorted(coarse[i] for i in local), scores, forward_passes=len(units) + 2)
