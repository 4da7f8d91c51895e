"""ComprExIT's adapter: the transport plan meets its marginals, the depth gate reads every layer, and the
slots move when the plan does."""
import torch

from hyco2.adapters.comprexit import ComprExITAdapter, sinkhorn_log
from hyco2.config import HyCo2Config
from hyco2.encoder import EncodedBatch


def _adapter(**kw) -> ComprExITAdapter:
    cfg = dict(hidden_size=24, num_soft_tokens=4, adapter_dim=16, layer_states=5)
    cfg.update(kw)
    torch.manual_seed(0)
    return ComprExITAdapter(HyCo2Config(**cfg)).eval()


def _batch(lengths, L=13, layers=5, D=24):
    mask = torch.zeros(len(lengths), L, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    stack = torch.randn(len(lengths), L, layers, D) * mask[..., None, None]
    return EncodedBatch(stack[:, :, -1], mask, torch.randn(len(lengths), 3, D), torch.ones(len(lengths), 3,
                        dtype=torch.bool), context_layers=stack)


def test_sinkhorn_plan_rows_and_columns_sum_to_their_marginals():
    torch.manual_seed(0)
    cost = torch.rand(3, 40, 8) * 2  # cosine costs lie in [0, 2]
    source = torch.softmax(torch.randn(3, 40), -1)
    source[2, 30:] = 0  # padding: no mass
    source[2] /= source[2].sum()
    target = torch.full((3, 8), 1 / 8)
    plan = sinkhorn_log(cost, source, target, eps=0.1, iters=30)
    assert torch.allclose(plan.sum(2), source, atol=1e-3)
    assert torch.allclose(plan.sum(1), target, atol=1e-3)
    assert (plan[2, 30:] == 0).all()  # padding sends nothing


def test_sinkhorn_prefers_cheap_pairs():
    cost = torch.tensor([[[0.0, 2.0], [2.0, 0.0]]])
    plan = sinkhorn_log(cost, torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.5]]), eps=0.1, iters=30)
    assert plan[0, 0, 0] > 0.49 and plan[0, 1, 1] > 0.49


def test_the_adapters_plan_meets_its_marginals_and_ignores_padding():
    adapter = _adapter()
    enc = _batch([13, 6])
    with torch.no_grad():
        anchor = adapter.depth(enc.context_layers)
        plan = adapter.transport(anchor, enc.context_mask)
        source, target = adapter.marginals(anchor, enc.context_mask)
    assert plan.shape == (2, 13, 4)
    assert torch.allclose(plan.sum(2), source, atol=1e-3)
    assert torch.allclose(plan.sum(1), target, atol=1e-3)
    assert (plan[1, 6:] == 0).all() and (source[1, 6:] == 0).all()
    assert torch.allclose(source.sum(-1), torch.ones(2), atol=1e-5)


def test_the_depth_gate_weighs_every_layer_and_starts_near_even():
    adapter = _adapter()
    enc = _batch([9])
    with torch.no_grad():
        _, weights = adapter.depth(enc.context_layers, return_weights=True)
    assert weights.shape == (1, 13, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 13), atol=1e-5)
    assert (weights[0, :9] > 0.05).all()  # small random init: no layer is shut out at the start


def test_a_lower_layer_changes_the_soft_tokens():
    adapter = _adapter()
    enc = _batch([10])
    with torch.no_grad():
        a = adapter(enc)
        enc.context_layers[:, :, 1] += torch.randn_like(enc.context_layers[:, :, 1])
        b = adapter(enc)
    assert not torch.allclose(a, b)  # unlike the last-layer adapters, it reads the whole stack


def test_about_one_percent_extra_parameters_at_the_default_backbone_width():
    n = sum(p.numel() for p in ComprExITAdapter(HyCo2Config(hidden_size=576, adapter_dim=256,
                                                            layer_states=31)).parameters())
    assert 1.0e6 < n < 2.5e6  # ~1.3% of a 135M backbone, as the authors count theirs
