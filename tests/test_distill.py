"""Stage 3 (hyco2/training/distill.py) on the tiny backbone: teacher cache, targets, the vectorised
step with distractors, the loop's resume, and the CLI's sharded cache."""
import random

import numpy as np
import pytest
import torch

from hyco2.training.data import QAExample, with_distractors
from hyco2.training.distill import (DistillConfig, DistillStep, TeacherEntry, build_teacher_cache, example_key,
                                    load_cache, prepare_items, rank_loss, save_cache, train_distill)
from tests.conftest import PARAGRAPH

OTHER = ("The harbour of Vellmar was dredged in 1901. Its breakwater is 900 metres long, and ferries leave "
         "for the islands twice a day in summer.")
QA = [QAExample(PARAGRAPH, "Who built the lighthouse?", ["Maria Lindqvist"], [PARAGRAPH.index("Maria Lindqvist")], "a"),
      QAExample(PARAGRAPH, "How many steps does it have?", ["212"], [PARAGRAPH.index("212")], "a"),
      QAExample(OTHER, "How long is the breakwater?", ["900 metres"], [OTHER.index("900 metres")], "a")]


@pytest.fixture(scope="module")
def cache(tiny_backbone):
    return build_teacher_cache(tiny_backbone, QA, batch_size=2, max_new_tokens=6, topk=4, progress=False)


def test_teacher_cache_holds_answers_distributions_and_saliency(tiny_backbone, cache, tmp_path):
    assert set(cache) == {example_key(ex) for ex in QA}
    eos = tiny_backbone.tokenizer.convert_tokens_to_ids("<|im_end|>")
    n_ctx = len(tiny_backbone.tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])
    for ex in QA:
        e = cache[example_key(ex)]
        assert e.answer and "\n" not in e.answer
        assert e.answer_ids[-1] == eos and e.gold_ids[-1] == eos
        ids, logp = e.answer_top
        assert ids.shape == logp.shape == (len(e.answer_ids), 4)
        assert np.all(np.diff(logp.astype(np.float32), axis=1) <= 0)  # sorted, best first
        assert e.gold_top[0].shape == (len(e.gold_ids), 4)
        assert e.salient and max(e.salient) < n_ctx  # positions inside the paragraph
    save_cache(cache, tmp_path / "shard-0-of-1.pt")
    again = load_cache([tmp_path / "shard-0-of-1.pt"])
    assert again[example_key(QA[0])].answer == cache[example_key(QA[0])].answer


def _entry(answer: str, ids: list[int]) -> TeacherEntry:
    top = (np.zeros((len(ids), 2), np.int32), np.zeros((len(ids), 2), np.float16))
    return TeacherEntry(answer, ids, top, [7, 2], top, [0])


def test_filtered_target_uses_the_teacher_only_where_it_holds_the_gold_answer(tiny_backbone):
    cache = {example_key(QA[0]): _entry("It was built by Maria Lindqvist.", [5, 6, 2]),
             example_key(QA[1]): _entry("About forty steps.", [8, 9, 2])}
    items = prepare_items(tiny_backbone, QA, cache, "filtered")
    assert len(items) == 2  # the third question has no teacher entry
    assert items[0].target_ids == [5, 6, 2] and items[1].target_ids == [7, 2]
    assert [it.target_ids for it in prepare_items(tiny_backbone, QA, cache, "teacher")] == [[5, 6, 2], [8, 9, 2]]
    assert [it.target_ids for it in prepare_items(tiny_backbone, QA, cache, "gold")] == [[7, 2], [7, 2]]
    with pytest.raises(ValueError, match="target"):
        prepare_items(tiny_backbone, QA, cache, "best")


