//! The OpenAPI 3.1 document served at `/openapi.json`, written out by hand from the routes in
//! `http.rs` and the contract types in `service/contract.rs` (a test checks every route is in it).

use serde_json::{Value, json};

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn op(summary: &str, request: Option<Value>, response: Value, params: &[&str]) -> Value {
    let mut o = json!({
        "summary": summary,
        "security": [{ "bearer": [] }],
        "responses": {
            "200": response,
            "default": { "$ref": "#/components/responses/Error" }
        }
    });
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(
            params
                .iter()
                .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
                .collect(),
        );
    }
    o
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

fn files_upload() -> Value {
    let mut o = op(
        "Index files (writer) in any format `dartmouth index` reads — Markdown, HTML, text, PDF, JSON/JSONL records, Shopify exports — with the same idempotent sync: unchanged documents are skipped. A file's name is its document id and tells its format",
        Some(json!({ "required": true, "content": {
            "multipart/form-data": { "schema": { "type": "object", "description": "each part with a file name is a file (curl -F file=@faq.md)" } },
            "application/json": { "schema": { "type": "object", "required": ["files"], "additionalProperties": false, "properties": { "files": array(json!({
                "type": "object", "required": ["name"], "additionalProperties": false,
                "properties": { "name": {"type": "string"}, "format": {"type": "string"}, "content": {"type": "string", "description": "text"}, "content_base64": {"type": "string", "description": "any bytes (PDF)"} } })) } } },
            "application/octet-stream": { "schema": { "type": "string", "format": "binary", "description": "one file, named by ?name=" } }
        } })),
        ok("indexed (with async: 202 and the task)", r("IndexSummary")),
        &["domain"],
    );
    if let Some(params) = o["parameters"].as_array_mut() {
        params.push(query_param("format", json!({"type": "string"}), "every file's format (markdown, html, text, pdf, json, jsonl, shopify-csv, …); default: from each name"));
        params.push(query_param(
            "full_sync",
            json!({"type": "boolean"}),
            "delete the domain's documents the files do not mention (only when no record failed)",
        ));
        params.push(query_param(
            "async",
            json!({"type": "boolean"}),
            "answer at once (202) with a task: GET /v1/tasks/{id}, POST /v1/tasks/{id}/cancel",
        ));
        params.push(query_param(
            "name",
            json!({"type": "string"}),
            "a raw body's file name",
        ));
        params.push(query_param(
            "base_url",
            json!({"type": "string"}),
            "a Shopify file's shop address",
        ));
    }
    o["responses"]["202"] = ok("started", r("Task"));
    o
}

fn audit() -> Value {
    let mut o = op(
        "Audit entries, newest first (admin): admin actions, every denied access, quarantines, refused logins counted",
        None,
        ok(
            "entries",
            array(
                json!({"type": "object", "properties": {"id": {"type": "integer"}, "at": {"type": "integer"}, "actor": {"type": "string"}, "action": {"type": "string"}, "target": {"type": "string"}, "outcome": {"type": "string"}, "detail": {"type": "string"}, "count": {"type": "integer"}}}),
            ),
        ),
        &[],
    );
    o["parameters"] = json!([
        query_param(
            "since",
            json!({"type": "integer"}),
            "unix milliseconds, inclusive"
        ),
        query_param(
            "until",
            json!({"type": "integer"}),
            "unix milliseconds, exclusive"
        ),
        query_param("actor", json!({"type": "string"}), "exactly"),
        query_param(
            "action",
            json!({"type": "string"}),
            "exactly (create-domain, grant, search, …)"
        ),
        query_param("target", json!({"type": "string"}), "exactly"),
        query_param("outcome", json!({"enum": ["ok", "denied", "failed"]}), ""),
        query_param(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
            ""
        )
    ]);
    o
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn array(of: Value) -> Value {
    json!({ "type": "array", "items": of })
}

fn shopify_upload() -> Value {
    let mut o = op(
        "Upload a Shopify catalog (writer): each product one document; bad records are listed in `failed`, the rest is written",
        Some(json!({ "required": true, "content": {
            "application/json": { "schema": { "description": "Admin REST `{\"products\":[…]}`, `{\"product\":{…}}`, a bare array, or storefront /products.json" } },
            "text/csv": { "schema": { "type": "string", "description": "a product CSV export (legacy or 2025 headers)" } },
            "application/jsonl": { "schema": { "type": "string", "description": "GraphQL bulk-operation JSONL" } }
        } })),
        ok("indexed", r("ShopifyOutput")),
        &["domain"],
    );
    let query = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description });
    if let Some(params) = o["parameters"].as_array_mut() {
        params.push(query(
            "format",
            json!({ "enum": ["json", "csv", "bulk"] }),
            "default: text/csv → csv, application/jsonl → bulk; else a body starting with `{`/`[` is json (bulk when its first line is an object with `__typename`), anything else csv",
        ));
        params.push(query(
            "full_sync",
            json!({ "type": "boolean", "default": false }),
            "delete the domain's documents the catalog does not mention (not when a record failed)",
        ));
        params.push(query(
            "base_url",
            json!({ "type": "string" }),
            "the shop's address: product URLs become <base_url>/products/<handle>",
        ));
    }
    o
}

