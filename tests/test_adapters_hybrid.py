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
