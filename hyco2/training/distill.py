"""Stage 3 at scale: sequence-level distillation from a cached full-context teacher.

Why: trained on gold spans alone, the student learned the answer's *likelihood* but not the answers
the decoder actually *says* (free greedy text), which is what users judge. So the full-context
teacher (the same frozen backbone reading the whole paragraph) answers every training question once;
its greedy answer, its top-k distribution over each answer token, its distribution over the gold
span and its attention saliency are cached (:func:`build_teacher_cache`, sharded over GPUs). The
student (soft + kept tokens) is then trained on those targets in a step with no per-token Python
and no teacher forward (:class:`DistillStep`).

The student often reads the question's paragraph among distractor paragraphs of the same article
(1..``max_paragraphs``), while the teacher read the paragraph alone: the student learns to answer as
the undistracted teacher would, and the classifier to find the relevant part.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import record_function
from tqdm.auto import tqdm

from ..backbone import Backbone
from ..forward import (attention_implementation, bf16_autocast, end_of_turn, forward_on_targets, logits_at,
                       right_padded_forward)
from ..errors import InvalidSettingError
from ..encoder import ContextEncoder, TokenizedContext, span_positions, tokenize_contexts
from ..metrics import best_over_golds, contains
from ..prompting import KEPT, SOFT, left_pad, prompt_parts, qa_user_text, with_gaps
from ..selection import keep_count, select_by_budget
from ..settings import CompressionSettings
from ..text import DOCUMENT_SEPARATOR
from .data import QAExample
from .loop import LoopConfig, train
from .trainer import saliency_labels, upper_layer_attention

log = logging.getLogger(__name__)
TARGETS = ("teacher", "gold", "filtered")
#: the student's kept tokens, as settings of the one selection: "words" = the top words anywhere; "inference"
#: = what the compressor keeps by default (phrases pulled in, one stretch per 60 kept tokens)
SELECTIONS = {"words": CompressionSettings(phrases=0.0, spans=0), "inference": CompressionSettings()}


def example_key(ex: QAExample) -> str:
    """Stable id of a question on its paragraph (the cache's key; survives re-reading the data)."""
    return hashlib.sha1(f"{ex.paragraph}\x00{ex.question}".encode()).hexdigest()[:20]


def qa_prompt_ids(backbone: Backbone, question: str, doc_slot: str) -> tuple[list[int], list[int]]:
    """The decoder prompt's ids before and after its document slot (``doc_slot`` = SOFT+KEPT or KEPT)."""
    parts = prompt_parts(backbone, qa_user_text(question, doc_slot)).parts
    kinds = [k for k, _ in parts]
    first_slot = min(i for i, k in enumerate(kinds) if k != "ids")
    last_slot = max(i for i, k in enumerate(kinds) if k != "ids")
    pre = [t for k, ids in parts[:first_slot] for t in ids]
    post = [t for k, ids in parts[last_slot + 1:] for t in ids]
    return pre, post


def tokenize_paragraphs(backbone: Backbone, texts: list[str], max_tokens: int) -> dict[str, TokenizedContext]:
    """Each distinct paragraph tokenised once (batched fast tokenizer), truncated to ``max_tokens``."""
    uniq = list(dict.fromkeys(texts))
    return dict(zip(uniq, tokenize_contexts(backbone, uniq, max_tokens)))


# ---------------------------------------------------------------------------------------------- teacher
@dataclass
class TeacherEntry:
    """What the full-context teacher said and how sure it was: the student's targets for one question."""

    answer: str  # its greedy answer (first line)
    answer_ids: list[int]  # + end of turn
    answer_top: tuple  # numpy (n, k) int32 ids, (n, k) float16 log-probs
    gold_ids: list[int]
    gold_top: tuple
    salient: list[int]  # paragraph token positions the teacher's answer attends to (contrastive)


def _topk(logits: torch.Tensor, n: int, k: int):
    """Top-k ids and log-probs as numpy arrays (int32, float16): pickles fast for 100k questions."""
    logp = torch.log_softmax(logits[:n].float(), -1)
    v, i = torch.topk(logp, k, dim=-1)
    return i.to(torch.int32).cpu().numpy(), v.to(torch.float16).cpu().numpy()


TEACHERS = ("backbone", "self")


@torch.no_grad()
def build_teacher_cache(backbone: Backbone, examples: list[QAExample], *, batch_size: int = 64,
                        max_new_tokens: int = 24, topk: int = 8, saliency_top: float = 0.15,
                        max_context_tokens: int = 512, progress: bool = True,
                        reader=None) -> dict[str, TeacherEntry]:
    """Greedy answers, top-k distributions and saliency of the full-context teacher, per question.

    ``reader=None``: the raw backbone reads the paragraph. ``reader=`` a :class:`HyCo2Compressor`: the
    *same reader* the student is, uncompressed: its soft tokens beside every token of the paragraph
    (``rate=1.0``). Compression is then trained to lose nothing against what its own reader says from
    the whole text, not against a different (raw) reader whose answer style it cannot copy."""
    bb, tok = backbone, backbone.tokenizer
    eos = end_of_turn(bb)
    paras = tokenize_paragraphs(bb, [ex.paragraph for ex in examples], max_context_tokens)
    prompts = []
    for ex in examples:
        pre, post = qa_prompt_ids(bb, ex.question, KEPT if reader is None else SOFT + KEPT)
        prompts.append((pre, paras[ex.paragraph].ids, post))
    order = sorted(range(len(examples)), key=lambda i: sum(map(len, prompts[i])))
    out: dict[str, TeacherEntry] = {}
    autocast = bf16_autocast(bb.device)
    model = bb.model
    for start in tqdm(range(0, len(order), batch_size), desc="teacher", disable=not progress, mininterval=10):
        idx = order[start:start + batch_size]
        seqs = [p[0] + p[1] + p[2] for p in (prompts[i] for i in idx)]
        n_soft = [0] * len(idx)  # each row's soft tokens (their count grows with the paragraph under a span)
        if reader is None:
            embeds = [bb.embed(torch.tensor(s)) for s in seqs]
            L = max(map(len, seqs))
            ids = torch.full((len(seqs), L), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), L), dtype=torch.long)
            for r, s in enumerate(seqs):  # left padding for generation
                ids[r, L - len(s):] = torch.tensor(s)
                mask[r, L - len(s):] = 1
            with autocast:
                gen = model.generate(input_ids=ids.to(bb.device), attention_mask=mask.to(bb.device),
                                     max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            gen = gen[:, L:]
        else:
            with autocast:
                soft, _ = reader.model(reader.encoder.encode([paras[examples[i].paragraph] for i in idx],
                                                             [examples[i].question for i in idx]))
            embeds = []
            for r, i in enumerate(idx):
                pre, ctx, post = prompts[i]
                n_soft[r] = reader.model.config.soft_token_count(len(ctx))
                embeds.append(torch.cat([bb.embed(torch.tensor(pre)), soft[r, : n_soft[r]].to(bb.compute_dtype),
                                         bb.embed(torch.tensor(ctx + post))]))
            E, mask = left_pad(embeds)
            with autocast:  # from embeddings, generate returns the new tokens only
                gen = model.generate(inputs_embeds=E, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(gen, skip_special_tokens=True)
        answers = []
        for i, t in zip(idx, texts):
            a = t.strip().split("\n", 1)[0].strip()
            answers.append(a or examples[i].answers[0])
        ans_ids = [tok(a, add_special_tokens=False)["input_ids"][: max_new_tokens] + [eos] for a in answers]
        gold_ids = [tok(examples[i].answers[0], add_special_tokens=False)["input_ids"][: max_new_tokens] + [eos]
                    for i in idx]
        # eager attention only for the pass whose attention gives the saliency labels
        with autocast:
            g_logits, _, _, _, _ = forward_on_targets(model, embeds, gold_ids)
        a_logits, salient = [], []
        for s in range(0, len(idx), 64):  # eager attention maps of every layer: 64 rows at a time
            sub = slice(s, s + 64)
            with attention_implementation(model, "eager"), autocast:
                logits, _, _, lens, atts = forward_on_targets(model, embeds[sub], ans_ids[sub], want_attention=True)
            upper = upper_layer_attention(atts)  # (b, T, T)
            del atts
            for r, i in enumerate(idx[sub]):
                pre, ctx, _ = prompts[i]
                y = saliency_labels(upper[r], len(pre) + n_soft[s + r], len(ctx), lens[r], len(ans_ids[s + r]),
                                    saliency_top)
                salient.append(torch.nonzero(y).flatten().tolist())
                a_logits.append(logits[r])
        for r, i in enumerate(idx):
            out[example_key(examples[i])] = TeacherEntry(
                answer=answers[r], answer_ids=ans_ids[r], answer_top=_topk(a_logits[r], len(ans_ids[r]), topk),
                gold_ids=gold_ids[r], gold_top=_topk(g_logits[r], len(gold_ids[r]), topk),
                salient=salient[r],
            )
    return out


def save_cache(cache: dict[str, TeacherEntry], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: vars(v) for k, v in cache.items()}, tmp)
    tmp.replace(path)


def load_cache(paths: list[Path]) -> dict[str, TeacherEntry]:
    out: dict[str, TeacherEntry] = {}
    for p in paths:
        out.update({k: TeacherEntry(**v) for k, v in torch.load(p, weights_only=False).items()})
    return out


def teacher_name(comp, teacher: str) -> str:
    """What a cache was built by: the raw backbone, or this checkpoint's own reader at rate 1.0."""
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, not {teacher!r}")
    return f"backbone {comp.backbone.name}" if teacher == "backbone" else f"self {comp.checkpoint}"


def cached_teacher(folder: Path) -> str | None:
    """Which teacher answered the questions cached in ``folder`` (None: nothing cached yet)."""
    meta = folder / "teacher.json"
    return json.loads(meta.read_text())["teacher"] if meta.is_file() else None


def _check_teacher(folder: Path, name: str, building: bool) -> None:
    """A cache folder holds one teacher's answers: shards are never mixed across teachers, and a cache is
    reused only for its kind of teacher (a run continued from a trained checkpoint keeps the teacher
    that its first run cached: the frozen reference)."""
    held = cached_teacher(folder)
    if held is None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "teacher.json").write_text(json.dumps({"teacher": name}))
    elif (held != name) if building else (held.split()[0] != name.split()[0]):
        raise InvalidSettingError(f"{folder} holds the answers of teacher {held!r}, not {name!r}: "
                                  "give another --teacher-cache folder")


