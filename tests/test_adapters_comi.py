"""COMI's adapter: MIG re-groups the context (relevant, unrepeated regions get smaller groups) and merges
each group by intra-group MIG."""
import torch
import torch.nn.functional as F

from hyco2.adapters.comi import COMIAdapter, largest_remainder, merge_weights, mig_groups
from hyco2.config import HyCo2Config
from hyco2.encoder import EncodedBatch


def test_largest_remainder_sums_exactly():
    shares = torch.softmax(torch.randn(5, 7), -1)
    total = torch.tensor([0, 3, 10, 101, 999])
    sizes = largest_remainder(shares, total)
    assert (sizes.sum(-1) == total).all() and (sizes >= 0).all()
    assert ((sizes - shares * total[:, None]).abs() < 1).all()


def test_groups_are_contiguous_cover_the_context_and_are_never_empty():
    torch.manual_seed(0)
    L, k = 40, 6
    mask = torch.zeros(3, L, dtype=torch.bool)
    for i, n in enumerate([40, 17, 4]):  # the last: fewer tokens than groups
        mask[i, :n] = True
    unit = F.normalize(torch.randn(3, L, 8), dim=-1) * mask[..., None]
    groups = mig_groups(unit, unit[..., 0], mask, k)
    assert groups.shape == (3, k, L) and groups.any(-1).all()
    for b, n in enumerate([40, 17]):
        assert (groups[b].sum(0)[:n] == 1).all() and not groups[b, :, n:].any()  # a partition of the tokens
        starts = [int(torch.nonzero(g).min()) for g in groups[b]]
        assert starts == sorted(starts)  # in order
        for g in groups[b]:
            idx = torch.nonzero(g).flatten()
            assert (idx.diff() == 1).all()  # contiguous


def test_a_relevant_unrepeated_region_gets_a_smaller_group():
    L, k, D = 32, 4, 8
    mask = torch.ones(1, L, dtype=torch.bool)
    base = F.normalize(torch.randn(k, D), dim=-1)
    unit = base.repeat_interleave(L // k, 0)[None].clone()
    relevance = torch.zeros(1, L)
    relevance[0, 8:16] = 0.9  # group 1 is about the question
    groups = mig_groups(unit, relevance, mask, k)
    sizes = groups.sum(-1)[0]
    assert sizes[1] == sizes.min() and sizes[1] < L // k


def test_merge_weights_sum_to_one_inside_each_group_and_favour_relevant_tokens():
    L, k = 12, 3
    mask = torch.ones(1, L, dtype=torch.bool)
    unit = F.normalize(torch.randn(1, L, 8), dim=-1)
    relevance = torch.zeros(1, L)
    relevance[0, 2] = 1.0
    groups = mig_groups(unit, torch.zeros(1, L), mask, k)
    w = merge_weights(unit, relevance, groups)
    assert torch.allclose(w.sum(-1), torch.ones(1, k), atol=1e-5)
    assert (w[~groups] < 1e-6).all()
    g = int(groups[0, :, 2].nonzero())
    assert int(w[0, g].argmax()) == 2


def test_a_duplicated_token_weighs_less_than_a_distinct_one_of_equal_relevance():
    mask = torch.ones(1, 3, dtype=torch.bool)
    a, b = F.normalize(torch.tensor([1.0, 0.0, 0.0]), dim=0), F.normalize(torch.tensor([0.0, 1.0, 1.0]), dim=0)
    unit = torch.stack([a, a, b])[None]
    groups = torch.ones(1, 1, 3, dtype=torch.bool)
    w = merge_weights(unit, torch.zeros(1, 3), groups)[0, 0]
    assert w[2] > w[0] and torch.isclose(w[0], w[1])


def test_the_adapter_reads_the_question():
    torch.manual_seed(0)
    adapter = COMIAdapter(HyCo2Config(hidden_size=24, num_soft_tokens=4, adapter_dim=16)).eval()
    ctx, m, qm = torch.randn(1, 20, 24), torch.ones(1, 20, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        a = adapter(EncodedBatch(ctx, m, torch.randn(1, 3, 24), qm))
        b = adapter(EncodedBatch(ctx, m, torch.randn(1, 3, 24), qm))
    assert a.shape == (1, 4, 24) and not torch.allclose(a, b)
