"""What the app's buttons do. Every model call goes through the hyco2 library."""
from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import pandas as pd

from hyco2.backbone import DEFAULT_BACKBONE, PACKAGED_MODELS, cache_dir, load_backbone
from hyco2.compressor import DEFAULT_CHECKPOINT, HyCo2Compressor
from hyco2.config import HyCo2Config
from hyco2.errors import HyCo2Error
from hyco2.highlight import highlight_words
from hyco2.reader import HyCo2Reader
from hyco2.settings import CompressionSettings
from hyco2.text import DOCUMENT_SEPARATOR, as_text

ROOT = Path(__file__).resolve().parents[2]  # the clone (a Space's files): assets/ beside hyco2/
EXAMPLES_DIR = ROOT / "assets" / "examples"
SHIPPED_CHECKPOINTS = DEFAULT_CHECKPOINT.parent  # one folder per shipped checkpoint
MAX_UPLOAD_BYTES = 2_000_000


class AppConfig:
    """Set once by the server (hyco2.app.__main__) from flags / environment.

    The limits keep one request from holding a public Space's only model slot for minutes: on a 2-core
    CPU (a Space's free hardware) 60,000 characters (~13k tokens) compress and answer in well under a
    minute, where the 100k-token text of bench/long.py takes 276 s."""

    model: str | None = None
    checkpoint: str | None = None
    quantize: str = "auto"
    device: str | None = None
    max_chars: int = 60_000  # longest context (all documents together) one request may send
    time_limit_s: float = 120.0  # a request still answering after this stops with a message
    queue_size: int = 16  # requests waiting beyond this are told the app is busy


def installed_models() -> list[str]:
    """Backbones that load here without a download: the packaged default and converted copies."""
    names = [AppConfig.model or DEFAULT_BACKBONE]
    folder = cache_dir() / "backbones"
    if folder.is_dir():
        names += [p.name for p in sorted(folder.iterdir()) if (p / "config.json").is_file()]
    return list(dict.fromkeys(n for n in names if n in PACKAGED_MODELS or Path(n).exists() or n == names[0]))


def installed_checkpoints(model: str | None = None) -> list[tuple[str, str]]:
    """(label, folder) of the checkpoints to offer for ``model``: the server's --checkpoint first, then every
    shipped one that belongs to this backbone (one per adapter: HyCo2's hybrid, ComprExIT's, COMI's). The
    shipped ones are for the default backbone; another name (a hub id of the same model, say) is checked by
    the fingerprint of its loaded weights."""
    model = model or AppConfig.model or DEFAULT_BACKBONE
    folders = [Path(AppConfig.checkpoint)] if AppConfig.checkpoint and model == (AppConfig.model or DEFAULT_BACKBONE) else []
    if SHIPPED_CHECKPOINTS.is_dir():
        folders += sorted(p for p in SHIPPED_CHECKPOINTS.iterdir() if (p / "config.json").is_file())
    out = []
    for folder in dict.fromkeys(folders):
        try:
            config = HyCo2Config.load(folder)
        except (OSError, ValueError, TypeError):
            continue  # not a checkpoint this hyco2 reads: not offered (the library says why when asked)
        shipped = folder.parent == SHIPPED_CHECKPOINTS
        if shipped and model != DEFAULT_BACKBONE and config.backbone_fingerprint != _backbone(model).fingerprint():
            continue
        out.append((f"{folder.name} · {config.adapter}", str(folder)))
    return out


@lru_cache(maxsize=2)
def _backbone(model: str):
    return load_backbone(model, quantize=AppConfig.quantize, device=AppConfig.device)


@lru_cache(maxsize=4)
def get_compressor(model: str, checkpoint: str | None = None) -> HyCo2Compressor:
    """The compressor for a backbone and one of its checkpoints (None: the server's --checkpoint, else the
    shipped default); checkpoints of one backbone share its weights."""
    if checkpoint is None and model == (AppConfig.model or DEFAULT_BACKBONE):
        checkpoint = AppConfig.checkpoint
    return HyCo2Compressor.from_pretrained(checkpoint, model=model, backbone=_backbone(model))