def build_teacher_shard(comp, qa, folder: Path, shard: int, shards: int, batch_size: int,
                        max_new_tokens: int = 24, teacher: str = "backbone") -> None:
    """Shard ``shard`` of ``shards`` of the teacher cache: every ``shards``-th question, saved in ``folder``."""
    _check_teacher(folder, teacher_name(comp, teacher), building=True)
    mine = qa[shard::shards]
    print(f"teacher shard {shard}/{shards}: {len(mine)} questions", flush=True)
    save_cache(build_teacher_cache(comp.backbone, mine, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                   progress=shard == 0, reader=comp if teacher == "self" else None),
               folder / f"shard-{shard}-of-{shards}.pt")


def teacher_cache(comp, qa, folder: Path, rank: int, world: int, batch_size: int, max_new_tokens: int = 24,
                  teacher: str = "backbone"):
    """Reuse a complete teacher cache in ``folder`` (built with any number of processes), or build it:
    each rank answers its share of the questions and saves a shard; then every rank loads all shards."""
    _check_teacher(folder, teacher_name(comp, teacher), building=False)

    def complete() -> list[Path] | None:
        for n in sorted({int(p.stem.rsplit("-of-", 1)[1]) for p in folder.glob("shard-*-of-*.pt")}):
            shards = [folder / f"shard-{r}-of-{n}.pt" for r in range(n)]
            if all(s.is_file() for s in shards):
                return shards
        return None

    shards = complete()
    if shards is None and teacher == "self" and comp.untrained:
        raise InvalidSettingError("--teacher self needs a trained reader to answer: give --init CHECKPOINT, or "
                                  "a complete --teacher-cache that a trained checkpoint built (a fresh adapter "
                                  "then learns from that reader's answers), or --teacher backbone")
    if shards is None:
        build_teacher_shard(comp, qa, folder, rank, world, batch_size, max_new_tokens, teacher)
        if world > 1:
            torch.distributed.barrier()
        shards = complete()
    return load_cache(shards)


