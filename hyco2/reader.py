"""Answering: the frozen backbone reads a compressed context (or the whole one) and answers.

Compressing and answering are apart, as in LLMLingua, whose ``PromptCompressor`` returns a prompt and
leaves generation to the caller: :class:`~hyco2.compressor.HyCo2Compressor` ends at a
:class:`~hyco2.compressor.CompressionResult`, whose ``kept_text`` any LLM can read. This module is the
reader that also takes the soft tokens: HyCo2's own decoder, the backbone with the result spliced into
its chat template.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

import torch

from .compressor import CompressionResult, HyCo2Compressor
from .encoder import TokenizedContext
from .errors import ContextTooLongError, EmptyInputError, HyCo2OutOfMemoryError, InvalidSettingError
from .forward import forward_on_targets, friendly_oom, greedy_decode, target_nll
from .prompting import KEPT, SOFT, embed_prompt, left_pad, prompt_parts, qa_user_text, with_gaps
from .selection import check_whole_number
from .settings import CompressionSettings
from .text import DOCUMENT_SEPARATOR, as_text


class Mode(str, Enum):
    """What the decoder reads: the whole context, its compression (soft + kept, soft only, kept only), or
    nothing (the question alone, the floor)."""

    FULL = "full"
    HYBRID = "hybrid"
    SOFT = "soft"
    HARD = "hard"
    NONE = "none"

    @classmethod
    def parse(cls, value: "str | Mode") -> "Mode":
        """A mode from its name; ``compressed`` is the hybrid mode's everyday name."""
        if isinstance(value, Mode):
            return value
        name = {"compressed": "hybrid"}.get(value, value) if isinstance(value, str) else value
        try:
            return cls(name)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise InvalidSettingError(f"mode must be one of {names} (or 'compressed'), not {value!r}.") from None

    @property
    def reads_compression(self) -> bool:
        return self in (Mode.HYBRID, Mode.SOFT, Mode.HARD)


@dataclass
class DecoderPrompt:
    embeds: torch.Tensor  # (T, D)
    document_tokens: int  # positions of the document (context, or kept + soft)
    position_ids: torch.Tensor | None = None  # (T,) when not 0…T-1


@dataclass
class Answer:
    text: str
    mode: str
    decoder_tokens: int  # prompt positions the decoder read
    document_tokens: int  # of which the document (context, or kept + soft)
    latency_s: float
    compression: CompressionResult | None = None


