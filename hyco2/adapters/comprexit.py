"""ComprExIT's explicit information transmission (arXiv 2602.03784) as a soft-token adapter.

Two transmissions over the *frozen* backbone's hidden states of every layer:

1. depth-wise: each token's anchor is a mixture of its own states across layers, weighted by a learned,
   per-token gate (a query built from the layer states scores each layer's key). Reading all layers
   counters the progressive overwriting of a token's information as it rises through the stack.
2. width-wise: a transport plan, optimised globally by log-domain Sinkhorn, moves the anchors into ``k``
   slots. Each token brings a learned share of mass (its source marginal) and every slot takes an equal
   share, so capacity is allocated across tokens *in coordination* rather than by each slot attending on
   its own. A slot is the plan-weighted mean of its tokens' (projected) anchors.

A small projector maps the slots into the decoder's input space. Where this follows the authors' code
and where it departs (question-aware states; ``k`` slots over the whole chunk instead of 32 per 128-token
window; our output norm and scale) is in docs/DESIGN.md.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HyCo2Config
from .hybrid import group_membership

if TYPE_CHECKING:
    from ..encoder import EncodedBatch

#: the authors' temperature on the depth gate's scaled dot product
GATE_TEMPERATURE = 0.7
#: share of each token's source mass that is uniform (no token is starved of transport entirely)
UNIFORM_SHARE = 0.05
_LOG_ZERO = -1e4  # log of a zero marginal: exp() gives exactly 0 in float32, and no inf reaches autograd


def sinkhorn_log(cost: torch.Tensor, source: torch.Tensor, target: torch.Tensor, eps: float,
                 iters: int) -> torch.Tensor:
    """Entropic optimal transport in the log domain (stable for small ``eps``), unrolled so that
    gradients flow through every iteration.

    ``cost`` (B, n, k), ``source`` (B, n) and ``target`` (B, k) marginals, each row summing to 1 (zeros
    allowed in ``source``: padding). Returns the plan P (B, n, k), float32: rows sum to ``source``, columns
    to ``target`` (exactly after the last column update, to the convergence of ``iters`` for rows)."""
    cost, source, target = cost.float(), source.float(), target.float()
    log_k = -cost / eps
    log_a = torch.where(source > 0, source.clamp_min(1e-30).log(), torch.full_like(source, _LOG_ZERO))
    log_b = target.clamp_min(1e-30).log()
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iters):
        f = log_a - torch.logsumexp(log_k + g[:, None, :], dim=2)
        g = log_b - torch.logsumexp(log_k + f[:, :, None], dim=1)
    return torch.exp(log_k + f[:, :, None] + g[:, None, :])


class DepthGate(nn.Module):
    """Per-token anchors: a softmax over the token's layer states, scored by a query built from them.

    Computed without materialising per-layer keys or values: q·(W_k h_l + e_l) = (W_kᵀ q)·h_l + q·e_l (the
    key bias adds the same to every layer and cancels in the softmax), and Σ_l w_l (W_v h_l + b) =
    W_v (Σ_l w_l h_l) + b since the weights sum to 1. Same result, a (B, L, layers) score tensor instead of
    (B, L, layers, D) keys and values."""

    def __init__(self, hidden: int, layers: int, dim: int):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(layers))  # the query starts as the plain layer mean
        self.q = nn.Linear(hidden, dim)
        self.k = nn.Linear(hidden, dim)
        self.layer_embedding = nn.Parameter(torch.randn(layers, dim) * 0.02)
        self.v = nn.Linear(hidden, hidden)
        self.dim = dim

    def forward(self, layer_states: torch.Tensor, return_weights: bool = False):
        """``layer_states`` (B, L, layers, D) → anchors (B, L, D) [and the gate's weights (B, L, layers)]."""
        H = _compute_dtype(layer_states, self.q.weight)
        query = torch.einsum("blnd,n->bld", H, torch.softmax(self.layer_logits, 0).to(H.dtype))
        q = self.q(query)  # (B, L, d)
        qk = q @ self.k.weight.to(q.dtype)  # (B, L, D) = W_kᵀ q
        scores = torch.einsum("bld,blnd->bln", qk, H.to(qk.dtype)) + q @ self.layer_embedding.to(q.dtype).T
        weights = torch.softmax(scores.float() / math.sqrt(self.dim) / GATE_TEMPERATURE, dim=-1)
        anchor = self.v(torch.einsum("bln,blnd->bld", weights.to(H.dtype), H))
        return (anchor, weights) if return_weights else anchor


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x`` as it is under autocast (which casts per op: no full-size copy), else in the weight's dtype
    (the encoder keeps layer states in the backbone's dtype, bf16 on a GPU)."""
    try:
        active = torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4 takes no device type
        active = torch.is_autocast_enabled()
    return x if active else x.to(weight.dtype)


class ComprExITAdapter(nn.Module):
    """Every layer's states → ``k`` soft tokens (B, k, hidden_size) by depth gate + Sinkhorn transport."""

    name = "comprexit"
    needs_layer_states = True  # the encoder keeps the embeddings' and every layer's states

    def __init__(self, config: HyCo2Config):
        super().__init__()
        D, d, k = config.hidden_size, config.adapter_dim, config.num_soft_tokens
        if config.layer_states < 2:
            raise ValueError("the comprexit adapter needs config.layer_states (the backbone's layers + 1)")
        self.k, self.eps, self.iters = k, config.sinkhorn_eps, config.sinkhorn_iters
        self.depth = DepthGate(D, config.layer_states, d)
        self.cost_norm = nn.LayerNorm(D)
        self.cost_proj = nn.Linear(D, d)  # anchors and slot prototypes meet in one d-dim space
        self.mass_norm = nn.LayerNorm(D)
        self.mass = nn.Linear(D, 1)
        nn.init.zeros_(self.mass.weight)  # every token starts with the same mass
        nn.init.zeros_(self.mass.bias)
        self.value_norm = nn.LayerNorm(D)
        self.value = nn.Linear(D, D)
        self.projector = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D))
        self.out_norm = nn.LayerNorm(D, elementwise_affine=False)
        self.scale = nn.Parameter(torch.tensor(float(config.embedding_rms)))

    def marginals(self, anchor: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Source (B, L): learned token masses mixed with uniform, 0 on padding; target (B, k): uniform."""
        logits = self.mass(self.mass_norm(anchor)).squeeze(-1).float().masked_fill(~mask, -1e4)
        n = mask.sum(-1, keepdim=True).clamp(min=1)
        source = ((1 - UNIFORM_SHARE) * torch.softmax(logits, -1) + UNIFORM_SHARE * mask / n) * mask
        target = torch.full((anchor.shape[0], self.k), 1.0 / self.k, device=anchor.device)
        return source, target

    def transport(self, anchor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The plan (B, L, k) that moves the anchors into the slots."""
        member = group_membership(mask, self.k).to(anchor.dtype)  # k contiguous segments, never empty
        prototypes = (member / member.sum(-1, keepdim=True)) @ anchor  # (B, k, D): they define the cost only
        a = F.normalize(self.cost_proj(self.cost_norm(anchor)).float(), dim=-1)
        p = F.normalize(self.cost_proj(self.cost_norm(prototypes)).float(), dim=-1)
        cost = 1.0 - a @ p.transpose(1, 2)
        source, target = self.marginals(anchor, mask)
        with torch.autocast(anchor.device.type, enabled=False):
            return sinkhorn_log(cost, source, target, self.eps, self.iters)

    def forward(self, encoded: "EncodedBatch") -> torch.Tensor:
        if encoded.context_layers is None:
            raise ValueError("the comprexit adapter reads every layer's states: encode with layer_states=True")
        mask = encoded.context_mask
        anchor = self.depth(encoded.context_layers)  # (B, L, D)
        plan = self.transport(anchor, mask)  # (B, L, k), columns sum to 1/k
        values = self.value(self.value_norm(anchor)).float()
        slots = plan.transpose(1, 2) @ values * self.k  # Σ_i P_ij v_i / b_j
        return self.out_norm(self.projector(slots.to(values.dtype))) * self.scale
