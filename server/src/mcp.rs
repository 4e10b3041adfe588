//! The Model Context Protocol (MCP) adapter: `search`, `context` and `get_document` as tools
//! with JSON schemas, over JSON-RPC 2.0, for agents whose runtime speaks MCP. Two transports
//! share this one handler: stdio (`dartmouth mcp`, one JSON message per line) and streamable
//! HTTP (`POST /mcp` on the HTTP port, plain JSON answers, no session). Every tool call runs
//! through the service as the caller's credential, as over HTTP and gRPC.
//!
//! Protocol versions 2024-11-05 to 2025-11-25 (the `initialize` handshake); a requested
//! version outside them is answered with 2025-11-25. A tool's failure (a domain the caller
//! cannot read, a malformed filter) is a result with `isError`, so that a model can correct
//! itself; an unknown method or tool is a JSON-RPC error.

use std::sync::Arc;

use dartmouth_domains::Caller;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::service::{ContextInput, SearchInput, Service};

pub const LATEST_VERSION: &str = "2025-11-25";
const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// JSON-RPC error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The credential was refused (the HTTP transport answers 401 with it).
pub const UNAUTHENTICATED: i64 = -32003;
/// The caller's (or its address's) rate limit: 429 with `Retry-After`.
pub const RATE_LIMITED: i64 = -32004;
/// An answer that was not JSON-RPC (a relay's upstream failure).
pub const INTERNAL_ERROR: i64 = -32603;

pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// The answer to one message, or `None` for a notification (a message without an id).
pub async fn handle(svc: &Arc<Service>, caller: &Caller, message: Value) -> Option<Value> {
    let Value::Object(msg) = message else {
        return Some(error(
            Value::Null,
            INVALID_REQUEST,
            "expected one JSON-RPC 2.0 message object (batches are not supported)",
        ));
    };
    let id = msg.get("id").cloned();
    let method = msg.get("method").and_then(Value::as_str);
    let (Some(id), Some(method)) = (id, method) else {
        // A notification (initialized, cancelled) or a response: nothing to answer.
        return None;
    };
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error(id, INVALID_REQUEST, "jsonrpc: must be \"2.0\""));
    }
    let params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    let result = match method {
        "initialize" => initialize(&params),
        "ping" => json!({}),
        "tools/list" => json!({ "tools": tools() }),
        "tools/call" => match call(svc, caller, &params).await {
            Ok(result) => result,
            Err((code, message)) => return Some(error(id, code, message)),
        },
        other => {
            return Some(error(
                id,
                METHOD_NOT_FOUND,
                format!(
                    "method `{other}` is not supported (initialize, ping, tools/list, tools/call)"
                ),
            ));
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn initialize(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(LATEST_VERSION);
    let version = if VERSIONS.contains(&asked) {
        asked
    } else {
        LATEST_VERSION
    };
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "dartmouth", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Dartmouth Knowledge: grounded passages from the knowledge domains \
            this credential may read. `search` finds passages (hybrid BM25 + vector), `context` \
            packs cited passages into a token budget ready for a prompt, `get_document` reads \
            a whole document. Cite passages by domain and doc_id."
    })
}

