"""The retention classifier (HyCo2's local view): a keep probability for every context token, and the
selector that turns those probabilities into kept whole words."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .config import HyCo2Config
from .errors import InvalidSettingError
from .selection import (Selection, check_phrase_strength, check_spans, pull_neighbours, select_by_budget,
                        select_words_by_threshold)

if TYPE_CHECKING:
    from .encoder import ContextEncoder, TokenizedContext
    from .modeling import HyCo2Model


class RetentionClassifier(nn.Module):
    """Keep-probability logit for every context token, from its backbone hidden state.

    The plain head (an MLP on each token's state) learned which tokens look important in general —
    measured: on unseen SQuAD paragraphs it kept nearly the same names for every question. With
    ``config.classifier_question`` it adds a question match: the cosine between a projection of each
    context token and projections of the question's tokens, its best match over the question,
    times a learned scale that starts at 0 (so an upgraded checkpoint begins exactly where it was).

    The backbone is causal, so a token's state has seen only the text before it: in "1850, when the
    city was founded" the state of "1850" knows nothing of the founding. With
    ``config.classifier_context`` layers of bidirectional attention over [question; context] (at the
    classifier's width) every token's score also reads the text after it; their output layer starts at
    zero, so an upgraded checkpoint again begins where it was.
    """

    def __init__(self, config: HyCo2Config):
        super().__init__()
        D, c = config.hidden_size, config.classifier_dim
        self.net = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, c), nn.GELU(), nn.Linear(c, 1))
        self.question_match = config.classifier_question
        if self.question_match:
            self.match_norm = nn.LayerNorm(D)
            self.context_proj = nn.Linear(D, c, bias=False)
            self.question_proj = nn.Linear(D, c, bias=False)
            self.match_scale = nn.Parameter(torch.zeros(()))
        self.context_layers = config.classifier_context
        if self.context_layers:
            self.context_in = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, c))
            self.context_blocks = nn.ModuleList(ContextBlock(c) for _ in range(self.context_layers))
            self.context_out = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, 1))
            nn.init.zeros_(self.context_out[1].weight)
            nn.init.zeros_(self.context_out[1].bias)

    def forward(self, states: torch.Tensor, question_states: torch.Tensor | None = None,
                question_mask: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.net(states).squeeze(-1)  # (B, L)
        if (self.question_match or self.context_layers) and (question_states is None or question_mask is None):
            raise ValueError("this classifier reads the question: pass its states and mask")
        if self.context_layers:
            if context_mask is None:
                raise ValueError("this classifier attends over the context: pass its mask")
            h = self.context_in(torch.cat([question_states, states], 1))
            real = torch.cat([question_mask, context_mask], 1)
            for block in self.context_blocks:
                h = block(h, real)
            logits = logits + self.context_out(h[:, question_states.shape[1]:]).squeeze(-1)
        if self.question_match:
            k = F.normalize(self.context_proj(self.match_norm(states)), dim=-1)
            q = F.normalize(self.question_proj(self.match_norm(question_states)), dim=-1)
            sim = torch.einsum("blc,bqc->blq", k, q).masked_fill(~question_mask[:, None, :], -1.0)
            logits = logits + self.match_scale * sim.amax(-1)
        return logits


class ContextBlock(nn.Module):
    """One pre-LN transformer layer without a causal mask: self-attention over the real tokens, then an FFN."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.attn_norm, self.ffn_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=real[:, None, None, :])
        x = x + self.proj(a.transpose(1, 2).reshape(B, L, C))
        return x + self.ffn(self.ffn_norm(x))


def add_classifier_context(model: nn.Module, layers: int) -> None:
    """Give a trained checkpoint's classifier ``layers`` bidirectional context layers (output zero: the same
    outputs until trained). A classifier that has them already keeps its own."""
    config = model.config
    if layers <= config.classifier_context:
        return
    if config.classifier_context:
        raise ValueError(f"this classifier has {config.classifier_context} context layer(s); "
                         f"it cannot grow to {layers}")
    config.classifier_context = layers
    _rebuild_classifier(model, new_parts=("context_in.", "context_blocks.", "context_out."))


def add_question_match(model: nn.Module) -> None:
    """Give a trained checkpoint's classifier the question match (scale 0: same outputs until trained)."""
    config = model.config
    if config.classifier_question:
        return
    config.classifier_question = True
    _rebuild_classifier(model, new_parts=("match_", "context_proj.", "question_proj."))


def _rebuild_classifier(model: nn.Module, new_parts: tuple[str, ...]) -> None:
    """A new head from the (upgraded) config, carrying every trained weight of the old one over; only the
    parameters named by ``new_parts`` start fresh, so any other part the old head had is kept as trained."""
    head = RetentionClassifier(model.config).to(next(model.parameters()).device)
    missing, unexpected = head.load_state_dict(model.classifier.state_dict(), strict=False)
    if unexpected or not all(k.startswith(new_parts) for k in missing):
        raise RuntimeError(f"classifier upgrade: missing {missing}, unexpected {unexpected}")
    model.classifier = head


class ClassifierSelector:
    """HyCo2's trained retention classifier behind the one :class:`~hyco2.selection.Selector` interface,
    with a budget (``n_keep``) or a ``threshold``; ``phrases`` lets kept words pull in their neighbours;
    ``spans`` keeps a budget as at most that many stretches of text (0: whole words anywhere; None: one
    stretch per :data:`~hyco2.selection.SPAN_TOKENS` kept tokens).

    The compressor passes the keep probabilities of the encoder pass that also made the soft tokens
    (``keep_probabilities``), so selecting costs no second forward; without them it runs that pass.
    """

    name = "classifier"

    def __init__(self, model: "HyCo2Model", threshold: float | None = None, phrases: float = 0.0,
                 spans: int | None = 0):
        check_phrase_strength(phrases)
        if spans is not None:
            check_spans(spans)
        self.model, self.threshold, self.phrases, self.spans = model, threshold, phrases, spans

    @torch.no_grad()
    def select(self, encoder: "ContextEncoder", ctx: "TokenizedContext", question: str | None,
               n_keep: int | None, seed: int = 0,
               keep_probabilities: Sequence[float] | None = None) -> Selection:
        passes = 0
        if keep_probabilities is None:
            logits = self.model(encoder.encode([ctx], [question])).keep_logits
            keep_probabilities = torch.sigmoid(logits[0, : len(ctx)]).float().tolist()
            passes = 1
        if len(keep_probabilities) != len(ctx):
            raise ValueError(f"{len(keep_probabilities)} keep probabilities for a context of {len(ctx)} tokens")
        if self.threshold is not None:
            scores = pull_neighbours(keep_probabilities, ctx.words, self.phrases)
            kept = select_words_by_threshold(scores, ctx.words, self.threshold)
        elif n_keep is None:
            raise InvalidSettingError("The classifier needs a budget (n_keep) or a threshold.")
        else:
            kept = select_by_budget(keep_probabilities, ctx.words, n_keep, self.phrases, self.spans)
        return Selection(kept, list(keep_probabilities), passes)