def test_step_labels_only_the_questions_paragraph_and_is_finite(tiny, cache):
    items = prepare_items(tiny.backbone, QA, cache, "teacher")
    cfg = DistillConfig(batch_size=3, max_paragraphs=2)
    step = DistillStep(tiny.backbone, tiny.model, items, cfg, random.Random(1))
    seen_two = False
    for n in range(20):
        ids, words, labels = step.context_for(n % len(items))
        assert len(ids) == len(words) == len(labels) and words == sorted(words)
        own = items[n % len(items)].paragraph.ids
        start = next(i for i in range(len(ids) - len(own) + 1) if ids[i:i + len(own)] == own)
        assert all(y == 0 for i, y in enumerate(labels) if not start <= i < start + len(own))  # distractors: 0
        assert sum(labels) > 0 and set(labels) <= {0, 1, 2}
        seen_two |= len(ids) > len(own) + 2
    assert seen_two  # distractor paragraphs do get mixed in
    loss, metrics = step([0, 1, 2], torch.autocast("cpu", enabled=False))
    assert torch.isfinite(loss) and set(metrics) >= {"nll", "kl", "bce"}
    loss.backward()
    assert tiny.model.classifier.net[-1].weight.grad is not None  # straight-through + BCE reach the classifier
    assert tiny.model.adapter.out_proj.weight.grad is not None


def test_loop_trains_adapter_and_classifier_not_the_backbone_and_resumes(tiny, cache, tmp_path):
    items = prepare_items(tiny.backbone, QA, cache, "filtered")
    backbone_before = {k: v.clone() for k, v in tiny.backbone.model.state_dict().items()}
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    cfg = DistillConfig(batch_size=2, steps=3, lr=1e-3, max_paragraphs=2, save_every=0)
    summary = train_distill(tiny, items, cfg, tmp_path, progress=False)
    assert summary["steps_done"] == 3 and summary["examples_seen"] == 6
    changed = {k.split(".")[0] for k, v in tiny.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"adapter", "classifier"}
    assert all(torch.equal(v, backbone_before[k]) for k, v in tiny.backbone.model.state_dict().items())
    again = train_distill(tiny, items, cfg, tmp_path, progress=False)  # resumed at its end: no more steps
    assert again["steps_done"] == 3 and again["examples_seen"] == 6


THIRD = "A third paragraph, about bread and its ovens."


def test_distractors_keep_the_answer_and_are_seeded():
    qa = [QAExample(PARAGRAPH, "Who?", ["Maria Lindqvist"], [PARAGRAPH.index("Maria Lindqvist")], "a"),
          QAExample(OTHER, "How long?", ["900 metres"], [OTHER.index("900 metres")], "a"),
          QAExample(THIRD, "What?", ["bread"], [THIRD.index("bread")], "b")]
    mixed = with_distractors(qa, 3, seed=0)
    assert mixed == with_distractors(qa, 3, seed=0) and with_distractors(qa, 1) == qa
    for ex, orig in zip(mixed, qa):
        assert ex.context.count("\n\n") == 2  # the article is too short: the third comes from another article
        assert ex.paragraph == orig.context and ex.context[ex.gold_start:].startswith(orig.context)
        s = ex.answer_starts[0]
        assert ex.context[s:s + len(ex.answers[0])] == ex.answers[0]
    short = with_distractors(qa, 3, seed=0, max_chars=len(PARAGRAPH) + 10)
    assert short[0].context == PARAGRAPH  # distractors dropped to fit, never the gold paragraph


def test_bucketed_batches_cover_the_pool_once_and_pad_less(tiny, cache):
    items = prepare_items(tiny.backbone, QA, cache, "gold") * 8
    cfg = DistillConfig(batch_size=4, max_paragraphs=3)
    step = DistillStep(tiny.backbone, tiny.model, items, cfg, random.Random(0))
    pool = list(range(len(items)))
    batches = step.batches(pool, 4)
    assert sorted(i for b, _ in batches for i in b) == pool and all(len(b) == 4 for b, _ in batches)

    def padding(groups):
        return sum(max(map(len, g)) * len(g) - sum(map(len, g)) for g in groups)

    bucketed = padding([[c[0] for c in ctxs] for _, ctxs in batches])
    ctxs = [step.context_for(n) for n in pool]
    unsorted = padding([[c[0] for c in ctxs[s:s + 4]] for s in range(0, len(pool), 4)])
    assert bucketed < unsorted


