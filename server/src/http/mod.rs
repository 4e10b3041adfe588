//! The HTTP transport (axum): decode, call the service, encode. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}` with the status from the one table.

pub mod openapi;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

/// A query string as `T`, its errors naming the parameter (`query: limit: invalid digit…`).
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(QueryArgs(q)),
            Err(e) => Err(ApiError::invalid(format!("query: {}", query_error(&e)))),
        }
    }
}
use axum::{Json, Router};
use dartmouth_domains::Caller;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{ApiError, Code};
use crate::service::{
    AuditInput, CatalogUpload, ConnectInput, ContextInput, DelegateInput, DeleteInput, DomainInput,
    DomainUpdate, FilesInput, GrantInput, IngestInput, KeyInput, MemberInput, PrincipalInput,
    SearchInput, Service, ShopifyDelivery, SnapshotInput, SnapshotSource, SyncInput, UploadOptions,
    UploadOutcome, UploadedFile,
};
use crate::service::{
    ChunkWithDocument, ConnectionOut, ContextOutput, DeleteOutput, DocumentOut, DomainOut,
    DomainStatsOut, IngestOutput, LiveStats, Membership, ModelList, NewKey, PrincipalDeleted,
    ReindexOut, SearchOutput, SnapshotList, SnapshotOut, SwitchOut, TaskOut,
};
use crate::shopify::ShopifyOutput;

type Svc = State<Arc<Service>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_header();
        let mut response = (
            self.code.http(),
            Json(crate::error::ErrorBody {
                error: crate::error::ErrorDetail {
                    code: self.code,
                    message: self.message,
                },
            }),
        )
            .into_response();
        if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        response
    }
}

/// The authenticated caller of a request (API key or JWT), rate limit applied.
pub struct Authed(pub Caller);

impl FromRequestParts<Arc<Service>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, svc: &Arc<Service>) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
        let peer = peer_of(parts);
        let certificate = svc.certificate_principal(false, peer);
        Ok(Authed(
            svc.authenticate_from(header, certificate.as_ref()).await?,
        ))
    }
}

/// The client's address, when the server knows it (not for requests made in process).
fn peer_of(parts: &Parts) -> Option<std::net::SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// The client's address as an extractor (see [`peer_of`]).
pub struct Peer(pub Option<std::net::SocketAddr>);

impl FromRequestParts<Arc<Service>> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer_of(parts)))
    }
}

/// A request body as bytes, within the body limit: a body announced larger than the limit is
/// refused before any of it is read.
pub struct RawBody(pub axum::body::Bytes);

impl FromRequest<Arc<Service>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Service>) -> Result<Self, ApiError> {
        read_body(req, state.limits.max_body_bytes)
            .await
            .map(RawBody)
    }
}

/// Reads a body of at most `limit` bytes: one announced larger is refused before any of it is
/// read, and reading stops at the limit.
async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced
        && n > limit as u64
    {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("body: {n} bytes announced; the limit is {limit}"),
        ));
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::new(
                    Code::PayloadTooLarge,
                    format!("body: larger than the limit of {limit} bytes"),
                )
            } else {
                ApiError::invalid(format!("body: {e}"))
            }
        })
}

/// A JSON body whose errors name the field (`k: invalid type…`, `unknown field …`). Any
/// content type is read as JSON (`curl -d` sends form encoding by default).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Service>> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Service>) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        decode_json(&bytes).map(Body)
    }
}

/// A JSON request body as `T`, the error naming the field (`k: invalid type…`).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(format!("body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

