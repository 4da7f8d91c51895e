"""hyco2.batching: length-sorted batches under a row count and a padded-token budget."""
import random

import pytest

from hyco2.batching import length_batches


def test_every_index_once_sorted_and_within_limits():
    rng = random.Random(0)
    lengths = [rng.randint(1, 900) for _ in range(300)]
    batches = length_batches(lengths, max_items=16, max_tokens=4096)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(300))
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 4096
    # short texts travel in full batches, long ones in small
    assert len(batches[0]) == 16 and len(batches[-1]) <= 4096 // 800


def test_a_row_longer_than_the_budget_gets_its_own_batch_and_no_budget_means_count_only():
    assert length_batches([5000, 10, 20], max_items=8, max_tokens=1000) == [[1, 2], [0]]
    assert length_batches([3, 1, 2, 4, 5], max_items=2) == [[1, 2], [0, 3], [4]]
    assert length_batches([], max_items=4) == []
    with pytest.raises(ValueError):
        length_batches([1], max_items=0)
