"""Which contexts share a forward pass: sorted by length, cut by a row count and a padded-token budget."""
from __future__ import annotations

from collections.abc import Sequence


def length_batches(lengths: Sequence[int], max_items: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches of similar length (shortest first).

    Why: a forward costs about rows × longest row, so mixing a 40-token and a 1,000-token text in one
    batch pads the short one 25-fold. Each batch holds at most ``max_items`` rows and, with
    ``max_tokens``, at most that many padded tokens (rows × its longest row; a single row longer than
    that still gets a batch of its own), so short texts travel in large batches and long ones in small.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be ≥ 1, not {max_items}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # ascending: the newcomer is the longest so far
        if current and (len(current) >= max_items or
                        (max_tokens is not None and (len(current) + 1) * longest > max_tokens)):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
