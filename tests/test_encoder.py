import torch

from hyco2.encoder import ContextEncoder, tokenize_context, tokenize_contexts, word_ids_from_offsets


def test_words_split_at_whitespace_only():
    text = "The Normans, in 1066."
    offsets = [(0, 3), (3, 8), (8, 11), (11, 12), (12, 15), (15, 16), (16, 17), (17, 18), (18, 19), (19, 20), (20, 21)]
    assert word_ids_from_offsets(text, offsets) == [0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3]


def test_offsets_point_back_into_the_text(tiny_backbone):
    from tests.conftest import PARAGRAPH

    ctx = tokenize_context(tiny_backbone, PARAGRAPH)
    assert len(ctx.ids) == len(ctx.offsets) == len(ctx.words)
    assert "".join(PARAGRAPH[a:b] for a, b in ctx.offsets) == PARAGRAPH
    assert ctx.words == sorted(ctx.words)


def test_encode_masks_and_question_awareness(tiny_backbone):
    enc = ContextEncoder(tiny_backbone)
    a = tokenize_context(tiny_backbone, "A short context about lighthouses.")
    b = tokenize_context(tiny_backbone, "A somewhat longer context about old stone lighthouses on the coast.")
    out = enc.encode([a, b], ["Who built it?", "When?"])
    assert out.context_states.shape[:2] == (2, len(b))
    assert out.context_mask.sum(1).tolist() == [len(a), len(b)]
    assert out.question_mask.any(1).all()
    other = enc.encode([a], ["What colour is the lamp?"])
    # the same context read after another question gives other states: the encoder is query-aware
    assert not torch.allclose(out.context_states[0, : len(a)], other.context_states[0, : len(a)])


def test_split_states_matches_slicing_each_row():
    from hyco2.encoder import split_states

    torch.manual_seed(0)
    q_lens, c_lens = [3, 5, 2], [4, 1, 6]
    L = max(q + c for q, c in zip(q_lens, c_lens)) + 1
    states = torch.randn(3, L, 8)
    enc = split_states(states, q_lens, c_lens)
    assert enc.question_states.shape == (3, 5, 8) and enc.context_states.shape == (3, 6, 8)
    for i, (q, c) in enumerate(zip(q_lens, c_lens)):
        assert torch.equal(enc.question_states[i, :q], states[i, :q])
        assert torch.equal(enc.context_states[i, :c], states[i, q:q + c])
        assert not enc.question_states[i, q:].any() and not enc.context_states[i, c:].any()  # padding zeroed
        assert enc.question_mask[i].tolist() == [j < q for j in range(5)]
        assert enc.context_mask[i].tolist() == [j < c for j in range(6)]


def test_batched_tokenisation_equals_one_text_at_a_time(tiny_backbone):
    from tests.conftest import PARAGRAPH

    texts = [PARAGRAPH, "Short one.", PARAGRAPH[:50] + "  spaced   out\n\nlines"]
    one = [tokenize_context(tiny_backbone, t) for t in texts]
    many = tokenize_contexts(tiny_backbone, texts, per_call=2)  # two calls of the tokenizer
    assert [(c.ids, c.offsets, c.words) for c in many] == [(c.ids, c.offsets, c.words) for c in one]
    short = tokenize_contexts(tiny_backbone, texts, max_tokens=5)
    assert all(len(c.ids) == len(c.offsets) == len(c.words) == min(5, len(o)) for c, o in zip(short, one))
