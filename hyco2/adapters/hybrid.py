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


def group_membership(mask: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k, L) bool: which valid tokens belong to each of ``k`` contiguous groups.

    Groups split each example's *valid* length evenly, so padding never dilutes a group; with fewer
    tokens than groups, tokens are shared so that no group is empty (an empty group gives NaN).
    """
    n = mask.sum(-1).clamp(min=1)  # (B,)
    L = mask.shape[-1]
    pos = torch.arange(L, device=mask.device)
    j = torch.arange(k, device=mask.device)
    group_of_token = (pos[None, :] * k) // n[:, None]  # (B, L)
    by_token = group_of_token[:, None, :] == j[None, :, None]  # (B, k, L)
    anchor = (j[None, :] * n[:, None]) // k  # (B, k): one token guaranteed per group
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

    def forward(self, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        B, L, D = ctx.shape
        member = group_membership(ctx_mask, self.k)  # (B, k, L)
        weights = member.float() / member.float().sum(-1, keepdim=True)
        pooled = weights @ ctx  # (B, k, D)
        h = self.heads
        q = self.q(pooled).view(B, self.k, h, D // h).transpose(1, 2)
        key, val = self.kv(ctx).view(B, L, 2, h, D // h).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, key, val, attn_mask=member[:, None])
        att = self.o(att.transpose(1, 2).reshape(B, self.k, D))
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

    def forward(self, x, question, q_mask, ctx, c_mask):
        h = self.norms[0](x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
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

    def forward(self, question, q_mask, ctx, c_mask):
        x = (self.queries + self.positions).expand(ctx.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, question, q_mask, ctx, c_mask)
        return x


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

    def forward(self, encoded: "EncodedBatch", return_gate: bool = False):
        ctx, ctx_mask = encoded.context_states, encoded.context_mask
        question, q_mask = encoded.question_states, encoded.question_mask
        c = self.in_proj(ctx)
        q = self.in_proj(question)
        m = self.mlp_expert(c, ctx_mask)
        f = self.qformer(q, q_mask, c, ctx_mask)
        gate = torch.softmax(self.gate(torch.cat([m, f], dim=-1)), dim=-1)  # (B, k, 2)
        mixed = gate[..., :1] * m + gate[..., 1:] * f
        soft = self.out_proj(self.out_norm(mixed)) * self.scale
        return (soft, gate) if return_gate else soft