pub fn router(svc: Arc<Service>) -> Router {
    let limit = svc.limits.max_body_bytes;
    let api = Router::new()
        .route("/v1/search", post(search))
        .route("/v1/context", post(context))
        .route("/v1/domains", get(list_domains).post(create_domain))
        .route(
            "/v1/domains/{domain}",
            get(domain_stats).patch(update_domain).delete(delete_domain),
        )
        .route("/v1/domains/{domain}/reindex", post(reindex))
        .route("/v1/domains/{domain}/rollback-model", post(rollback_model))
        .route(
            "/v1/domains/{domain}/drop-old-generation",
            post(drop_old_generation),
        )
        .route("/v1/domains/{domain}/delete", post(delete_documents))
        .route("/v1/domains/{domain}/documents", post(ingest))
        .route("/v1/domains/{domain}/shopify", post(upload_catalog))
        .route(
            "/v1/domains/{domain}/shopify/connection",
            get(shop_status).post(connect_shop).delete(disconnect_shop),
        )
        .route(
            "/v1/domains/{domain}/shopify/status",
            get(shop_status_alias),
        )
        .route("/v1/domains/{domain}/shopify/sync", post(sync_shop))
        .route(
            "/v1/domains/{domain}/files",
            post(upload_files).layer(DefaultBodyLimit::max(svc.limits.max_upload_bytes)),
        )
        .route("/mcp", post(mcp).get(mcp_no_stream).delete(mcp_no_stream))
        .route("/admin", get(admin_page))
        .route("/admin/", get(admin_page))
        .route("/admin/app.js", get(|| admin_asset(AdminAsset::Script)))
        .route("/admin/style.css", get(|| admin_asset(AdminAsset::Style)))
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/tasks/{id}", get(task))
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/v1/webhooks/shopify/{domain}", post(shopify_webhook))
        .route(
            "/v1/domains/{domain}/documents/{id}",
            get(document).delete(delete_document),
        )
        .route(
            "/v1/domains/{domain}/documents/{id}/chunks/{idx}",
            get(chunk),
        )
        .route(
            "/v1/principals",
            get(list_principals).post(create_principal),
        )
        .route("/v1/principals/{name}", delete(delete_principal))
        .route("/v1/groups/{group}/members", get(members).post(add_member))
        .route("/v1/groups/{group}/members/{member}", delete(remove_member))
        .route("/v1/audit", get(audit))
        .route("/v1/stats", get(live_stats))
        .route("/v1/models", get(list_models))
        .route("/v1/grants", get(list_grants).post(grant))
        .route("/v1/grants/{principal}/{domain}", delete(revoke_grant))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/tokens/delegate", post(delegate))
        .route("/v1/snapshots", get(list_snapshots).post(create_snapshot))
        .route("/v1/snapshots/{name}/restore", post(restore_snapshot))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&svc),
            observe,
        ));
    api.fallback(|| async { ApiError::new(Code::NotFound, "no such route; see /openapi.json") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(svc)
}

/// The client address's rate limit (before anything else; not for health probes and metrics,
/// which authenticate nothing and audit nothing, so that monitoring sees a flood), the request
/// id (taken from `x-request-id` or made), a tracing span, the latency histogram.
async fn observe(State(svc): Svc, matched: MatchedPath, req: Request, next: Next) -> Response {
    let route = matched.as_str().to_string();
    if !matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        let ip = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Err(e) = svc.throttle_address(ip) {
            svc.metrics
                .request("http", &route, "429", std::time::Duration::ZERO);
            return e.into_response();
        }
    }
    let id = crate::trace::request_id(req.headers());
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        trace_id = tracing::field::Empty,
        method = %req.method(),
        route = %route
    );
    crate::trace::join(&span, req.headers());
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "done"
        );
    });
    svc.metrics
        .request("http", &route, status.as_str(), started.elapsed());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

