"""Compression: load a backbone + checkpoint, and turn contexts into soft tokens + kept tokens.

The result (:class:`CompressionResult`) is what any reader takes: its ``kept_text`` for any LLM, its
soft tokens as well for HyCo2's own reader (:mod:`hyco2.reader`)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from .baselines import get_selector
from .config import HyCo2Config
from .counting import count_cl100k, count_cl100k_batch
from .classifier import ClassifierSelector
from .batching import length_batches
from .chunking import chunk_bounds, join_documents, sub_context
from .encoder import ContextEncoder, TokenizedContext, tokenize_context, tokenize_contexts
from .errors import CheckpointError, ContextTooLongError, EmptyInputError, InvalidSettingError
from .forward import friendly_oom
from .modeling import HyCo2Model
from .selection import Selector, check_whole_number, keep_count
from .settings import CompressionSettings
from .text import as_text
from .transfer import HostCopy

log = logging.getLogger(__name__)

#: The checkpoint shipped for the default backbone (float16 safetensors, a few MB).
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / DEFAULT_BACKBONE
#: Room left in the backbone's window for the question prefix and the decoder prompt.
PROMPT_RESERVE = 256
LONG_CHUNK_TOKENS = 1024


@dataclass
class CompressionResult:
    """A compressed context: what was kept, the soft tokens, and honest counts."""

    context: str
    question: str | None
    method: str
    kept_positions: list[int]
    kept_token_ids: list[int]
    kept_spans: list[tuple[int, int]]
    kept_text: str
    probabilities: list[float] | None
    soft_embeddings: torch.Tensor | None  # (k, D) float32 on CPU
    context_tokens: int
    cl100k_context_tokens: int
    cl100k_kept_tokens: int
    timings: dict[str, float] = field(default_factory=dict)
    untrained: bool = False
    checkpoint: str = ""
    forward_passes: int = 1  # backbone forwards the method spent to compress
    #: (soft tokens, kept tokens) of each chunk in document order, when the context was longer than
    #: one window or a list of documents; None = one chunk. The decoder reads [soft_1][kept_1][soft_2]…
    segments: list[tuple[int, int]] | None = None
    documents: list[tuple[int, int]] | None = None  # each document's token range, for document lists
    chunk_ranges: list[tuple[int, int]] | None = None  # each chunk's token range, beside ``segments``
    rate_adjusted: bool = False  # the kept budget was cut so that the decoder's window holds the result
    tokenized: TokenizedContext | None = None  # the context as tokenised once for this result (offsets, words)

    @property
    def kept_tokens(self) -> int:
        return len(self.kept_positions)

    @property
    def soft_tokens(self) -> int:
        return 0 if self.soft_embeddings is None else int(self.soft_embeddings.shape[0])

    @property
    def compressed_tokens(self) -> int:
        """Positions the decoder reads for the document: kept + soft."""
        return self.kept_tokens + self.soft_tokens

    @property
    def ratio(self) -> float:
        return self.context_tokens / max(1, self.compressed_tokens)

    @property
    def rate(self) -> float:
        return self.compressed_tokens / max(1, self.context_tokens)

    def document_counts(self) -> list[dict[str, int]]:
        """Per document (one entry for a single context): its context tokens, kept tokens and soft tokens
        (the soft tokens of the chunks inside it), in document order; kept and soft tokens sum to the totals (separators between documents are
        context tokens of none)."""
        ranges = self.documents or [(0, self.context_tokens)]
        chunks = list(zip(self.chunk_ranges, self.segments)) if self.chunk_ranges and self.segments else None
        out = []
        for start, end in ranges:
            kept = sum(1 for p in self.kept_positions if start <= p < end)
            soft = (sum(n for (cs, _), (n, _) in chunks if start <= cs < end) if chunks is not None
                    else self.soft_tokens)
            out.append({"context_tokens": end - start, "kept_tokens": kept, "soft_tokens": soft})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready; ``ratio`` formatted like LLMLingua's ("11.2x")."""
        return {
            "method": self.method,
            "question": self.question,
            "context_tokens": self.context_tokens,
            "kept_tokens": self.kept_tokens,
            "soft_tokens": self.soft_tokens,
            "compressed_tokens": self.compressed_tokens,
            "cl100k_context_tokens": self.cl100k_context_tokens,
            "cl100k_kept_tokens": self.cl100k_kept_tokens,
            "ratio": f"{self.ratio:.1f}x",
            "rate": f"{100 * self.rate:.1f}%",
            "kept_text": self.kept_text,
            "kept_positions": self.kept_positions,
            "kept_spans": [list(s) for s in self.kept_spans],
            "timings": self.timings,
            "untrained": self.untrained,
            "checkpoint": self.checkpoint,
            "forward_passes": self.forward_passes,
            "chunks": len(self.segments) if self.segments else 1,
            "segments": self.segments,
            "documents": self.documents,
            "document_counts": self.document_counts() if self.documents else None,
            "rate_adjusted": self.rate_adjusted,
        }


