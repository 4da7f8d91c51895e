"""COMI's coarse-to-fine Marginal Information Gain (arXiv 2602.01719) as a soft-token adapter.

Coarse: the context starts as ``k`` equal groups; each group's MIG is its relevance to the question (its
best token's cosine to the mean question state) minus its redundancy (that token's best cosine to the
other groups' best tokens). Group sizes are then re-allocated ∝ softmax(−MIG): a relevant, unrepeated
region gets a *smaller* group, i.e. is compressed less. Fine: inside each group, tokens are merged into the
group's slot with softmax weights of their own MIG (relevance − the best cosine to another token of the
group), so a slot is dominated by what is relevant and not said twice. A small trained projector maps the
``k`` merged states into the decoder's input space.

The grouping and the merge have no parameters (α = β = 1, as the authors set them); only the projector
trains. Where this departs from the paper (frozen question-aware states of the backbone instead of a
fine-tuned 8-layer encoder; a projector instead of a trained decoder block; no LoRA on the decoder) is in
docs/DESIGN.md. The hard view of the same MIG is :mod:`hyco2.baselines.mig`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HyCo2Config
from ..encoder import question_vector
from .hybrid import group_membership

if TYPE_CHECKING:
    from ..encoder import EncodedBatch

ALPHA = 1.0  # weight of relevance in MIG
BETA = 1.0  # weight of redundancy in MIG
_NEG = -1e4


def largest_remainder(shares: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Integers (B, k) ≥ 0 summing to ``total`` (B,), closest to ``shares`` (B, k, rows sum to 1) × total."""
    raw = shares * total[:, None].to(shares.dtype)
    base = raw.floor()
    left = (total - base.sum(-1)).long()  # (B,) what rounding down left over, < k
    order = torch.argsort(raw - base, dim=-1, descending=True)
    bonus = (torch.arange(shares.shape[-1], device=shares.device)[None, :] < left[:, None]).to(base.dtype)
    return (base + torch.zeros_like(base).scatter(1, order, bonus)).long()


def mig_groups(unit: torch.Tensor, relevance: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """COMI's coarse stage: (B, k, L) bool, ``k`` contiguous groups whose sizes follow softmax(−MIG).

    Every group keeps at least one token; with fewer tokens than groups the equal split (tokens shared,
    :func:`group_membership`) stands."""
    init = group_membership(mask, k)  # (B, k, L)
    rel = relevance[:, None, :].masked_fill(~init, _NEG)
    best, rep = rel.max(-1)  # (B, k): each group's relevance and its representative token
    reps = torch.gather(unit, 1, rep[..., None].expand(-1, -1, unit.shape[-1]))  # (B, k, D)
    sim = reps @ reps.transpose(1, 2)
    eye = torch.eye(k, dtype=torch.bool, device=unit.device)
    redundancy = sim.masked_fill(eye, _NEG).max(-1).values if k > 1 else torch.zeros_like(best)
    mig = ALPHA * best - BETA * redundancy
    n = mask.sum(-1)
    extra = (n - k).clamp(min=0)
    sizes = 1 + largest_remainder(torch.softmax(-mig.float(), -1), extra)  # (B, k), sum n when n ≥ k
    ends = sizes.cumsum(-1)
    pos = torch.arange(mask.shape[-1], device=mask.device)[None, :].expand(mask.shape[0], -1).contiguous()
    group_of_token = torch.searchsorted(ends.contiguous(), pos, right=True)  # (B, L)
    regrouped = (group_of_token[:, None, :] == torch.arange(k, device=mask.device)[None, :, None]) & mask[:, None, :]
    return torch.where((n >= k)[:, None, None], regrouped, init)


def merge_weights(unit: torch.Tensor, relevance: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """COMI's fine stage: (B, k, L) softmax weights inside each group of α·relevance − β·(best cosine to
    another token of the same group); rows sum to 1 over the group's tokens."""
    same = (groups.transpose(1, 2).float() @ groups.float()) > 0  # (B, L, L): i and j share a group
    same &= ~torch.eye(unit.shape[1], dtype=torch.bool, device=unit.device)[None]
    sim = (unit @ unit.transpose(1, 2)).masked_fill(~same, _NEG).max(-1).values
    redundancy = torch.where(sim > _NEG / 2, sim, torch.zeros_like(sim))  # a lone token repeats nothing
    mig = ALPHA * relevance - BETA * redundancy  # (B, L)
    return torch.softmax(mig[:, None, :].masked_fill(~groups, _NEG), dim=-1)


class COMIAdapter(nn.Module):
    """Last-layer states + question → ``k`` soft tokens (B, k, hidden_size) by MIG grouping and merging."""

    name = "comi"
    needs_layer_states = False

    def __init__(self, config: HyCo2Config):
        super().__init__()
        D, d = config.hidden_size, config.adapter_dim
        self.k = config.num_soft_tokens
        self.projector = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 2 * d), nn.GELU(), nn.Linear(2 * d, D))
        self.out_norm = nn.LayerNorm(D, elementwise_affine=False)
        self.scale = nn.Parameter(torch.tensor(float(config.embedding_rms)))

    @torch.no_grad()
    def fusion_weights(self, encoded: "EncodedBatch") -> torch.Tensor:
        """(B, k, L) how much each context token contributes to each slot (no parameters: no gradient)."""
        ctx, mask = encoded.context_states.float(), encoded.context_mask
        unit = F.normalize(ctx, dim=-1) * mask[..., None]
        relevance = unit @ question_vector(encoded.question_states.float(), encoded.question_mask)[..., None]
        relevance = relevance.squeeze(-1)
        return merge_weights(unit, relevance, mig_groups(unit, relevance, mask, self.k))

    def forward(self, encoded: "EncodedBatch") -> torch.Tensor:
        weights = self.fusion_weights(encoded)
        memories = weights @ encoded.context_states.float()  # (B, k, D)
        return self.out_norm(self.projector(memories)) * self.scale