#[utoipa::path(
    post,
    path = "/v1/search",
    tag = "retrieval",
    description = "Search the domains the caller may read: BM25, vector or hybrid (fused), with filters, facets, paging, sorting, \"more like this\" and reranking. A domain the caller may not read answers exactly as one that does not exist.",
    request_body = SearchInput,
    responses((status = 200, description = "hits", body = SearchOutput))
)]
async fn search(State(svc): Svc, Authed(c): Authed, Body(input): Body<SearchInput>) -> Response {
    svc.search(&c, input).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/context",
    tag = "retrieval",
    description = "A token budget of cited passages for a prompt: the best hits, merged per document, each headed by its marker and provenance.",
    request_body = ContextInput,
    responses((status = 200, description = "the context", body = ContextOutput))
)]
async fn context(State(svc): Svc, Authed(c): Authed, Body(input): Body<ContextInput>) -> Response {
    svc.context(&c, input).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}/documents/{id}",
    tag = "retrieval",
    description = "One document with its chunks (reader).",
    params(("domain" = String, Path, description = "the domain's name"), ("id" = String, Path, description = "the document's id")),
    responses((status = 200, description = "the document", body = DocumentOut))
)]
async fn document(
    State(svc): Svc,
    Authed(c): Authed,
    Path((domain, id)): Path<(String, String)>,
) -> Response {
    svc.document(&c, &domain, &id)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}/documents/{id}/chunks/{idx}",
    tag = "retrieval",
    description = "One chunk with its document's provenance (reader).",
    params(("domain" = String, Path, description = "the domain's name"), ("id" = String, Path, description = "the document's id"), ("idx" = u64, Path, description = "the chunk's number, from 0")),
    responses((status = 200, description = "the chunk", body = ChunkWithDocument))
)]
async fn chunk(
    State(svc): Svc,
    Authed(c): Authed,
    Path((domain, id, idx)): Path<(String, String, String)>,
) -> Response {
    let Ok(idx) = idx.parse::<usize>() else {
        return ApiError::invalid(format!("idx: `{idx}` is not a chunk number")).into_response();
    };
    svc.chunk(&c, &domain, &id, idx)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/documents",
    tag = "ingest",
    description = "Ingest documents (writer): chunked, embedded, stored and acknowledged with a sequence (pass it as `min_seq` to read them).",
    request_body = IngestInput,
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "acknowledged", body = IngestOutput))
)]
async fn ingest(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    Body(input): Body<IngestInput>,
) -> Response {
    svc.ingest(&c, &domain, input)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/shopify",
    tag = "ingest",
    description = "Upload a Shopify catalog (writer): each product one document, its variants filterable; bad records are listed in `failed`, the rest is written.",
    request_body(content((Object = "application/json"), (String = "text/csv"), (String = "application/jsonl")), description = "Admin REST `{\"products\":[…]}`, `{\"product\":{…}}`, a bare array, or storefront /products.json; a product CSV export (legacy or 2025 headers); or GraphQL bulk-operation JSONL"),
    params(("domain" = String, Path, description = "the domain's name"), CatalogUpload),
    responses((status = 200, description = "indexed", body = ShopifyOutput))
)]
async fn upload_catalog(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    query: Result<Query<CatalogUpload>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let mut upload = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return ApiError::invalid(format!("query: {}", query_error(&e))).into_response();
        }
    };
    upload.content_type = header(&headers, CONTENT_TYPE.as_str());
    svc.upload_catalog(&c, &domain, upload, body)
        .await
        .map(Json)
        .into_response()
}

