"""Shared by the peers: token log-probabilities under the backbone, and sentence units."""
from __future__ import annotations

import torch

from ..backbone import Backbone
from ..encoder import TokenizedContext
from ..text import SENTENCE_ENDS


@torch.no_grad()
def token_logprobs(backbone: Backbone, sequences: list[tuple[list[int], list[int]]], batch_size: int = 8) -> list[torch.Tensor]:
    """For each ``(prefix, ids)``: log p(ids[i] | prefix, ids[:i]) as a float tensor of len(ids).

    The first id with an empty prefix is scored after the BOS/EOS token, so every id gets a value.
    """
    start = backbone.tokenizer.bos_token_id
    if start is None:
        start = backbone.tokenizer.eos_token_id
    out: list[torch.Tensor] = []
    for b in range(0, len(sequences), batch_size):
        batch = sequences[b:b + batch_size]
        seqs = [[start] + list(p) + list(ids) for p, ids in batch]
        T = max(map(len, seqs))
        x = torch.full((len(seqs), T), backbone.tokenizer.pad_token_id, dtype=torch.long)
        m = torch.zeros((len(seqs), T), dtype=torch.long)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.tensor(s)
            m[i, : len(s)] = 1
        logits = backbone.model(input_ids=x.to(backbone.device), attention_mask=m.to(backbone.device)).logits
        logp = torch.log_softmax(logits.float(), -1).cpu()
        for i, (p, ids) in enumerate(batch):
            first = 1 + len(p)  # position of ids[0] in the sequence
            pos = torch.arange(first, first + len(ids))
            out.append(logp[i, pos - 1, torch.tensor(ids, dtype=torch.long)])
    return out


def sentences(ctx: TokenizedContext) -> list[list[int]]:
    """Token positions of each sentence, in order (a sentence ends at . ! ? before whitespace)."""
    units, current = [], []
    text = ctx.text
    for i, (a, b) in enumerate(ctx.offsets):
        current.append(i)
        nxt = ctx.offsets[i + 1][0] if i + 1 < len(ctx.offsets) else len(text)
        if text[a:b].rstrip().endswith(SENTENCE_ENDS) and (nxt >= len(text) or text[nxt:nxt + 1].isspace()):
            units.append(current)
            current = []
    if current:
        units.append(current)
    return units


def word_means(values: list[float], words: list[int]) -> list[float]:
    """Give every token the mean value of its word (so a word is scored as one lexical unit)."""
    sums: dict[int, list[float]] = {}
    for v, w in zip(values, words):
        sums.setdefault(w, []).append(v)
    return [sum(sums[w]) / len(sums[w]) for w in words]


def word_sums(values: list[float], words: list[int]) -> list[float]:
    """Give every token its word's total (self-information of a unit adds up over its tokens)."""
    sums: dict[int, float] = {}
    for v, w in zip(values, words):
        sums[w] = sums.get(w, 0.0) + v
    return [sums[w] for w in words]
