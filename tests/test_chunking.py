"""hyco2/chunking.py: window-sized chunks at the best boundary, and document lists as one context."""
import pytest

from hyco2.chunking import DOCUMENT_SEPARATOR, chunk_bounds, join_documents
from hyco2.encoder import tokenize_context
from tests.conftest import PARAGRAPH


def _text(ctx, s, e):
    return ctx.text[ctx.offsets[s][0]:ctx.offsets[e - 1][1]]


def test_chunks_cover_everything_in_order_within_the_limit(tiny_backbone):
    text = "\n\n".join([PARAGRAPH] * 6)
    ctx = tokenize_context(tiny_backbone, text)
    for limit in (7, 40, 100, len(ctx), 10_000):
        bounds = chunk_bounds(ctx, limit)
        assert bounds[0][0] == 0 and bounds[-1][1] == len(ctx)
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in order
        assert all(0 < e - s <= limit for s, e in bounds)
        assert all(ctx.words[s] != ctx.words[s - 1] for s, _ in bounds[1:])  # never inside a word
    with pytest.raises(ValueError):
        chunk_bounds(ctx, 0)


def test_cuts_prefer_blank_lines_then_sentence_ends(tiny_backbone):
    ctx = tokenize_context(tiny_backbone, "\n\n".join([PARAGRAPH] * 4))
    n_para = len(tokenize_context(tiny_backbone, PARAGRAPH))
    for s, e in chunk_bounds(ctx, n_para + 20)[:-1]:
        assert _text(ctx, s, e).rstrip().endswith("August.")  # each chunk ends at a paragraph's end
    one = tokenize_context(tiny_backbone, PARAGRAPH)
    for s, e in chunk_bounds(one, 40)[:-1]:
        assert _text(one, s, e).rstrip()[-1] in ".!?"  # no blank line: sentence ends


def test_joined_documents_keep_offsets_and_word_ids(tiny_backbone):
    docs = ["First document here.", "Second one, with 1872 in it.", "Third."]
    ctx, ranges = join_documents(tiny_backbone, docs)
    assert ctx.text == DOCUMENT_SEPARATOR.join(docs)
    assert [e - s for s, e in ranges] == [len(tokenize_context(tiny_backbone, d)) for d in docs]
    for (s, e), doc in zip(ranges, docs):
        assert _text(ctx, s, e) == doc
    assert ctx.words == sorted(ctx.words) and ctx.words[ranges[1][0]] > ctx.words[ranges[0][1] - 1]
