//! The HTTP transport (axum): decode, call the service, encode. Errors are JSON
//! `{"error": {"code": "...", "message": "..."}}` with the status from the one table.

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
use serde_json::json;
use tracing::Instrument;

use crate::error::{ApiError, Code};
use crate::service::{
    AuditInput, CatalogUpload, ConnectInput, ContextInput, DelegateInput, DeleteInput, DomainInput,
    DomainUpdate, FilesInput, GrantInput, IngestInput, KeyInput, MemberInput, PrincipalInput,
    SearchInput, Service, ShopifyDelivery, SnapshotInput, SnapshotSource, SyncInput, UploadOptions,
    UploadOutcome, UploadedFile,
};

type Svc = State<Arc<Service>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.code.http(),
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
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
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::new(Code::Unauthenticated, "authorization: not printable ASCII")
                })
            })
            .transpose()?;
        Ok(Authed(svc.authenticate(header).await?))
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
        .route("/v1/domains/{domain}/shopify/status", get(shop_status))
        .route("/v1/domains/{domain}/shopify/sync", post(sync_shop))
        .route(
            "/v1/domains/{domain}/files",
            post(upload_files).layer(DefaultBodyLimit::max(svc.limits.max_upload_bytes)),
        )
        .route("/mcp", post(mcp).get(mcp_no_stream).delete(mcp_no_stream))
        .route("/admin", get(|| admin_asset(AdminAsset::Page)))
        .route("/admin/", get(|| admin_asset(AdminAsset::Page)))
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
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
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map_or_else(new_request_id, str::to_string);
    let span =
        tracing::info_span!("http", request_id = %id, method = %req.method(), route = %route);
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

pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn search(State(svc): Svc, Authed(c): Authed, Body(input): Body<SearchInput>) -> Response {
    svc.search(&c, input).await.map(Json).into_response()
}

async fn context(State(svc): Svc, Authed(c): Authed, Body(input): Body<ContextInput>) -> Response {
    svc.context(&c, input).await.map(Json).into_response()
}

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

async fn list_domains(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_domains(&c).await.map(Json).into_response()
}

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

async fn delete_domain(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.delete_domain(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

async fn list_principals(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_principals(&c).await.map(Json).into_response()
}

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
    svc.create_snapshot(&c, input.name)
        .await
        .map(|s| (StatusCode::CREATED, Json(s)))
        .into_response()
}

async fn list_snapshots(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_snapshots(&c)
        .await
        .map(|s| Json(serde_json::json!({ "snapshots": s })))
        .into_response()
}

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

async fn list_grants(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_grants(&c).await.map(Json).into_response()
}

async fn grant(State(svc): Svc, Authed(c): Authed, Body(input): Body<GrantInput>) -> Response {
    svc.grant(&c, input).await.map(Json).into_response()
}

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

async fn list_keys(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_keys(&c).await.map(Json).into_response()
}

async fn create_key(State(svc): Svc, Authed(c): Authed, Body(input): Body<KeyInput>) -> Response {
    svc.create_key(&c, input)
        .await
        .map(|k| (StatusCode::CREATED, Json(k)))
        .into_response()
}

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

async fn revoke_key(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.revoke_key(&c, &id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .into_response()
}

/// Files in one of three shapes, by Content-Type: `multipart/form-data` (each part with a
/// file name is a file), `application/json` (`{"files": [{"name", "content" |
/// "content_base64", "format"?}]}`), or anything else as one file named by `?name=`.
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
            include_str!("../admin/index.html"),
        ),
        AdminAsset::Script => (
            "text/javascript; charset=utf-8",
            include_str!("../admin/app.js"),
        ),
        AdminAsset::Style => (
            "text/css; charset=utf-8",
            include_str!("../admin/style.css"),
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
async fn mcp(State(svc): Svc, headers: axum::http::HeaderMap, RawBody(body): RawBody) -> Response {
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
    let authorization = headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let caller = match svc.authenticate(authorization).await {
        Ok(c) => c,
        Err(e) => {
            let code = match e.code {
                Code::Unauthenticated => crate::mcp::UNAUTHENTICATED,
                Code::RateLimited => crate::mcp::RATE_LIMITED,
                _ => crate::mcp::INVALID_REQUEST,
            };
            let retry_after = e.retry_after;
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
            if let Some(after) = retry_after
                && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
            {
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

async fn list_tasks(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.list_tasks(&c).await.map(Json).into_response()
}

async fn task(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.task(&c, &id).await.map(Json).into_response()
}

async fn cancel_task(State(svc): Svc, Authed(c): Authed, Path(id): Path<String>) -> Response {
    svc.cancel_task(&c, &id).await.map(Json).into_response()
}

async fn domain_stats(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.domain_stats(&c, &domain)
        .await
        .map(Json)
        .into_response()
}

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

async fn shop_status(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.shop_status(&c, &domain).await.map(Json).into_response()
}

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

async fn reindex(State(svc): Svc, Authed(c): Authed, Path(domain): Path<String>) -> Response {
    svc.reindex(&c, &domain).await.map(Json).into_response()
}

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

async fn delete_principal(
    State(svc): Svc,
    Authed(c): Authed,
    Path(name): Path<String>,
) -> Response {
    svc.delete_principal(&c, &name)
        .await
        .map(|()| Json(json!({ "deleted": name })))
        .into_response()
}

async fn members(State(svc): Svc, Authed(c): Authed, Path(group): Path<String>) -> Response {
    svc.members(&c, &group).await.map(Json).into_response()
}

async fn add_member(
    State(svc): Svc,
    Authed(c): Authed,
    Path(group): Path<String>,
    Body(input): Body<MemberInput>,
) -> Response {
    svc.add_member(&c, &group, &input.member)
        .await
        .map(|()| Json(json!({ "group": group, "member": input.member })))
        .into_response()
}

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

async fn audit(
    State(svc): Svc,
    Authed(c): Authed,
    QueryArgs(input): QueryArgs<AuditInput>,
) -> Response {
    svc.audit_query(&c, input).await.map(Json).into_response()
}

async fn list_models(State(svc): Svc, Authed(c): Authed) -> Response {
    Json(json!({ "models": svc.list_models(&c) })).into_response()
}

async fn live_stats(State(svc): Svc, Authed(c): Authed) -> Response {
    svc.live_stats(&c).await.map(Json).into_response()
}

async fn ready(State(svc): Svc) -> Response {
    match svc.check_ready().await {
        Ok(()) => "ready".into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(svc): Svc) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        svc.render_metrics(),
    )
        .into_response()
}
