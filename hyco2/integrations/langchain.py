"""A LangChain document compressor: retrieved ``Document``s → their kept text for the query (``hyco2[langchain]``).

    from hyco2.integrations.langchain import HyCo2DocumentCompressor
    compressor = HyCo2DocumentCompressor(target_token=300)           # the shipped checkpoint and backbone
    short_docs = compressor.compress_documents(docs, "Who built the lighthouse?")
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.documents.compressor import BaseDocumentCompressor
from pydantic import ConfigDict, Field

from . import compress_each


class HyCo2DocumentCompressor(BaseDocumentCompressor):
    """Compresses the documents together (one exact budget over all of them); each comes back with its kept
    text as ``page_content`` and its counts in ``metadata["hyco2"]``; a document that keeps nothing is
    dropped (``keep_empty=True`` keeps it, empty)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    target_token: int | None = None  # kept tokens over all documents; None: rate
    rate: float | None = 0.15
    method: str = "hyco2"
    keep_empty: bool = False
    compressor: Any = Field(default=None, exclude=True)  # a HyCo2Compressor; loaded on first use when None

    def _compressor(self):
        if self.compressor is None:
            from ..compressor import HyCo2Compressor

            self.compressor = HyCo2Compressor.from_pretrained()
        return self.compressor

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Any = None) -> Sequence[Document]:
        if not documents:
            return []
        texts = [d.page_content for d in documents]
        done = compress_each(self._compressor(), texts, query, target_token=self.target_token, rate=self.rate,
                             method=self.method)
        return [Document(page_content=kept, metadata={**d.metadata, "hyco2": counts}, id=d.id)
                for d, (kept, counts) in zip(documents, done) if kept or self.keep_empty]