def test_rank_loss_and_question_match_reach_the_classifier(tiny_backbone, cache):
    """Gold tokens labelled 2; the listwise rank loss is finite and trains the upgraded classifier's
    question match, which starts at scale 0 (an upgraded checkpoint answers exactly as before)."""
    from hyco2.compressor import HyCo2Compressor
    from hyco2.classifier import add_question_match

    comp = HyCo2Compressor(tiny_backbone, HyCo2Compressor.fresh_model(tiny_backbone, seed=3))
    before = comp.compress(PARAGRAPH, "Who built the lighthouse?", budget=6)
    add_question_match(comp.model)
    assert comp.model.config.classifier_question and float(comp.model.classifier.match_scale) == 0.0
    after = comp.compress(PARAGRAPH, "Who built the lighthouse?", budget=6)
    assert after.kept_positions == before.kept_positions
    items = prepare_items(tiny_backbone, QA, cache, "gold")
    assert items[0].gold and set(items[0].gold) <= set(items[0].positive)
    cfg = DistillConfig(batch_size=3, max_paragraphs=2, rank_weight=1.0, saliency_weight=0.0)
    step = DistillStep(tiny_backbone, comp.model.train(), items, cfg,
                       random.Random(0))
    _, _, labels = step.context_for(0)
    assert 2 in labels
    loss, metrics = step([0, 1, 2], torch.autocast("cpu", enabled=False))
    assert torch.isfinite(loss) and metrics["rank"] > 0 and metrics["bce"] > 0
    loss.backward()
    assert comp.model.classifier.match_scale.grad is not None and float(comp.model.classifier.match_scale.grad) != 0
    comp.model.eval()


def test_rank_loss_each_asks_every_gold_token_to_outrank_the_rest():
    """"span" is content with one strong gold token; "each" is not: a weak second token of the answer
    (which the budget would then drop) costs it. Padding counts in neither."""
    mask = torch.tensor([[True] * 5 + [False]] * 2)
    gold = torch.tensor([[False, True, True, False, False, False]] * 2)
    logits = torch.tensor([[0.0, 9.0, -3.0, 0.0, 0.0, 50.0],   # one gold token strong, one weak
                           [0.0, 9.0, 9.0, 0.0, 0.0, 50.0]])   # both strong
    span, each = rank_loss(logits, mask, gold, "span"), rank_loss(logits, mask, gold, "each")
    assert span[0] < 0.01 and span[1] < 0.01
    assert each[0] > 2.0 and each[1] < 0.01
    # by hand: the weak token's −log softmax over itself and the three non-gold tokens, halved
    assert each[0] == pytest.approx(float(torch.logsumexp(torch.tensor([-3.0, 0.0, 0.0, 0.0]), 0) + 3.0) / 2
                                    + float(torch.logsumexp(torch.tensor([9.0, 0.0, 0.0, 0.0]), 0) - 9.0) / 2,
                                    rel=1e-5)
    with pytest.raises(ValueError, match="rank loss"):
        rank_loss(logits, mask, gold, "best")


def test_step_trains_the_classifiers_context_layers_with_the_each_rank_loss(tiny_backbone, cache):
    from hyco2.classifier import add_classifier_context
    from hyco2.compressor import HyCo2Compressor

    model = HyCo2Compressor.fresh_model(tiny_backbone, seed=3)
    add_classifier_context(model, 1)
    items = prepare_items(tiny_backbone, QA, cache, "gold")
    cfg = DistillConfig(batch_size=3, max_paragraphs=2, rank_weight=1.0, rank_loss="each")
    step = DistillStep(tiny_backbone, model.train(), items, cfg, random.Random(0))
    loss, metrics = step([0, 1, 2], torch.autocast("cpu", enabled=False))
    assert torch.isfinite(loss) and metrics["rank"] > 0
    loss.backward()
    assert float(model.classifier.context_out[1].weight.grad.abs().sum()) > 0
    model.eval()


