"""An LLMLingua-shaped entry point: ``PromptCompressor(...).compress_prompt(...)`` with LLMLingua's keys.

Where users already are: code written for ``llmlingua.PromptCompressor`` switches to HyCo2 by changing its
import. The compressed prompt is the hard view (kept tokens, verbatim and in order) between the instruction
and the question, which any LLM reads; HyCo2's own reader can also take the soft tokens (``soft_tokens=True``
returns them). Budgets are exact, in the backbone's tokens: ``target_token=200`` keeps exactly 200 context
tokens (LLMLingua treats it as a wish and often misses it); ``origin_tokens`` / ``compressed_tokens`` count
the whole prompt in cl100k tokens, as LLMLingua's GPT-3.5 tokenizer does.
"""
from __future__ import annotations

from typing import Any

from .errors import InvalidSettingError

#: LLMLingua arguments with no HyCo2 meaning, and what to use instead.
UNSUPPORTED = {
    "force_tokens": "the question= argument (the classifier keeps what the question needs) or phrases=",
    "force_context_ids": "pass only the contexts you want kept whole outside compress_prompt",
    "force_context_number": "pass fewer contexts",
    "iterative_size": "nothing (HyCo2 reads each context once, in one forward)",
    "use_sentence_level_filter": "method='longllmlingua' (sentence- and passage-level selection)",
    "use_context_level_filter": "method='longllmlingua'",
    "use_token_level_filter": "method='llmlingua'",
    "condition_in_question": "question= (HyCo2's encoder always reads the question)",
    "reorder_context": "nothing (kept tokens stay in their original order)",
    "dynamic_context_compression_ratio": "budget over all contexts: target_token= with a list of contexts",
    "context_budget": "target_token= (an exact kept-token count)",
    "token_budget_ratio": "target_token=",
    "keep_first_sentence": "nothing yet",
    "keep_last_sentence": "nothing yet",
    "keep_sentence_number": "nothing yet",
    "high_priority_bonus": "nothing",
    "condition_compare": "nothing",
    "rank_method": "method= (hyco2, llmlingua, longllmlingua, selective-context, mig, truncate, random)",
    "drop_consecutive": "nothing",
    "chunk_end_tokens": "nothing (long texts are cut at blank lines, sentence ends and word ends)",
    "keep_split": "nothing",
    "strict_preserve_uncompressed": "nothing",
}


class PromptCompressor:
    """LLMLingua's ``PromptCompressor`` over HyCo2.

    ``model_name``: the backbone (alias, folder, .gguf or hub id; default: the shipped one); ``device_map``:
    ``cpu``, ``cuda`` or ``cuda:N``; ``checkpoint``: a HyCo2 checkpoint folder; ``method``: HyCo2's
    classifier (``hyco2``) or a peer's selection.
    """

    def __init__(self, model_name: str | None = None, device_map: str | None = None, *,
                 checkpoint: str | None = None, method: str = "hyco2", compressor: Any = None,
                 **model_config: Any):
        if model_config:
            raise InvalidSettingError(f"PromptCompressor got {', '.join(sorted(model_config))}: HyCo2 takes "
                                      f"model_name, device_map, checkpoint and method.")
        if compressor is None:
            from .compressor import HyCo2Compressor

            device = None if device_map in (None, "auto") else device_map
            compressor = HyCo2Compressor.from_pretrained(checkpoint, model=model_name, device=device)
        self.compressor, self.method = compressor, method

    def compress_prompt(self, context: str | list[str], instruction: str = "", question: str = "",
                        rate: float | None = 0.5, target_token: int = -1, *, soft_tokens: bool = False,
                        phrases: float | None = None, **llmlingua_options: Any) -> dict[str, Any]:
        """Compress ``context`` (one text or a list of documents) for ``question``.

        ``rate``: the share of context tokens kept; ``target_token`` (> 0, overrides ``rate``): exactly that
        many context tokens kept (over all documents). Returns LLMLingua's keys (``compressed_prompt``,
        ``origin_tokens``, ``compressed_tokens``, ``ratio``, ``rate``, ``saving``) and HyCo2's own:
        ``kept_tokens``, ``kept_positions``, ``result`` (the :class:`~hyco2.compressor.CompressionResult`)
        and, with ``soft_tokens=True``, ``soft_embeddings``.
        """
        for name in llmlingua_options:
            if name in UNSUPPORTED:
                raise InvalidSettingError(f"{name} is an LLMLingua option HyCo2 has no use for; the closest "
                                          f"here: {UNSUPPORTED[name]}.")
            raise InvalidSettingError(f"compress_prompt() got an unknown argument {name!r}.")
        if isinstance(target_token, bool) or not isinstance(target_token, int):
            raise InvalidSettingError(f"target_token must be a whole number (-1: use rate), not {target_token!r}.")
        amount = {"budget": target_token} if target_token > 0 else {"rate": rate}
        if target_token <= 0 and rate is None:
            raise InvalidSettingError("Give rate= (a share of the context's tokens) or target_token= (a count).")
        docs = context if isinstance(context, list) else None
        source = {"documents": docs} if docs is not None and len(docs) > 1 else \
            {"context": docs[0] if docs else context}
        if docs is not None and not docs:
            raise InvalidSettingError("context is an empty list: pass a text or a list of texts.")
        r = self.compressor.compress(question=question or None, method=self.method, phrases=phrases, **amount,
                                     **source)
        from .counting import count_cl100k

        kept = r.kept_text.strip()
        prompt = "\n\n".join(p for p in (instruction.strip(), kept, question.strip()) if p)
        whole = "\n\n".join(p for p in (instruction.strip(), r.context.strip(), question.strip()) if p)
        origin, compressed = count_cl100k(whole), count_cl100k(prompt)
        out = {
            "compressed_prompt": prompt,
            "origin_tokens": origin,
            "compressed_tokens": compressed,
            "ratio": f"{origin / max(1, compressed):.1f}x",
            "rate": f"{100 * compressed / max(1, origin):.1f}%",
            "saving": f", Saving ${(origin - compressed) * 0.06 / 1000:.1f} in GPT-4.",
            "kept_tokens": r.kept_tokens,
            "kept_positions": r.kept_positions,
            "result": r,
        }
        if soft_tokens:
            out["soft_embeddings"] = r.soft_embeddings
        return out

    def __repr__(self) -> str:
        return f"PromptCompressor(HyCo2, method={self.method!r}, checkpoint={self.compressor.checkpoint!r})"


__all__ = ["PromptCompressor"]
