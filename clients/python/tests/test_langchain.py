"""The LangChain retriever over a real server's search, sync and async."""

from __future__ import annotations

from conftest import Server
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from dartmouth_knowledge import AsyncDartmouth, Dartmouth
from dartmouth_knowledge.langchain import DartmouthRetriever


async def test_retriever(server: Server) -> None:
    kb = "langchain-kb"
    with Dartmouth(server.url, server.admin_key, read_your_writes=True) as dk:
        dk.domains.create(name=kb, embedder="fake", dim=32)
        dk.index_documents(
            kb,
            documents=[
                {"id": "returns.md", "title": "Returns", "text": "Gift cards cannot be returned.", "url": "https://example.test/r"},
                {"id": "shipping.md", "title": "Shipping", "text": "We ship worldwide."},
            ],
        )
        retriever = DartmouthRetriever(client=dk, domains=[kb], k=1, search_kwargs={"mode": "bm25"})
        assert isinstance(retriever, BaseRetriever)
        expected = Document(
            page_content="Gift cards cannot be returned.",
            metadata={
                "domain": kb,
                "doc_id": "returns.md",
                "chunk_id": "returns.md#0",
                "title": "Returns",
                "url": "https://example.test/r",
                "score": retriever.invoke("gift card")[0].metadata["score"],
            },
        )
        assert retriever.invoke("gift card") == [expected]
        # without an async client, ainvoke runs the sync one in a thread
        assert await retriever.ainvoke("gift card") == [expected]

    async with AsyncDartmouth(server.url, server.admin_key) as adk:
        retriever = DartmouthRetriever(async_client=adk, domains=[kb], k=2, search_kwargs={"mode": "bm25"})
        docs = await retriever.ainvoke("ship worldwide")
        assert docs[0].metadata["doc_id"] == "shipping.md"
        assert docs[0].page_content == "We ship worldwide."
        assert isinstance(docs[0].metadata["score"], float)