class HyCo2Reader:
    """The backbone answering from a compression, the full context, or nothing (:class:`Mode`)."""

    def __init__(self, compressor: HyCo2Compressor, positions: str = "contiguous"):
        """``positions``: where the decoder sees the kept tokens. ``contiguous`` (the trained format) numbers
        the prompt 0, 1, 2, …; ``original`` puts each kept token at its position in the context, so the
        gaps between positions say how much text is missing (an ablation; generation then runs
        :func:`hyco2.forward.greedy_decode`)."""
        if positions not in ("contiguous", "original"):
            raise InvalidSettingError(f"positions must be 'contiguous' or 'original', not {positions!r}.")
        self.compressor = compressor
        self.backbone = compressor.backbone
        self.positions = positions

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path | None = None, **kwargs: Any) -> "HyCo2Reader":
        """Load the compressor (:meth:`HyCo2Compressor.from_pretrained`, same arguments) and read with it."""
        return cls(HyCo2Compressor.from_pretrained(checkpoint, **kwargs))

    # ------------------------------------------------------------------ prompts
    def _full_context(self, context: str | bytes | None, compression: CompressionResult | None) -> TokenizedContext:
        """The context as the full mode reads it: the compression's own tokenisation when it was made from
        this text (a request tokenises once), else tokenised here; refused if over the window."""
        ctx = compression.tokenized if compression is not None else None
        if ctx is None or (context is not None and as_text(context, "context") != ctx.text):
            if context is None:
                raise EmptyInputError("mode='full' needs the context or a compression made from it.")
            return self.compressor.tokenize(context)
        if len(ctx) > self.compressor.max_context_tokens:
            raise ContextTooLongError(len(ctx), self.compressor.max_context_tokens)
        return ctx

    def decoder_embeds(self, mode: str | Mode, question: str, context: TokenizedContext | None = None,
                       compression: CompressionResult | None = None) -> tuple[torch.Tensor, int]:
        """Prompt embeddings for one mode, and how many of its positions are the document."""
        prompt = self.decoder_prompt(mode, question, context, compression)
        return prompt.embeds, prompt.document_tokens

    def decoder_prompt(self, mode: str | Mode, question: str, context: TokenizedContext | None = None,
                       compression: CompressionResult | None = None) -> "DecoderPrompt":
        """What the decoder reads for one mode: embeddings, the document's share, and position ids when
        the reader puts kept tokens at their original positions (``positions="original"``)."""
        mode, bb = Mode.parse(mode), self.backbone
        if mode is Mode.FULL:
            if context is None:
                raise EmptyInputError("mode='full' needs the tokenised context.")
            parts = prompt_parts(bb, qa_user_text(question, KEPT))
            return DecoderPrompt(embed_prompt(bb, parts, kept_ids=context.ids), len(context))
        if mode is Mode.NONE:
            return DecoderPrompt(embed_prompt(bb, prompt_parts(bb, qa_user_text(question, None))), 0)
        if compression is None:
            raise InvalidSettingError(f"mode={mode.value!r} needs the compression to read.")
        soft = compression.soft_embeddings if mode in (Mode.HYBRID, Mode.SOFT) else None
        kept = compression.kept_token_ids if mode in (Mode.HYBRID, Mode.HARD) else None
        if mode is Mode.SOFT and soft is None:
            raise InvalidSettingError(f"mode='soft' needs soft tokens; {compression.method} made none.")
        gap = self.compressor.kept_gap_ids if soft is not None else ()  # the trained reader's format only
        original = self.positions == "original" and kept is not None
        if original and gap:
            raise InvalidSettingError("positions='original' already shows where text is missing; it does not "
                                      "combine with a checkpoint's kept_gap.")
        # one (soft, kept, kept positions relative to the chunk, chunk length) per chunk, in document order
        chunks = compression.chunk_ranges or [(0, compression.context_tokens)]
        segments = compression.segments or [(0 if soft is None else soft.shape[0], compression.kept_tokens)]
        slots, si, ki = [], 0, 0
        for (start, end), (n_soft, n_kept) in zip(chunks, segments):
            s_part = soft[si:si + n_soft] if soft is not None and n_soft else None
            k_part = k_pos = None
            if kept is not None and n_kept:
                k_part = with_gaps(kept[ki:ki + n_kept], compression.kept_positions[ki:ki + n_kept], gap)[0]
                k_pos = [p - start for p in compression.kept_positions[ki:ki + n_kept]]
            si, ki = si + n_soft, ki + n_kept
            if s_part is not None or k_part is not None:
                slots.append((s_part, k_part, k_pos, end - start))
        doc = DOCUMENT_SEPARATOR.join((SOFT if s_ is not None else "") + (KEPT if k_ is not None else "")
                                      for s_, k_, _, _ in slots)
        parts = prompt_parts(bb, qa_user_text(question, doc))
        softs = [x for x, _, _, _ in slots if x is not None]
        kepts = [x for _, x, _, _ in slots if x is not None]
        embeds = embed_prompt(bb, parts, soft=softs, kept_ids=tuple(kepts))
        n_doc = sum(x.shape[0] for x in softs) + sum(map(len, kepts))
        positions = None
        if original:
            where, pos, kept_slots = [], 0, iter([(p, n) for _, k_, p, n in slots if k_ is not None])
            soft_iter = iter(softs)
            for kind, ids in parts.parts:
                if kind == "kept":  # each kept token where it stood in its chunk; what follows, after the chunk
                    rel, n = next(kept_slots)
                    where.extend(pos + p for p in rel)
                    pos += n
                else:
                    width = len(ids) if kind == "ids" else next(soft_iter).shape[0]
                    where.extend(range(pos, pos + width))
                    pos += width
            positions = torch.tensor(where, dtype=torch.long)
        return DecoderPrompt(embeds, n_doc, positions)

    def _batch_prompts(self, mode: Mode, idx: range, contexts: list, qs: list[str],
                       compressions: list[CompressionResult] | None
                       ) -> tuple[list[CompressionResult | None], list["DecoderPrompt"]]:
        """The compressions and decoder prompts of rows ``idx`` (the full mode reads each row's context)."""
        comps = [compressions[i] if compressions is not None else None for i in idx]
        prompts = [self.decoder_prompt(mode, qs[i], self._full_context(contexts[i], c) if mode is Mode.FULL else None,
                                       c) for i, c in zip(idx, comps)]
        return comps, prompts

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def generate(self, embeds: list[torch.Tensor], max_new_tokens: int = 32,
                 positions: list[torch.Tensor | None] | None = None) -> list[str]:
        """Greedy decoding from prompt embeddings, batched with left padding; each answer's first line
        (a small backbone tends to keep talking after it). ``positions``: each prompt's position ids,
        where they are not 0…T-1."""
        check_whole_number("max_new_tokens", max_new_tokens)
        bb = self.backbone
        E, mask = left_pad(embeds)
        with friendly_oom(), bb.eager_layers():
            if positions is None or all(p is None for p in positions):
                out = bb.model.generate(inputs_embeds=E, attention_mask=mask, max_new_tokens=max_new_tokens,
                                        do_sample=False, pad_token_id=bb.tokenizer.pad_token_id)
            else:
                P = torch.zeros(mask.shape, dtype=torch.long, device=E.device)
                for i, (e, p) in enumerate(zip(embeds, positions)):
                    P[i, P.shape[1] - e.shape[0]:] = torch.arange(e.shape[0]) if p is None else p
                stop = bb.model.generation_config.eos_token_id
                stop = {stop} if isinstance(stop, int) else set(stop or ()) or {bb.tokenizer.eos_token_id}
                out = greedy_decode(bb.model, E, mask, P, max_new_tokens, stop, bb.tokenizer.pad_token_id)
        texts = [bb.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]
        return [t.split("\n", 1)[0].strip() for t in texts]

    def generate_stream(self, embeds: torch.Tensor, max_new_tokens: int = 32) -> Iterator[str]:
        """Greedy decoding of one prompt, yielding the answer so far (first line) as it grows."""
        from transformers import TextIteratorStreamer

        check_whole_number("max_new_tokens", max_new_tokens)
        bb = self.backbone
        streamer = TextIteratorStreamer(bb.tokenizer, skip_prompt=True, skip_special_tokens=True)
        E, mask = left_pad([embeds])
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with torch.no_grad(), bb.eager_layers():
                    bb.model.generate(inputs_embeds=E, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=bb.tokenizer.pad_token_id, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text.lstrip().split("\n", 1)[0].strip()
            if "\n" in text.lstrip():
                break
        thread.join()
        if errors:
            if isinstance(errors[0], torch.OutOfMemoryError):
                raise HyCo2OutOfMemoryError("The device ran out of memory while answering.") from errors[0]
            raise errors[0]

    # ------------------------------------------------------------------ answering
    def _question(self, question: str | bytes | None, caller: str) -> str:
        q = self.compressor.check_question(question)
        if q is None:
            raise EmptyInputError(f"{caller}() needs a question.")
        return q

    def answer_stream(self, question: str, mode: str | Mode = Mode.HYBRID, *,
                      compression: CompressionResult | None = None, context: str | bytes | None = None,
                      max_new_tokens: int = 32) -> Iterator[str]:
        """One greedy answer, yielded as it grows (its first line), for a UI to render.

        Compressed modes read ``compression``; ``full`` reads ``context`` or, when not given, the
        compression's own tokenised context (so the text is tokenised once per request)."""
        mode = Mode.parse(mode)
        if self.positions != "contiguous":
            raise InvalidSettingError("answer_stream() reads the trained format only (positions='contiguous').")
        q = self._question(question, "answer_stream")
        ctx = self._full_context(context, compression) if mode is Mode.FULL else None
        embeds, _ = self.decoder_embeds(mode, q, ctx, compression)
        yield from self.generate_stream(embeds, max_new_tokens)

    def answer(self, context: str | bytes | None = None, question: str | bytes | None = None,
               mode: str | Mode = Mode.HYBRID, *, documents: list[str | bytes] | None = None,
               compression: CompressionResult | None = None, max_new_tokens: int = 32, progress: bool = False,
               settings: CompressionSettings | None = None, **setting_overrides: Any) -> Answer:
        """Answer ``question`` from the full context, its compression, or nothing (``mode``).

        How to compress is what :meth:`HyCo2Compressor.compress` takes: ``settings`` and/or the same
        keywords (``rate``, ``budget``, ``threshold``, ``method``, ``selector``, ``seed``, ``phrases``).
        ``documents=[...]`` instead of a context: compressed chunk by chunk; in ``full`` mode they are read
        joined by blank lines (and must fit one window)."""
        mode = Mode.parse(mode)
        s = self.compressor.settings(settings, **setting_overrides)
        if documents is not None:
            if context is not None:
                raise InvalidSettingError("Pass either a context or documents=[...], not both.")
            if mode.reads_compression and compression is None:
                compression = self.compressor.compress(documents=documents, question=question, settings=s,
                                                       progress=progress)
            context = DOCUMENT_SEPARATOR.join(as_text(d, f"document {i + 1}") for i, d in enumerate(documents))
        if context is None:
            raise EmptyInputError("answer() needs a context or documents=[...].")
        return self.answer_batch([context], [question], mode, settings=s,
                                 compressions=[compression] if compression else None,
                                 max_new_tokens=max_new_tokens, progress=progress)[0]

    def answer_batch(self, contexts: list[str | bytes], questions: list[str | bytes], mode: str | Mode = Mode.HYBRID,
                     *, compressions: list[CompressionResult] | None = None, max_new_tokens: int = 32,
                     batch_size: int = 8, progress: bool = False, settings: CompressionSettings | None = None,
                     **setting_overrides: Any) -> list[Answer]:
        """Answers in input order, ``batch_size`` prompts a decoding; the contexts are compressed first
        (:meth:`HyCo2Compressor.compress_batch`, same settings) unless ``compressions`` are given."""
        mode = Mode.parse(mode)
        check_whole_number("batch_size", batch_size)
        if len(questions) != len(contexts):
            raise InvalidSettingError(f"{len(contexts)} contexts but {len(questions)} questions.")
        qs = [self._question(q, "answer") for q in questions]
        if mode.reads_compression and compressions is None:
            compressions = self.compressor.compress_batch(contexts, qs, settings=settings, batch_size=batch_size,
                                                          progress=progress, **setting_overrides)
        answers: list[Answer] = []
        for start in range(0, len(contexts), batch_size):
            t0 = time.perf_counter()
            idx = range(start, min(start + batch_size, len(contexts)))
            comps, prompts = self._batch_prompts(mode, idx, contexts, qs, compressions)
            texts = self.generate([p.embeds for p in prompts], max_new_tokens=max_new_tokens,
                                  positions=[p.position_ids for p in prompts])
            latency = (time.perf_counter() - t0) / len(texts)
            answers.extend(Answer(t, mode.value, int(p.embeds.shape[0]), p.document_tokens, latency, c)
                           for t, p, c in zip(texts, prompts, comps))
        return answers

    @torch.no_grad()
    def answer_nll(self, contexts: list[str | bytes], questions: list[str | bytes], targets: list[str],
                   mode: str | Mode = Mode.HYBRID, *, compressions: list[CompressionResult] | None = None,
                   batch_size: int = 8) -> list[float]:
        """Teacher-forced mean NLL per token of each ``target`` as the answer, right after the prompt
        of ``mode`` (no end-of-turn token): how strongly the decoder's input supports that answer.

        ``compressions`` must be given for the compressed modes (as returned by ``compress_batch``).
        """
        mode = Mode.parse(mode)
        check_whole_number("batch_size", batch_size)
        if mode.reads_compression and compressions is None:
            raise InvalidSettingError(f"answer_nll(mode={mode.value!r}) needs the compressions to score.")
        qs = [self._question(q, "answer_nll") for q in questions]
        out: list[float] = []
        for start in range(0, len(contexts), batch_size):
            idx = range(start, min(start + batch_size, len(contexts)))
            _, prompts = self._batch_prompts(mode, idx, contexts, qs, compressions)
            tgt = [self.backbone.tokenizer(targets[i], add_special_tokens=False)["input_ids"] for i in idx]
            with friendly_oom():
                logits, tids, tmask, _, _ = forward_on_targets(self.backbone.model, [p.embeds for p in prompts], tgt,
                                                               prompt_positions=[p.position_ids for p in prompts])
            out.extend(target_nll(logits, tids, tmask).tolist())
        return out