# ---------------------------------------------------------------------------------------------- student
@dataclass
class DistillConfig:
    target: str = "filtered"  # teacher | gold | filtered (teacher's answer where it holds the gold one)
    batch_size: int = 64
    lr: float = 1e-4
    classifier_lr_mult: float = 10.0
    kl_weight: float = 1.0
    saliency_weight: float = 1.0  # BCE on keep labels (teacher saliency ∪ gold span)
    rank_weight: float = 0.0  # listwise: the gold span's tokens ranked above the rest of the context
    rank_loss: str = "span"  # how (RANK_LOSSES)
    rates: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)
    max_paragraphs: int = 8
    other_articles: float = 0.5  # share of contexts whose distractors come from any article, not the question's
    max_context_tokens: int = 1024
    steps: int = 1000
    minutes: float | None = None
    save_every: int = 500
    bucket_pool: int = 8  # batches drawn at once and bucketed by context length
    compile: bool = False  # torch.compile the frozen backbone's layers (Backbone.compile_layers) for both passes
    #: how the student's kept tokens are chosen: "words" (whole words anywhere, the top scores) or
    #: "inference" (as the compressor's defaults choose them: phrases pulled in, one stretch per 60 kept
    #: tokens), so the student learns to read the fragments it will be given
    selection: str = "words"
    seed: int = 0