def test_step_and_same_reader_teacher_with_a_soft_token_span(tiny, cache):
    """Longer contexts get more soft tokens in training as at inference: each student row holds its own
    count of soft slots, the step is finite and trains the queries those tokens are read from, and the
    same-reader teacher's saliency still points inside the paragraph."""
    tiny.model.set_soft_token_span(8, 12)
    cfg = tiny.model.config
    items = prepare_items(tiny.backbone, QA, cache, "gold")
    step = DistillStep(tiny.backbone, tiny.model.train(), items, DistillConfig(batch_size=3, max_paragraphs=3),
                       random.Random(0))
    ctxs = [step.context_for(n) for n in range(3)]
    rows = step._student_rows(items, ctxs, torch.rand(3, max(len(c[0]) for c in ctxs)))
    assert [len(t) for t in rows.soft_slots] == [cfg.soft_token_count(len(c[0])) for c in ctxs]
    assert max(len(t) for t in rows.soft_slots) > cfg.num_soft_tokens
    loss, _ = step([0, 1, 2], torch.autocast("cpu", enabled=False), ctxs)
    assert torch.isfinite(loss)
    loss.backward()
    assert float(tiny.model.adapter.qformer.queries.grad.abs().sum()) > 0
    tiny.model.eval().zero_grad()
    own = build_teacher_cache(tiny.backbone, QA, batch_size=3, max_new_tokens=4, topk=4, progress=False, reader=tiny)
    n_ctx = len(tiny.backbone.tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])
    assert all(own[example_key(ex)].salient and max(own[example_key(ex)].salient) < n_ctx for ex in QA[:2])


