"""HyCo2 inside the frameworks users already build with: a LangChain document compressor
(:mod:`hyco2.integrations.langchain`, extra ``hyco2[langchain]``) and a LlamaIndex node postprocessor
(:mod:`hyco2.integrations.llamaindex`, extra ``hyco2[llamaindex]``). Both compress the retrieved documents
for the query as one document list with an exact total budget, and return each document's kept text."""
from __future__ import annotations

from typing import Any


def compress_each(compressor: Any, texts: list[str], query: str | None, *, target_token: int | None = None,
                  rate: float | None = None, method: str = "hyco2") -> list[tuple[str, dict[str, int]]]:
    """``texts`` compressed together for ``query``; per text its kept text and counts, in input order.

    One selection over all texts spends the budget where the question's answer is likeliest, so a
    distractor passage may keep nothing (its kept text is then empty)."""
    amount = {"budget": target_token} if target_token is not None else {"rate": rate}
    source = {"documents": texts} if len(texts) > 1 else {"context": texts[0]}
    r = compressor.compress(question=query or None, method=method, **amount, **source)
    ids = r.tokenized.ids
    ranges = r.documents or [(0, r.context_tokens)]
    decode = compressor.backbone.tokenizer.decode
    out = []
    for (start, end), counts in zip(ranges, r.document_counts()):
        kept = [ids[p] for p in r.kept_positions if start <= p < end]
        out.append((decode(kept).strip(), counts))
    return out
