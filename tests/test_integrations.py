"""HyCo2 in LangChain and LlamaIndex, with the real framework packages (no stand-ins) on the tiny model:
a LangChain retrieval chain and a LlamaIndex retriever whose documents / nodes HyCo2 compresses with one
exact budget over all of them."""
import pytest

from tests.conftest import PARAGRAPH

PASSAGES = [PARAGRAPH, "The bakery on Mill Street opens at six and sells rye bread.",
            PARAGRAPH.replace("Maria Lindqvist", "Anna Berg").replace("1872", "1901")]
QUESTION = "Who built the lighthouse?"


def test_langchain_chain_compresses_the_retrieved_documents(tiny):
    pytest.importorskip("langchain_core", reason="hyco2[langchain] is not installed")
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

    from hyco2.integrations.langchain import HyCo2DocumentCompressor

    class Passages(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
            return [Document(page_content=p, metadata={"n": i}, id=str(i)) for i, p in enumerate(PASSAGES)]

    compressor = HyCo2DocumentCompressor(compressor=tiny, target_token=30, keep_empty=True)
    chain = (RunnableParallel(docs=Passages(), query=RunnablePassthrough())
             | RunnableLambda(lambda x: compressor.compress_documents(x["docs"], x["query"])))
    docs = chain.invoke(QUESTION)
    assert [d.metadata["n"] for d in docs] == [0, 1, 2] and [d.id for d in docs] == ["0", "1", "2"]
    assert sum(d.metadata["hyco2"]["kept_tokens"] for d in docs) == 30  # exact over all documents
    for d, p in zip(docs, PASSAGES):
        assert all(w in p for w in d.page_content.split())  # kept words, verbatim, from its own passage
    assert compressor.compress_documents([], QUESTION) == []


def test_llamaindex_retriever_then_hyco2_postprocessor(tiny):
    pytest.importorskip("llama_index.core", reason="hyco2[llamaindex] is not installed")
    from llama_index.core import SummaryIndex
    from llama_index.core.schema import TextNode

    from hyco2.integrations.llamaindex import HyCo2NodePostprocessor

    index = SummaryIndex([TextNode(text=p, id_=f"p{i}", metadata={"n": i}) for i, p in enumerate(PASSAGES)])
    nodes = index.as_retriever().retrieve(QUESTION)
    post = HyCo2NodePostprocessor(compressor=tiny, target_token=24, keep_empty=True)
    out = post.postprocess_nodes(nodes, query_str=QUESTION)
    assert [n.node.node_id for n in out] == ["p0", "p1", "p2"]
    assert sum(n.node.metadata["hyco2"]["kept_tokens"] for n in out) == 24
    assert all(len(n.node.get_content()) < len(p) for n, p in zip(out, PASSAGES))
    dropped = HyCo2NodePostprocessor(compressor=tiny, target_token=3).postprocess_nodes(nodes, query_str=QUESTION)
    assert 1 <= len(dropped) < len(nodes)  # a tight budget leaves some passages with nothing: dropped
