import pytest
import torch

from hyco2.errors import (ContextTooLongError, EmptyInputError, InvalidSettingError, InvalidTextError)
from hyco2.reader import HyCo2Reader
from tests.conftest import PARAGRAPH


def test_rate_and_budget_are_exact_and_in_order(tiny):
    n = len(tiny.tokenize(PARAGRAPH))
    for rate in (0.05, 0.1, 0.25, 0.5, 1.0):
        r = tiny.compress(PARAGRAPH, "When was it built?", rate=rate)
        assert r.kept_tokens == max(1, round(rate * n))
        assert r.kept_positions == sorted(set(r.kept_positions))
    for budget in (1, 7, 30):
        r = tiny.compress(PARAGRAPH, "When was it built?", budget=budget)
        assert r.kept_tokens == budget


def test_result_fields_are_consistent(tiny):
    r = tiny.compress(PARAGRAPH, "How tall is it?", rate=0.2)
    assert r.untrained is True
    assert r.soft_tokens == 4 and r.soft_embeddings.shape == (4, 64)
    assert r.context_tokens == len(tiny.backbone.tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])
    assert r.kept_token_ids == [tiny.tokenize(PARAGRAPH).ids[p] for p in r.kept_positions]
    assert all(PARAGRAPH[a:b] for a, b in r.kept_spans)
    assert len(r.probabilities) == r.context_tokens and all(0 < p < 1 for p in r.probabilities)
    assert r.ratio == pytest.approx(r.context_tokens / (r.kept_tokens + 4))
    d = r.to_dict()
    assert d["ratio"].endswith("x") and d["rate"].endswith("%")


def test_threshold_mode(tiny):
    r = tiny.compress(PARAGRAPH, "How tall?", threshold=0.5)
    probs, words = r.probabilities, tiny.tokenize(PARAGRAPH).words
    best = {}
    for p, w in zip(probs, words):
        best[w] = max(best.get(w, 0.0), p)
    assert r.kept_positions == [i for i, w in enumerate(words) if best[w] >= 0.5]
    with pytest.raises(InvalidSettingError, match="threshold"):
        tiny.compress(PARAGRAPH, "q?", threshold=0.5, method="random")


@pytest.mark.parametrize("batch_size", [8, 1])  # 1: three batches, each queued before the last is finished
def test_batch_equals_single(tiny, batch_size):
    texts = [PARAGRAPH, "A second, much shorter document about rivers.", PARAGRAPH[:120]]
    qs = ["Who built it?", None, "How tall?"]
    batch = tiny.compress_batch(texts, qs, rate=0.3, batch_size=batch_size)
    for t, q, b in zip(texts, qs, batch):
        one = tiny.compress(t, q, rate=0.3)
        assert b.context == t and b.question == q
        assert one.kept_positions == b.kept_positions and one.kept_text == b.kept_text
        assert (one.cl100k_context_tokens, one.cl100k_kept_tokens) == (b.cl100k_context_tokens, b.cl100k_kept_tokens)
        assert torch.allclose(one.soft_embeddings, b.soft_embeddings, atol=1e-4)
        assert b.timings["encode_s"] > 0 and b.timings["total_s"] >= b.timings["select_s"]


@pytest.mark.parametrize("context, error", [("", EmptyInputError), ("  \n", EmptyInputError),
                                            (None, EmptyInputError), (b"\xff\xfe\x00a", InvalidTextError),
                                            ("abc\x00", InvalidTextError)])
def test_bad_context(tiny, context, error):
    with pytest.raises(error):
        tiny.compress(context, "q?")


def test_bad_question_and_settings(tiny):
    with pytest.raises(EmptyInputError, match="question is empty"):
        tiny.compress(PARAGRAPH, "   ")
    with pytest.raises(InvalidSettingError, match="at most one"):
        tiny.compress(PARAGRAPH, "q?", rate=0.1, budget=5)
    with pytest.raises(InvalidSettingError, match="rate"):
        tiny.compress(PARAGRAPH, "q?", rate=2)
    with pytest.raises(InvalidSettingError, match="Unknown method"):
        tiny.compress(PARAGRAPH, "q?", method="nope")