def test_step_profile_names_every_part_of_a_step(tiny, cache):
    """bench/train_step.py's profile (what told us the step was bound by its fixed cost, not arithmetic)
    sees each labelled part of the real step."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import train_step

    items = prepare_items(tiny.backbone, QA, cache, "gold") * 3
    prof = train_step.profiled_step(tiny, items, DistillConfig(target="gold", batch_size=2, max_paragraphs=2,
                                                               rank_weight=1.0))
    assert {"distill/encoder", "distill/adapter+classifier", "distill/selection", "distill/student",
            "distill/backward", "distill/step"} <= set(prof["parts"])
    assert prof["wall_ms"] > 0 and prof["top_kernels"]
    assert not any(p.requires_grad for p in tiny.model.parameters())  # left as inference expects


def test_same_reader_teacher_reads_soft_tokens_beside_every_token(tiny, cache):
    """The self teacher is HyCo2's reader at rate 1.0: its prompt carries the soft tokens, so its answers
    and distributions differ from the raw backbone's, and its saliency stays inside the paragraph."""
    own = build_teacher_cache(tiny.backbone, QA, batch_size=2, max_new_tokens=6, topk=4, progress=False, reader=tiny)
    assert set(own) == set(cache)
    n_ctx = len(tiny.backbone.tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"])
    for ex in QA[:2]:
        e, raw = own[example_key(ex)], cache[example_key(ex)]
        assert e.salient and max(e.salient) < n_ctx
        assert e.gold_ids == raw.gold_ids
        assert not np.array_equal(e.gold_top[1], raw.gold_top[1])  # another reader: other distributions
    # the same as reading the hybrid prompt at rate 1.0 through the compressor
    comp = tiny.compress_batch([QA[0].context], [QA[0].question], rate=1.0)[0]
    from hyco2.reader import HyCo2Reader

    answer = HyCo2Reader(tiny).answer_batch([QA[0].context], [QA[0].question], "hybrid", compressions=[comp],
                               max_new_tokens=6)[0].text
    assert own[example_key(QA[0])].answer == (answer or QA[0].answers[0])


def test_student_rows_put_the_gap_between_non_adjacent_kept_spans(tiny, cache):
    items = prepare_items(tiny.backbone, QA, cache, "gold")
    tiny.model.config.kept_gap = " …"
    gap = tiny.backbone.tokenizer(" …", add_special_tokens=False)["input_ids"]
    step = DistillStep(tiny.backbone, tiny.model, items, DistillConfig(max_paragraphs=1, rates=(0.3,)),
                       random.Random(0))
    ctx = step.context_for(0)
    probs = torch.rand((1, len(ctx[0])), generator=torch.Generator().manual_seed(0))  # scattered keeps
    n_keep = round(0.3 * len(ctx[0]))
    rows = step._student_rows([items[0]], [ctx], probs)
    row = rows.rows[0].tolist()
    kept = rows.kept_position
    assert len(kept) == n_keep and [row[t] for t in rows.kept_slot] == [ctx[0][p] for p in kept]
    gaps = sum(1 for a, b in zip(kept, kept[1:]) if b != a + 1)
    body = row[len(items[0].pre) + len(rows.soft_slots[0]): len(row) - len(items[0].post) - len(items[0].target_ids)]
    assert len(body) == len(kept) + gaps * len(gap) and gaps >= 1
    tiny.model.config.kept_gap = ""
    plain = DistillStep(tiny.backbone, tiny.model, items, DistillConfig(max_paragraphs=1, rates=(0.3,)),
                        random.Random(0))._student_rows([items[0]], [ctx], probs)
    assert len(plain.rows[0]) == len(row) - gaps * len(gap)


def test_distractors_from_other_articles_only():
    qa = [QAExample(PARAGRAPH, "Who?", ["Maria Lindqvist"], [PARAGRAPH.index("Maria Lindqvist")], "a"),
          QAExample(THIRD, "What?", ["bread"], [THIRD.index("bread")], "a"),
          QAExample(OTHER, "How long?", ["900 metres"], [OTHER.index("900 metres")], "b")]
    out = with_distractors(qa, 3, seed=0, distractors="other")
    assert THIRD not in out[0].context and OTHER in out[0].context  # never its own article's paragraphs
    assert out[0].context[out[0].answer_starts[0]:].startswith("Maria Lindqvist")
    assert PARAGRAPH in out[2].context and THIRD in out[2].context
    with pytest.raises(ValueError, match="distractors"):
        with_distractors(qa, 3, distractors="nearby")


def test_inference_selection_gives_the_student_what_the_compressor_keeps(tiny, cache):
    """--selection inference: the student trains on the fragments the compressor's defaults keep
    (phrases pulled in, one stretch per 60 kept tokens), not on scattered top words."""
    from hyco2.classifier import ClassifierSelector
    from hyco2.settings import CompressionSettings

    items = prepare_items(tiny.backbone, QA, cache, "gold")
    from hyco2.encoder import tokenize_context

    ctx = tokenize_context(tiny.backbone, " ".join([PARAGRAPH, OTHER] * 4))
    probs = torch.rand(len(ctx), generator=torch.Generator().manual_seed(1)).tolist()
    n_keep = 130
    s = CompressionSettings(budget=n_keep)
    compressor_keeps = ClassifierSelector(tiny.model, phrases=s.phrase_strength, spans=s.span_count).select(
        tiny.encoder, ctx, "How tall?", n_keep, keep_probabilities=probs).positions

    def student_keeps(selection: str) -> list[int]:
        step = DistillStep(tiny.backbone, tiny.model, items, DistillConfig(selection=selection),
                           random.Random(0))
        return step.select(probs, ctx.words, n_keep)

    assert student_keeps("inference") == compressor_keeps
    assert sum(1 for a, b in zip(compressor_keeps, compressor_keeps[1:]) if b != a + 1) <= 1  # two stretches
    words = student_keeps("words")
    assert len(words) == n_keep and words != compressor_keeps
