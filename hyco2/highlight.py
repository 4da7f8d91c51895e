"""A compression as whole words for display: kept words shaded by keep probability, and on long
texts the stretches far from any kept word folded into one marker, so a 50-page document stays readable."""
from __future__ import annotations

from .compressor import CompressionResult


def highlight_words(result: CompressionResult, max_words: int = 3000,
                    around: int = 4) -> list[tuple[str, float | None]]:
    """(text, score) pieces that concatenate back to the context (folded stretches excepted); whitespace
    holding a line break is a piece of its own with no score.

    Score: kept words 0.4 + 0.6·p (p = the word's highest token probability), dropped words
    −(0.1 + 0.2·(1 − p)), folded stretches 0 (drawn plain), line breaks None (the app draws them as
    breaks: the one kind of piece without a score). With more than ``max_words`` words, only kept words
    and ``around`` words either side of them are shown.
    """
    ctx = result.tokenized
    if ctx is None or not ctx.ids:
        return [(result.context, None)]
    text, probs = ctx.text, result.probabilities or [1.0] * len(ctx.ids)
    kept = set(result.kept_positions)
    words: list[list[int]] = []  # token positions of each word, in order
    for i, w in enumerate(ctx.words):
        if not words or ctx.words[words[-1][0]] != w:
            words.append([])
        words[-1].append(i)
    starts = [ctx.offsets[t[0]][0] for t in words] + [len(text)]
    starts[0] = 0  # leading whitespace belongs to the first word
    pieces = []
    for n, toks in enumerate(words):
        p = max(float(probs[t]) for t in toks)
        score = round(0.4 + 0.6 * p, 3) if any(t in kept for t in toks) else -round(0.1 + 0.2 * (1.0 - p), 3)
        piece = text[starts[n]:starts[n + 1]]
        if "\n" not in piece:
            pieces.append((piece, score))
            continue
        # a line break is drawn as a break (a piece with no score), never inside a word's chip
        core = piece.strip()
        lead = piece[: len(piece) - len(piece.lstrip())]
        tail = piece[len(lead) + len(core):]
        for part, part_score in ((lead, None if "\n" in lead else score), (core, score),
                                 (tail, None if "\n" in tail else score)):
            if part:
                pieces.append((part, part_score))
    if len(pieces) <= max_words:
        return pieces
    show = [False] * len(pieces)
    for n, (_, score) in enumerate(pieces):
        if score is not None and score > 0:
            for m in range(max(0, n - around), min(len(pieces), n + around + 1)):
                show[m] = True
    out: list[tuple[str, float | None]] = []
    hidden = 0
    for piece, visible in zip(pieces, show):
        if visible:
            if hidden:
                out.append((f" [… {hidden} words …] ", 0.0))
                hidden = 0
            out.append(piece)
        elif piece[1] is not None:  # a folded line break is no word
            hidden += 1
    if hidden:
        out.append((f" [… {hidden} words …]", 0.0))
    return out