def test_too_long_context_says_both_lengths(tiny):
    long_text = "word " * 600  # the tiny backbone reads 512 positions
    with pytest.raises(ContextTooLongError, match=r"has \d+ backbone tokens.*at most 256"):
        tiny.compress(long_text, "q?", method="llmlingua")
    with pytest.raises(ContextTooLongError):
        tiny.compress(long_text, "q?", method="truncate")  # peers read one window


def test_long_context_is_compressed_chunk_by_chunk_with_an_exact_budget(tiny):
    long_text = "\n\n".join(PARAGRAPH.replace("1872", str(1800 + i)) for i in range(12))  # ~3.7x the window
    ctx = tiny.tokenize(PARAGRAPH)
    assert 3 * tiny.max_context_tokens < 12 * len(ctx)
    r = tiny.compress(long_text, "When was it built?", budget=60)
    k = tiny.model.config.num_soft_tokens
    assert r.segments and len(r.segments) >= 2 and all(s == k for s, _ in r.segments)
    assert sum(n for _, n in r.segments) == r.kept_tokens == 60  # allocation sums to the budget
    assert r.kept_positions == sorted(set(r.kept_positions))  # order kept
    assert r.soft_embeddings.shape[0] == k * len(r.segments)
    assert r.forward_passes == len(r.segments)
    assert all(long_text[a:b] for a, b in r.kept_spans)
    a = HyCo2Reader(tiny).answer(long_text, "When was it built?", budget=60, max_new_tokens=3)
    assert a.document_tokens == r.compressed_tokens
    d = r.to_dict()
    assert d["chunks"] == len(r.segments) and not d["rate_adjusted"]


def test_budget_goes_where_the_classifier_scores_high(tiny):
    """A stand-in classifier that scores digits high: the document holding numbers gets the budget."""
    tok = tiny.backbone.tokenizer
    digit_ids = {i for t, i in tok.get_vocab().items() if any(ch.isdigit() for ch in t)}

    class ScoresFromIds(torch.nn.Module):
        logits = None

        def forward(self, states, question_states=None, question_mask=None, context_mask=None):
            return self.logits

    head = ScoresFromIds()
    tiny.model.classifier = head
    encode = tiny.encoder.encode

    def encode_and_score(contexts, questions):
        enc = encode(contexts, questions)
        head.logits = torch.tensor([[5.0 if j < len(c.ids) and c.ids[j] in digit_ids else -5.0
                                     for j in range(enc.context_mask.shape[1])] for c in contexts])
        return enc

    tiny.encoder.encode = encode_and_score
    docs = ["plain words only here and nothing else at all " * 3, "the values 1872 and 1954 and 212 matter"]
    n0 = len(tok(docs[0], add_special_tokens=False)["input_ids"])
    r = tiny.compress(documents=docs, question="Which years?", budget=4)
    assert r.documents[0] == (0, n0) and r.documents[1][0] == n0
    assert [n for _, n in r.segments] == [0, 4]
    assert any(ch.isdigit() for ch in r.kept_text)


def test_document_lists(tiny):
    docs = [PARAGRAPH, "The bakery on Mill Street opens at six.", PARAGRAPH.replace("Maria", "Anna")]
    r = tiny.compress(documents=docs, question="Who built it?", rate=0.2)
    assert r.context == "\n\n".join(docs) and len(r.documents) == 3
    assert len(r.segments) == 3  # each document its own chunk here
    assert r.kept_tokens == max(1, round(0.2 * r.context_tokens))
    a = HyCo2Reader(tiny).answer(documents=docs, question="Who built it?", rate=0.2, max_new_tokens=3)
    assert a.compression is not None and a.compression.segments == r.segments
    full = HyCo2Reader(tiny).answer(documents=docs, question="Who built it?", mode="full", max_new_tokens=3)
    assert full.document_tokens == len(tiny.tokenize("\n\n".join(docs)))
    with pytest.raises(InvalidSettingError, match="either a context or documents"):
        tiny.compress(PARAGRAPH, "q?", documents=docs)
    with pytest.raises(InvalidSettingError, match="non-empty list"):
        tiny.compress(documents=[], question="q?")
    with pytest.raises(EmptyInputError, match="document 2"):
        tiny.compress(documents=[PARAGRAPH, "  "], question="q?")


