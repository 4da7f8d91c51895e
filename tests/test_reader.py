"""Answering from a compression, the full context or nothing: modes, streaming, likelihoods, the prompt."""
import pytest

from hyco2.errors import ContextTooLongError, EmptyInputError, InvalidSettingError
from hyco2.reader import HyCo2Reader, Mode
from tests.conftest import PARAGRAPH


@pytest.fixture()
def reader(tiny) -> HyCo2Reader:
    return HyCo2Reader(tiny)


def test_modes_are_validated_once_with_the_everyday_alias():
    assert Mode.parse("compressed") is Mode.HYBRID and Mode.parse(Mode.SOFT) is Mode.SOFT
    assert Mode.parse("full") == "full"  # a str enum: JSON and comparisons take it as the name
    for bad in ("sideways", "", None, 3):
        with pytest.raises(InvalidSettingError, match="mode must be one of full, hybrid"):
            Mode.parse(bad)
    assert [m.value for m in Mode if m.reads_compression] == ["hybrid", "soft", "hard"]


def test_bad_questions_modes_and_counts_are_clear_errors(tiny, reader):
    with pytest.raises(InvalidSettingError, match="mode"):
        reader.answer(PARAGRAPH, "q?", mode="sideways")
    with pytest.raises(EmptyInputError, match="needs a question"):
        reader.answer(PARAGRAPH, None)
    with pytest.raises(EmptyInputError, match="question is empty"):
        reader.answer(PARAGRAPH, "  ")
    with pytest.raises(InvalidSettingError, match="max_new_tokens must be a whole number"):
        reader.answer(PARAGRAPH, "q?", mode="none", max_new_tokens=0)
    with pytest.raises(InvalidSettingError, match="batch_size"):
        reader.answer_batch([PARAGRAPH], ["q?"], "none", batch_size=0)
    with pytest.raises(InvalidSettingError, match="1 contexts but 2 questions"):
        reader.answer_batch([PARAGRAPH], ["q?", "q?"], "none")
    with pytest.raises(ContextTooLongError, match=r"has \d+ backbone tokens.*at most 256"):
        reader.answer("word " * 600, "q?", mode="full")
    peer = tiny.compress(PARAGRAPH, "q?", method="truncate", rate=0.2)
    with pytest.raises(InvalidSettingError, match="soft tokens"):
        reader.answer(PARAGRAPH, "q?", mode="soft", compression=peer)


def test_answer_takes_the_same_settings_as_compress(tiny, reader):
    q = "Who built the lighthouse?"
    for kw in ({"budget": 9, "phrases": 0.9}, {"method": "hyco2", "selector": "mig", "rate": 0.2},
               {"method": "random", "rate": 0.2, "seed": 3}, {"threshold": 0.5}):
        a = reader.answer(PARAGRAPH, q, mode="hybrid" if kw.get("method") != "random" else "hard",
                          max_new_tokens=2, **kw)
        assert a.compression.kept_positions == tiny.compress(PARAGRAPH, q, **kw).kept_positions, kw
    with pytest.raises(InvalidSettingError, match="at most one"):
        reader.answer(PARAGRAPH, q, rate=0.1, budget=3)
    with pytest.raises(InvalidSettingError, match="Unknown setting.*rat"):
        reader.answer(PARAGRAPH, q, rat=0.1)  # a misspelt setting is no silent default


def test_answer_modes_return_text_and_counts(tiny, reader):
    for mode in ("full", "hybrid", "soft", "hard", "none"):
        a = reader.answer(PARAGRAPH, "Who built it?", mode=mode, rate=0.2, max_new_tokens=3)
        assert isinstance(a.text, str)
        assert a.decoder_tokens > a.document_tokens >= 0
    full = reader.answer(PARAGRAPH, "Who built it?", mode="full", max_new_tokens=2)
    assert full.document_tokens == len(tiny.tokenize(PARAGRAPH))
    hybrid = reader.answer(PARAGRAPH, "Who built it?", mode="hybrid", rate=0.2, max_new_tokens=2)
    assert hybrid.document_tokens == hybrid.compression.kept_tokens + 4


def test_answer_nll_ranks_the_answer_the_context_supports(tiny, reader):
    q = "Who built the lighthouse?"
    full = reader.answer_nll([PARAGRAPH, PARAGRAPH], [q, q], ["Maria Lindqvist", "Maria"], "full")
    assert len(full) == 2 and all(x > 0 for x in full)
    again = reader.answer_nll([PARAGRAPH], [q], ["Maria Lindqvist"], "full", batch_size=1)
    assert again[0] == pytest.approx(full[0], rel=1e-4)  # padding in a batch changes nothing
    comps = tiny.compress_batch([PARAGRAPH], [q], rate=0.2)
    for mode in ("hybrid", "soft", "hard", "none"):
        (nll,) = reader.answer_nll([PARAGRAPH], [q], ["Maria Lindqvist"], mode, compressions=comps)
        assert nll > 0 and nll == nll
    with pytest.raises(InvalidSettingError, match="compressions"):
        reader.answer_nll([PARAGRAPH], [q], ["x"], "hybrid")