fn tools() -> Value {
    let domains = json!({
        "type": "array",
        "items": {"type": "string"},
        "description": "Knowledge domains to search; empty or absent: every domain the credential may read."
    });
    let filter = json!({
        "type": "string",
        "description": "Attribute filter, e.g. `price < 50 AND size = \"M\" AND in_stock = true`."
    });
    let parse = json!({
        "type": "boolean",
        "description": "Catalogs: turn price bounds, sizes, colours and stock wording in the query into a filter."
    });
    let rerank = json!({
        "type": "object",
        "description": "Re-order the best candidates with a cross-encoder (slower: about 30 ms per candidate on 2 cores). Absent: the domains' default.",
        "properties": {
            "top_n": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Candidates re-ordered (default 10; 0: none)."},
            "model": {"type": "string", "description": "The reranker (default ms-marco-minilm-l-12-v2)."},
            "blend": {"type": "number", "minimum": 0, "maximum": 1, "description": "Weight of the reranker's score against the fused score (1: it alone; default 0.5)."},
            "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 60000, "description": "Budget; past it the fused order is returned."}
        },
        "additionalProperties": false
    });
    json!([
        {
            "name": "search",
            "title": "Search",
            "description": "Hybrid (BM25 + vector) search over the knowledge domains the caller may read. Returns ranked passages with their document, domain, snippet and both branches' ranks.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for."},
                    "domains": domains,
                    "k": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many hits (default 10)."},
                    "mode": {"type": "string", "enum": ["bm25", "vector", "hybrid"], "description": "Retrieval branch(es); default hybrid."},
                    "filter": filter,
                    "parse": parse,
                    "collapse": {"type": "boolean", "description": "One hit per document."},
                    "rerank": rerank
                },
                "required": ["query"],
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "hits": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "object"},
                    "domains": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["hits"]
            },
            "annotations": {"title": "Search", "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
        },
        {
            "name": "context",
            "title": "Context pack",
            "description": "Cited passages for a question, packed into a token budget (the domain model's own tokens) and numbered [1], [2], … with their provenance: paste into a prompt and cite by number.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "The question."},
                    "domains": domains,
                    "max_tokens": {"type": "integer", "minimum": 1, "description": "Token budget (default 1000)."},
                    "filter": filter,
                    "parse": parse,
                    "rerank": rerank
                },
                "required": ["query"],
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "context": {"type": "string"},
                    "passages": {"type": "array", "items": {"type": "object"}},
                    "tokens": {"type": "integer"}
                },
                "required": ["context", "passages", "tokens"]
            },
            "annotations": {"title": "Context pack", "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
        },
        {
            "name": "get_document",
            "title": "Get document",
            "description": "A whole stored document (title, url, attributes, every chunk) by its domain and id, as hits name them.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "domain": {"type": "string"},
                    "doc_id": {"type": "string"}
                },
                "required": ["domain", "doc_id"],
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "domain": {"type": "string"},
                    "doc_id": {"type": "string"},
                    "title": {"type": "string"},
                    "chunks": {"type": "array", "items": {"type": "object"}}
                },
                "required": ["domain", "doc_id", "chunks"]
            },
            "annotations": {"title": "Get document", "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}
        }
    ])
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentArgs {
    domain: String,
    doc_id: String,
}

/// A tool's arguments as `T`, the error naming the argument.
fn args<T: DeserializeOwned>(arguments: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("arguments: {}", e.into_inner())
        } else {
            format!("arguments.{path}: {}", e.into_inner())
        }
    })
}

/// `tools/call`: the result, or a JSON-RPC error for an unknown tool or malformed params.
async fn call(svc: &Arc<Service>, caller: &Caller, params: &Value) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).ok_or((
        INVALID_PARAMS,
        "params.name: the tool's name is missing".into(),
    ))?;
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a @ Value::Object(_)) => a.clone(),
        Some(_) => return Err((INVALID_PARAMS, "params.arguments: must be an object".into())),
    };
    let outcome: Result<(String, Value), String> = match name {
        "search" => match args::<SearchInput>(arguments) {
            Ok(input) => svc
                .search(caller, input)
                .await
                .map_err(tool_error)
                .and_then(|out| structured(&out)),
            Err(e) => Err(e),
        },
        "context" => match args::<ContextInput>(arguments) {
            Ok(input) => svc
                .context(caller, input)
                .await
                .map_err(tool_error)
                .and_then(|out| {
                    let (_, value) = structured(&out)?;
                    Ok((out.context, value))
                }),
            Err(e) => Err(e),
        },
        "get_document" => match args::<DocumentArgs>(arguments) {
            Ok(a) => svc
                .document(caller, &a.domain, &a.doc_id)
                .await
                .map_err(tool_error)
                .and_then(|out| structured(&out)),
            Err(e) => Err(e),
        },
        other => {
            return Err((
                INVALID_PARAMS,
                format!("unknown tool `{other}` (search, context, get_document)"),
            ));
        }
    };
    Ok(match outcome {
        Ok((text, value)) => json!({
            "content": [{"type": "text", "text": text}],
            "structuredContent": value,
            "isError": false
        }),
        Err(message) => json!({
            "content": [{"type": "text", "text": message}],
            "isError": true
        }),
    })
}

fn structured<T: serde::Serialize>(out: &T) -> Result<(String, Value), String> {
    let value = serde_json::to_value(out).map_err(|e| e.to_string())?;
    Ok((value.to_string(), value))
}

/// A refusal or failure as the model reads it: the HTTP error's code and message.
fn tool_error(e: ApiError) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}
