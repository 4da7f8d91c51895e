"""Reference points any compressor must beat: keep the beginning, or keep tokens at random."""
from __future__ import annotations

import random

from ..selection import Selection



class Truncate:
    """Keep the first ``n_keep`` tokens (what a context window does to a long document)."""

    name = "truncate"

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        return Selection(list(range(min(n_keep, len(ctx)))))


class RandomDrop:
    """Keep ``n_keep`` tokens drawn uniformly, in order; seeded, so runs repeat."""

    name = "random"

    def select(self, encoder, ctx, question, n_keep, seed=0, keep_probabilities=None) -> Selection:
        rng = random.Random(seed * 1_000_003 + len(ctx))
        return Selection(sorted(rng.sample(range(len(ctx)), min(n_keep, len(ctx)))))