/// serde's message without axum's prefix (`Failed to deserialize query string: `).
fn query_error(e: &axum::extract::rejection::QueryRejection) -> String {
    let text = e.body_text();
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_string(),
        None => text,
    }
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Not authenticated by a bearer credential: by the shop's HMAC signature. A domain without
/// webhooks and an unsigned request are refused before the body is read.
#[utoipa::path(
    post,
    path = "/v1/webhooks/shopify/{domain}",
    tag = "ingest",
    description = "A Shopify webhook (products/create, products/update, products/delete, inventory_levels/update, inventory_items/update) for a domain configured with `[[shopify]]` or `--shopify-webhook`; written as the configured principal. Signed, not bearer-authenticated. A payload that cannot be used is answered 200 with the failure listed, since Shopify retries any other status.",
    request_body = Object,
    params(("domain" = String, Path, description = "the domain's name"), ("X-Shopify-Hmac-Sha256" = String, Header, description = "base64(HMAC-SHA256(raw body, the shop's secret)); missing or wrong: 401"), ("X-Shopify-Topic" = Option<String>, Header, description = "the topic"), ("X-Shopify-Webhook-Id" = Option<String>, Header, description = "the delivery's id: a retried delivery is processed once")),
    responses((status = 200, description = "processed", body = ShopifyOutput))
)]
async fn shopify_webhook(State(svc): Svc, Path(domain): Path<String>, req: Request) -> Response {
    let signature = header(req.headers(), "x-shopify-hmac-sha256");
    let delivery = ShopifyDelivery {
        topic: header(req.headers(), "x-shopify-topic"),
        id: header(req.headers(), "x-shopify-webhook-id"),
    };
    tracing::info!(
        webhook_id = delivery.id.as_deref().unwrap_or(""),
        topic = delivery.topic.as_deref().unwrap_or(""),
        "shopify webhook"
    );
    if let Err(e) = svc.shopify_webhook_gate(&domain, signature.as_deref()) {
        return e.into_response();
    }
    let body = match read_body(req, svc.limits.max_webhook_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    svc.shopify_webhook(&domain, signature.as_deref(), delivery, body)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains",
    tag = "admin",
    description = "The domains the caller can read.",
    responses((status = 200, description = "domains", body = Vec<dartmouth_domains::Domain>))
)]
async fn list_domains(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_domains(&c).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains",
    tag = "admin",
    description = "Create a domain (admin).",
    request_body = DomainInput,
    responses((status = 201, description = "created", body = dartmouth_domains::Domain))
)]
async fn create_domain(
    State(svc): Svc,
    Authed(c): Authed,
    Body(input): Body<DomainInput>,
) -> Response {
    svc.create_domain(&c, input)
        .await
        .map(|d| (StatusCode::CREATED, Json(d)))
        .into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/domains/{domain}",
    tag = "admin",
    description = "Delete a domain with its documents (its admin).",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "deleted", body = dartmouth_domains::Domain))
)]
async fn delete_domain(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.delete_domain(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/principals",
    tag = "admin",
    description = "Principals (admin).",
    responses((status = 200, description = "principals", body = Vec<dartmouth_domains::Principal>))
)]
async fn list_principals(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_principals(&c).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/principals",
    tag = "admin",
    description = "Create a principal (admin).",
    request_body = PrincipalInput,
    responses((status = 201, description = "created", body = dartmouth_domains::Principal))
)]
async fn create_principal(
    State(svc): Svc,
    Authed(c): Authed,
    Body(input): Body<PrincipalInput>,
) -> Response {
    svc.create_principal(&c, input)
        .await
        .map(|p| (StatusCode::CREATED, Json(p)))
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/snapshots",
    tag = "admin",
    description = "Take a snapshot of the store and this node's shards (a superuser); the body is optional.",
    request_body = SnapshotInput,
    responses((status = 201, description = "taken", body = SnapshotOut))
)]
async fn create_snapshot(State(svc): Svc, Authed(c): Authed, RawBody(body): RawBody) -> Response {
    // The body is optional: none (or `{}`) names the snapshot by its time.
    let input: SnapshotInput = if body.iter().all(u8::is_ascii_whitespace) {
        SnapshotInput::default()
    } else {
        match decode_json(&body) {
            Ok(i) => i,
            Err(e) => return e.into_response(),
        }
    };
    svc.create_snapshot(&c, input.name, input.encrypt)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/snapshots",
    tag = "admin",
    description = "The snapshots in this node's snapshot directory (a superuser).",
    responses((status = 200, description = "snapshots", body = SnapshotList))
)]
async fn list_snapshots(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_snapshots(&c)
        .await
        .map(|snapshots| Json(SnapshotList { snapshots }))
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/snapshots/{name}/restore",
    tag = "admin",
    description = "Restore a snapshot into this node's empty store (a superuser).",
    params(("name" = String, Path, description = "the snapshot's name")),
    responses((status = 200, description = "restored", body = SnapshotOut))
)]
async fn restore_snapshot(
    State(svc): Svc,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> Response {
    svc.restore_snapshot(&c, SnapshotSource::Named(name))
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "admin",
    description = "Grants (admin: of the domains the caller administers).",
    responses((status = 200, description = "grants", body = Vec<dartmouth_domains::Grant>))
)]
async fn list_grants(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_grants(&c).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/grants",
    tag = "admin",
    description = "Grant a role on a domain (the domain's admin).",
    request_body = GrantInput,
    responses((status = 200, description = "granted", body = dartmouth_domains::Grant))
)]
async fn grant(State(svc): Svc, Authed(c): Authed, Body(input): Body<GrantInput>) -> Response {
    svc.grant(&c, input).await.map(Json).into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/grants/{principal}/{domain}",
    tag = "admin",
    description = "Revoke a principal's grant on a domain (the domain's admin).",
    params(("principal" = String, Path, description = "the principal"), ("domain" = String, Path, description = "the domain's name")),
    responses((status = 204, description = "revoked"))
)]
async fn revoke_grant(
    State(svc): Svc,
    Authed(c): Authed,
    Path((principal, domain)): Path<(String, String)>,
) -> Response {
    svc.revoke_grant(&c, &principal, &domain)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "admin",
    description = "API keys (admin: all; others: their own), never their secrets.",
    responses((status = 200, description = "keys", body = Vec<dartmouth_domains::KeyInfo>))
)]
async fn list_keys(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_keys(&c).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "admin",
    description = "Create an API key for a principal; the secret is answered once (only its SHA-256 is stored). Domains, role and expiry only ever narrow what the principal's grants allow.",
    request_body = KeyInput,
    responses((status = 201, description = "created", body = NewKey))
)]
async fn create_key(State(svc): Svc, Authed(c): Authed, Body(input): Body<KeyInput>) -> Response {
    svc.create_key(&c, input)
        .await
        .map(|k| (StatusCode::CREATED, Json(k)))
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/tokens/delegate",
    tag = "admin",
    description = "A short-lived token for an end user an agent acts for: it opens only what both may read.",
    request_body = DelegateInput,
    responses((status = 201, description = "minted", body = dartmouth_domains::Delegation))
)]
async fn delegate(
    State(svc): Svc,
    Authed(c): Authed,
    Body(input): Body<DelegateInput>,
) -> Response {
    svc.delegate(&c, input)
        .await
        .map(|d| (StatusCode::CREATED, Json(d)))
        .into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "admin",
    description = "Revoke an API key (admin, or its own principal).",
    params(("id" = String, Path, description = "the key's id (`dk_…`)")),
    responses((status = 204, description = "revoked"))
)]
async fn revoke_key(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.revoke_key(&c, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

/// Files in one of three shapes, by Content-Type: `multipart/form-data` (each part with a
/// file name is a file), `application/json` (`{"files": [{"name", "content" |
/// "content_base64", "format"?}]}`), or anything else as one file named by `?name=`.
#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/files",
    tag = "ingest",
    description = "Index files (writer) in any format `dartmouth index` reads (Markdown, HTML, text, PDF, JSON/JSONL records, Shopify exports) with the same idempotent sync: unchanged documents are skipped. A file's name is its document id and tells its format. Three body shapes by Content-Type: multipart/form-data (each part with a file name is a file), application/json (`files`), anything else one file named by `?name=`.",
    request_body(content((FilesInput = "application/json"), (Object = "multipart/form-data"), (Vec<u8> = "application/octet-stream")), description = "the files"),
    params(("domain" = String, Path, description = "the domain's name"), UploadOptions),
    responses((status = 200, description = "indexed", body = dartmouth_indexer::IndexSummary), (status = 202, description = "started (with `async`): the task", body = TaskOut))
)]
async fn upload_files(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    QueryArgs(options): QueryArgs<UploadOptions>,
    req: Request,
) -> Response {
    let content_type = header(req.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
    let files = if content_type.starts_with("multipart/form-data") {
        multipart_files(req, &svc).await
    } else {
        match read_body(req, svc.limits.max_upload_bytes).await {
            Err(e) => Err(e),
            Ok(body) if content_type.starts_with("application/json") => {
                decode_json::<FilesInput>(&body).and_then(Service::files_from_json)
            }
            Ok(body) => match &options.name {
                Some(name) => Ok(vec![UploadedFile {
                    name: name.clone(),
                    format: None,
                    bytes: body.to_vec(),
                }]),
                None => Err(ApiError::invalid(
                    "name: a body that is not multipart/form-data or JSON is one file: name it \
                     with ?name=<file name>",
                )),
            },
        }
    };
    let files = match files {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match svc.upload_files(&c, &domain, files, options).await {
        Ok(UploadOutcome::Done(summary)) => Json(summary).into_response(),
        Ok(UploadOutcome::Started(task)) => (StatusCode::ACCEPTED, Json(task)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn multipart_files(req: Request, svc: &Arc<Service>) -> Result<Vec<UploadedFile>, ApiError> {
    let too_large = |e: &axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "body: larger than the upload limit of {} bytes",
                    svc.limits.max_upload_bytes
                ),
            )
        } else {
            ApiError::invalid(format!("multipart: {}", e.body_text()))
        }
    };
    let mut parts = axum::extract::Multipart::from_request(req, svc)
        .await
        .map_err(|e| ApiError::invalid(format!("multipart: {}", e.body_text())))?;
    let mut files = Vec::new();
    let mut i = 0;
    while let Some(field) = parts.next_field().await.map_err(|e| too_large(&e))? {
        let Some(name) = field.file_name().map(str::to_string) else {
            return Err(ApiError::invalid(format!(
                "multipart part {i} (`{}`): not a file; send files with a file name \
                 (curl -F file=@faq.md)",
                field.name().unwrap_or("")
            )));
        };
        let bytes = field.bytes().await.map_err(|e| too_large(&e))?;
        files.push(UploadedFile {
            name,
            format: None,
            bytes: bytes.to_vec(),
        });
        i += 1;
    }
    Ok(files)
}

enum AdminAsset {
    Page,
    Script,
    Style,
}

/// The admin page's files, built into the binary (`server/admin/`): plain HTML, CSS and
/// JavaScript that call the HTTP API with the admin's key. Nothing is loaded from elsewhere.
async fn admin_asset(asset: AdminAsset) -> Response {
    let (content_type, body) = match asset {
        AdminAsset::Page => (
            "text/html; charset=utf-8",
            include_str!("../../admin/index.html"),
        ),
        AdminAsset::Script => (
            "text/javascript; charset=utf-8",
            include_str!("../../admin/app.js"),
        ),
        AdminAsset::Style => (
            "text/css; charset=utf-8",
            include_str!("../../admin/style.css"),
        ),
    };
    (
        [
            (CONTENT_TYPE, content_type),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// MCP over streamable HTTP: one JSON-RPC message per POST, answered with plain JSON (a
/// notification: 202, no body). A refused credential is a JSON-RPC error with status 401, so
/// that MCP clients show its message.
#[utoipa::path(
    post,
    path = "/mcp",
    tag = "mcp",
    description = "Model Context Protocol (streamable HTTP, JSON answers, no session): tools `search`, `context`, `get_document` as the bearer credential. A refused credential: 401 with a JSON-RPC error.",
    request_body = Object,
    responses(
        (status = 200, description = "a JSON-RPC response", body = Object),
        (status = 202, description = "a notification: no body"),
        (status = 400, description = "a body that is not JSON: a JSON-RPC parse error (-32700)", body = Object),
        (status = 401, description = "a refused credential: a JSON-RPC error (-32003) answering the request's id", body = Object),
        (status = 429, description = "rate limited: a JSON-RPC error (-32004) with `Retry-After` (the per-address limit, spent before the endpoint, answers the API's `Error`)", body = Object),
        (status = 503, description = "the store cannot check the credential now: a JSON-RPC error with `Retry-After`", body = Object),
    )
)]
async fn mcp(
    State(svc): Svc,
    Peer(peer): Peer,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let rpc = |status: StatusCode, value: serde_json::Value| (status, Json(value)).into_response();
    let message: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return rpc(
                StatusCode::BAD_REQUEST,
                crate::mcp::error(
                    serde_json::Value::Null,
                    crate::mcp::PARSE_ERROR,
                    format!("body: {e}"),
                ),
            );
        }
    };
    // A refusal answers the request's own id, so that the client can match it.
    let id = message
        .get("id")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let authorization = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let certificate = svc.certificate_principal(false, peer);
    let caller = match svc
        .authenticate_from(authorization, certificate.as_ref())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let code = match e.code {
                Code::Unauthenticated => crate::mcp::UNAUTHENTICATED,
                Code::RateLimited => crate::mcp::RATE_LIMITED,
                _ => crate::mcp::INVALID_REQUEST,
            };
            let retry_after = e.retry_after_header();
            let mut response = rpc(
                e.code.http(),
                crate::mcp::error(id, code, format!("{}: {}", e.code.as_str(), e.message)),
            );
            if e.code == Code::Unauthenticated {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"dartmouth\""),
                );
            }
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(RETRY_AFTER, v);
            }
            return response;
        }
    };
    match crate::mcp::handle(&svc, &caller, message).await {
        Some(answer) => rpc(StatusCode::OK, answer),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

/// No server-initiated stream and no sessions: GET and DELETE are not allowed.
async fn mcp_no_stream() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(axum::http::header::ALLOW, "POST")],
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/tasks",
    tag = "tasks",
    description = "This node's tasks (indexing, model switches, shop syncs) the caller created (a superuser: all), newest first.",
    responses((status = 200, description = "tasks", body = Vec<TaskOut>))
)]
async fn list_tasks(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_tasks(&c).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    description = "A task's status; another principal's task answers as a missing one (404).",
    params(("id" = String, Path, description = "the task's id")),
    responses((status = 200, description = "the task", body = TaskOut))
)]
async fn task(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.task(&c, &id).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/cancel",
    tag = "tasks",
    description = "Stop a queued or running task between batches; what it acknowledged stays written, a full sync deletes nothing.",
    params(("id" = String, Path, description = "the task's id")),
    responses((status = 200, description = "the task", body = TaskOut))
)]
async fn cancel_task(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.cancel_task(&c, &id).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}",
    tag = "admin",
    description = "A domain's state (reader): its shard on this node, its store, what the applier quarantined, its generations and its shop.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "stats", body = DomainStatsOut))
)]
async fn domain_stats(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.domain_stats(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    patch,
    path = "/v1/domains/{domain}",
    tag = "admin",
    description = "Change a domain's description, catalog option names or default reranking, or switch its embedding model online (its admin). `model` starts a task that builds the new generation while the old one serves (the answer's `task`).",
    request_body = DomainUpdate,
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "updated", body = DomainOut))
)]
async fn update_domain(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    Body(input): Body<DomainUpdate>,
) -> Response {
    svc.update_domain(&c, &domain, input)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/shopify/connection",
    tag = "shops",
    description = "Connect a Shopify shop to the domain for pull sync (its admin). The shop is asked once: a refused token or an unlisted API version is a 400 naming the field, and nothing is stored. The token is never stored or answered.",
    request_body = ConnectInput,
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "connected", body = ConnectionOut))
)]
async fn connect_shop(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    Body(input): Body<ConnectInput>,
) -> Response {
    svc.connect_shop(&c, &domain, input)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}/shopify/connection",
    tag = "shops",
    description = "The shop connection and its sync state (reader): the last run, the incremental mark, the next scheduled run, whether a node syncs it now.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "the connection", body = ConnectionOut))
)]
async fn shop_status(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.shop_status(&c, &domain).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}/shopify/status",
    tag = "shops",
    description = "The shop connection's state (reader), as `GET …/shopify/connection`.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "the connection", body = ConnectionOut))
)]
async fn shop_status_alias(svc: Svc, caller: Authed, domain: Path<String>) -> Response {
    shop_status(svc, caller, domain).await
}