def test_document_counts_add_up(tiny):
    docs = [PARAGRAPH, "The bakery on Mill Street opens at six.", PARAGRAPH.replace("Maria", "Anna")]
    r = tiny.compress(documents=docs, question="Who built it?", budget=20)
    counts = r.document_counts()
    assert [c["context_tokens"] for c in counts] == [e - s for s, e in r.documents]
    assert sum(c["kept_tokens"] for c in counts) == r.kept_tokens == 20
    assert sum(c["soft_tokens"] for c in counts) == r.soft_tokens == 3 * tiny.model.config.num_soft_tokens
    assert r.to_dict()["document_counts"] == counts
    single = tiny.compress(PARAGRAPH, "Who built it?", budget=5).document_counts()
    assert single == [{"context_tokens": len(tiny.tokenize(PARAGRAPH)), "kept_tokens": 5,
                       "soft_tokens": tiny.model.config.num_soft_tokens}]


def test_compiled_layers_compress_alike_and_answering_decodes_eagerly(tiny):
    texts, qs = [PARAGRAPH, PARAGRAPH[:150]], ["Who built it?", "How tall?"]
    eager = tiny.compress_batch(texts, qs, rate=0.3)
    eager_answer = HyCo2Reader(tiny).answer(PARAGRAPH, "Who built it?", max_new_tokens=6).text
    tiny.backbone.compile_layers()
    try:
        compiled = tiny.compress_batch(texts, qs, rate=0.3)
        layers = tiny.backbone.model.base_model.layers
        with tiny.backbone.eager_layers():
            assert all(layer._compiled_call_impl is None for layer in layers)
        assert all(layer._compiled_call_impl is not None for layer in layers)  # restored after the block
        assert HyCo2Reader(tiny).answer(PARAGRAPH, "Who built it?", max_new_tokens=6).text == eager_answer
    finally:
        tiny.backbone.compile_layers(enable=False)
    for e, c in zip(eager, compiled):
        assert e.kept_positions == c.kept_positions
        assert torch.allclose(e.soft_embeddings, c.soft_embeddings, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a host-device synchronisation exists on CUDA only")
def test_a_batch_is_queued_on_the_gpu_without_waiting_for_it():
    """Queueing a batch's pass (encoder, adapter, classifier, the copies home) never reads back from the
    device, so the host finishes the previous batch while this one computes."""
    from hyco2 import HyCo2Compressor

    comp = HyCo2Compressor.from_pretrained(device="cuda")
    s = comp.settings(rate=0.3)
    toks = [comp.tokenize(f"Paragraph {i}: the bridge opened in {1900 + i} and carries {i} lanes.") for i in range(8)]
    comp._queue_batch(list(range(8)), toks, [None] * 8, s).outputs.wait()  # warm-up: kernels, pinned blocks
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        queued = comp._queue_batch(list(range(8)), toks, [None] * 8, s)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(queued.outputs.wait()[1]) == 8


def test_with_a_soft_token_span_each_context_and_chunk_gets_its_own_count(tiny):
    """Longer chunks, more soft tokens: every result and every chunk carries the count its length asks for,
    the counts add up, and the reader reads them all."""
    tiny.model.set_soft_token_span(8, 12)
    cfg = tiny.model.config
    short, long = "A short one about the lamp.", PARAGRAPH
    rs = tiny.compress_batch([short, long], ["What is lit?", "Who built it?"], rate=0.2)
    assert [r.soft_tokens for r in rs] == [cfg.soft_token_count(r.context_tokens) for r in rs]
    assert rs[0].soft_tokens == cfg.num_soft_tokens < rs[1].soft_tokens <= 12
    docs = [PARAGRAPH, "The bakery on Mill Street opens at six."]
    r = tiny.compress(documents=docs, question="Who built it?", budget=20)
    assert [n for n, _ in r.segments] == [cfg.soft_token_count(e - s) for s, e in r.chunk_ranges]
    assert sum(c["soft_tokens"] for c in r.document_counts()) == r.soft_tokens == r.soft_embeddings.shape[0]
    a = HyCo2Reader(tiny).answer(documents=docs, question="Who built it?", budget=20, max_new_tokens=3)
    assert a.document_tokens == r.compressed_tokens
