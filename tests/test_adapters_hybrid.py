import torch

from hyco2.adapters import HybridAdapter
from hyco2.adapters.hybrid import group_membership
from hyco2.config import HyCo2Config
from hyco2.encoder import EncodedBatch


def _cfg(**kw):
    base = dict(hidden_size=24, num_soft_tokens=4, adapter_dim=16, adapter_heads=2, qformer_layers=1)
    base.update(kw)
    return HyCo2Config(**base)


def test_groups_cover_valid_tokens_and_are_never_empty():
    mask = torch.tensor([[1] * 10 + [0] * 6, [1] * 3 + [0] * 13], dtype=torch.bool)
    member = group_membership(mask, 4)
    assert member.shape == (2, 4, 16)
    assert member.any(-1).all()  # no empty group, even with 3 tokens for 4 groups
    assert not member[:, :, 10:].any()  # padding belongs to no group
    assert member[0].any(0)[:10].all()  # every valid token is in some group


def test_shapes_and_initial_gate_is_half_half():
    torch.manual_seed(0)
    adapter = HybridAdapter(_cfg()).eval()
    ctx, q = torch.randn(2, 11, 24), torch.randn(2, 5, 24)
    soft, gate = adapter(EncodedBatch(ctx, torch.ones(2, 11, dtype=torch.bool), q,
                                      torch.ones(2, 5, dtype=torch.bool)), return_gate=True)
    assert soft.shape == (2, 4, 24)
    assert torch.allclose(gate, torch.full_like(gate, 0.5))
    assert torch.isfinite(soft).all()


def test_padding_does_not_change_the_soft_tokens():
    torch.manual_seed(0)
    adapter = HybridAdapter(_cfg()).eval()
    ctx, q = torch.randn(1, 7, 24), torch.randn(1, 3, 24)
    alone = adapter(EncodedBatch(ctx, torch.ones(1, 7, dtype=torch.bool), q, torch.ones(1, 3, dtype=torch.bool)))
    pad_ctx = torch.cat([ctx, torch.randn(1, 5, 24)], 1)
    pad_q = torch.cat([q, torch.randn(1, 2, 24)], 1)
    cmask = torch.tensor([[1] * 7 + [0] * 5], dtype=torch.bool)
    qmask = torch.tensor([[1] * 3 + [0] * 2], dtype=torch.bool)
    padded = adapter(EncodedBatch(pad_ctx, cmask, pad_q, qmask))
    assert torch.allclose(alone, padded, atol=1e-5)


def test_the_qformer_reads_the_question():
    torch.manual_seed(0)
    adapter = HybridAdapter(_cfg()).eval()
    ctx, m = torch.randn(1, 9, 24), torch.ones(1, 9, dtype=torch.bool)
    qm = torch.ones(1, 4, dtype=torch.bool)
    a = adapter(EncodedBatch(ctx, m, torch.randn(1, 4, 24), qm))
    b = adapter(EncodedBatch(ctx, m, torch.randn(1, 4, 24), qm))
    assert not torch.allclose(a, b)


def test_a_span_gives_longer_contexts_more_soft_tokens_within_the_bounds():
    fixed, grows = _cfg(), _cfg(soft_token_span=3, max_soft_tokens=6)
    assert [fixed.soft_token_count(n) for n in (1, 12, 500)] == [4, 4, 4]
    assert [grows.soft_token_count(n) for n in (1, 12, 13, 16, 500)] == [4, 4, 5, 6, 6]


def test_a_span_is_checked():
    import pytest

    with pytest.raises(ValueError, match="hybrid"):
        _cfg(soft_token_span=3, adapter="comi")
    with pytest.raises(ValueError, match="below"):
        _cfg(soft_token_span=3, max_soft_tokens=2)
    with pytest.raises(ValueError, match="positive"):
        _cfg(soft_token_span=-1)


def test_groups_per_example_partition_each_example_and_pad_the_rest():
    mask = torch.tensor([[1] * 12 + [0] * 4, [1] * 5 + [0] * 11], dtype=torch.bool)
    member = group_membership(mask, torch.tensor([6, 4]), 6)
    assert member.shape == (2, 6, 16)
    assert member.any(-1).all()  # finite everywhere: padded groups hold the first token
    assert torch.equal(member[0, :, :12].sum(0), torch.ones(12, dtype=torch.long))  # 6 groups split 12 tokens once each
    assert torch.equal(member[1, :4], group_membership(mask[1:], 4)[0])  # the real groups are the fixed-count ones
    assert not member[:, :, 12:].any()


def test_with_a_span_short_contexts_keep_their_soft_tokens_and_long_ones_get_more():
    """The upgrade is safe: a context at num_soft_tokens gives exactly the soft tokens it gave without a span,
    alone or beside a longer one (the longer one's extra queries are masked out of its self-attention)."""
    torch.manual_seed(0)
    cfg = _cfg(soft_token_span=3, max_soft_tokens=7)
    adapter = HybridAdapter(cfg).eval()
    ctx, q = torch.randn(2, 20, 24), torch.randn(2, 5, 24)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :20], mask[1, :9] = True, True  # 20 tokens → 7 soft tokens; 9 → 4
    qm = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        soft = adapter(EncodedBatch(ctx, mask, q, qm))
        cfg.soft_token_span = 0
        fixed = adapter(EncodedBatch(ctx[1:], mask[1:], q[1:], qm[1:]))
    assert soft.shape == (2, 7, 24) and torch.isfinite(soft).all()
    assert torch.allclose(soft[1, :4], fixed[0], atol=1e-5)
    assert not torch.allclose(soft[0, :4], soft[0, 3:], atol=1e-3)  # the long row's tokens are not copies


def test_resampled_queries_keep_the_trained_ones_at_the_trained_count():
    adapter = HybridAdapter(_cfg())
    base = adapter.qformer.queries + adapter.qformer.positions
    x, real = adapter.qformer.resampled(torch.tensor([4, 7]))
    assert torch.allclose(x[0, :4], base) and not x[0, 4:].any()
    assert torch.allclose(x[1, 0], base[0]) and torch.allclose(x[1, 6], base[3])  # the ends stay fixed
    assert real.tolist() == [[True] * 4 + [False] * 3, [True] * 7]
