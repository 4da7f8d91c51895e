"""HyCo2's hybrid adapter (global view): an MLP expert and a Q-Former expert, merged by a learned gate
into ``k`` soft tokens in the backbone's embedding space.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HyCo2Config

if TYPE_CHECKING:
    from ..encoder import EncodedBatch


def group_membership(mask: torch.Tensor, k: int | torch.Tensor, k_max: int | None = None) -> torch.Tensor:
    """(B, k_max, L) bool: which valid tokens belong to each of ``k`` contiguous groups.

    Groups split each example's *valid* length evenly, so padding never dilutes a group; with fewer
    tokens than groups, tokens are shared so that no group is empty (an empty group gives NaN).
    ``k`` may differ per example ((B,) tensor; ``k_max`` = its largest, read from the device when not
    given): an example's groups past its own ``k`` hold its first token only, so they stay finite, and
    callers drop them. A whole-number ``k`` never waits for the device.
    """
    B, L = mask.shape
    if isinstance(k, int):
        kk, k_max = torch.full((B,), k, device=mask.device), k
    else:
        kk, k_max = k, int(k.max()) if k_max is None else k_max
    n = mask.sum(-1).clamp(min=1)  # (B,)
    pos = torch.arange(L, device=mask.device)
    j = torch.arange(k_max, device=mask.device)
    group_of_token = (pos[None, :] * kk[:, None]) // n[:, None]  # (B, L)
    by_token = group_of_token[:, None, :] == j[None, :, None]  # (B, k_max, L)
    anchor = (j[None, :] * n[:, None]) // kk[:, None]  # (B, k_max): one token guaranteed per group
    anchor = torch.where(j[None, :] < kk[:, None], anchor, torch.zeros_like(anchor))
    by_anchor = pos[None, None, :] == anchor[:, :, None]
    return (by_token | by_anchor) & mask[:, None, :]


class MLPExpert(nn.Module):
    """Pool k groups of the context, let each pooled vector attend over its own group, then an MLP."""

    def __init__(self, dim: int, heads: int, k: int, ffn_mult: int = 2):
        super().__init__()
        self.k, self.heads = k, heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.o = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))

    def forward(self, ctx: torch.Tensor, ctx_mask: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, k, D); with ``counts`` (B,), each example's own number of groups, padded to the largest."""
        B, L, D = ctx.shape
        member = group_membership(ctx_mask, self.k if counts is None else counts)  # (B, k, L)
        k = member.shape[1]
        weights = member.float() / member.float().sum(-1, keepdim=True)
        pooled = weights @ ctx  # (B, k, D)
        h = self.heads
        q = self.q(pooled).view(B, k, h, D // h).transpose(1, 2)
        key, val = self.kv(ctx).view(B, L, 2, h, D // h).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, key, val, attn_mask=member[:, None])
        att = self.o(att.transpose(1, 2).reshape(B, k, D))
        x = pooled + att
        return x + self.mlp(self.norm(x))


class QFormerLayer(nn.Module):
    """Queries: self-attention, then cross-attention to the question, then to the context, then FFN."""

    def __init__(self, dim: int, heads: int, ffn_mult: int = 2):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.q_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.c_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(4)])
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))

    def forward(self, x, question, q_mask, ctx, c_mask, x_mask=None):
        h = self.norms[0](x)
        pad = None if x_mask is None else ~x_mask
        x = x + self.self_attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        h = self.norms[1](x)
        x = x + self.q_attn(h, question, question, key_padding_mask=~q_mask, need_weights=False)[0]
        h = self.norms[2](x)
        x = x + self.c_attn(h, ctx, ctx, key_padding_mask=~c_mask, need_weights=False)[0]
        return x + self.ffn(self.norms[3](x))


class QFormerExpert(nn.Module):
    def __init__(self, dim: int, heads: int, k: int, layers: int, ffn_mult: int = 2):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(k, dim) * 0.02)
        self.positions = nn.Parameter(torch.randn(k, dim) * 0.02)
        self.layers = nn.ModuleList([QFormerLayer(dim, heads, ffn_mult) for _ in range(layers)])

    def forward(self, question, q_mask, ctx, c_mask, counts: torch.Tensor | None = None):
        """(B, k, D); with ``counts`` (B,), each example's own number of queries, padded to the largest."""
        if counts is None:
            x, x_mask = (self.queries + self.positions).expand(ctx.shape[0], -1, -1), None
        else:
            x, x_mask = self.resampled(counts)
        for layer in self.layers:
            x = layer(x, question, q_mask, ctx, c_mask, x_mask)
        return x

    def resampled(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's ``counts[b]`` queries, read off the learned ones as a curve (linear interpolation
        with the ends fixed, so the trained count gives the trained queries exactly), padded to the largest
        count; and which are real (B, k_max)."""
        base = (self.queries + self.positions).T[None]  # (1, D, k)
        k_max = int(counts.max())
        out = base.new_zeros((counts.shape[0], k_max, base.shape[1]))
        for n in counts.unique().tolist():
            curve = base if n == base.shape[-1] else F.interpolate(base, size=n, mode="linear", align_corners=True)
            out[counts == n, :n] = curve[0].T.to(out.dtype)
        return out, torch.arange(k_max, device=counts.device)[None, :] < counts[:, None]


class HybridAdapter(nn.Module):
    """Backbone states → ``k`` soft tokens (B, k, hidden_size)."""

    name = "hybrid"
    needs_layer_states = False  # the last layer's question-aware states are enough

    def __init__(self, config: HyCo2Config):
        super().__init__()
        D, d, k = config.hidden_size, config.adapter_dim, config.num_soft_tokens
        self.in_proj = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, d))
        self.mlp_expert = MLPExpert(d, config.adapter_heads, k, config.ffn_mult)
        self.qformer = QFormerExpert(d, config.adapter_heads, k, config.qformer_layers, config.ffn_mult)
        self.gate = nn.Linear(2 * d, 2)
        nn.init.zeros_(self.gate.weight)  # exactly 0.5 / 0.5 at the start, as the authors begin
        nn.init.zeros_(self.gate.bias)
        self.out_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.out_proj = nn.Linear(d, D)
        nn.init.normal_(self.out_proj.weight, std=d**-0.5)
        nn.init.zeros_(self.out_proj.bias)
        self.scale = nn.Parameter(torch.tensor(float(config.embedding_rms)))
        self.config = config

    def forward(self, encoded: "EncodedBatch", return_gate: bool = False):
        """Soft tokens (B, k, D): ``k`` = ``num_soft_tokens``, or with ``soft_token_span`` each example's
        own count (:meth:`HyCo2Config.soft_token_count` of its length) padded to the largest: callers keep
        the first ``soft_token_count`` of each row."""
        ctx, ctx_mask = encoded.context_states, encoded.context_mask
        question, q_mask = encoded.question_states, encoded.question_mask
        counts = None
        if self.config.soft_token_span:
            counts = torch.tensor([self.config.soft_token_count(n) for n in ctx_mask.sum(-1).tolist()],
                                  device=ctx_mask.device)
        c = self.in_proj(ctx)
        q = self.in_proj(question)
        m = self.mlp_expert(c, ctx_mask, counts)
        f = self.qformer(q, q_mask, c, ctx_mask, counts)
        gate = torch.softmax(self.gate(torch.cat([m, f], dim=-1)), dim=-1)  # (B, k, 2)
        mixed = gate[..., :1] * m + gate[..., 1:] * f
        soft = self.out_proj(self.out_norm(mixed)) * self.scale
        return (soft, gate) if return_gate else soft
