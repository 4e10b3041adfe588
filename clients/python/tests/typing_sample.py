"""Type-checked by test_package.py (not collected by pytest): the clients' types as a user
sees them. Each `# type: ignore[code]` marks a mistake mypy must report."""

from __future__ import annotations

from dartmouth_knowledge import AsyncDartmouth, Dartmouth, DartmouthError
from dartmouth_knowledge.models import IndexSummary, SearchResponse, Task


def sync_use(dk: Dartmouth) -> None:
    answer: SearchResponse = dk.search(query="return policy", domains=["kb"], k=5)
    for hit in answer.get("hits", []):
        title: str | None = hit.get("title")
        del title
    summary: IndexSummary = dk.upload_files("kb", [("faq.md", b"# FAQ")])
    task: Task = dk.upload_files("kb", [("faq.md", b"# FAQ")], async_=True)
    finished: Task = dk.tasks.wait(task.get("id", ""), timeout=30)
    del summary, finished
    dk.search(query="x", colour="red")  # type: ignore[call-arg]
    dk.search(query="x", k="5")  # type: ignore[arg-type]
    dk.get_chunk("kb", "faq.md", "0")  # type: ignore[arg-type]
    dk.grants.grant(principal="agent", domain="kb", role="owner")  # type: ignore[arg-type]
    dk.search(query="x", mode="psychic")  # type: ignore[arg-type]
    wrong: Task = dk.upload_files("kb", [("faq.md", b"# FAQ")])  # type: ignore[assignment]
    del wrong
    try:
        dk.domains.stats("kb")
    except DartmouthError as e:
        code: str = e.code
        status: int = e.status
        del code, status


async def async_use(adk: AsyncDartmouth) -> None:
    answer: SearchResponse = await adk.search(query="return policy")
    del answer
    task: Task = await adk.tasks.wait("t1")
    del task
    not_awaited: SearchResponse = adk.search(query="x")  # type: ignore[assignment]
    del not_awaited