#[utoipa::path(
    delete,
    path = "/v1/domains/{domain}/shopify/connection",
    tag = "shops",
    description = "Disconnect the shop (its admin); the documents stay.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 204, description = "disconnected"))
)]
async fn disconnect_shop(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
) -> Response {
    svc.disconnect_shop(&c, &domain)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/shopify/sync",
    tag = "shops",
    description = "Sync the shop now as a task (writer): `full` runs a bulk operation over every product, then deletes what the shop no longer has (only when no record failed); otherwise the products updated since the last good run, and the deletions since. 409 while a sync of the shop runs on any node. The body is optional.",
    request_body = SyncInput,
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 202, description = "queued", body = TaskOut))
)]
async fn sync_shop(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    RawBody(bytes): RawBody,
) -> Response {
    // An empty body is an incremental sync.
    let input = if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(SyncInput::default())
    } else {
        decode_json::<SyncInput>(&bytes)
    };
    match input {
        Ok(input) => svc
            .sync_shop(&c, &domain, input)
            .await
            .map(|t| (StatusCode::ACCEPTED, Json(t)))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/rollback-model",
    tag = "admin",
    description = "Switch back to the generation kept from the last model switch (its admin): a task builds what was written since, then it serves; 409 when none is kept.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "rolling back", body = SwitchOut))
)]
async fn rollback_model(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
) -> Response {
    svc.rollback_model(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/drop-old-generation",
    tag = "admin",
    description = "Drop the generation kept from the last model switch (no rollback after), or abandon one being built (its admin); 409 when there is none.",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "dropped", body = dartmouth_domains::Domain))
)]
async fn drop_old_generation(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
) -> Response {
    svc.drop_old_generation(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/reindex",
    tag = "admin",
    description = "Rebuild the domain's shard on this node from the store, without re-embedding (its admin).",
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "rebuilt", body = ReindexOut))
)]
async fn reindex(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.reindex(&c, &domain).await.map(Json).into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/domains/{domain}/documents/{id}",
    tag = "ingest",
    description = "Delete one document (writer); not found when the domain does not hold it.",
    params(("domain" = String, Path, description = "the domain's name"), ("id" = String, Path, description = "the document's id")),
    responses((status = 200, description = "deleted", body = DeleteOutput))
)]
async fn delete_document(
    State(svc): Svc,
    Authed(c): Authed,
    Path((domain, id)): Path<(String, String)>,
) -> Response {
    svc.delete_document(&c, &domain, &id)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/delete",
    tag = "ingest",
    description = "Delete documents (writer): by `ids`, or every document `filter` matches once the shard has caught up; ids the domain does not hold are not counted.",
    request_body = DeleteInput,
    params(("domain" = String, Path, description = "the domain's name")),
    responses((status = 200, description = "deleted", body = DeleteOutput))
)]
async fn delete_documents(
    State(svc): Svc,
    Authed(c): Authed,
    Path(domain): Path<String>,
    Body(input): Body<DeleteInput>,
) -> Response {
    svc.delete_documents(&c, &domain, input)
        .await
        .map(Json)
        .into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/principals/{name}",
    tag = "admin",
    description = "Delete a principal with its keys, grants and memberships (admin; not a superuser, not the caller).",
    params(("name" = String, Path, description = "the principal")),
    responses((status = 200, description = "deleted", body = PrincipalDeleted))
)]
async fn delete_principal(
    State(svc): Svc,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> Response {
    svc.delete_principal(&c, &name)
        .await
        .map(|()| Json(PrincipalDeleted { deleted: name }))
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/groups/{group}/members",
    tag = "admin",
    description = "A group's direct members (admin).",
    params(("group" = String, Path, description = "the group")),
    responses((status = 200, description = "members", body = Vec<String>))
)]
async fn members(State(svc): Svc, Authed(c): Authed, Path(group): Path<String>) -> Response {
    svc.members(&c, &group).await.map(Json).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/groups/{group}/members",
    tag = "admin",
    description = "Add a member to a group (admin).",
    request_body = MemberInput,
    params(("group" = String, Path, description = "the group")),
    responses((status = 200, description = "added", body = Membership))
)]
async fn add_member(
    State(svc): Svc,
    Authed(c): Authed,
    Path(group): Path<String>,
    Body(input): Body<MemberInput>,
) -> Response {
    svc.add_member(&c, &group, &input.member)
        .await
        .map(|()| {
            Json(Membership {
                group,
                member: input.member,
            })
        })
        .into_response()
}

