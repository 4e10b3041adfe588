"""Every method of both clients against a real server: each test runs once with `Dartmouth`
and once with `AsyncDartmouth` (the `mode` parameter), through the same steps."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SHOP_TOKEN_ENV, ClientFactory, Either, Server

from dartmouth_knowledge import DartmouthError, Retry

FINISHED = {"succeeded", "failed", "canceled"}

DOCS = [
    {
        "id": "help/returns policy.md",  # a slash and a space: path segments are escaped
        "title": "Returns",
        "text": "You can return items within 30 days. Gift cards cannot be returned.",
        "url": "https://example.test/returns",
        "attributes": {"price": 5, "topic": "returns"},
    },
    {"id": "shipping.md", "title": "Shipping", "text": "We ship worldwide within five days.", "attributes": {"price": 20}},
    {"id": "warranty.md", "title": "Warranty", "text": "Every item has a two year warranty.", "attributes": {"price": 50}},
]


async def error_of(call: Awaitable[Any]) -> DartmouthError:
    with pytest.raises(DartmouthError) as caught:
        await call
    return caught.value


async def new_domain(api: Either, name: str, **extra: Any) -> str:
    created = await api.domains.create(name=name, embedder="fake", dim=32, **extra)
    assert created["name"] == name
    return name


async def test_health_ready_openapi(api: Either) -> None:
    assert await api.health() == "ok"
    assert await api.ready() == "ready"
    doc = await api.openapi()
    assert doc["openapi"].startswith("3.")
    assert "/v1/search" in doc["paths"]


async def test_domains(api: Either, name: Callable[[str], str]) -> None:
    kb = await new_domain(api, name("kb"), description="first")
    assert kb in [d["name"] for d in await api.domains.list()]
    stats = await api.domains.stats(kb)
    assert (stats["domain"], stats["documents"], stats["last_seq"]) == (kb, 0, 0)
    updated = await api.domains.update(kb, description="second")
    assert updated["description"] == "second"
    await api.index_documents(kb, documents=DOCS)
    rebuilt = await api.domains.reindex(kb)
    assert (rebuilt["domain"], rebuilt["documents"]) == (kb, 3)
    # No model switch happened: nothing to roll back or drop; the server's 409 comes through.
    for call in (api.domains.rollback_model, api.domains.drop_old_generation):
        e = await error_of(call(kb))
        assert (e.code, e.status) == ("conflict", 409)
        assert f"domain `{kb}`" in e.message
    await api.domains.delete(kb)
    e = await error_of(api.domains.stats(kb))
    assert (e.code, e.status, e.message) == ("not_found", 404, f"domain `{kb}` does not exist")


async def test_documents_search_context(api: Either, name: Callable[[str], str]) -> None:
    kb = await new_domain(api, name("kb"))
    ack = await api.index_documents(kb, documents=DOCS)
    assert (ack["domain"], ack["documents"], ack["chunks"]) == (kb, 3, 3)
    seq = ack["seq"]
    assert seq >= 1

    found = await api.search(query="gift card return", domains=[kb], k=2, mode="bm25", min_seq={kb: seq})
    assert found["hits"][0]["doc_id"] == "help/returns policy.md"
    assert found["hits"][0]["url"] == "https://example.test/returns"
    assert "<em>" in found["hits"][0]["snippet"]
    assert found["domains"] == [kb]
    cheap = await api.search(query="items", domains=[kb], filter="price < 30", mode="bm25", facets=["topic"])
    assert {h["doc_id"] for h in cheap["hits"]} == {"help/returns policy.md"}
    assert cheap["facets"]["topic"][0]["value"] == "returns"

    ctx = await api.context(query="gift card return", domains=[kb], max_tokens=200, mode="bm25")
    assert ctx["passages"][0]["doc_id"] == "help/returns policy.md"
    assert ctx["context"].startswith("[1] Returns")
    assert ctx["tokens"] <= 200

    doc = await api.get_document(kb, "help/returns policy.md")
    assert (doc["doc_id"], doc["title"], doc["attributes"]["price"]) == ("help/returns policy.md", "Returns", 5)
    chunk = await api.get_chunk(kb, "help/returns policy.md", 0)
    assert chunk["chunk"]["idx"] == 0 and "Gift cards" in chunk["chunk"]["text"]

    like = await api.similar(kb, "help/returns policy.md", k=5)
    ids = [h["doc_id"] for h in like["hits"]]
    assert ids and "help/returns policy.md" not in ids

    one = await api.delete_document(kb, "shipping.md")
    assert (one["deleted"], one["domain"]) == (1, kb) and one["seq"] > seq
    again = await api.delete_document(kb, "shipping.md")
    assert again["deleted"] == 0  # a retried delete succeeds
    by_id = await api.delete(kb, ids=["help/returns policy.md"])
    assert by_id["deleted"] == 1
    by_filter = await api.delete(kb, filter="price >= 50")
    assert by_filter["deleted"] == 1
    left = await api.search(query="items", domains=[kb], min_seq={kb: by_filter["seq"]})
    assert left["hits"] == []


async def test_upload_files_and_tasks(api: Either, name: Callable[[str], str], tmp_path: Path) -> None:
    kb = await new_domain(api, name("kb"))
    (tmp_path / "faq.md").write_text("# FAQ\n\nRefunds take five days.\n")
    with open(tmp_path / "faq.md", "rb") as opened:
        summary = await api.upload_files(
            kb,
            [tmp_path / "faq.md", ("guide.html", "<h1>Guide</h1><p>Assembly steps.</p>"), ("terms.txt", b"Plain terms.")],
        )
        assert (summary["domain"], summary["added"], summary["failed_count"]) == (kb, 3, 0)
        assert summary["applied_seq"] >= 1
        # the same file again, opened: unchanged
        same = await api.upload_files(kb, [opened])
        assert (same["unchanged"], same["added"]) == (1, 0)
    # a mapping, a format for names without an extension, a bad record listed and the rest written
    mixed = await api.upload_files(kb, {"readme": "# Readme\n\nHello.", "notes": b"# Notes\n\nMore."}, format="markdown")
    assert mixed["added"] == 2
    records = await api.upload_files(kb, [("lines.jsonl", '{"_id": "r1", "text": "one"}\n{"text": "no id"}\n')])
    assert records["failed_count"] == 1 and records["failed"][0].startswith("lines.jsonl:2:")
    assert records["added"] == 1

    task = await api.upload_files(kb, [("later.md", "# Later\n\nIndexed by a task.")], async_=True)
    assert task["domain"] == kb and task["status"] in {"queued", "running", "succeeded"}
    done = await api.tasks.wait(task["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["summary"]["added"] == 1
    assert (await api.tasks.get(task["id"]))["status"] == "succeeded"
    assert task["id"] in [t["id"] for t in await api.tasks.list()]
    # a cancel after the end changes nothing
    assert (await api.tasks.cancel(task["id"]))["status"] == "succeeded"
    missing = await error_of(api.tasks.get("t0000000000000000"))
    assert (missing.code, missing.status) == ("not_found", 404)
    with pytest.raises(TypeError):
        await api.upload_files(kb, [b"no name"])
    # no files: the server's refusal, as it is
    empty = await error_of(api.upload_files(kb, []))
    assert (empty.code, empty.status) == ("invalid_argument", 400), empty


async def test_upload_catalog(api: Either, name: Callable[[str], str]) -> None:
    kb = await new_domain(api, name("store"))
    catalog = {
        "products": [
            {
                "id": 1,
                "title": "Hoodie",
                "handle": "hoodie",
                "body_html": "<p>Warm and soft</p>",
                "variants": [{"id": 11, "title": "M", "price": "20.00", "inventory_quantity": 3}],
            }
        ]
    }
    out = await api.upload_catalog(kb, catalog, base_url="https://shop.example.test")
    assert (out["domain"], out["format"], out["added"]) == (kb, "json", 1)
    assert out["seq"] >= 1
    doc = await api.get_document(kb, "1")
    assert doc["url"] == "https://shop.example.test/products/hoodie"
    bad = await error_of(api.upload_catalog(kb, "", format="xml"))
    assert (bad.code, bad.status) == ("invalid_argument", 400)
    assert bad.message == "format: `xml` is not one of json, csv, bulk"


async def test_shopify_pull_sync(api: Either, name: Callable[[str], str], shop: str) -> None:
    kb = await new_domain(api, name("shop"))
    unset = await error_of(api.shopify.connect(kb, shop=shop, token_env="DK_CLIENT_TEST_UNSET"))
    assert (unset.code, unset.message) == (
        "invalid_argument",
        "token_env: the environment variable `DK_CLIENT_TEST_UNSET` is not set on this node",
    )
    connected = await api.shopify.connect(kb, shop=shop, token_env=SHOP_TOKEN_ENV)
    assert (connected["domain"], connected["shop"]) == (kb, shop)
    assert (await api.shopify.connection(kb))["shop"] == shop
    assert (await api.shopify.status(kb))["shop"] == shop
    task = await api.shopify.sync(kb)
    assert task["domain"] == kb
    done = await api.tasks.wait(task["id"], timeout=60)
    assert done["status"] in FINISHED
    await api.shopify.disconnect(kb)
    gone = await error_of(api.shopify.connection(kb))
    assert (gone.code, gone.status) == ("not_found", 404)


async def test_principals_groups_grants_keys_tokens(
    api: Either, connect: ClientFactory, server: Server, name: Callable[[str], str]
) -> None:
    kb = await new_domain(api, name("kb"))
    ack = await api.index_documents(kb, documents=DOCS)
    agent, group = name("agent"), name("staff")

    assert (await api.principals.create(name=agent, kind="agent"))["name"] == agent
    await api.principals.create(name=group, kind="group")
    assert {agent, group} <= {p["name"] for p in await api.principals.list()}
    assert await api.groups.add(group, member=agent) == {"group": group, "member": agent}
    assert await api.groups.members(group) == [agent]
    assert await api.groups.remove(group, agent) is None
    assert await api.groups.members(group) == []

    assert await api.grants.grant(principal=agent, domain=kb, role="read") == {"principal": agent, "domain": kb, "role": "read"}
    assert {"principal": agent, "domain": kb, "role": "read"} in await api.grants.list()

    made = await api.keys.create(principal=agent, expires_in=3600)
    key_id, secret = made["key"]["id"], made["secret"]
    assert secret.startswith(key_id)
    assert key_id in [k["id"] for k in await api.keys.list()]

    as_agent = connect(server.url, secret)
    hits = await as_agent.search(query="warranty", domains=[kb], min_seq={kb: ack["seq"]})
    assert hits["hits"]
    write = await error_of(as_agent.index_documents(kb, documents=[{"id": "x", "text": "x"}]))
    assert (write.code, write.status, write.message) == ("permission_denied", 403, f"principal `{agent}` may not write to {kb}")

    token = await api.tokens.delegate(end_user=agent, domains=[kb], ttl_seconds=60)
    assert (token["end_user"], token["domains"]) == (agent, [kb])
    delegated = api.client.with_key(token["token"])
    try:
        on_behalf = Either(delegated, api.mode, api.traffic)
        assert (await on_behalf.search(query="warranty", domains=[kb]))["hits"]
        refused = await error_of(on_behalf.keys.create(principal=agent))
        assert (refused.code, refused.status) == ("permission_denied", 403)
        assert "delegated token" in refused.message
    finally:
        closing = delegated.close() if hasattr(delegated, "close") else delegated.aclose()
        if closing is not None:
            await closing

    assert await api.keys.revoke(key_id) is None
    revoked = await error_of(as_agent.search(query="warranty", domains=[kb]))
    assert (revoked.code, revoked.status) == ("unauthenticated", 401)

    assert await api.grants.revoke(agent, kb) is None
    assert {"principal": agent, "domain": kb, "role": "read"} not in await api.grants.list()
    assert await api.principals.delete(agent) == {"deleted": agent}
    assert agent not in {p["name"] for p in await api.principals.list()}


async def test_forbidden_domain_answers_as_missing(
    api: Either, connect: ClientFactory, server: Server, name: Callable[[str], str]
) -> None:
    open_kb, secret_kb, missing = name("open"), name("secret"), name("nosuch")
    await new_domain(api, open_kb)
    await new_domain(api, secret_kb)
    await api.index_documents(secret_kb, documents=DOCS)
    reader = name("reader")
    await api.principals.create(name=reader, kind="agent")
    await api.grants.grant(principal=reader, domain=open_kb, role="read")
    as_reader = connect(server.url, (await api.keys.create(principal=reader))["secret"])

    calls: list[Callable[[str], Awaitable[Any]]] = [
        lambda d: as_reader.search(query="gift card", domains=[d]),
        lambda d: as_reader.context(query="gift card", domains=[d]),
        lambda d: as_reader.similar(d, "shipping.md"),
        lambda d: as_reader.get_document(d, "shipping.md"),
        lambda d: as_reader.get_chunk(d, "shipping.md", 0),
        lambda d: as_reader.domains.stats(d),
        lambda d: as_reader.index_documents(d, documents=[{"id": "x", "text": "x"}]),
        lambda d: as_reader.delete(d, ids=["shipping.md"]),
        lambda d: as_reader.upload_files(d, [("x.md", "x")]),
    ]
    for call in calls:
        forbidden, absent = await error_of(call(secret_kb)), await error_of(call(missing))
        assert (forbidden.code, forbidden.status) == (absent.code, absent.status) == ("not_found", 404)
        assert forbidden.message.replace(secret_kb, "D") == absent.message.replace(missing, "D")
        assert forbidden.message == f"domain `{secret_kb}` does not exist"
    assert secret_kb not in [d["name"] for d in await as_reader.domains.list()]


async def test_errors_pass_through_unchanged(api: Either, connect: ClientFactory, server: Server) -> None:
    e = await error_of(api.search(query="x", k=0))
    assert (e.code, e.status, e.message, e.retry_after) == ("invalid_argument", 400, "k: must be 1 to 100, got 0", None)
    assert str(e) == "invalid_argument: k: must be 1 to 100, got 0"
    assert e.request_id

    # What the type system does not stop goes to the server, and its answer comes back as is:
    # the same code and message as a plain HTTP request with the same body gets.
    bad_bodies: list[dict[str, Any]] = [
        {"query": "x", "colour": "red"},
        {"query": "x", "filter": "price >>> 3"},
        {"query": "x", "mode": "psychic"},
    ]
    for body in bad_bodies:
        raw = httpx.post(f"{server.url}/v1/search", json=body, headers={"authorization": f"Bearer {server.admin_key}"})
        expected = raw.json()["error"]
        got = await error_of(api.search(**body))
        assert (got.code, got.message, got.status) == (expected["code"], expected["message"], raw.status_code)

    bad_key = await error_of(connect(server.url, "dk_nope").search(query="x"))
    assert (bad_key.code, bad_key.status) == ("unauthenticated", 401)
    assert bad_key.message == "not authenticated: invalid API key (malformed)"

    nowhere = await error_of(connect("http://127.0.0.1:9", "k").search(query="x"))
    assert (nowhere.code, nowhere.status) == ("connection_error", 0)


async def test_snapshots_audit_models_stats(api: Either, name: Callable[[str], str]) -> None:
    snap = name("snap")
    made = await api.snapshots.create(name=snap)
    assert made["name"] == snap and made["backend"] == "sqlite"
    assert snap in [s["name"] for s in (await api.snapshots.list())["snapshots"]]
    refused = await error_of(api.snapshots.restore(snap))
    assert (refused.code, refused.status) == ("conflict", 409)
    assert "a snapshot restores only into an empty store" in refused.message
    nothing = await error_of(api.snapshots.restore(name("nosuch")))
    assert (nothing.code, nothing.message) == ("not_found", f"snapshot `{name('nosuch')}` does not exist")

    await new_domain(api, name("audited"))
    entries = await api.audit(action="create-domain", target=name("audited"), limit=5)
    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [("create-domain", name("audited"), "ok")]
    bad = await error_of(api.audit(limit=0))
    assert bad.code == "invalid_argument"

    models = (await api.models())["models"]
    assert "all-minilm-l6-v2" in [m["id"] for m in models]
    stats = await api.stats()
    assert stats["uptime_seconds"] > 0 and "qps" in stats


async def test_rate_limited_calls_are_retried(connect: ClientFactory, limited_server: Server) -> None:
    """60 requests a minute, 3 at once: the 4th call of a burst gets a real 429 with
    Retry-After, and the client sends it again when told."""
    patient = connect(limited_server.url, limited_server.admin_key)
    started = time.monotonic()
    for _ in range(6):
        assert await patient.domains.list() == []
    assert 429 in patient.traffic.statuses, patient.traffic.statuses
    assert patient.traffic.statuses[-1] == 200
    assert time.monotonic() - started >= 0.9  # it waited as told (a token a second)

    # Without retries the 429 is the caller's, with the server's code, message and Retry-After.
    hasty = connect(limited_server.url, limited_server.admin_key, retry=Retry(max_retries=0))
    e = await drain(hasty)
    assert (e.code, e.status) == ("rate_limited", 429)
    assert e.retry_after is not None and e.retry_after >= 1
    assert hasty.traffic.statuses[-1] == 429

    # A wait past the bound is not waited: the error comes at once.
    bounded = connect(limited_server.url, limited_server.admin_key, retry=Retry(max_wait=0.5))
    started = time.monotonic()
    e = await drain(bounded)
    assert e.code == "rate_limited" and time.monotonic() - started < 0.9
    assert bounded.traffic.statuses.count(429) == 1


async def drain(client: Either) -> DartmouthError:
    """Calls until the budget is spent; the error."""
    for _ in range(20):
        try:
            await client.domains.list()
        except DartmouthError as e:
            return e
    raise AssertionError("no 429 in 20 calls")
