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
            "/v1/domains/{domain}": { "delete": op("Delete a domain with its documents (admin)", None, ok("deleted", r("Domain")), &["domain"]) },
            "/v1/domains/{domain}/documents": { "post": op("Ingest documents (writer): chunked, embedded, acknowledged with a sequence", Some(body(r("IngestInput"))), ok("acknowledged", r("IngestOutput")), &["domain"]) },
            "/v1/domains/{domain}/shopify": { "post": shopify_upload() },
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
                            "method": { "enum": ["weighted", "rrf"] }, "bm25_weight": { "type": "number" },
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
                        "offset": { "type": "integer", "minimum": 0 }
                    }
                },
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
                        "took_ms": { "type": "number" }
                    }
                },
                "ContextInput": {
                    "type": "object", "required": ["query"], "additionalProperties": false,
                    "properties": {
                        "query": {"type": "string"}, "domains": array(json!({"type": "string"})),
                        "max_tokens": {"type": "integer"}, "mode": { "enum": ["bm25", "vector", "hybrid"] },
                        "filter": {"type": "string"}, "min_seq": {"type": "object"},
                        "parse": {"type": "boolean"}
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
                "Domain": { "type": "object", "properties": { "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"}, "settings": {"type": "object"}, "created_at": {"type": "integer"} } },
                "DomainInput": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": { "name": {"type": "string"}, "description": {"type": "string"}, "embedder": { "enum": ["minilm", "openai", "fake"] }, "openai_model": {"type": "string"}, "dim": {"type": "integer"}, "chunk_tokens": {"type": "integer"}, "chunk_overlap": {"type": "integer"}, "option_names": { "type": "object", "additionalProperties": {"type": "string"}, "description": "a shop's option (case_size) → the canonical field it is also filed under, or \"\" for none" } } },
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
                "Document": { "type": "object", "properties": { "domain": {"type": "string"}, "doc_id": {"type": "string"}, "title": {"type": "string"}, "url": {"type": ["string", "null"]}, "attributes": {"type": "object"}, "chunks": array(json!({"type": "object"})) } }
            }
        }
    })
}
