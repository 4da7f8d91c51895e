"""A LlamaIndex node postprocessor: retrieved nodes → their kept text for the query (``hyco2[llamaindex]``).

    from hyco2.integrations.llamaindex import HyCo2NodePostprocessor
    engine = index.as_query_engine(node_postprocessors=[HyCo2NodePostprocessor(target_token=300)])
"""
from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from . import compress_each


class HyCo2NodePostprocessor(BaseNodePostprocessor):
    """Compresses the retrieved nodes together (one exact budget over all of them); each node comes back
    with its kept text, its score and its counts in ``metadata["hyco2"]``; nodes that keep nothing are
    dropped unless ``keep_empty``."""

    target_token: int | None = Field(default=None, description="kept tokens over all nodes; None: rate")
    rate: float | None = Field(default=0.15, description="share of the nodes' tokens kept")
    method: str = Field(default="hyco2")
    keep_empty: bool = Field(default=False)
    _compressor: Any = PrivateAttr(default=None)

    def __init__(self, compressor: Any = None, **data: Any):
        super().__init__(**data)
        self._compressor = compressor

    @classmethod
    def class_name(cls) -> str:
        return "HyCo2NodePostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes:
            return []
        if self._compressor is None:
            from ..compressor import HyCo2Compressor

            self._compressor = HyCo2Compressor.from_pretrained()
        texts = [n.node.get_content() for n in nodes]
        query = query_bundle.query_str if query_bundle is not None else None
        done = compress_each(self._compressor, texts, query, target_token=self.target_token, rate=self.rate,
                             method=self.method)
        return [NodeWithScore(node=TextNode(text=kept, id_=n.node.node_id, metadata={**n.node.metadata,
                                                                                      "hyco2": counts}),
                              score=n.score)
                for n, (kept, counts) in zip(nodes, done) if kept or self.keep_empty]