#[utoipa::path(
    delete,
    path = "/v1/groups/{group}/members/{member}",
    tag = "admin",
    description = "Take a member out of a group (admin).",
    params(("group" = String, Path, description = "the group"), ("member" = String, Path, description = "the member")),
    responses((status = 204, description = "removed"))
)]
async fn remove_member(
    State(svc): Svc,
    Authed(c): Authed,
    Path((group, member)): Path<(String, String)>,
) -> Response {
    svc.remove_member(&c, &group, &member)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    description = "Audit entries, newest first (admin): admin actions, every denied access, quarantines, refused logins counted.",
    params(AuditInput),
    responses((status = 200, description = "entries", body = Vec<dartmouth_domains::AuditEntry>))
)]
async fn audit(
    State(svc): Svc,
    Authed(c): Authed,
    QueryArgs(input): QueryArgs<AuditInput>,
) -> Response {
    svc.audit_query(&c, input).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "admin",
    description = "The model catalogue (any authenticated caller): each model's id, kind, dimension, pooling, prefixes, max tokens, quantization, source, measured speed, and whether this node has its files and has it loaded.",
    responses((status = 200, description = "models", body = ModelList))
)]
async fn list_models(State(svc): Svc, Authed(c): Authed) -> Response {
    Json(ModelList {
        models: svc.list_models(&c),
    })
    .into_response()
}