fn shopify_webhook() -> Value {
    json!({
        "summary": "A Shopify webhook (products/create, products/update, products/delete, inventory_levels/update, inventory_items/update) for a domain configured with `[[shopify]]` or --shopify-webhook; written as the configured principal. A payload that cannot be used (say, stock of an unknown inventory item) is answered 200 with the failure listed, since Shopify retries any other status.",
        "security": [{ "shopifyHmac": [] }],
        "parameters": [
            { "name": "domain", "in": "path", "required": true, "schema": { "type": "string" } },
            { "name": "X-Shopify-Hmac-Sha256", "in": "header", "required": true, "schema": { "type": "string" }, "description": "base64(HMAC-SHA256(raw body, the shop's secret)); missing or wrong: 401" },
            { "name": "X-Shopify-Topic", "in": "header", "required": false, "schema": { "type": "string" } }
        ],
        "requestBody": body(json!({ "type": "object", "description": "the webhook payload" })),
        "responses": {
            "200": ok("processed", r("ShopifyOutput")),
            "default": { "$ref": "#/components/responses/Error" }
        }
    })
}

pub fn document() -> Value {
    let open = |summary: &str| json!({ "summary": summary, "responses": { "200": { "description": "ok" } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dartmouth Knowledge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Hybrid BM25 + vector retrieval over access-controlled knowledge domains. Every /v1 route needs `Authorization: Bearer <API key or JWT>` (except Shopify webhooks, which are signed); a domain the caller cannot read answers exactly as one that does not exist."
        },
        "paths": {
            "/v1/search": { "post": op("Search the domains the caller may read", Some(body(r("SearchInput"))), ok("hits", r("SearchOutput")), &[]) },
            "/v1/context": { "post": op("A token budget of cited passages for a prompt", Some(body(r("ContextInput"))), ok("context", r("ContextOutput")), &[]) },
            "/v1/domains": {
                "get": op("Domains the caller can read", None, ok("domains", array(r("Domain"))), &[]),
                "post": op("Create a domain (admin)", Some(body(r("DomainInput"))), ok("created", r("Domain")), &[])
            },
            "/v1/domains/{domain}": {
                "get": op("A domain's state (reader): its shard on this node, its store, what the applier quarantined", None, ok("stats", r("DomainStats")), &["domain"]),
                "patch": op("Change a domain's description, catalog option names or default reranking, or switch its embedding model online (its admin); option names apply to what is written next; `model` starts a task that builds the new generation while the old one serves (the answer's `task`)", Some(body(json!({"type": "object", "additionalProperties": false, "properties": {"description": {"type": "string"}, "option_names": {"type": "object", "additionalProperties": {"type": "string"}}, "rerank": r("Rerank"), "model": {"type": "string", "description": "an embedding model of the catalogue (GET /v1/models)"}}}))), ok("updated", r("Domain")), &["domain"]),
                "delete": op("Delete a domain with its documents (admin)", None, ok("deleted", r("Domain")), &["domain"])
            },
            "/v1/domains/{domain}/reindex": { "post": op("Rebuild the domain's shard from the store, without re-embedding (its admin)", None, ok("rebuilt", json!({"type": "object", "properties": {"domain": {"type": "string"}, "documents": {"type": "integer"}, "chunks": {"type": "integer"}, "seq": {"type": "integer"}, "seconds": {"type": "number"}}})), &["domain"]) },
            "/v1/domains/{domain}/files": { "post": files_upload() },
            "/v1/domains/{domain}/rollback-model": { "post": op("Switch back to the generation kept from the last model switch (its admin): a task builds what was written since, then it serves; 409 when none is kept", None, ok("rolling back", json!({"type": "object", "properties": {"domain": r("Domain"), "task": r("Task")}})), &["domain"]) },
            "/v1/domains/{domain}/drop-old-generation": { "post": op("Drop the generation kept from the last model switch (no rollback after), or abandon one being built (its admin); 409 when there is none", None, ok("dropped", r("Domain")), &["domain"]) },
            "/v1/models": { "get": op("The model catalogue (any authenticated caller): each model's id, kind, dimension, pooling, prefixes, max tokens, quantization, source, measured speed, and whether this node has its files (`installed`: ok, missing, damaged) and has it loaded", None, ok("models", json!({"type": "object", "properties": {"models": array(r("Model"))}})), &[]) },
            "/v1/domains/{domain}/delete": { "post": op("Delete documents (writer): by `ids`, or every document `filter` matches once the shard has caught up; ids the domain does not hold are not counted", Some(body(json!({"type": "object", "additionalProperties": false, "properties": {"ids": array(json!({"type": "string"})), "filter": {"type": "string"}}}))), ok("deleted", r("DeleteOutput")), &["domain"]) },
            "/v1/tasks": { "get": op("This node's tasks (indexing, model switches) the caller created (a superuser: all), newest first", None, ok("tasks", array(r("Task"))), &[]) },
            "/v1/tasks/{id}": { "get": op("A task's status; another principal's task answers as a missing one (404)", None, ok("task", r("Task")), &["id"]) },
            "/v1/tasks/{id}/cancel": { "post": op("Stop a queued or running task between batches; what it acknowledged stays written, a full sync deletes nothing", None, ok("task", r("Task")), &["id"]) },
            "/v1/principals/{name}": { "delete": op("Delete a principal with its keys, grants and memberships (admin; not a superuser, not the caller)", None, ok("deleted", json!({"type": "object", "properties": {"deleted": {"type": "string"}}})), &["name"]) },
            "/v1/groups/{group}/members": {
                "get": op("A group's direct members (admin)", None, ok("members", array(json!({"type": "string"}))), &["group"]),
                "post": op("Add a member to a group (admin)", Some(body(json!({"type": "object", "required": ["member"], "additionalProperties": false, "properties": {"member": {"type": "string"}}}))), ok("added", json!({"type": "object"})), &["group"])
            },
            "/v1/groups/{group}/members/{member}": { "delete": op("Take a member out of a group (admin)", None, json!({"description": "removed"}), &["group", "member"]) },
            "/v1/audit": { "get": audit() },
            "/v1/stats": { "get": op("Live figures: this node's last minute of requests (QPS, p50, p99) and the applier's lag on the domains the caller administers", None, ok("figures", json!({"type": "object", "properties": {"uptime_seconds": {"type": "number"}, "requests_last_minute": {"type": "integer"}, "qps": {"type": "number"}, "p50_ms": {"type": "number"}, "p99_ms": {"type": "number"}, "domains": array(json!({"type": "object", "properties": {"domain": {"type": "string"}, "applied_seq": {"type": "integer"}, "last_seq": {"type": "integer"}, "lag": {"type": "integer"}}}))}})), &[]) },
            "/mcp": { "post": op("Model Context Protocol (streamable HTTP, JSON answers, no session): tools `search`, `context`, `get_document` as the bearer credential. A refused credential: 401 with a JSON-RPC error", Some(body(json!({"type": "object", "description": "one JSON-RPC 2.0 message"}))), ok("a JSON-RPC response (202 without a body for a notification)", json!({"type": "object"})), &[]) },
            "/admin": { "get": { "summary": "The admin console (HTML; sign in with an admin key)", "responses": { "200": { "description": "the page", "content": { "text/html": {} } } } } },
            "/v1/domains/{domain}/documents": { "post": op("Ingest documents (writer): chunked, embedded, acknowledged with a sequence", Some(body(r("IngestInput"))), ok("acknowledged", r("IngestOutput")), &["domain"]) },
            "/v1/domains/{domain}/shopify": { "post": shopify_upload() },
            "/v1/domains/{domain}/shopify/connection": {
                "post": op("Connect a Shopify shop to the domain for pull sync (its admin): `shop` (*.myshopify.com), `token_env` (the environment variable, or `file:PATH`, that holds the Admin API token on each node; the token is never stored or answered), `api_version` (default 2026-01), `every` (a schedule: 15m, 1h; at least 1m), `metafields` (`namespace.key` read with each product: attributes `metafield.namespace.key`), `register_webhooks` (this service's public https:// base URL: the shop's product and inventory webhooks are subscribed to `{url}/v1/webhooks/shopify/{domain}`; the domain must take webhooks on this node). The shop is asked once: a refused token, an unlisted version are 400 naming the field", Some(body(json!({"type": "object", "additionalProperties": false, "required": ["shop", "token_env"], "properties": {"shop": {"type": "string"}, "token_env": {"type": "string"}, "api_version": {"type": "string"}, "every": {"type": "string"}, "metafields": array(json!({"type": "string"})), "register_webhooks": {"type": "string"}}}))), ok("connected", r("ShopConnection")), &["domain"]),
                "get": op("The shop connection and its sync state (reader)", None, ok("connection", r("ShopConnection")), &["domain"]),
                "delete": op("Disconnect the shop (its admin); the documents stay", None, json!({"204": {"description": "disconnected"}}), &["domain"])
            },
            "/v1/domains/{domain}/shopify/status": { "get": op("The shop connection's state (reader): last run (kind, started, duration_ms, added, updated, unchanged, deleted, failed, error), the incremental mark, the next scheduled run, whether a node syncs it now", None, ok("connection", r("ShopConnection")), &["domain"]) },
            "/v1/domains/{domain}/shopify/sync": { "post": op("Sync the shop now as a task (writer): `{\"full\": true}` runs a bulk operation over every product and then deletes what the shop no longer has (only when no record failed); otherwise the products updated since the last good run and the deletions since. 409 while a sync of the shop runs on any node", Some(body(json!({"type": "object", "additionalProperties": false, "properties": {"full": {"type": "boolean"}}}))), json!({"202": {"description": "queued", "content": {"application/json": {"schema": r("Task")}}}}), &["domain"]) },
            "/v1/webhooks/shopify/{domain}": { "post": shopify_webhook() },
            "/v1/domains/{domain}/documents/{id}": { "get": op("One document with its chunks (reader)", None, ok("document", r("Document")), &["domain", "id"]) },
            "/v1/domains/{domain}/documents/{id}/chunks/{idx}": { "get": op("One chunk (reader)", None, ok("chunk", json!({"type": "object"})), &["domain", "id", "idx"]) },
            "/v1/principals": {
                "get": op("Principals (admin)", None, ok("principals", array(json!({"type": "object"}))), &[]),
                "post": op("Create a principal (admin)", Some(body(json!({"type": "object", "required": ["name", "kind"], "properties": {"name": {"type": "string"}, "kind": {"enum": ["agent", "user", "service", "group"]}}}))), ok("created", json!({"type": "object"})), &[])
            },
            "/v1/grants": {
                "get": op("Grants (admin)", None, ok("grants", array(json!({"type": "object"}))), &[]),
                "post": op("Grant a role on a domain (the domain's admin)", Some(body(json!({"type": "object", "required": ["principal", "domain", "role"], "properties": {"principal": {"type": "string"}, "domain": {"type": "string"}, "role": {"enum": ["read", "write", "admin"]}}}))), ok("granted", json!({"type": "object"})), &[])
            },
            "/v1/grants/{principal}/{domain}": { "delete": op("Revoke a grant", None, json!({"description": "revoked"}), &["principal", "domain"]) },
            "/v1/keys": {
                "get": op("API keys (admin: all; others: their own)", None, ok("keys", array(json!({"type": "object"}))), &[]),
                "post": op("Create an API key; the secret is returned once. A credential creates only keys at most as wide as itself: its own domains or fewer, no later expiry, no higher role (unset parts default to the creating credential's); a delegated token creates none", Some(body(json!({"type": "object", "required": ["principal"], "additionalProperties": false, "properties": {"principal": {"type": "string"}, "domains": array(json!({"type": "string"})), "expires_in": {"type": "integer", "description": "seconds"}, "role": {"enum": ["read", "write", "admin"], "description": "the highest role the key may use"}}}))), ok("created", json!({"type": "object", "properties": {"key": {"type": "object"}, "secret": {"type": "string"}}})), &[])
            },
            "/v1/keys/{id}": { "delete": op("Revoke a key", None, json!({"description": "revoked"}), &["id"]) },
            "/v1/tokens/delegate": { "post": op("A delegated token for an agent acting for an end user (a principal): read-only, at most 15 minutes, for the domains both may read (re-checked on every use). Send it as `Authorization: Bearer <token>`", Some(body(json!({"type": "object", "required": ["end_user"], "additionalProperties": false, "properties": {"end_user": {"type": "string"}, "domains": array(json!({"type": "string"})), "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 900, "default": 300}}}))), ok("minted", json!({"type": "object", "properties": {"token": {"type": "string"}, "expires_at": {"type": "integer", "description": "milliseconds since the epoch"}, "end_user": {"type": "string"}, "domains": array(json!({"type": "string"}))}})), &[]) },
            "/v1/snapshots": {
                "get": op("The snapshots in this node's snapshot directory, oldest first (superuser)", None, ok("snapshots", json!({"type": "object", "properties": {"snapshots": array(r("Snapshot"))}})), &[]),
                "post": op("Snapshot the store (one read transaction) and this node's shards (each at its last commit, never ahead of the store copy) into the snapshot directory (superuser); 201. The body is optional", Some(json!({"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string", "description": "1–64 of A–Z a–z 0–9 - _ .; default: the time, 2026-11-29T19-30-00Z"}}}}}})), ok("created", r("Snapshot")), &[])
            },
            "/v1/snapshots/{name}/restore": { "post": op("Restore a snapshot into this node's store, which must be empty (no domain, no principal but the bootstrap admin; 409 otherwise): the store in one transaction, the shards swapped in and caught up from the changelog. Principals and keys become the snapshot's (superuser)", None, ok("restored", r("Snapshot")), &["name"]) },
            "/healthz": { "get": open("Liveness") },
            "/readyz": { "get": open("Readiness: the store answers and the applier has run") },
            "/metrics": { "get": open("Prometheus metrics") },
            "/openapi.json": { "get": open("This document") }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "shopifyHmac": { "type": "apiKey", "in": "header", "name": "X-Shopify-Hmac-Sha256", "description": "base64(HMAC-SHA256(raw body, the shop's secret))" }
            },
            "responses": {
                "Error": ok("An error: `code` is stable (invalid_argument, unauthenticated, permission_denied, not_found, conflict, payload_too_large, rate_limited, unavailable, internal); 429 carries Retry-After", json!({
                    "type": "object",
                    "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
                }))
            },
            "schemas": {
                "SearchInput": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "query": { "type": "string" },
                        "domains": array(json!({"type": "string"})),
                        "k": { "type": "integer", "minimum": 1, "maximum": 100 },
                        "mode": { "enum": ["bm25", "vector", "hybrid"] },
                        "fusion": { "type": "object", "additionalProperties": false, "properties": {
                            "method": { "enum": ["zscore", "weighted", "rrf"], "description": "zscore (default: z-scores, vector weight 1.2), weighted (min-max, vector weight 0.7), rrf (k 60)" }, "bm25_weight": { "type": "number" },
                            "vector_weight": { "type": "number" }, "rrf_k": { "type": "number" } } },
                        "candidates": { "type": "integer" },
                        "filter": { "type": "string", "description": "e.g. in_stock = true AND price <= 50" },
                        "facets": array(json!({"type": "string"})),
                        "facet_size": { "type": "integer" },
                        "explain": { "type": "boolean" },
                        "min_seq": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "domain → acknowledged sequence to wait for" },
                        "collapse": { "type": "boolean" },
                        "parse": { "type": "boolean", "description": "catalog query understanding: price bounds, sizes, colours and stock wording become the filter" },
                        "vector": array(json!({"type": "number"})),
                        "similar_to": { "type": "object", "additionalProperties": false, "required": ["domain", "doc_id"],
                            "properties": { "domain": {"type": "string"}, "doc_id": {"type": "string"} } },
                        "sort": { "type": "string", "description": "price, price:asc, price:desc" },
                        "offset": { "type": "integer", "minimum": 0 },
                        "rerank": r("Rerank")
                    }
                },
                "Rerank": {
                    "type": "object", "additionalProperties": false,
                    "description": "A cross-encoder re-orders the best candidates (after access control and the filter); what is left out comes from the searched domains' shared default, else the built-in one",
                    "properties": {
                        "top_n": {"type": "integer", "minimum": 0, "maximum": 100, "description": "candidates re-ordered (default 10); 0: none"},
                        "model": {"type": "string", "description": "a reranker of the catalogue (default ms-marco-minilm-l-12-v2)"},
                        "blend": {"type": "number", "minimum": 0, "maximum": 1, "description": "weight of the reranker's score against the fused score, each min-max normalised (1: it alone; default 0.5)"},
                        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "description": "budget; past it the fused order is returned and rerank.applied is false (default 1000)"}
                    }
                },
                "RerankInfo": { "type": "object", "properties": {
                    "model": {"type": "string"}, "top_n": {"type": "integer"}, "blend": {"type": "number"},
                    "applied": {"type": "boolean"}, "reason": {"type": "string"}, "took_ms": {"type": "number"} } },
                "Model": { "type": "object", "properties": {
                    "id": {"type": "string"}, "aliases": array(json!({"type": "string"})), "kind": {"enum": ["embedding", "reranker"]},
                    "description": {"type": "string"}, "dim": {"type": ["integer", "null"]}, "pooling": {"enum": ["mean", "cls", null]},
                    "query_prefix": {"type": "string"}, "passage_prefix": {"type": "string"}, "max_tokens": {"type": "integer"},
                    "quantized": {"type": "boolean"}, "source": {"type": "string"}, "files": {"type": "object", "additionalProperties": {"type": "string"}, "description": "file → sha256"},
                    "measured": {"type": "object", "additionalProperties": {"type": "number"}},
                    "installed": {"enum": ["ok", "missing", "damaged"]}, "size_bytes": {"type": ["integer", "null"]}, "loaded": {"type": "boolean"} } },
                "Understood": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"}, "filter": {"type": ["string", "null"]},
                        "constraints": array(json!({"type": "object", "properties": {"text": {"type": "string"}, "filter": {"type": "string"}}}))
                    }
                },
                "Hit": {
                    "type": "object",
                    "properties": {
                        "domain": {"type": "string"}, "doc_id": {"type": "string"}, "chunk_id": {"type": "string"},
                        "chunk_idx": {"type": "integer"}, "title": {"type": "string"}, "url": {"type": ["string", "null"]},
                        "heading": {"type": ["string", "null"]}, "text": {"type": "string"}, "snippet": {"type": "string"},
                        "char_start": {"type": "integer"}, "char_end": {"type": "integer"}, "score": {"type": "number"},
                        "bm25": {"type": ["object", "null"]}, "vector": {"type": ["object", "null"]},
                        "model": {"type": "string"}, "index_seq": {"type": "integer"}, "attributes": {"type": "object"},
                        "rerank": {"type": "object", "properties": {"score": {"type": "number"}, "rank_before": {"type": "integer"}, "score_before": {"type": "number"}}, "description": "with reranking: the cross-encoder's score, and the hit's rank and score in the fused order"},
                        "explain": {"type": "object"}
                    }
                },
                "SearchOutput": {
                    "type": "object",
                    "properties": {
                        "hits": array(r("Hit")),
                        "total": { "type": "object", "properties": { "documents": {"type": "integer"}, "chunks": {"type": "integer"} } },
                        "facets": { "type": "object", "additionalProperties": array(json!({"type": "object", "properties": {"value": {}, "count": {"type": "integer"}}})) },
                        "domains": array(json!({"type": "string"})),
                        "understood": r("Understood"),
                        "rerank": r("RerankInfo"),
                        "took_ms": { "type": "number" }
                    }
                },
                "ContextInput": {
                    "type": "object", "required": ["query"], "additionalProperties": false,
                    "properties": {
                        "query": {"type": "string"}, "domains": array(json!({"type": "string"})),
                        "max_tokens": {"type": "integer"}, "mode": { "enum": ["bm25", "vector", "hybrid"] },
                        "filter": {"type": "string"}, "min_seq": {"type": "object"},
                        "parse": {"type": "boolean"}, "rerank": r("Rerank")
                    }
                },
                "ContextOutput": {
                    "type": "object",
                    "properties": {
                        "context": {"type": "string"}, "tokens": {"type": "integer", "description": "in the domains' model's own tokens; never over max_tokens"},
                        "understood": r("Understood"),
                        "passages": array(json!({"type": "object", "properties": {
                            "marker": {"type": "integer"}, "domain": {"type": "string"}, "doc_id": {"type": "string"},
                            "chunk_ids": array(json!({"type": "string"})), "title": {"type": "string"}, "url": {"type": ["string", "null"]},
                            "text": {"type": "string"}, "char_start": {"type": "integer"}, "char_end": {"type": "integer"},
                            "score": {"type": "number"}, "tokens": {"type": "integer"} }}))
                    }
                },
                "Snapshot": { "type": "object", "properties": {
                    "name": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
                    "backend": {"enum": ["sqlite", "postgres"]}, "schema_version": {"type": "integer"}, "bytes": {"type": "integer"},
                    "domains": array(json!({"type": "object", "properties": {"name": {"type": "string"}, "store_seq": {"type": "integer"}, "shard_seq": {"type": ["integer", "null"], "description": "absent: the shard was not copied and is rebuilt from the store"}}})),
                    "rows": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "rows per store table"} } },
                "Domain": { "type": "object", "properties": { "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"}, "settings": {"type": "object"}, "created_at": {"type": "integer"},
                    "generations": {"type": "object", "description": "its embedding generations: `active` slot, and `other` (being built or kept: state, model, since, flip_seq, lease)"},
                    "task": r("Task") } },
                "DomainInput": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": { "name": {"type": "string"}, "description": {"type": "string"}, "model": {"type": "string", "description": "an embedding model of the catalogue (default all-minilm-l6-v2)"}, "rerank": r("Rerank"), "embedder": { "enum": ["local", "minilm", "openai", "fake"] }, "openai_model": {"type": "string"}, "dim": {"type": "integer"}, "chunk_tokens": {"type": "integer"}, "chunk_overlap": {"type": "integer"}, "option_names": { "type": "object", "additionalProperties": {"type": "string"}, "description": "a shop's option (case_size) → the canonical field it is also filed under, or \"\" for none" } } },
                "IngestInput": { "type": "object", "required": ["documents"], "additionalProperties": false, "properties": { "documents": array(json!({
                    "type": "object", "required": ["id"], "additionalProperties": false,
                    "properties": { "id": {"type": "string"}, "title": {"type": "string"}, "text": {"type": "string"}, "url": {"type": "string"}, "attributes": {"type": "object"} } })) } },
                "IngestOutput": { "type": "object", "properties": { "domain": {"type": "string"}, "documents": {"type": "integer"}, "chunks": {"type": "integer"}, "seq": {"type": "integer"} } },
                "ShopifyOutput": { "type": "object", "properties": {
                    "domain": {"type": "string"}, "format": { "enum": ["json", "csv", "bulk"] }, "topic": {"type": "string"},
                    "seq": {"type": "integer", "description": "pass as min_seq to read your own writes"},
                    "added": {"type": "integer"}, "updated": {"type": "integer"}, "unchanged": {"type": "integer"}, "deleted": {"type": "integer"},
                    "failed_count": {"type": "integer"}, "failed": array(json!({"type": "string"})), "skipped": array(json!({"type": "string"})),
                    "notes": array(json!({"type": "string"})), "chunks": {"type": "integer"}, "embedded_chunks": {"type": "integer"} } },
                "DomainStats": { "type": "object", "properties": {
                    "domain": {"type": "string"}, "documents": {"type": "integer"}, "chunks": {"type": "integer"}, "graph_points": {"type": "integer"},
                    "applied_seq": {"type": "integer"}, "model": {"type": "object"}, "variants": {"type": "integer"},
                    "stored_documents": {"type": "integer"}, "stored_chunks": {"type": "integer"}, "last_seq": {"type": "integer"},
                    "last_sync": {"type": ["string", "null"]}, "quarantined": array(json!({"type": "object"})),
                    "generations": {"type": "object"},
                    "other_generation": {"type": "object", "properties": {"chunks": {"type": "integer"}, "embedded": {"type": "integer"}}, "description": "while a switch builds the other generation (or it is kept): its chunks with vectors so far"},
                    "shop": r("ShopConnection") } },
                "DeleteOutput": { "type": "object", "properties": { "domain": {"type": "string"}, "deleted": {"type": "integer"}, "seq": {"type": "integer", "description": "pass as min_seq to read after the deletes"} } },
                "IndexSummary": { "type": "object", "properties": {
                    "domain": {"type": "string"}, "documents": {"type": "integer"}, "added": {"type": "integer"}, "updated": {"type": "integer"},
                    "unchanged": {"type": "integer"}, "deleted": {"type": "integer"}, "stale": {"type": "integer"}, "failed_count": {"type": "integer"},
                    "failed": array(json!({"type": "string", "description": "file:line: reason"})), "chunks": {"type": "integer"},
                    "embedded_chunks": {"type": "integer"}, "seconds": {"type": "number"}, "applied_seq": {"type": "integer"},
                    "skipped": array(json!({"type": "string"})), "notes": array(json!({"type": "string"})) } },
                "ShopConnection": { "type": "object", "properties": {
                    "domain": {"type": "string"}, "shop": {"type": "string"}, "api_version": {"type": "string"},
                    "token_env": {"type": "string"}, "every_ms": {"type": ["integer", "null"]},
                    "metafields": array(json!({"type": "string"})),
                    "next_run": {"type": ["integer", "null"]}, "syncing": {"type": "boolean"},
                    "webhooks": array(json!({"type": "array", "description": "[topic, created | existed], on connect with register_webhooks"})),
                    "state": {"type": "object", "description": "`last` (the last run: kind, started, finished, duration_ms, added, updated, unchanged, deleted, failed, embedded_chunks, error), `mark` (the incremental sync's high-water mark, ms), `error` (the last error in words)"}
                } },
                "Task": { "type": "object", "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string"}, "domain": {"type": "string"},
                    "status": { "enum": ["queued", "running", "succeeded", "failed", "canceled"] },
                    "files": array(json!({"type": "string"})), "created_at": {"type": "string"},
                    "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
                    "batches": {"type": "integer"}, "seq": {"type": "integer"},
                    "summary": { "oneOf": [r("IndexSummary"), {"type": "null"}] }, "error": {"type": ["string", "null"]},
                    "progress": {"type": "object", "properties": {"embedded": {"type": "integer"}, "chunks": {"type": "integer"}}, "description": "a switch-model task: the domain's chunks and how many have the new model's vectors"},
                    "note": {"type": "string"} } },
                "Document": { "type": "object", "properties": { "domain": {"type": "string"}, "doc_id": {"type": "string"}, "title": {"type": "string"}, "url": {"type": ["string", "null"]}, "attributes": {"type": "object"}, "chunks": array(json!({"type": "object"})) } }
            }
        }
    })
}
