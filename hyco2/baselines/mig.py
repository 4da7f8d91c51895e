"""COMI's Marginal Information Gain (coarse-to-fine), as a hard selector.

With unit vectors from the backbone's question-aware hidden states (h, mean over a word's tokens,
L2-normalised) and the question vector q (mean of the question's states, normalised):

    relevance(u)          = cos(h_u, q)
    MIG(u | S)            = a · relevance(u) − b · max_{s ∈ S} cos(h_u, h_s)      (S: already kept)

Coarse: each sentence g gets MIG_g = a·cos(ḡ, q) − b·max_{g' ≠ g} cos(ḡ, ḡ'), and a share of the
budget ∝ size_g · softmax(MIG_g / τ) (capped at its size; the rest goes to the next best) — regions
that are relevant and not repeated elsewhere are compressed less.
Fine: inside each sentence, words are kept greedily by MIG given everything kept so far, so a
second copy of a kept sentence scores low. COMI merges tokens inside a group; a hard view keeps
them verbatim instead. One forward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..encoder import question_vector
from ..selection import Selection, select_words_by_budget
from .scoring import sentences


def _unit_vectors(states: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    return F.normalize(torch.stack([states[g].mean(0) for g in groups]), dim=-1)


def group_budgets(mig: torch.Tensor, sizes: list[int], n_keep: int, tau: float) -> list[int]:
    weight = torch.softmax(mig / tau, 0) * torch.tensor(sizes, dtype=torch.float)
    raw = (weight / weight.sum() * n_keep).tolist()
    budget = [min(s, int(r)) for s, r in zip(sizes, raw)]
    for g in sorted(range(len(sizes)), key=lambda g: -float(mig[g])):  # hand out what rounding left
        extra = min(n_keep - sum(budget), sizes[g] - budget[g])
        if extra > 0:
            budget[g] += extra
    return budget


class MIGSelector:
    name = "mig"
    a, b, tau = 1.0, 1.0, 0.1

    def scores_and_order(self, encoder, ctx, question, n_keep):
        enc = encoder.encode([ctx], [question])
        states = enc.context_states[0, : len(ctx)].float().cpu()
        q = question_vector(enc.question_states.float(), enc.question_mask)[0].cpu()
        words: dict[int, list[int]] = {}
        for i, w in enumerate(ctx.words):
            words.setdefault(w, []).append(i)
        word_ids = sorted(words)
        wvec = _unit_vectors(states, [words[w] for w in word_ids])
        relevance = wvec @ q
        sents = sentences(ctx)
        svec = _unit_vectors(states, sents)
        sim = svec @ svec.T
        sim.fill_diagonal_(-1.0)
        s_mig = self.a * (svec @ q) - self.b * sim.max(1).values if len(sents) > 1 else svec @ q
        budgets = group_budgets(s_mig, [len(s) for s in sents], n_keep, self.tau)
        index = {w: k for k, w in enumerate(word_ids)}
        priority = [0.0] * len(ctx)
        picked: list[int] = []  # word rows kept so far, across sentences
        rank = len(ctx)
        for g in sorted(range(len(sents)), key=lambda g: -float(s_mig[g])):
            cand = list(dict.fromkeys(index[ctx.words[p]] for p in sents[g]))
            left = budgets[g]
            while cand and left > 0:
                red = (wvec[cand] @ wvec[picked].T).max(1).values if picked else torch.zeros(len(cand))
                gain = self.a * relevance[cand] - self.b * red
                best = cand.pop(int(torch.argmax(gain)))
                picked.append(best)
                for p in words[word_ids[best]]:
                    priority[p] = rank
                rank -= 1
                left -= len(words[word_ids[best]])
        for p in range(len(ctx)):  # words never picked rank below all picked ones, by relevance
            if priority[p] == 0.0:
                priority[p] = float(relevance[index[ctx.words[p]]]) - 10.0
        return priority

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        priority = self.scores_and_order(encoder, ctx, question, n_keep)
        return Selection(select_words_by_budget(priority, ctx.words, n_keep), priority, forward_passes=1)