def default_rate() -> float:
    """The shipped checkpoint's default rate, the one the library and the CLI use when none is given."""
    return HyCo2Config.load(DEFAULT_CHECKPOINT).default_rate if (DEFAULT_CHECKPOINT / "config.json").is_file() else 0.15


def examples() -> list[list]:
    """One row per question in assets/questions.jsonl: [context, question, rate] (none when the package
    was installed without the clone's assets)."""
    rows = []
    qfile = ROOT / "assets" / "questions.jsonl"
    if not qfile.is_file():
        return rows
    rate = default_rate()
    for line in qfile.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append([(EXAMPLES_DIR / item["file"]).read_text(encoding="utf-8").strip(), item["question"], rate])
    return rows


def load_files(paths: list[str] | str | None) -> tuple[str, list[list[str]]]:
    """Uploaded .txt/.md files → the context box's text (the files joined by blank lines) and the
    document list [[name, text], ...] that the run compresses as several documents (errors shown to the
    user, not raised as stack traces)."""
    import gradio as gr

    if not paths:
        return "", []
    docs = []
    for path in [paths] if isinstance(paths, str) else paths:
        file = Path(path)
        if file.stat().st_size > MAX_UPLOAD_BYTES:
            raise gr.Error(f"{file.name} is {file.stat().st_size:,} bytes; the app takes up to "
                           f"{MAX_UPLOAD_BYTES:,} a file.")
        try:
            docs.append([file.name, as_text(file.read_bytes(), f"file {file.name}")])
        except HyCo2Error as exc:
            raise gr.Error(str(exc)) from None
    return DOCUMENT_SEPARATOR.join(text for _, text in docs), docs


def counts_table(result, full_latency: float, comp_latency: float,
                 names: list[str] | None = None) -> tuple[str, pd.DataFrame]:
    saved = result.cl100k_context_tokens - result.cl100k_kept_tokens
    md = (
        "| | tokens |\n|---|---|\n"
        f"| context (backbone) | **{result.context_tokens}** |\n"
        f"| kept verbatim | **{result.kept_tokens}** |\n"
        f"| soft tokens | **{result.soft_tokens}** |\n"
        f"| compression ratio | **{result.ratio:.1f}x** |\n"
        f"| cl100k: context → kept text | {result.cl100k_context_tokens} → {result.cl100k_kept_tokens} "
        f"(**{saved} saved**) |\n"
        f"| latency full / compressed | {full_latency:.2f} s / {comp_latency:.2f} s |"
    )
    if names:
        md += "\n\n| document | context tokens | kept | soft |\n|---|---|---|---|\n" + "".join(
            f"| {name} | {c['context_tokens']} | {c['kept_tokens']} | {c['soft_tokens']} |\n"
            for name, c in zip(names, result.document_counts()))
    if result.untrained:
        md += "\n\n⚠️ This checkpoint is **untrained**: the soft tokens and keep scores are random."
    frame = pd.DataFrame({
        "count": ["context", "kept", "soft", "cl100k context", "cl100k kept"],
        "tokens": [result.context_tokens, result.kept_tokens, result.soft_tokens,
                   result.cl100k_context_tokens, result.cl100k_kept_tokens],
    })
    return md, frame


def settings_from(control: str, rate: float, budget: float, threshold: float, method: str) -> CompressionSettings:
    """The page's controls as the library's one settings value (its checks give the error messages)."""
    amount = {"rate": {"rate": float(rate)}, "budget": {"budget": int(budget)},
              "threshold": {"threshold": float(threshold)}}[control]
    return CompressionSettings(method=method, **amount)


#: who answers in the full-context column: the raw backbone reading the text (what you get without
#: HyCo2), or HyCo2's own reader with its soft tokens beside every token (rate 1.0: the reference a
#: compression is measured against, the same reader as the compressed column)
FULL_READERS = ("raw backbone", "same reader")