def test_answer_stream_ends_with_the_batch_answer(tiny, reader):
    q = "Who built the lighthouse?"
    r = tiny.compress(PARAGRAPH, q, rate=0.3)
    for mode in ("hybrid", "full", "none"):
        streamed = list(reader.answer_stream(q, mode, compression=r, max_new_tokens=5))
        whole = reader.answer(PARAGRAPH, q, mode, compression=r, max_new_tokens=5).text
        assert streamed and streamed[-1] == whole
    with pytest.raises(InvalidSettingError, match="needs the compression"):
        list(reader.answer_stream(q, "hybrid"))
    with pytest.raises(ContextTooLongError):
        list(reader.answer_stream(q, "full", compression=tiny.compress("word " * 600, q, budget=5)))


def test_the_reader_reads_the_checkpoints_gap_between_non_adjacent_kept_spans(tiny, reader):
    from tests.conftest import PARAGRAPH

    r = tiny.compress(PARAGRAPH, "Who built it?", rate=0.3)
    gaps = sum(1 for a, b in zip(r.kept_positions, r.kept_positions[1:]) if b != a + 1)
    assert gaps >= 1
    plain, n_plain = reader.decoder_embeds("hybrid", "Who built it?", compression=r)
    tiny.model.config.kept_gap = " …"
    try:
        gapped, n_gapped = reader.decoder_embeds("hybrid", "Who built it?", compression=r)
        hard, _ = reader.decoder_embeds("hard", "Who built it?", compression=r)  # the raw reader: no gaps
    finally:
        tiny.model.config.kept_gap = ""
    assert n_gapped == n_plain + gaps and gapped.shape[0] == plain.shape[0] + gaps
    assert hard.shape[0] == plain.shape[0] - r.soft_tokens


def test_greedy_decode_with_plain_positions_is_generate(tiny, reader):
    """The decoding loop behind positions='original', given 0…T-1, says what transformers' generate says."""
    import torch

    from hyco2.forward import greedy_decode
    from hyco2.prompting import left_pad

    q = "Who built the lighthouse?"
    r = tiny.compress(PARAGRAPH, q, rate=0.3)
    embeds = [reader.decoder_embeds("hybrid", q, compression=r)[0], reader.decoder_embeds("none", q)[0]]
    E, mask = left_pad(embeds)
    P = (mask.cumsum(1) - 1).clamp(min=0)
    bb = tiny.backbone
    ours = greedy_decode(bb.model, E, mask, P, 6, {bb.tokenizer.eos_token_id}, bb.tokenizer.pad_token_id)
    theirs = bb.model.generate(inputs_embeds=E, attention_mask=mask, max_new_tokens=6, do_sample=False,
                               eos_token_id=bb.tokenizer.eos_token_id, pad_token_id=bb.tokenizer.pad_token_id)
    assert torch.equal(ours, theirs[:, : ours.shape[1]])


def test_original_positions_put_kept_tokens_where_they_stood(tiny, reader):
    import torch

    q = "Who built the lighthouse?"
    original = HyCo2Reader(tiny, positions="original")
    n_ctx, k = len(tiny.tokenize(PARAGRAPH)), tiny.model.config.num_soft_tokens
    whole = tiny.compress(PARAGRAPH, q, rate=1.0)  # every token kept: the same positions as 0…T-1
    p = original.decoder_prompt("hybrid", q, compression=whole)
    assert torch.equal(p.position_ids, torch.arange(p.embeds.shape[0]))
    assert original.answer(PARAGRAPH, q, compression=whole, max_new_tokens=4).text == \
        reader.answer(PARAGRAPH, q, compression=whole, max_new_tokens=4).text
    r = tiny.compress(PARAGRAPH, q, rate=0.3)
    p = original.decoder_prompt("hybrid", q, compression=r)
    pos = p.position_ids.tolist()
    assert len(pos) == p.embeds.shape[0] and pos == sorted(set(pos))
    full_len = reader.decoder_embeds("full", q, context=tiny.tokenize(PARAGRAPH))[0].shape[0]
    assert pos[-1] == full_len - 1 + k  # the question sits where it sits after the whole text (+ soft tokens)
    steps, kept = [b - a for a, b in zip(pos, pos[1:])], r.kept_positions
    jumps = [kept[0] + 1] + [b - a for a, b in zip(kept, kept[1:])] + [n_ctx - kept[-1]]
    i = next(i for i in range(len(steps)) if steps[i:i + len(jumps)] == jumps)  # the kept slot's steps
    assert all(d == 1 for d in steps[:i] + steps[i + len(jumps):]) and max(jumps) > 1
    nll_plain = reader.answer_nll([PARAGRAPH], [q], ["Maria Lindqvist"], "hybrid", compressions=[r])[0]
    nll_orig = original.answer_nll([PARAGRAPH], [q], ["Maria Lindqvist"], "hybrid", compressions=[r])[0]
    assert nll_orig > 0 and nll_orig != pytest.approx(nll_plain, rel=1e-6)  # the positions reach the model
    docs = [PARAGRAPH, "The bakery on Mill Street opens at six.", PARAGRAPH.replace("Maria", "Anna")]
    rd = tiny.compress(documents=docs, question=q, rate=0.2)
    pd_ = original.decoder_prompt("hybrid", q, compression=rd).position_ids.tolist()
    assert pd_ == sorted(set(pd_)) and isinstance(original.answer(documents=docs, question=q, compression=rd,
                                                                  max_new_tokens=3).text, str)
    tiny.model.config.kept_gap = " …"
    try:
        with pytest.raises(InvalidSettingError, match="kept_gap"):
            original.decoder_prompt("hybrid", q, compression=r)
    finally:
        tiny.model.config.kept_gap = ""
    with pytest.raises(InvalidSettingError, match="positions must be"):
        HyCo2Reader(tiny, positions="shuffled")
