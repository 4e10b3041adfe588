"""A LangChain retriever over ``search`` (``pip install "dartmouth-knowledge[langchain]"``).

    retriever = DartmouthRetriever(client=Dartmouth(url, key), domains=["help-centre"], k=5)
    docs = retriever.invoke("can I return a gift card?")          # or await .ainvoke(...)
"""

from __future__ import annotations

from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ._client import AsyncDartmouth, Dartmouth
from .models import Hit, SearchRequest


class DartmouthRetriever(BaseRetriever):
    """Each hit a ``Document``: the chunk's text, with ``domain``, ``doc_id``, ``chunk_id``,
    ``title``, ``url`` and ``score`` as metadata. ``client`` serves ``invoke``,
    ``async_client`` serves ``ainvoke`` (without it, ``ainvoke`` runs ``client`` in a thread).
    ``search_kwargs`` holds any other search field (``filter``, ``mode``, ``collapse``, ``rerank``…)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Dartmouth | None = None
    async_client: AsyncDartmouth | None = None
    domains: list[str] = []
    k: int = 4
    search_kwargs: dict[str, Any] = {}

    def _request(self, query: str) -> SearchRequest:
        return cast(SearchRequest, {**self.search_kwargs, "query": query, "domains": self.domains, "k": self.k})

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if self.client is None:
            raise ValueError("DartmouthRetriever: no client (a Dartmouth) to search with")
        return [to_document(hit) for hit in self.client.search(**self._request(query)).get("hits", [])]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        answer = await self.async_client.search(**self._request(query))
        return [to_document(hit) for hit in answer.get("hits", [])]


def to_document(hit: Hit) -> Document:
    keys = ("domain", "doc_id", "chunk_id", "title", "url", "score")
    return Document(page_content=hit.get("text", ""), metadata={k: hit.get(k) for k in keys})