def run(context: str, question: str, control: str, rate: float, budget: float, method: str, model: str,
        threshold: float = 0.5, documents: list[list[str]] | None = None, checkpoint: str | None = None,
        full_reader: str = FULL_READERS[0], max_new_tokens: int = 32):
    """Generator for the main button: streams the full answer, then the compressed one (``checkpoint``: a
    folder from :func:`installed_checkpoints`; None = the default; ``full_reader``: one of
    :data:`FULL_READERS`; the same reader needs soft tokens, so a peer method falls back to the raw one).

    ``documents`` ([[name, text], ...] from uploaded files) are compressed as a document list, with counts
    per document, as long as the context box still shows exactly those files."""
    import gradio as gr

    n_chars = len(context or "") if not documents else max(len(context or ""), sum(len(t) for _, t in documents))
    if n_chars > AppConfig.max_chars:
        raise gr.Error(f"The context has {n_chars:,} characters; this app reads at most {AppConfig.max_chars:,} "
                       f"a request (HYCO2_MAX_CHARS sets it). Shorten it, or compress long texts with the library "
                       f"or batch mode (hyco2-batch), which take any length.")
    deadline = time.perf_counter() + AppConfig.time_limit_s

    def in_time(stage: str) -> None:
        if time.perf_counter() > deadline:
            raise gr.Error(f"This request took longer than the app's limit of {AppConfig.time_limit_s:.0f} s "
                           f"({stage}); try a shorter context or fewer new tokens.")

    try:
        settings = settings_from(control, rate, budget, threshold, method)
        comp = get_compressor(model or DEFAULT_BACKBONE, checkpoint or None)
        reader = HyCo2Reader(comp)
        docs = documents if documents and len(documents) > 1 and \
            context == DOCUMENT_SEPARATOR.join(t for _, t in documents) else None
        source = {"documents": [t for _, t in docs]} if docs else {"context": context}
        t0 = time.perf_counter()
        result = comp.compress(question=question, settings=settings, **source)  # any length: chunked inside
        t_compress = time.perf_counter() - t0
        in_time("while compressing")
        hl = highlight_words(result)
        mode = "hybrid" if result.soft_tokens else "hard"
        n_small = result.compressed_tokens
        full_text = small_text = ""
        t1 = time.perf_counter()
        n_full = result.context_tokens
        asked = full_reader == FULL_READERS[1]
        same = asked and bool(result.soft_tokens)
        who = (f"HyCo2's reader: {result.soft_tokens} soft + every token" if same
               else "raw backbone" + (" (a peer has no soft tokens)" if asked else ""))

        def full_info(seconds: float) -> str:
            return f"{n_full} context tokens · {who} · {seconds:.2f} s"

        if n_full + (result.soft_tokens if same else 0) <= comp.max_context_tokens:
            full, full_mode = result, "full"
            if same:  # every token kept beside the soft tokens: the same reader, uncompressed
                full, full_mode = comp.compress(question=question, rate=1.0, **source), "hybrid"
            for full_text in reader.answer_stream(question, full_mode, compression=full, max_new_tokens=max_new_tokens):
                in_time("answering from the full context")
                yield full_text, full_info(time.perf_counter() - t1), "", "", hl, gr.skip(), gr.skip()
        else:
            full_text = (f"(The full context, {n_full:,} tokens, does not fit the backbone's window of "
                         f"{comp.max_context_tokens:,}: only the compressed form can be read.)")
        full_latency = time.perf_counter() - t1
        t2 = time.perf_counter()
        for small_text in reader.answer_stream(question, mode, compression=result, max_new_tokens=max_new_tokens):
            in_time("answering from the compressed context")
            yield (full_text, full_info(full_latency), small_text,
                   f"{n_small} tokens ({result.kept_tokens} kept + {result.soft_tokens} soft) · "
                   f"{t_compress + time.perf_counter() - t2:.2f} s", hl, gr.skip(), gr.skip())
        comp_latency = t_compress + time.perf_counter() - t2
        md, frame = counts_table(result, full_latency, comp_latency, [n for n, _ in docs] if docs else None)
        yield (full_text, full_info(full_latency), small_text,
               f"{n_small} tokens ({result.kept_tokens} kept + {result.soft_tokens} soft) · "
               f"compress {t_compress:.2f} s + answer {comp_latency - t_compress:.2f} s", hl, md, frame)
    except HyCo2Error as exc:
        raise gr.Error(str(exc)) from None
