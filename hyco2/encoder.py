"""The context encoder: one forward of the frozen backbone over ``question prefix + context``.

Putting the question first makes every context hidden state question-aware (the backbone is
causal), for both the soft and the hard view, at no extra cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .backbone import Backbone
from .forward import right_padded_forward
from .transfer import to_device
from .text import GENERIC_INSTRUCTION  # noqa: F401 - hyco2.encoder.GENERIC_INSTRUCTION

#: Used when the caller gives no question: a generic, documented instruction.


@dataclass
class TokenizedContext:
    """A context as backbone tokens, with each token's character span and word index."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    words: list[int]

    def __len__(self) -> int:
        return len(self.ids)


def word_ids_from_offsets(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Group tokens into words: a word starts at whitespace, after a gap, or after a token that ends
    in whitespace; a whitespace-only token (" " before digits, say) belongs to the word it precedes."""
    words: list[int] = []
    current, prev = -1, None
    for start, end in offsets:
        piece = text[start:end]
        if prev is None or start > prev[1] or piece[:1].isspace():
            current += 1
        else:
            before = text[prev[0]:prev[1]]
            if before[-1:].isspace() and before.strip():
                current += 1
        words.append(current)
        prev = (start, end)
    return words


def span_positions(ctx: TokenizedContext, spans: list[tuple[int, int]]) -> list[int]:
    """Positions of the tokens that overlap any character span (answer spans → token labels)."""
    return [i for i, (a, b) in enumerate(ctx.offsets) if any(a < e and b > s for s, e in spans)]


def tokenize_context(backbone: Backbone, text: str) -> TokenizedContext:
    return tokenize_contexts(backbone, [text])[0]


def tokenize_contexts(backbone: Backbone, texts: list[str], max_tokens: int | None = None,
                      per_call: int = 1024) -> list[TokenizedContext]:
    """Many texts in one call of the fast tokenizer per ``per_call`` texts (its batch path: far less Python
    per text than one call each), optionally truncated to ``max_tokens``."""
    out: list[TokenizedContext] = []
    for start in range(0, len(texts), per_call):
        part = texts[start:start + per_call]
        enc = backbone.tokenizer(part, add_special_tokens=False, return_offsets_mapping=True)
        for text, ids, offs in zip(part, enc["input_ids"], enc["offset_mapping"]):
            offsets = offs[:max_tokens]  # (start, end) tuples, as the fast tokenizer gives them
            out.append(TokenizedContext(text, ids[:max_tokens], offsets, word_ids_from_offsets(text, offsets)))
    return out


@dataclass
class EncodedBatch:
    """Hidden states of a batch, split into the question part and the context part (right-padded)."""

    context_states: torch.Tensor  # (B, Lc, D) float32
    context_mask: torch.Tensor  # (B, Lc) bool, True = real token
    question_states: torch.Tensor  # (B, Lq, D) float32
    question_mask: torch.Tensor  # (B, Lq) bool
    #: (B, Lc, layers + 1, D) in the backbone's dtype: the embeddings' and every layer's states of the
    #: context (the last one after the final norm), for adapters that read them all; None otherwise
    context_layers: torch.Tensor | None = None


class ContextEncoder:
    """Runs the frozen backbone and returns the last layer's states (after the final norm); with
    ``layer_states``, also every layer's states of the context (ComprExIT's adapter reads them)."""

    def __init__(self, backbone: Backbone, layer_states: bool = False):
        self.backbone = backbone
        self.layer_states = layer_states

    def question_ids(self, question: str | None) -> list[int]:
        prefix = f"Question: {question or GENERIC_INSTRUCTION}\nDocument:"
        return list(self.backbone.tokenizer(prefix, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def encode(self, contexts: list[TokenizedContext], questions: list[str | None]) -> EncodedBatch:
        once = {q: self.question_ids(q) for q in dict.fromkeys(questions)}  # a batch often shares its question
        return self.encode_ids([once[q] for q in questions], [c.ids for c in contexts])

    @torch.no_grad()
    def encode_ids(self, q_ids: list[list[int]], ctx_ids: list[list[int]]) -> EncodedBatch:
        """The same from token ids (training tokenises every question once, up front)."""
        bb = self.backbone
        L, pad = max(len(q) + len(c) for q, c in zip(q_ids, ctx_ids)), bb.tokenizer.pad_token_id
        # one tensor from padded lists: a copy per row cost twice as much (~15 µs a row), and a masked
        # write's index search took ~10 ms a batch on a 64-core host (torch's CPU threads), by the profiler
        ids = torch.tensor([q + c + [pad] * (L - len(q) - len(c)) for q, c in zip(q_ids, ctx_ids)], dtype=torch.long)
        out = right_padded_forward(bb.model, input_ids=to_device(ids, bb.device),  # right-padded: no mask needed
                                   output_hidden_states=self.layer_states)
        q_lens, c_lens = [len(q) for q in q_ids], [len(c) for c in ctx_ids]
        encoded = split_states(out.last_hidden_state.float(), q_lens, c_lens)
        if self.layer_states:
            stack = torch.stack(out.hidden_states, dim=2)  # (B, L, layers + 1, D)
            encoded.context_layers = split_states(stack, q_lens, c_lens).context_states
        return encoded


def question_vector(question: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
    """q̄ (B, D): the unit mean of each question's states (COMI's query, for its selection and its adapter)."""
    m = q_mask[..., None].to(question.dtype)
    return torch.nn.functional.normalize((question * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)


def split_states(states: torch.Tensor, q_lens: list[int], c_lens: list[int]) -> EncodedBatch:
    """Cut ``[question][context]`` rows of (B, L, ...) states into two right-padded parts, with one gather
    each (no per-example copies: this runs on every training step). The lengths travel without waiting
    for the forward that made ``states`` (:func:`hyco2.transfer.to_device`)."""
    dev = states.device
    ql = to_device(torch.tensor(q_lens), dev)
    cl = to_device(torch.tensor(c_lens), dev)
    Lq, Lc = max(q_lens), max(max(c_lens), 1)
    qpos = torch.arange(Lq, device=dev)[None, :].expand(len(q_lens), -1)
    cpos = torch.arange(Lc, device=dev)[None, :] + ql[:, None]
    qm, cm = qpos < ql[:, None], torch.arange(Lc, device=dev)[None, :] < cl[:, None]
    last = states.shape[1] - 1
    rest = states.shape[2:]
    tail = (None,) * len(rest)

    def take(pos: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        index = pos.clamp(max=last)[(...,) + tail].expand(*pos.shape, *rest)
        return torch.gather(states, 1, index) * m[(...,) + tail].to(states.dtype)

    return EncodedBatch(take(cpos, cm), cm, take(qpos, qm), qm)