#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "admin",
    description = "Live figures: this node's last minute of requests (QPS, p50, p99) and the applier's lag on the domains the caller administers.",
    responses((status = 200, description = "figures", body = LiveStats))
)]
async fn live_stats(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.live_stats(&c).await.map(Json).into_response()
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    description = "Alive (no credential).",
    responses((status = 200, description = "alive", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    description = "This document (no credential).",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> Response {
    Json(openapi::document()).into_response()
}

#[utoipa::path(
    get,
    path = "/admin",
    tag = "operations",
    description = "The admin console (HTML; sign in with an admin key).",
    responses((status = 200, description = "the page", body = String, content_type = "text/html"))
)]
async fn admin_page() -> Response {
    admin_asset(AdminAsset::Page).await
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    description = "Ready: the node has started (no credential); 503 while starting. `ready` when its store answers; `degraded: …` (still 200) when the store cannot be reached: searches answer from the shards with the credentials and grants the node keeps, writes and admin calls get 503 with Retry-After.",
    responses((status = 200, description = "ready, or degraded", body = String, content_type = "text/plain"))
)]
async fn ready(State(svc): Svc) -> Response {
    match svc.check_ready().await {
        Ok(None) => "ready".into_response(),
        Ok(Some(degraded)) => degraded.into_response(),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    description = "Prometheus metrics (no credential).",
    responses((status = 200, description = "the text exposition format", body = String, content_type = "text/plain"))
)]
async fn metrics(State(svc): Svc) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        svc.render_metrics(),
    )
        .into_response()
}