@dataclass
class _QueuedBatch:
    """A batch whose encoder pass is queued (:meth:`HyCo2Compressor._queue_batch`): its rows' indices in
    the caller's list, its contexts and questions, the pass's outputs on their way to the host, and the
    seconds queueing took (all of the pass on the CPU)."""

    rows: list[int]
    contexts: list[TokenizedContext]
    questions: list[str | None]
    outputs: HostCopy | None
    queue_s: float


class HyCo2Compressor:
    """Backbone + adapter + classifier: contexts in, :class:`CompressionResult` out (answering is
    :class:`hyco2.reader.HyCo2Reader`'s)."""

    def __init__(self, backbone: Backbone, model: HyCo2Model, checkpoint: str = "",
                 max_context_tokens: int | None = None):
        self.backbone = backbone
        self.model = model.to(backbone.device).eval()
        self._encoder: ContextEncoder | None = None
        self.checkpoint = checkpoint
        self.max_context_tokens = max_context_tokens or max(64, backbone.max_positions - PROMPT_RESERVE)
        #: Chunk size for texts longer than one window and for document lists: the context length stage 3
        #: trains on (attention cost also grows with the square of the chunk: 1k-token chunks encode a
        #: 100k-token text several times faster than 8k-token ones on a CPU).
        self.chunk_tokens = min(LONG_CHUNK_TOKENS, self.max_context_tokens)

    @property
    def encoder(self) -> ContextEncoder:
        """The encoder pass this model's adapter needs (every layer's states for ComprExIT's): checked
        against the model at each use, so a model swapped in (training a fresh adapter) gets the right one."""
        want = self.model.needs_layer_states
        if self._encoder is None or self._encoder.layer_states != want:
            self._encoder = ContextEncoder(self.backbone, layer_states=want)
        return self._encoder

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | Path | None = None,
        model: str | None = None,
        quantize: str = "auto",
        device: str | torch.device | None = None,
        backbone: Backbone | None = None,
        seed: int = 0,
        compile: bool = False,
    ) -> "HyCo2Compressor":
        """Load a checkpoint onto its backbone.

        ``checkpoint=None`` takes the shipped default for the default backbone; ``"untrained"`` (or
        a backbone without a shipped checkpoint) builds a randomly initialised adapter, and every
        result then says ``untrained=True``. ``compile=True`` compiles the backbone's layers for the
        encoder passes (:meth:`hyco2.backbone.Backbone.compile_layers`: measured on an H200, the bare
        prefill 2.8x faster; the first batches pay tens of seconds of compiling), for batch work;
        answering still decodes eagerly.
        """
        default = DEFAULT_CHECKPOINT if (DEFAULT_CHECKPOINT / "config.json").is_file() else None
        if str(checkpoint) == "untrained":
            ckpt_dir = None
        elif checkpoint is not None:
            ckpt_dir = Path(checkpoint)
        else:
            ckpt_dir = default
        if ckpt_dir is not None and not (ckpt_dir / "config.json").is_file():
            raise CheckpointError(f"{ckpt_dir} is not a HyCo2 checkpoint: it needs config.json and "
                                  f"model.safetensors (a folder that save_pretrained or hyco2.training wrote).")
        if ckpt_dir is not None:
            try:
                config = HyCo2Config.load(ckpt_dir)
            except (ValueError, TypeError) as exc:  # broken JSON, unknown keys, a newer format
                raise CheckpointError(f"{ckpt_dir / 'config.json'} is not a valid HyCo2 config: {exc}") from None
            model = model or config.backbone
        backbone = backbone or load_backbone(model or DEFAULT_BACKBONE, quantize=quantize, device=device)
        if checkpoint is None and ckpt_dir is not None:
            # The shipped checkpoint serves any copy of its backbone (e.g. the same model by hub id);
            # for another backbone there is no trained checkpoint yet.
            if config.backbone_fingerprint != backbone.fingerprint():
                ckpt_dir = None
        if ckpt_dir is not None:
            hyco2 = HyCo2Model.from_pretrained(ckpt_dir, fingerprint=backbone.fingerprint())
            name = str(ckpt_dir)
        else:
            hyco2 = cls.fresh_model(backbone, seed=seed)
            name = "untrained"
            log.warning("No trained HyCo2 checkpoint for %s: using an untrained adapter.", backbone.name)
        if compile:
            backbone.compile_layers()
        return cls(backbone, hyco2, checkpoint=name)

    @staticmethod
    def fresh_model(backbone: Backbone, seed: int = 0, **overrides: Any) -> HyCo2Model:
        """A randomly initialised model for ``backbone`` (``adapter="comprexit"`` reads all its layers)."""
        if overrides.get("adapter") == "comprexit" and not overrides.get("layer_states"):
            overrides["layer_states"] = int(backbone.model.config.num_hidden_layers) + 1
        config = HyCo2Config(
            hidden_size=backbone.hidden_size,
            backbone=backbone.name,
            backbone_fingerprint=backbone.fingerprint(),
            embedding_rms=backbone.embedding_rms(),
            **overrides,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return HyCo2Model(config)

    def save_pretrained(self, folder: str | Path) -> None:
        self.model.save_pretrained(folder)

    @property
    def kept_gap_ids(self) -> tuple[int, ...]:
        """Token ids the decoder reads between non-adjacent kept spans (the checkpoint's ``kept_gap``)."""
        gap = self.model.config.kept_gap
        return tuple(self.backbone.tokenizer(gap, add_special_tokens=False)["input_ids"]) if gap else ()

    @property
    def untrained(self) -> bool:
        return not self.model.config.trained

    # ------------------------------------------------------------------ compression
    def tokenize(self, context: str | bytes) -> TokenizedContext:
        text = as_text(context, "context")
        tokenized = tokenize_context(self.backbone, text)
        if len(tokenized) > self.max_context_tokens:
            raise ContextTooLongError(len(tokenized), self.max_context_tokens)
        return tokenized

    @staticmethod
    def check_question(question: str | bytes | None) -> str | None:
        """The question as text, stripped; None stays None (a generic instruction), blank is refused."""
        if question is None:
            return None
        if isinstance(question, (str, bytes)) and not question.strip():
            raise EmptyInputError("The question is empty: pass a question, or None for a generic summary instruction.")
        return as_text(question, "question").strip()

    def settings(self, settings: CompressionSettings | None = None, **overrides: Any) -> CompressionSettings:
        """The one settings value for a request: ``settings`` with any keyword overrides laid over it, and
        the checkpoint's default rate when none of rate, budget and threshold is given."""
        return CompressionSettings.build(settings, **overrides).with_default_rate(self.model.config.default_rate)

    def selector_for(self, settings: CompressionSettings) -> Selector:
        """Who picks the kept tokens: HyCo2's classifier (budget or threshold) or a peer, one interface."""
        if settings.classifier_selects:
            return ClassifierSelector(self.model, threshold=settings.threshold, phrases=settings.phrase_strength,
                                      spans=settings.span_count)
        return get_selector(settings.method if settings.method != "hyco2" else settings.selector)

    def compress(self, context: str | bytes | None = None, question: str | bytes | None = None, *,
                 documents: list[str | bytes] | None = None, settings: CompressionSettings | None = None,
                 rate: float | None = None, budget: int | None = None, threshold: float | None = None,
                 method: str | None = None, selector: str | None = None, seed: int | None = None,
                 phrases: float | None = None, spans: int | None = None, progress: bool = False) -> CompressionResult:
        """Compress one context of any length, or a list of ``documents`` (see :meth:`compress_batch`).

        A context longer than one window, or a document list, is cut into chunks (blank lines, then
        sentence ends; never inside a word), encoded in batches; each chunk gets its own soft tokens, and
        the kept-token budget goes to the chunks whose tokens the classifier scores highest (one
        selection over all chunks, so the total is exact). ``progress`` shows a bar over the chunks.
        """
        s = self.settings(settings, rate=rate, budget=budget, threshold=threshold, method=method,
                          selector=selector, seed=seed, phrases=phrases, spans=spans)
        if context is not None and documents is not None:
            raise InvalidSettingError("Pass either a context or documents=[...], not both.")
        if context is None and documents is None:
            raise EmptyInputError("The context is missing: pass a non-empty text, or documents=[...].")
        if documents is not None:
            if isinstance(documents, (str, bytes)) or not documents:
                raise InvalidSettingError("documents must be a non-empty list of texts.")
            texts = [as_text(d, f"document {i + 1}") for i, d in enumerate(documents)]
            return self._compress_long(texts, self.check_question(question), s, progress)
        return self.compress_batch([context], [question], settings=s, progress=progress)[0]

    def compress_batch(self, contexts: list[str | bytes], questions: list[str | bytes | None] | None = None, *,
                       settings: CompressionSettings | None = None, rate: float | None = None,
                       budget: int | None = None, threshold: float | None = None, method: str | None = None,
                       selector: str | None = None, seed: int | None = None, phrases: float | None = None,
                       spans: int | None = None, batch_size: int = 8, batch_tokens: int | None = None,
                       progress: bool = False) -> list[CompressionResult]:
        """Compress many contexts; one backbone forward per batch, results in input order.

        Contexts are batched by length (:func:`hyco2.batching.length_batches`): at most ``batch_size``
        a forward and, with ``batch_tokens``, at most that many padded tokens.

        How is one :class:`~hyco2.settings.CompressionSettings` (``settings``, or the same fields as
        keywords laid over it): at most one of ``rate`` (fraction of context tokens kept verbatim),
        ``budget`` (kept token count) or ``threshold`` (keep words with p ≥ threshold; HyCo2's classifier
        only), none meaning the checkpoint's default rate; ``method`` (``hyco2`` or a peer from
        :func:`hyco2.baselines.available_methods`, kept tokens only); ``selector`` (HyCo2's hard view:
        its trained ``classifier`` or any peer's selection, e.g. ``mig``, beside the soft tokens);
        ``phrases`` (0–1, classifier only: kept words pull in their neighbours); ``spans`` (classifier
        only: the kept text as at most this many contiguous stretches, 0 = whole words anywhere); ``seed``.
        """
        s = self.settings(settings, rate=rate, budget=budget, threshold=threshold, method=method,
                          selector=selector, seed=seed, phrases=phrases, spans=spans)
        check_whole_number("batch_size", batch_size)
        if batch_tokens is not None:
            check_whole_number("batch_tokens", batch_tokens)
        if isinstance(contexts, (str, bytes)):
            raise InvalidSettingError("compress_batch() takes a list of contexts; for one text use compress().")
        if not contexts:
            return []
        questions = list(questions) if questions is not None else [None] * len(contexts)
        if len(questions) != len(contexts):
            raise InvalidSettingError(f"{len(contexts)} contexts but {len(questions)} questions.")
        pick = self.selector_for(s)
        texts = [as_text(c, "context") for c in contexts]
        qs = [self.check_question(q) for q in questions]
        toks = tokenize_contexts(self.backbone, texts)
        over = [i for i, t in enumerate(toks) if len(t) > self.max_context_tokens]
        if over and not s.classifier_selects:  # peers read one window: refuse before any work
            raise ContextTooLongError(max(len(toks[i]) for i in over), self.max_context_tokens)
        fits = [i for i, t in enumerate(toks) if len(t) <= self.max_context_tokens]
        groups = length_batches([len(toks[i]) for i in fits], batch_size, batch_tokens)
        results: list[CompressionResult | None] = [None] * len(toks)
        queued: _QueuedBatch | None = None  # on a GPU, one batch computes while the one before is finished

        def finish(q: _QueuedBatch) -> None:
            for i, r in zip(q.rows, self._finish_batch(q, s, pick)):
                results[i] = r

        for group in tqdm(groups, desc="compressing", unit="batch", disable=not progress or len(groups) < 2):
            ids = [fits[j] for j in group]
            with friendly_oom():
                nxt = self._queue_batch(ids, [toks[i] for i in ids], [qs[i] for i in ids], s)
                if queued is not None:
                    finish(queued)
            queued = nxt
        if queued is not None:
            with friendly_oom():
                finish(queued)
        for i in over:  # longer than one window: chunked, one result each
            results[i] = self._compress_long([texts[i]], qs[i], s, progress, tokenized=toks[i])
        return results  # type: ignore[return-value]

    def _n_keep(self, n_tokens: int, s: CompressionSettings) -> int | None:
        """The exact kept-token count for a context of ``n_tokens`` (None in threshold mode)."""
        return None if s.threshold is not None else keep_count(n_tokens, s.rate, s.budget)

    @torch.no_grad()
    def _compress_long(self, texts: list[str], question: str | None, s: CompressionSettings, progress: bool,
                       tokenized: TokenizedContext | None = None, batch_size: int = 8) -> CompressionResult:
        """Chunks of one long text or of a document list → one result with per-chunk segments."""
        if not s.classifier_selects:
            raise InvalidSettingError(
                f"{s.method if s.method != 'hyco2' else s.selector} reads one window at a time; long contexts and "
                f"document lists are compressed by HyCo2's classifier (method='hyco2'). Split the text first "
                f"to use a peer.")
        t0 = time.perf_counter()
        if tokenized is not None:
            ctx, ranges = tokenized, [(0, len(tokenized))]
        else:
            ctx, ranges = join_documents(self.backbone, texts)
        bounds = [b for start, end in ranges for b in chunk_bounds(ctx, self.chunk_tokens, start, end)]
        if not bounds:
            raise EmptyInputError("The documents are empty: pass non-empty texts.")
        chunks = [sub_context(ctx, start, end) for start, end in bounds]
        softs, probs = [], []
        starts = range(0, len(chunks), batch_size)
        for b in tqdm(starts, desc="compressing", unit="batch", disable=not progress or len(starts) < 2):
            part = chunks[b:b + batch_size]
            with friendly_oom():
                soft, logits = self.model(self.encoder.encode(part, [question] * len(part)))
            probs += [p[: len(c)] for c, p in zip(part, torch.sigmoid(logits).float().cpu())]
            softs += [v[: self.model.config.soft_token_count(len(c))] for c, v in zip(part, soft.float().cpu())]
        p_all = torch.cat(probs).tolist()
        n_soft = sum(v.shape[0] for v in softs)
        room = self.max_context_tokens - n_soft  # what the decoder's window leaves for kept tokens
        if room < 0:
            raise ContextTooLongError(n_soft, self.max_context_tokens)
        classifier = self.selector_for(s)  # one selection over every chunk's probabilities
        kept = classifier.select(self.encoder, ctx, question, self._n_keep(len(ctx), s),
                                 keep_probabilities=p_all).positions
        adjusted = len(kept) > room
        if adjusted:
            log.warning("Kept %d tokens + %d soft do not fit the decoder's window; keeping the best %d.",
                        len(kept), n_soft, room)
            kept = ClassifierSelector(self.model, phrases=s.phrase_strength, spans=s.span_count).select(
                self.encoder, ctx, question, room, keep_probabilities=p_all).positions
        segments = [(v.shape[0], sum(1 for p in kept if start <= p < end)) for v, (start, end) in zip(softs, bounds)]
        kept_ids = [ctx.ids[p] for p in kept]
        kept_text = self.backbone.tokenizer.decode(kept_ids)
        total = time.perf_counter() - t0
        return CompressionResult(
            context=ctx.text, question=question, method=s.label, kept_positions=kept, kept_token_ids=kept_ids,
            kept_spans=[ctx.offsets[p] for p in kept], kept_text=kept_text, probabilities=p_all,
            soft_embeddings=torch.cat(softs),
            context_tokens=len(ctx), cl100k_context_tokens=count_cl100k(ctx.text),
            cl100k_kept_tokens=count_cl100k(kept_text), timings={"encode_s": total, "select_s": 0.0, "total_s": total},
            untrained=self.untrained, checkpoint=self.checkpoint, forward_passes=len(chunks), segments=segments,
            documents=ranges if tokenized is None else None, chunk_ranges=bounds, rate_adjusted=adjusted, tokenized=ctx,
        )

    @torch.no_grad()
    def _queue_batch(self, rows: list[int], contexts: list[TokenizedContext], qs: list[str | None],
                     s: CompressionSettings) -> "_QueuedBatch":
        """HyCo2's encoder pass (soft tokens and keep probabilities) for contexts that fit one window,
        when the method has soft tokens. On a GPU this returns once the pass is queued, its results on
        their way to host memory (:mod:`hyco2.transfer`), so that the caller can finish the previous
        batch's host work while the GPU computes; on the CPU it returns when done."""
        t0 = time.perf_counter()
        outputs = None
        if s.soft:
            soft, logits = self.model(self.encoder.encode(contexts, qs))
            outputs = HostCopy(soft.float(), torch.sigmoid(logits).float())
        return _QueuedBatch(rows, contexts, qs, outputs, time.perf_counter() - t0)

    @torch.no_grad()
    def _finish_batch(self, q: "_QueuedBatch", s: CompressionSettings, pick: Selector) -> list[CompressionResult]:
        """Each context's selection through ``pick`` (the classifier reads the pass's probabilities: no
        second forward), its kept text and cl100k counts."""
        soft_all = probs_all = None
        t0 = time.perf_counter()
        if q.outputs is not None:
            soft_all, probs_all = q.outputs.wait()
        share = (q.queue_s + time.perf_counter() - t0) / len(q.contexts)  # the caller's time on the pass
        context_counts = count_cl100k_batch([ctx.text for ctx in q.contexts])
        out = []
        for i, (ctx, question) in enumerate(zip(q.contexts, q.questions)):
            t_sel = time.perf_counter()
            n_keep = self._n_keep(len(ctx), s)
            probs = None if probs_all is None else probs_all[i, : len(ctx)].tolist()
            sel = pick.select(self.encoder, ctx, question, n_keep, seed=s.seed, keep_probabilities=probs)
            kept_ids = [ctx.ids[p] for p in sel.positions]
            kept_text = self.backbone.tokenizer.decode(kept_ids)
            select_s = time.perf_counter() - t_sel
            out.append(CompressionResult(
                context=ctx.text, question=question, method=s.label, kept_positions=sel.positions,
                kept_token_ids=kept_ids, kept_spans=[ctx.offsets[p] for p in sel.positions], kept_text=kept_text,
                probabilities=sel.scores, soft_embeddings=None if soft_all is None
                else soft_all[i, : self.model.config.soft_token_count(len(ctx))],
                context_tokens=len(ctx), cl100k_context_tokens=context_counts[i],
                cl100k_kept_tokens=count_cl100k(kept_text),
                timings={"encode_s": share, "select_s": select_s, "total_s": share + select_s},
                untrained=self.untrained if s.soft else False, checkpoint=self.checkpoint if s.soft else "",
                forward_passes=int(s.soft) + sel.forward_passes, tokenized=ctx,
            ))
        return out
