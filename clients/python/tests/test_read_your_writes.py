"""`read_your_writes=True` against two nodes on one store behind a balancer that sends
searches and contexts to a node whose applier polls once an hour: a read there sees a write
only when it carries the write's sequence as `min_seq`."""

from __future__ import annotations

from collections.abc import Callable

from conftest import ClientFactory, Nodes

BALANCER = "http://balancer.test"


def ids(answer: dict) -> set[str]:  # type: ignore[type-arg]
    return {h["doc_id"] for h in answer["hits"]}


async def test_read_your_writes(connect: ClientFactory, nodes: Nodes, mode: str, name: Callable[[str], str]) -> None:
    key = nodes.writer.admin_key
    plain = connect(BALANCER, key, transport=nodes.transport(mode))
    rw = connect(BALANCER, key, transport=nodes.transport(mode), read_your_writes=True)
    kb = name("kb")
    await rw.domains.create(name=kb, embedder="fake", dim=32)

    # Without min_seq the reading node has not seen the write (the control: this test can fail).
    await plain.index_documents(kb, documents=[{"id": "one", "title": "One", "text": "zebra crossing"}])
    assert ids(await plain.search(query="zebra", domains=[kb])) == set()
    assert "min_seq" not in plain.traffic.bodies("search")[-1]
    assert plain.written == {kb: 1}  # known, not sent

    ack = await rw.index_documents(kb, documents=[{"id": "two", "title": "Two", "text": "zebra stripes"}])
    assert rw.written == {kb: ack["seq"]}
    assert ids(await rw.search(query="zebra", domains=[kb])) == {"one", "two"}
    assert rw.traffic.bodies("search")[-1]["min_seq"] == {kb: ack["seq"]}
    context = await rw.context(query="zebra", domains=[kb])
    assert {p["doc_id"] for p in context["passages"]} == {"one", "two"}
    assert rw.traffic.bodies("context")[-1]["min_seq"] == {kb: ack["seq"]}

    # A min_seq given by the caller is kept when it is higher, raised when it is lower.
    await rw.search(query="zebra", domains=[kb], min_seq={kb: 1})
    assert rw.traffic.bodies("search")[-1]["min_seq"] == {kb: ack["seq"]}

    deleted = await rw.delete(kb, ids=["two"])
    assert rw.written == {kb: deleted["seq"]}
    assert ids(await rw.search(query="zebra", domains=[kb])) == {"one"}

    summary = await rw.upload_files(kb, [("three.md", "# Three\n\nzebra three")])
    assert rw.written == {kb: summary["applied_seq"]}
    assert "three.md" in ids(await rw.search(query="zebra", domains=[kb]))

    task = await rw.upload_files(kb, [("four.md", "# Four\n\nzebra four")], async_=True)
    done = await rw.tasks.wait(task["id"], timeout=60)
    assert done["status"] == "succeeded"
    assert rw.written == {kb: max(done["seq"], done["summary"]["applied_seq"])}
    assert "four.md" in ids(await rw.search(query="zebra", domains=[kb]))

    catalog = {"products": [{"id": 7, "title": "Zebra mug", "handle": "zebra-mug", "variants": [{"id": 70, "price": "9.00"}]}]}
    uploaded = await rw.upload_catalog(kb, catalog)
    assert rw.written == {kb: uploaded["seq"]}
    # No domains named: every readable one is searched, with every remembered sequence.
    assert "7" in ids(await rw.search(query="zebra mug"))
    assert rw.traffic.bodies("search")[-1]["min_seq"] == {kb: uploaded["seq"]}

    # A deleted domain is forgotten (a domain created again under its name starts over).
    await rw.domains.delete(kb)
    assert rw.written == {}