@dataclass
class Item:
    """One question, tokenised once: everything the step needs except the distractors."""

    paragraph: TokenizedContext
    source: str
    enc_question: list[int]
    pre: list[int]
    post: list[int]
    target_ids: list[int]
    target_top: tuple  # numpy (n, k) ids and log-probs
    positive: list[int]  # paragraph positions labelled keep: teacher saliency ∪ gold answer tokens
    gold: list[int]  # paragraph positions of the gold answer's tokens (the rank loss's targets)


def prepare_items(backbone: Backbone, examples: list[QAExample], cache: dict[str, TeacherEntry],
                  target: str, paragraph_tokens: int = 512) -> list[Item]:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    encoder = ContextEncoder(backbone)
    paras = tokenize_paragraphs(backbone, [ex.paragraph for ex in examples], paragraph_tokens)
    items, missing, used_teacher = [], 0, 0
    for ex in examples:
        entry = cache.get(example_key(ex))
        if entry is None:
            missing += 1
            continue
        use_teacher = target == "teacher" or (
            target == "filtered" and best_over_golds(contains, entry.answer, ex.answers) > 0)
        used_teacher += use_teacher
        par = paras[ex.paragraph]
        spans = [(s, s + len(a)) for a, s in zip(ex.answers, ex.answer_starts) if s >= 0]
        spans = [(s - ex.gold_start, e - ex.gold_start) for s, e in spans]
        gold = sorted(set(span_positions(par, spans)))
        positive = sorted(set(entry.salient) | set(gold))
        pre, post = qa_prompt_ids(backbone, ex.question, SOFT + KEPT)
        items.append(Item(
            paragraph=par, source=ex.source, enc_question=encoder.question_ids(ex.question), pre=pre, post=post,
            target_ids=entry.answer_ids if use_teacher else entry.gold_ids,
            target_top=entry.answer_top if use_teacher else entry.gold_top, positive=positive, gold=gold,
        ))
    if missing:
        log.warning("%d questions have no teacher entry and are left out", missing)
    log.warning("%d items; teacher answer as target for %d (%.0f%%)", len(items), used_teacher,
                100 * used_teacher / max(1, len(items)))
    return items


