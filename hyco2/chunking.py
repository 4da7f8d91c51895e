"""Long texts and lists of documents: one tokenisation, cut into window-sized chunks at the best
boundary available (blank line, then sentence end, then word), never inside a word.

The compressor encodes every chunk (question-aware, in batches), selects kept tokens over all chunks
at once, and gives each chunk its own soft tokens; see ``HyCo2Compressor.compress``.
"""
from __future__ import annotations

from .backbone import Backbone
from .encoder import TokenizedContext, tokenize_context
from .text import DOCUMENT_SEPARATOR, SENTENCE_ENDS

#: A chunk may also end after a colon (a list or a quotation follows), where a peer's sentence does not.
CHUNK_ENDS = SENTENCE_ENDS + (":",)


def join_documents(backbone: Backbone, documents: list[str]) -> tuple[TokenizedContext, list[tuple[int, int]]]:
    """One context for several documents, each tokenised on its own (so no token straddles two of
    them), joined by a blank line; and each document's token range in it."""
    text_parts, ids, offsets, words, ranges = [], [], [], [], []
    char, next_word = 0, 0
    for n, doc in enumerate(documents):
        if n:
            text_parts.append(DOCUMENT_SEPARATOR)
            char += len(DOCUMENT_SEPARATOR)
        t = tokenize_context(backbone, doc)
        start = len(ids)
        ids += t.ids
        offsets += [(a + char, b + char) for a, b in t.offsets]
        words += [w + next_word for w in t.words]
        next_word = (words[-1] + 1) if words else next_word
        ranges.append((start, len(ids)))
        text_parts.append(doc)
        char += len(doc)
    return TokenizedContext("".join(text_parts), ids, offsets, words), ranges


def sub_context(ctx: TokenizedContext, start: int, end: int) -> TokenizedContext:
    """Tokens ``start:end`` as a context of their own (offsets still point into ``ctx.text``)."""
    return TokenizedContext(ctx.text, ctx.ids[start:end], ctx.offsets[start:end], ctx.words[start:end])


def chunk_bounds(ctx: TokenizedContext, max_tokens: int, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Token ranges of at most ``max_tokens`` covering ``start:end`` in order, each cut at the last
    blank line in its second half, else the last sentence end, else the last word boundary."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    end = len(ctx.ids) if end is None else end
    out = []
    while start < end:
        stop = min(start + max_tokens, end)
        if stop < end:
            stop = _best_cut(ctx, start + max(1, max_tokens // 2), stop) or stop
        out.append((start, stop))
        start = stop
    return out


def _best_cut(ctx: TokenizedContext, lo: int, hi: int) -> int | None:
    """The best position in (lo, hi] to start a new chunk at, by boundary strength."""
    text = ctx.text

    def before(i: int) -> str:  # a few characters before token i (bounded: documents can be long)
        a = ctx.offsets[i][0]
        return text[max(0, a - 8):a]

    def word_start(i: int) -> bool:  # whitespace tokens belong to the word they precede
        return ctx.words[i] != ctx.words[i - 1]

    def after_blank_line(i: int) -> bool:  # the word starting at i opens a new paragraph
        a = ctx.offsets[i][0]
        return text[a:a + 8].lstrip(" \t").startswith("\n\n")

    for test in (lambda i: word_start(i) and after_blank_line(i),
                 lambda i: word_start(i) and before(i).rstrip().endswith(CHUNK_ENDS),
                 word_start):
        for i in range(hi, lo, -1):
            if test(i):
                return i
    return None
