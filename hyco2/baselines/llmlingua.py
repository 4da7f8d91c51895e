"""LLMLingua (Jiang et al. 2023), on the backbone instead of a downloaded scorer.

1. Budget controller: sentences ranked by perplexity (one forward); the most perplexing are kept
   until twice the final budget is reached (the coarse stage keeps more, the fine stage prunes).
2. Iterative token-level compression: the coarse text is cut into segments of ``segment`` tokens;
   each segment is scored conditioned on the *already compressed* prefix (one forward per
   segment), and keeps its proportional share of the budget by self-information (whole words).
Forward passes: 1 + number of segments.
"""
from __future__ import annotations

from ..selection import Selection, select_words_by_budget
from .scoring import sentences, token_logprobs, word_means


def coarse_by_rank(units: list[list[int]], order: list[int], target: int) -> list[int]:
    """Units taken in ``order`` until ``target`` tokens are covered; returned in original order."""
    kept, total = [], 0
    for u in order:
        if total >= target:
            break
        kept.append(u)
        total += len(units[u])
    return sorted(p for u in kept for p in units[u])


def iterative_prune(backbone, ctx, positions: list[int], n_keep: int, segment: int,
                    prefix: list[int] | None = None) -> tuple[list[int], int]:
    """LLMLingua's fine stage: segment by segment, conditioned on what was kept so far."""
    kept: list[int] = []
    passes = 0
    remaining_budget, remaining_tokens = n_keep, len(positions)
    for s in range(0, len(positions), segment):
        seg = positions[s:s + segment]
        share = round(remaining_budget * len(seg) / remaining_tokens) if remaining_tokens else 0
        remaining_tokens -= len(seg)
        cond = list(prefix or []) + [ctx.ids[p] for p in kept]
        info = (-token_logprobs(backbone, [(cond, [ctx.ids[p] for p in seg])])[0]).tolist()
        passes += 1
        words = [ctx.words[p] for p in seg]
        local = select_words_by_budget(word_means(info, words), words, min(share, len(seg)))
        kept.extend(seg[i] for i in local)
        remaining_budget -= len(local)
    return kept, passes


class LLMLingua:
    name = "llmlingua"
    segment = 48
    coarse_factor = 2.0

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        bb = encoder.backbone
        units = sentences(ctx)
        info = (-token_logprobs(bb, [([], ctx.ids)])[0]).tolist()
        ppl = [sum(info[p] for p in u) / len(u) for u in units]
        order = sorted(range(len(units)), key=lambda u: -ppl[u])
        coarse = coarse_by_rank(units, order, min(len(ctx), int(self.coarse_factor * n_keep)))
        kept, passes = iterative_prune(bb, ctx, coarse, n_keep, self.segment)
        return Selection(sorted(kept), None, forward_passes=1 + passes)