class DistillStep:
    """Builds a batch (distractors, selection, student rows) and returns the loss; see module doc."""

    def __init__(self, backbone: Backbone, model: torch.nn.Module, items: list[Item], cfg: DistillConfig,
                 rng: random.Random):
        self.bb, self.model, self.items, self.cfg, self.rng = backbone, model, items, cfg, rng
        self.config = getattr(model, "module", model).config  # model may be DDP-wrapped
        self.encoder = ContextEncoder(backbone, layer_states=getattr(model, "module", model).needs_layer_states)
        self.by_source: dict[str, list[int]] = {}
        for n, it in enumerate(items):
            self.by_source.setdefault(it.source, []).append(n)
        self.everything = list(range(len(items)))
        self.sep = backbone.tokenizer(DOCUMENT_SEPARATOR, add_special_tokens=False)["input_ids"]
        gap = getattr(model, "module", model).config.kept_gap  # model may be DDP-wrapped
        self.gap = backbone.tokenizer(gap, add_special_tokens=False)["input_ids"] if gap else []
        self.pad = backbone.tokenizer.pad_token_id

    def context_for(self, n: int) -> tuple[list[int], list[int], list[int]]:
        """ids, word ids and keep labels (0 drop, 1 salient, 2 gold answer) of item ``n``'s paragraph among
        0..max_paragraphs-1 distractors."""
        it, rng, cfg = self.items[n], self.rng, self.cfg
        k = rng.randint(1, cfg.max_paragraphs)
        seen, others = {id(it.paragraph)}, []
        pool = self.everything if rng.random() < cfg.other_articles else self.by_source[it.source]
        for _ in range(4 * k):
            if len(others) >= k - 1:
                break
            p = self.items[rng.choice(pool)].paragraph
            if id(p) not in seen:
                seen.add(id(p))
                others.append(p)
        budget = cfg.max_context_tokens - len(it.paragraph.ids)
        while others and sum(len(p.ids) + len(self.sep) for p in others) > budget:
            others.pop()
        paras = others[:]
        paras.insert(rng.randint(0, len(others)), it.paragraph)
        ids, words, labels = [], [], []
        for j, p in enumerate(paras):
            if j:
                words.extend([words[-1] + 1] * len(self.sep))
                ids.extend(self.sep)
                labels.extend([0] * len(self.sep))
            base = (words[-1] + 1) if words else 0
            ids.extend(p.ids)
            words.extend(base + w for w in p.words)
            if p is it.paragraph:
                lab = [0] * len(p.ids)
                for q in it.positive:
                    if q < len(lab):
                        lab[q] = 1
                for q in it.gold:
                    if q < len(lab):
                        lab[q] = 2
                labels.extend(lab)
            else:
                labels.extend([0] * len(p.ids))
        return ids, words, labels

    def batches(self, indices: list[int], batch_size: int) -> list[tuple[list[int], list[tuple]]]:
        """Contexts for ``indices``, bucketed by length into batches (in shuffled order): contexts of
        1..max_paragraphs paragraphs differ up to 8x in length, and padding to the longest in a random
        batch wastes about a third of every forward; sorting a pool of several batches removes most of it."""
        ctxs = [self.context_for(n) for n in indices]
        order = sorted(range(len(indices)), key=lambda i: len(ctxs[i][0]))
        out = [([indices[i] for i in order[s:s + batch_size]], [ctxs[i] for i in order[s:s + batch_size]])
               for s in range(0, len(order), batch_size)]
        self.rng.shuffle(out)
        return out

    def __call__(self, batch: list[int], autocast, ctxs: list[tuple] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        ctxs = ctxs if ctxs is not None else [self.context_for(n) for n in batch]
        items = [self.items[n] for n in batch]
        # 1. frozen encoder: [question prefix][context], as at inference
        with record_function("distill/encoder"), autocast:
            enc = self.encoder.encode_ids([it.enc_question for it in items], [c[0] for c in ctxs])
        # 2. the trainable part: soft tokens and keep logits
        with record_function("distill/adapter+classifier"), autocast:
            soft, keep_logits = self.model(enc)
        keep_logits = keep_logits.float()
        probs = torch.sigmoid(keep_logits)
        with record_function("distill/selection"):
            rows = self._student_rows(items, ctxs, probs.detach().cpu())
        return self._losses(autocast, items, ctxs, enc, soft, keep_logits, probs, rows)

    def select(self, probs: list[float], words: list[int], n_keep: int) -> list[int]:
        """The student's kept positions (exact budget, original order), by ``cfg.selection``."""
        s = SELECTIONS[self.cfg.selection]
        return select_by_budget(probs, words, n_keep, s.phrase_strength, s.span_count)

    def _student_rows(self, items: list[Item], ctxs: list[tuple], probs_cpu: torch.Tensor) -> "StudentRows":
        """Selection (:meth:`select`) and the student's decoder rows."""
        cfg = self.cfg
        rows, kept_b, kept_t, kept_c, soft_t, tgt_t = [], [], [], [], [], []
        for b, (it, (cids, cwords, _)) in enumerate(zip(items, ctxs)):
            n_keep = keep_count(len(cids), self.rng.choice(cfg.rates))
            kept = self.select(probs_cpu[b, : len(cids)].tolist(), cwords, n_keep)
            s0, k = len(it.pre), self.config.soft_token_count(len(cids))
            body, slots = with_gaps([cids[p] for p in kept], kept, self.gap)
            row = it.pre + [self.pad] * k + body + it.post
            kept_t += [s0 + k + t for t in slots]
            soft_t.append(torch.arange(s0, s0 + k))
            kept_b += [b] * len(kept)
            kept_c += kept
            tgt_t.append(torch.arange(len(row) - 1, len(row) - 1 + len(it.target_ids)))
            rows.append(torch.tensor(row + it.target_ids))
        return StudentRows(rows, soft_t, tgt_t, kept_b, kept_t, kept_c)

    def _losses(self, autocast, items: list[Item], ctxs: list[tuple], enc, soft: torch.Tensor,
                keep_logits: torch.Tensor, probs: torch.Tensor, student: "StudentRows"):
        """The student's forward on its rows, and every loss term."""
        bb, dev, cfg = self.bb, self.bb.device, self.cfg
        rows, soft_t, tgt_t = student.rows, student.soft_slots, student.target_slots
        kept_b, kept_t, kept_c = student.kept_row, student.kept_slot, student.kept_position
        x = _pad(rows, -1)
        x[x == -1] = self.pad
        x = x.to(dev)
        B, T = x.shape
        # 4. student embeddings: token embeddings, soft tokens in their slots, kept tokens scaled
        #    by 1 + p - stop_grad(p) (straight-through: the task loss reaches the classifier)
        E = bb.model.get_input_embeddings()(x)
        soft_pos = torch.zeros((B, T), dtype=torch.bool)
        for b, t in enumerate(soft_t):
            soft_pos[b, t] = True
        counts = torch.tensor([len(t) for t in soft_t])
        real = (torch.arange(soft.shape[1])[None, :] < counts[:, None]).to(dev)  # past a row's count: padding
        E = E.masked_scatter(soft_pos.to(dev)[..., None], soft[real].to(E.dtype))
        kb, kt, kc = (torch.tensor(v, dtype=torch.long, device=dev) for v in (kept_b, kept_t, kept_c))
        pk = probs[kb, kc]
        scale = torch.ones((B, T), device=dev, dtype=pk.dtype).index_put((kb, kt), 1.0 + pk - pk.detach())
        E = E * scale[..., None].to(E.dtype)
        # 5. student forward; logits only where targets are predicted
        Tt = max(len(t) for t in tgt_t)
        where = torch.zeros((B, Tt), dtype=torch.long)
        tmask = torch.zeros((B, Tt), dtype=torch.bool)
        tids = torch.zeros((B, Tt), dtype=torch.long)
        top_i = torch.zeros((B, Tt, items[0].target_top[0].shape[-1]), dtype=torch.long)
        top_v = torch.full(top_i.shape, -1e4, dtype=torch.float32)
        for b, (it, t) in enumerate(zip(items, tgt_t)):
            n = len(t)
            where[b, :n], tmask[b, :n] = t, True
            tids[b, :n] = torch.tensor(it.target_ids)
            top_i[b, :n] = torch.from_numpy(it.target_top[0]).long()
            top_v[b, :n] = torch.from_numpy(it.target_top[1]).float()
        where, tmask, tids, top_i, top_v = (v.to(dev) for v in (where, tmask, tids, top_i, top_v))
        with record_function("distill/student"), autocast:
            h = right_padded_forward(bb.model, inputs_embeds=E).last_hidden_state  # right-padded: no mask
            logits = logits_at(bb.model, h, where)
        logp = torch.log_softmax(logits, -1)
        nll = -(logp.gather(-1, tids[..., None]).squeeze(-1) * tmask).sum() / tmask.sum()
        # KL(teacher || student) on the teacher's top-k support (renormalised there)
        t_logp = torch.log_softmax(top_v, -1)
        kl_tok = (t_logp.exp() * (t_logp - logp.gather(-1, top_i))).sum(-1)
        kl = (kl_tok * tmask).sum() / tmask.sum()
        # classifier: teacher saliency ∪ gold span inside the question's paragraph, 0 on distractors
        lab = torch.zeros(keep_logits.shape, dtype=torch.long)
        for b, (_, _, row) in enumerate(ctxs):
            lab[b, : len(row)] = torch.tensor(row)
        lab = lab.to(dev)
        y = (lab > 0).to(keep_logits.dtype)
        bce = (F.binary_cross_entropy_with_logits(keep_logits, y, reduction="none") * enc.context_mask).sum() \
            / enc.context_mask.sum()
        # listwise: −log of the probability mass (softmax over the context) on the gold answer's tokens,
        # for rows whose paragraph still holds them: what a budget of a few tokens needs is that ranking
        gold = lab == 2
        has = gold.any(-1)
        rank = (rank_loss(keep_logits, enc.context_mask, gold, cfg.rank_loss) * has).sum() / has.sum().clamp(min=1)
        loss = nll + cfg.kl_weight * kl + cfg.saliency_weight * bce + cfg.rank_weight * rank
        return loss, {"nll": float(nll.detach()), "kl": float(kl.detach()), "bce": float(bce.detach()),
                      "rank": float(rank.detach()), "loss": float(loss.detach()),
                      "ctx_tokens": float(enc.context_mask.sum()) / B}


#: what the listwise loss asks of the gold answer's tokens: "span", that their softmax mass over the context be
#: high (one strong token satisfies it); "each", that every one of them outrank the non-gold tokens (what a
#: budget of a few tokens needs to keep the whole answer; docs/DESIGN.md, "Classifier recall: s10")
RANK_LOSSES = ("span", "each")


def rank_loss(logits: torch.Tensor, mask: torch.Tensor, gold: torch.Tensor, kind: str) -> torch.Tensor:
    """Per row (B,): the listwise ranking loss of the gold tokens (``gold``) among the real ones (``mask``)."""
    valid = logits.masked_fill(~mask, -1e4)
    if kind == "span":  # −log of the softmax mass on the gold tokens
        return torch.logsumexp(valid, -1) - torch.logsumexp(valid.masked_fill(~gold, -1e4), -1)
    if kind == "each":  # mean over gold tokens of −log softmax(token) over itself and every non-gold token
        negatives = torch.logsumexp(valid.masked_fill(gold, -1e4), -1, keepdim=True)
        per_token = torch.logaddexp(negatives, valid) - valid
        return (per_token * gold).sum(-1) / gold.sum(-1).clamp(min=1)
    raise ValueError(f"rank loss {kind!r}: choose one of {', '.join(RANK_LOSSES)}")


@dataclass
class StudentRows:
    """The student's decoder rows for one batch, built on the host from the selection."""

    rows: list[torch.Tensor]  # ids: [pre][k soft slots][kept tokens][post][target]
    soft_slots: list[torch.Tensor]  # each row's soft-token positions
    target_slots: list[torch.Tensor]  # the positions that predict each target token
    kept_row: list[int]  # for every kept token: its row,
    kept_slot: list[int]  # its position in the row,
    kept_position: list[int]  # and its position in the context (for its keep probability)


def _pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


# ---------------------------------------------------------------------------------------------- loop
def train_distill(compressor, items: list[Item], cfg: DistillConfig, out_dir: Path, *, rank: int = 0,
                  world: int = 1, progress: bool = True, held_out: list[Item] | None = None) -> dict[str, Any]:
    """Stage 3 on the one loop (:func:`hyco2.training.loop.train`): this stage's step draws a batch from
    a pool bucketed by context length and returns its distillation loss.

    With ``world > 1`` (torchrun) each rank draws its own batches and DDP averages the gradients;
    ``cfg.batch_size`` is per rank. ``held_out`` items (never trained on) give the held-out loss.
    """
    bb, model = compressor.backbone, compressor.model
    dev = bb.device
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    autocast = bf16_autocast(dev)
    step_fn: DistillStep | None = None  # made at the first step: seeded by the step a run starts or resumes at
    order: list[int] = []
    ready: list[tuple[list[int], list[tuple]]] = []
    shuffle = random.Random()

    def step(i: int) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal step_fn
        if step_fn is None:
            step_fn = DistillStep(bb, ddp, items, cfg,
                                  random.Random(cfg.seed * 1009 + rank * 7919 + i))
            shuffle.seed(cfg.seed + rank + i)
        if not ready:  # a pool of batches, bucketed by context length
            pool = []
            while len(pool) < cfg.batch_size * cfg.bucket_pool:
                if not order:
                    order.extend(range(len(items)))
                    shuffle.shuffle(order)
                pool.append(order.pop())
            ready.extend(step_fn.batches(pool, cfg.batch_size))
        batch, ctxs = ready.pop()
        return step_fn(batch, autocast, ctxs)

    def evaluate() -> dict[str, float]:
        held = DistillStep(bb, model, held_out, cfg, random.Random(cfg.seed))
        rows = [held(list(range(i, min(i + cfg.batch_size, len(held_out)))), autocast)[1]
                for i in range(0, len(held_out), cfg.batch_size)]
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

    loop = LoopConfig(name="instruct", steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size,
                      classifier_lr_mult=cfg.classifier_lr_mult, minutes=cfg.minutes, save_every=cfg.save_every)
    if cfg.compile:
        bb.compile_layers()
    try:
        summary = train(model, list(model.parameters()), step, loop, out_dir,
                        evaluate=evaluate if held_out else None, rank=rank, world=world, progress=progress)
    finally:
        if cfg.compile:
            bb.compile_layers(enable=False)
    return {**summary, "records": len(items), "held_out_records": len(held_out or []),
            "target": cfg.target, "max_paragraphs": cfg.max_paragraphs, "rates": list(cfg.rates),
            "other_articles": cfg.other_articles, "kept_gap": model.config.kept_gap,
            "saliency_weight": cfg.saliency_weight, "rank_weight": cfg.rank_weight, "rank_loss": cfg.rank_loss,
            "question_classifier": bool(model.config.classifier_question),
            "classifier_context": model.config.classifier_context, "compiled_layers": cfg.compile,
            "soft_token_span": model.config.soft_token_span, "max_soft_tokens": model.config.max_soft_tokens,
            "selection": cfg.selection, "adapter": model.config.adapter}
