"""Decoder inputs: the backbone's chat template with the soft tokens and kept tokens spliced in.

The template is rendered as text with two private-use markers, split at them, and each text piece
is tokenised on its own; soft tokens enter as embeddings and kept tokens as their original ids, so
nothing is re-tokenised or lost in decoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .backbone import Backbone

SOFT = "\ue000SOFT\ue000"
KEPT = "\ue000KEPT\ue000"

QA_INSTRUCTION = "Read the document and answer the question in one short phrase."
NO_DOC_INSTRUCTION = "Answer the question in one short phrase."
PARAPHRASE_INSTRUCTIONS = (
    "Repeat the document.",
    "Write the document out again.",
    "Reproduce the text of the document.",
    "Restate the document word for word.",
    "What does the document say? Write it out.",
)
COMPLETION_INSTRUCTION = "Continue the text of the document."


def qa_user_text(question: str, document: str | None) -> str:
    if document is None:
        return f"{NO_DOC_INSTRUCTION}\n\nQuestion: {question}\nShort answer:"
    return f"{QA_INSTRUCTION}\n\nDocument: {document}\n\nQuestion: {question}\nShort answer:"


@dataclass(frozen=True)
class PromptParts:
    """A rendered prompt: token-id pieces with "soft" and "kept" slots between them."""

    parts: tuple[tuple[str, tuple[int, ...]], ...]  # ("ids", ids) | ("soft", ()) | ("kept", ())


def render(backbone: Backbone, user_text: str) -> str:
    tok = backbone.tokenizer
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
    return f"{user_text}\nAnswer:"


@lru_cache(maxsize=4096)
def _ids(tok, text: str) -> tuple[int, ...]:
    return tuple(tok(text, add_special_tokens=False)["input_ids"]) if text else ()


def prompt_parts(backbone: Backbone, user_text: str) -> PromptParts:
    text = render(backbone, user_text)
    parts: list[tuple[str, tuple[int, ...]]] = []
    for i, between in enumerate(text.split(SOFT)):
        if i:
            parts.append(("soft", ()))
        for j, piece in enumerate(between.split(KEPT)):
            if j:
                parts.append(("kept", ()))
            if piece:
                parts.append(("ids", _ids(backbone.tokenizer, piece)))
    return PromptParts(tuple(parts))


def embed_prompt(
    backbone: Backbone,
    prompt: PromptParts,
    soft: torch.Tensor | list[torch.Tensor] | None = None,
    kept_ids: list[int] | tuple[list[int], ...] | None = None,
    kept_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """(T, D) input embeddings. ``kept_scale`` multiplies the kept embeddings (straight-through).

    A prompt may have several soft and kept slots (one pair per chunk of a long document): give
    ``soft`` as a list of tensors and ``kept_ids`` as a tuple of id lists, consumed slot by slot.
    """
    softs = iter(soft) if isinstance(soft, list) else None
    kepts = iter(kept_ids) if isinstance(kept_ids, tuple) else None
    pieces = []
    for kind, ids in prompt.parts:
        if kind == "ids":
            pieces.append(backbone.embed(torch.tensor(ids, dtype=torch.long)))
        elif kind == "soft":
            s = next(softs, None) if softs is not None else soft
            if s is None:
                raise ValueError("prompt has a soft slot but no soft tokens were given")
            pieces.append(s.to(backbone.device, backbone.compute_dtype))
        else:
            k = next(kepts, None) if kepts is not None else kept_ids
            if k is None:
                raise ValueError("prompt has a kept slot but no kept ids were given")
            emb = backbone.embed(torch.tensor(k, dtype=torch.long))
            if kept_scale is not None:
                emb = emb * kept_scale.to(emb.dtype)[:, None]
            pieces.append(emb)
    return torch.cat(pieces, dim=0)


def with_gaps(kept_ids: list[int], kept_positions: list[int],
              gap_ids: list[int] | tuple[int, ...]) -> tuple[list[int], list[int]]:
    """The kept ids with ``gap_ids`` between two kept tokens that were not neighbours in the context, so
    that the decoder sees where text is missing ("built 1872 … Maria Lindqvist" rather than a run-on);
    and where each kept token sits in that list (training scales those slots by their keep probability)."""
    out, slots = [], []
    for j, (pos, tid) in enumerate(zip(kept_positions, kept_ids)):
        if j and gap_ids and pos != kept_positions[j - 1] + 1:
            out.extend(gap_ids)
        slots.append(len(out))
        out.append(tid)
    return out, slots


def left_pad(embeds: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, D) into (B, T, D) padded on the left, for generation; and the attention mask."""
    T = max(e.shape[0] for e in embeds)
    B, D = len(embeds), embeds[0].shape[1]
    out = embeds[0].new_zeros((B, T, D))
    mask = torch.zeros((B, T), dtype=torch.long, device=embeds[0].device)
    for i, e in enumerate(embeds):
        out[i, T - e.shape[0] :] = e
        mask[i, T - e.shape[0] :] = 1
    return out, mask
