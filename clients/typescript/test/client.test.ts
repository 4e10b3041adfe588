// The client against a real `dartmouth serve` (see server.ts): every method once, the errors
// and retries of the real server, read-your-writes across two nodes, the LangChain retriever.

import assert from "node:assert/strict";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { Dartmouth, DartmouthError, type FetchLike, type Task } from "@dartmouth/knowledge";
import { DartmouthRetriever } from "@dartmouth/knowledge/langchain";
import { startServer, type Server } from "./server.js";

const JWT = ["--jwt-hs256-secret", "dk-ts-suite-secret-0123456789abcdef", "--jwt-issuer", "dk-ts", "--jwt-audience", "dk-ts"];

/** A fetch that records each request's method, path, body and answer status: the real
 * requests to the real server, observed. */
function recording(log: { method: string; path: string; body: unknown; status: number }[], route?: (path: string) => string): FetchLike {
  return async (input, init) => {
    const url = new URL(input);
    const target = route ? route(url.pathname) + url.pathname + url.search : input;
    const response = await fetch(target, init);
    let body: unknown = init.body;
    if (typeof body === "string") body = JSON.parse(body);
    log.push({ method: init.method ?? "GET", path: url.pathname, body, status: response.status });
    return response;
  };
}

async function rejects(promise: Promise<unknown>, code: string, status: number): Promise<DartmouthError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof DartmouthError, `a DartmouthError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    assert.ok(e instanceof Error);
    return e;
  }
  assert.fail(`expected a DartmouthError ${code}`);
}

interface FakeShop {
  host: string;
  /** Answers the bulk queries held so far, and those to come, at once. */
  release(): void;
  close(): Promise<void>;
}

/** A stand-in for a Shopify shop's Admin API (not for the Dartmouth server): it answers the
 * connection check, and holds a sync's bulk query until `release()`, then refuses it, so that
 * a sync runs until the test lets it fail. */
async function fakeShop(): Promise<FakeShop> {
  let released = false;
  const held: (() => void)[] = [];
  const server: HttpServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      const check = body.includes("publicApiVersions");
      const data = check
        ? { shop: { name: "Demo" }, publicApiVersions: [{ handle: "2026-01", supported: true }] }
        : { bulkOperationRunQuery: { bulkOperation: null, userErrors: [{ field: null, message: "not in this test", code: "INVALID" }] } };
      const answer = () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ data }));
      };
      if (check || released) answer();
      else held.push(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    release: () => {
      released = true;
      held.splice(0).forEach((answer) => answer());
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe("Dartmouth client against a real server", () => {
  let server: Server;
  let shop: FakeShop;
  let admin: Dartmouth;
  const D = "kb";

  before(async () => {
    shop = await fakeShop();
    // One principal (`limited`) with a budget of one request a second, to meet real 429s;
    // the others are exempt so that the rest of the suite never waits.
    server = await startServer(
      ["--rate-limit", "60", "--rate-burst", "1", "--rate-limit-exempt", "admin", "--rate-limit-exempt", "outsider", "--rate-limit-exempt", "agent-7", ...JWT],
      { DARTMOUTH_SHOPIFY_PLAIN_HOSTS: shop.host, DK_TS_SHOP_TOKEN: "shpat_test_token" },
    );
    admin = new Dartmouth({ url: server.url, key: server.adminKey, readYourWrites: true });
    await admin.domains.create({ name: D, embedder: "fake", dim: 64, description: "suite" });
  });

  after(async () => {
    await server?.stop();
    await shop?.close();
  });

  it("health, ready, openapi, models, live stats", async () => {
    assert.equal(await admin.health(), "ok");
    assert.equal(await admin.ready(), "ready");
    const doc = await admin.openapi();
    assert.equal(doc["openapi"], "3.1.0");
    const models = await admin.models.list();
    assert.ok(models.some((m) => m.id === "all-minilm-l6-v2"));
    const stats = await admin.stats();
    assert.equal(typeof stats.uptime_seconds, "number");
  });

  it("domains: list, get, update, reindex, rollback-model and drop-old-generation (the server's conflict)", async () => {
    assert.ok((await admin.domains.list()).some((d) => d.name === D));
    const stats = await admin.domains.get(D);
    assert.equal(stats.domain, D);
    const updated = await admin.domains.update(D, { description: "the suite's domain" });
    assert.equal(updated.description, "the suite's domain");
    const rebuilt = await admin.domains.reindex(D);
    assert.equal(rebuilt.domain, D);
    const e = await rejects(admin.domains.rollbackModel(D), "conflict", 409);
    assert.match(e.message, /no earlier generation/);
    await rejects(admin.domains.dropOldGeneration(D), "conflict", 409);
  });

  it("indexDocuments, getDocument, getChunk, search, context, similar", async () => {
    const ack = await admin.indexDocuments(D, [
      { id: "returns.md", title: "Returns", text: "You can return unworn items within 30 days for a refund.", url: "https://help.example/returns", attributes: { topic: "returns" } },
      { id: "shipping.md", title: "Shipping", text: "We ship worldwide; delivery takes five to seven days.", attributes: { topic: "shipping" } },
      { id: "gift.md", title: "Gift cards", text: "Gift cards cannot be returned or refunded.", attributes: { topic: "returns" } },
    ]);
    assert.equal(ack.documents, 3);
    assert.ok((ack.seq ?? 0) > 0);

    const doc = await admin.getDocument(D, "returns.md");
    assert.equal(doc.title, "Returns");
    assert.deepEqual(doc.attributes, { topic: "returns" });
    const chunk = await admin.getChunk(D, "returns.md", 0);
    assert.equal(chunk["doc_id"], "returns.md");

    const found = await admin.search({ query: "return refund", domains: [D], k: 5, filter: 'topic = "returns"' });
    assert.ok((found.hits ?? []).length > 0);
    assert.ok(found.hits?.every((h) => h.attributes?.["topic"] === "returns"));
    assert.equal(found.hits?.[0]?.doc_id, "returns.md");

    const ctx = await admin.context({ query: "can I return a gift card?", domains: [D], max_tokens: 200 });
    assert.ok((ctx.passages ?? []).length > 0);
    assert.match(ctx.context ?? "", /\[1\]/);

    const like = await admin.similar(D, "returns.md", { domains: [D], k: 5 });
    assert.ok((like.hits ?? []).length > 0);
    assert.ok(like.hits?.every((h) => h.doc_id !== "returns.md"), "the document itself is left out");
  });

  it("an error code surfaces as a DartmouthError with the server's code, status and message", async () => {
    const bad = await rejects(admin.search({ query: "x", domains: [D], k: 1_000_000 }), "invalid_argument", 400);
    assert.match(bad.message, /^k: /);
    const dup = await rejects(admin.domains.create({ name: D, embedder: "fake" }), "conflict", 409);
    assert.ok(dup.message.length > 0);
    await rejects(admin.tasks.get("no-such-task"), "not_found", 404);
    const unknown = await rejects(admin.request("POST", "/v1/search", { json: { query: "x", colour: "red" } }), "invalid_argument", 400);
    assert.match(unknown.message, /colour/);
    // A bad key.
    const stranger = new Dartmouth({ url: server.url, key: "dk_not_a_key" });
    await rejects(stranger.domains.list(), "unauthenticated", 401);
    // An error answer that is not the server's JSON still becomes a DartmouthError, named by its status.
    const notJson = await rejects(admin.request("GET", "/mcp"), "http_405", 405);
    assert.equal(notJson.message, "HTTP 405");
  });

  it("a domain the caller may not read answers exactly as a missing one", async () => {
    await admin.principals.create({ name: "outsider", kind: "agent" });
    const key = await admin.keys.create({ principal: "outsider" });
    assert.ok(key.secret?.startsWith("dk_"));
    const outsider = new Dartmouth({ url: server.url, key: key.secret ?? "" });

    const forbidden = await rejects(outsider.getDocument(D, "returns.md"), "not_found", 404);
    const missing = await rejects(outsider.getDocument("no-such-domain", "returns.md"), "not_found", 404);
    assert.equal(forbidden.message.replace(D, "X"), missing.message.replace("no-such-domain", "X"));
    const searchForbidden = await rejects(outsider.search({ query: "return", domains: [D] }), "not_found", 404);
    const searchMissing = await rejects(outsider.search({ query: "return", domains: ["no-such-domain"] }), "not_found", 404);
    assert.equal(searchForbidden.message.replace(D, "X"), searchMissing.message.replace("no-such-domain", "X"));
    assert.ok(!(await outsider.domains.list()).some((d) => d.name === D));

    // With a grant it reads the domain.
    await admin.grants.grant({ principal: "outsider", domain: D, role: "read" });
    assert.equal((await outsider.getDocument(D, "returns.md")).doc_id, "returns.md");
    // Read only: a write is refused with the server's code.
    await rejects(outsider.indexDocuments(D, [{ id: "x", text: "x" }]), "permission_denied", 403);
  });

  it("429: retried after Retry-After and then answered; given up past the bound with the 429", async () => {
    await admin.principals.create({ name: "limited", kind: "service" });
    await admin.grants.grant({ principal: "limited", domain: D, role: "read" });
    const { secret } = await admin.keys.create({ principal: "limited" });
    const seen: { method: string; path: string; body: unknown; status: number }[] = [];
    const limited = new Dartmouth({ url: server.url, key: secret ?? "", fetch: recording(seen) });

    await limited.domains.get(D); // spends the one-request burst
    const started = Date.now();
    const stats = await limited.domains.get(D); // 429, Retry-After: 1, then answered
    const took = Date.now() - started;
    assert.equal(stats.domain, D);
    const statuses = seen.map((s) => s.status);
    assert.deepEqual(statuses.slice(-2), [429, 200], `statuses ${statuses.join(",")}`);
    assert.ok(took >= 900, `waited ${took} ms for Retry-After`);

    // The budget is spent again: a wait of a second is past this client's bound.
    const impatient = new Dartmouth({ url: server.url, key: secret ?? "", retry: { maxRetries: 3, maxWaitMs: 200 } });
    const e = await rejects(impatient.domains.get(D), "rate_limited", 429);
    assert.ok((e.retryAfter ?? 0) >= 1, `retryAfter ${e.retryAfter}`);
    assert.ok(e.message.length > 0);

    // No retries at all.
    await new Promise((r) => setTimeout(r, 1100));
    const never = new Dartmouth({ url: server.url, key: secret ?? "", retry: { maxRetries: 0 } });
    await never.domains.get(D);
    await rejects(never.domains.get(D), "rate_limited", 429);
  });

  it("uploadFiles (File, Blob, bytes, text) and an async upload waited to completion", async () => {
    const summary = await admin.uploadFiles(D, [
      new File(["# Warranty\n\nEvery product carries a two-year warranty against defects.\n"], "warranty.md", { type: "text/markdown" }),
      { name: "care.txt", content: new TextEncoder().encode("Wash the hoodie cold and hang it to dry.") },
      { name: "sizes.html", content: "<html><head><title>Sizes</title></head><body><p>Our hoodies run large.</p></body></html>" },
      { name: "faq.md", content: new Blob(["# FAQ\n\nQuestions about orders and returns.\n"]) },
    ]);
    assert.equal(summary.added, 4, JSON.stringify(summary));
    assert.equal(summary.failed_count, 0);
    assert.equal((await admin.getDocument(D, "care.txt")).doc_id, "care.txt");

    const task = await admin.uploadFiles(D, { name: "loyalty.md", content: "# Loyalty\n\nMembers earn points on every order." }, { async: true });
    assert.ok(task.id);
    assert.ok(["queued", "running", "succeeded"].includes(task.status ?? ""), task.status);
    const done = await admin.tasks.wait(task.id ?? "", { timeoutMs: 30_000 });
    assert.equal(done.status, "succeeded", done.error ?? "");
    assert.equal(done.summary?.added, 1);
    const hits = await admin.search({ query: "loyalty points", domains: [D], k: 3 });
    assert.equal(hits.hits?.[0]?.doc_id, "loyalty.md");

    assert.equal((await admin.tasks.get(task.id ?? "")).status, "succeeded");
    assert.ok((await admin.tasks.list()).some((t) => t.id === task.id));
    // A cancel after the end changes nothing.
    assert.equal((await admin.tasks.cancel(task.id ?? "")).status, "succeeded");
  });

  it("delete by ids and by filter, deleteDocument", async () => {
    await admin.indexDocuments(D, [
      { id: "old-1", text: "Discontinued item one", attributes: { state: "old" } },
      { id: "old-2", text: "Discontinued item two", attributes: { state: "old" } },
      { id: "old-3", text: "Discontinued item three", attributes: { state: "old" } },
    ]);
    const byIds = await admin.delete(D, { ids: ["old-1", "never-there"] });
    assert.equal(byIds.deleted, 1);
    const byFilter = await admin.delete(D, { filter: 'state = "old"' });
    assert.equal(byFilter.deleted, 2);
    assert.ok((byFilter.seq ?? 0) > (byIds.seq ?? 0));
    await rejects(admin.getDocument(D, "old-2"), "not_found", 404);
    await admin.indexDocuments(D, [{ id: "temp", text: "temporary" }]);
    assert.equal((await admin.deleteDocument(D, "temp")).deleted, 1);
    assert.equal((await admin.deleteDocument(D, "temp")).deleted, 0);
  });

  it("principals, groups, grants, keys, audit", async () => {
    const p = await admin.principals.create({ name: "agent-7", kind: "agent" });
    assert.equal(p["name"], "agent-7");
    await admin.principals.create({ name: "staff", kind: "group" });
    assert.ok((await admin.principals.list()).some((x) => x["name"] === "agent-7"));

    await admin.groups.addMember("staff", "agent-7");
    assert.deepEqual(await admin.groups.listMembers("staff"), ["agent-7"]);
    await admin.grants.grant({ principal: "staff", domain: D, role: "read" });
    assert.ok((await admin.grants.list()).some((g) => g["principal"] === "staff" && g["domain"] === D));

    const made = await admin.keys.create({ principal: "agent-7", domains: [D], role: "read", expires_in: 3600 });
    const agent = new Dartmouth({ url: server.url, key: made.secret ?? "" });
    assert.equal((await agent.getDocument(D, "returns.md")).doc_id, "returns.md"); // through the group
    await admin.groups.removeMember("staff", "agent-7");
    await rejects(agent.getDocument(D, "returns.md"), "not_found", 404);
    await admin.grants.revoke("staff", D);
    assert.ok(!(await admin.grants.list()).some((g) => g["principal"] === "staff"));

    const id = String(made.key?.["id"] ?? "");
    assert.ok((await admin.keys.list()).some((k) => k["id"] === id));
    await admin.keys.revoke(id);
    await rejects(agent.domains.list(), "unauthenticated", 401);
    await admin.principals.delete("agent-7");
    assert.ok(!(await admin.principals.list()).some((x) => x["name"] === "agent-7"));

    const entries = await admin.audit.query({ action: "grant", limit: 5 });
    assert.ok(entries.length > 0 && entries.length <= 5);
    assert.ok(entries.every((a) => a.action === "grant"));
  });

  it("delegated tokens: a read-only JWT for an end user", async () => {
    await admin.principals.create({ name: "alice", kind: "user" });
    await admin.grants.grant({ principal: "alice", domain: D, role: "read" });
    const token = await admin.tokens.delegate({ end_user: "alice", domains: [D], ttl_seconds: 60 });
    assert.equal(token.end_user, "alice");
    const asAlice = new Dartmouth({ url: server.url, key: token.token ?? "" });
    const hits = await asAlice.search({ query: "return", domains: [D] });
    assert.ok((hits.hits ?? []).length > 0);
    await rejects(asAlice.indexDocuments(D, [{ id: "x", text: "x" }]), "permission_denied", 403);
  });

  it("snapshots: create, list, restore (refused into a store that is not empty)", async () => {
    const snap = await admin.snapshots.create("suite");
    assert.equal(snap.name, "suite");
    assert.ok((await admin.snapshots.list()).some((s) => s.name === "suite"));
    const named = await admin.snapshots.create();
    assert.ok(named.name);
    const e = await rejects(admin.snapshots.restore("suite"), "conflict", 409);
    assert.ok(e.message.length > 0);
  });

  it("shopify: a catalog upload, connect, connection, status, sync, disconnect", async () => {
    const out = await admin.shopify.uploadCatalog(D, {
      products: [{ id: 1, title: "Blue Hoodie", handle: "blue-hoodie", body_html: "<p>A warm hoodie</p>", vendor: "Acme", variants: [{ id: 11, price: "40.00", sku: "BH-M", option1: "M" }], options: [{ name: "Size", values: ["M"] }] }],
    }, { baseUrl: "https://shop.example" });
    assert.equal(out.added, 1, JSON.stringify(out));
    // The same catalog as text: unchanged.
    const again = await admin.shopify.uploadCatalog(D, JSON.stringify({
      products: [{ id: 1, title: "Blue Hoodie", handle: "blue-hoodie", body_html: "<p>A warm hoodie</p>", vendor: "Acme", variants: [{ id: 11, price: "40.00", sku: "BH-M", option1: "M" }], options: [{ name: "Size", values: ["M"] }] }],
    }), { format: "json", baseUrl: "https://shop.example" });
    assert.equal(again.unchanged, 1, JSON.stringify(again));
    const hit = await admin.search({ query: "hoodie", domains: [D], k: 1 });
    assert.equal(hit.hits?.[0]?.url, "https://shop.example/products/blue-hoodie");

    await rejects(admin.shopify.status(D), "not_found", 404);
    const conn = await admin.shopify.connect(D, { shop: shop.host, token_env: "DK_TS_SHOP_TOKEN" });
    assert.equal(conn.shop, shop.host);
    assert.equal((await admin.shopify.connection(D)).token_env, "DK_TS_SHOP_TOKEN");
    assert.equal((await admin.shopify.status(D)).domain, D);
    const sync: Task = await admin.shopify.sync(D, { full: true });
    // The shop holds the sync's first query: the wait gives up with the client's own `timeout`.
    const timedOut = await rejects(admin.tasks.wait(sync.id ?? "", { timeoutMs: 300 }), "timeout", 0);
    assert.match(timedOut.message, /is still (queued|running)/);
    shop.release();
    const ended = await admin.tasks.wait(sync.id ?? "", { timeoutMs: 30_000 });
    assert.equal(ended.status, "failed");
    assert.match(ended.error ?? "", /not in this test/);
    await admin.shopify.disconnect(D);
    await rejects(admin.shopify.connection(D), "not_found", 404);
  });

  it("the LangChain retriever answers Documents from search and from context", async () => {
    const retriever = new DartmouthRetriever({ client: admin, domains: [D], k: 3 });
    const docs = await retriever.invoke("return a refund");
    assert.ok(docs.length > 0 && docs.length <= 3);
    const first = docs[0]!;
    assert.equal(first.metadata["domain"], D);
    assert.equal(first.metadata["doc_id"], "returns.md");
    assert.equal(first.metadata["title"], "Returns");
    assert.equal(first.metadata["url"], "https://help.example/returns");
    assert.equal(typeof first.metadata["score"], "number");
    assert.match(String(first.metadata["chunk_id"]), /^returns\.md#/);
    assert.match(first.pageContent, /return unworn items/);

    const passages = await new DartmouthRetriever({ client: admin, domains: [D], via: "context", maxTokens: 300 }).invoke("gift card refund");
    assert.ok(passages.length > 0);
    assert.ok(passages.every((d) => d.pageContent.length > 0 && d.metadata["domain"] === D));
  });

  it("domains.delete", async () => {
    await admin.domains.create({ name: "scratch", embedder: "fake", dim: 16 });
    const gone = await admin.domains.delete("scratch");
    assert.equal(gone.name, "scratch");
    await rejects(admin.domains.get("scratch"), "not_found", 404);
  });
});

describe("readYourWrites across two nodes sharing one store", () => {
  let a: Server;
  let b: Server;

  before(async () => {
    // Appliers that never tick during the suite: node B sees a write of node A only when a
    // read asks for it with min_seq.
    const common = ["--apply-interval-ms", "600000"];
    a = await startServer(common);
    const store = `sqlite://${a.dataDir}/store.sqlite3?mode=rwc`;
    b = await startServer(["--store", store, ...common]);
    const setup = new Dartmouth({ url: a.url, key: a.adminKey });
    await setup.domains.create({ name: "notes", embedder: "fake", dim: 32 });
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  it("503 is retried like 429 (here without Retry-After: after 0.5 s), then thrown unchanged", async () => {
    // These nodes are served without a JWT key: delegation answers 503 unavailable.
    const seen: { method: string; path: string; body: unknown; status: number }[] = [];
    const client = new Dartmouth({ url: a.url, key: a.adminKey, retry: { maxRetries: 1 }, fetch: recording(seen) });
    const e = await rejects(client.tokens.delegate({ end_user: "admin" }), "unavailable", 503);
    assert.match(e.message, /delegation is not configured/);
    assert.deepEqual(seen.map((s) => s.status), [503, 503]);
  });

  it("a write on one node, then at once a search on the other, finds it with readYourWrites", async () => {
    // A balancer in front of the two nodes: writes go to A, searches and contexts to B.
    const toB = (p: string) => (p === "/v1/search" || p === "/v1/context" ? b.url : a.url);
    const seen: { method: string; path: string; body: unknown; status: number }[] = [];
    const client = new Dartmouth({ url: a.url, key: a.adminKey, readYourWrites: true, fetch: recording(seen, toB) });
    const plain = new Dartmouth({ url: b.url, key: a.adminKey });

    const ack = await client.indexDocuments("notes", [{ id: "n1", title: "Standup", text: "The deploy moved to Thursday." }]);
    assert.ok((ack.seq ?? 0) > 0);
    assert.deepEqual(client.writtenSequences(), { notes: ack.seq });

    // Without min_seq, node B has not applied the write.
    const stale = await plain.search({ query: "deploy Thursday", domains: ["notes"] });
    assert.equal((stale.hits ?? []).length, 0);

    const fresh = await client.search({ query: "deploy Thursday", domains: ["notes"] });
    assert.equal(fresh.hits?.[0]?.doc_id, "n1");
    const sent = seen.find((s) => s.path === "/v1/search");
    assert.deepEqual((sent?.body as { min_seq?: unknown }).min_seq, { notes: ack.seq });

    // A delete, then context on B: the deleted document is gone there too.
    await client.indexDocuments("notes", [{ id: "n2", title: "Lunch", text: "Pizza on Friday." }]);
    const del = await client.delete("notes", { ids: ["n1"] });
    assert.deepEqual(client.writtenSequences(), { notes: del.seq });
    const ctx = await client.context({ query: "deploy Thursday pizza", domains: ["notes"] });
    assert.deepEqual((ctx.passages ?? []).map((p) => p.doc_id), ["n2"]);
    // With no domains named, every domain the client wrote to is waited for.
    const all = await client.search({ query: "pizza" });
    assert.equal(all.hits?.[0]?.doc_id, "n2");
    assert.deepEqual((seen.at(-1)?.body as { min_seq?: unknown }).min_seq, { notes: del.seq });
  });
});
