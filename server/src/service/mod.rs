//! The service layer every adapter calls — HTTP (`http/`), MCP (`mcp.rs`), gRPC (`grpc/`) and
//! the CLI (`cli/`). Adapters only decode, call one method with the authenticated caller, and encode;
//! everything else — rate limits, request limits, access, caching, embedding, searching, context
//! packing, indexing, administration — happens here, once.
//!
//! - `contract.rs`: the request and response types (one hit type for every adapter).
//! - `search.rs`: search, context packs, the caches.
//! - `documents.rs`: stored documents and chunks, and writes (JSON ingest, files).
//! - `catalog.rs`: Shopify catalog uploads and signed webhooks.
//! - `admin.rs`: domains, principals, grants, keys, delegation, stats, audit, reindex.
//! - `apply.rs`: the applier tick and read-your-writes.
//! - `snapshots.rs`: snapshots of the store and the shards, and their restore.
//! - `tasks.rs`: asynchronous tasks (indexing jobs, model switches, shop syncs) and their queue.
//! - `shops.rs`: connected shops and their pull sync.
//! - `switch.rs`: switching a domain's model online, rolling back, dropping the old generation.

mod admin;
mod apply;
mod catalog;
mod contract;
mod documents;
mod search;
mod shops;
mod snapshots;
mod switch;
mod tasks;

pub use admin::format_millis;
pub use contract::*;
pub use search::pack_context;
pub use shops::{ConnectInput, ConnectionOut, PLAIN_HOSTS_ENV, SyncInput};
pub use snapshots::SnapshotSource;
pub use switch::SwitchOut;
pub use tasks::{SwitchProgress, TaskOut, TaskStatus};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dartmouth_domains::{Caller, JwtConfig, Pass, Role, Store};
use dartmouth_engine::{Embedder, ModelSpec, Shards};
use dartmouth_views::Applier;
use tokio::runtime::Handle;

use crate::cache::Cache;
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::Metrics;
use crate::models::ModelArgs;
use crate::shopify::ShopifyWebhook;
use crate::throttle::{RateLimits, Throttle};

/// Request limits, checked before any work.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_k: usize,
    pub max_query_bytes: usize,
    pub max_filter_bytes: usize,
    pub max_domains: usize,
    pub max_context_tokens: usize,
    pub max_ingest_documents: usize,
    /// Bytes of ids, titles, texts, urls and attributes in one ingest request.
    pub max_batch_bytes: usize,
    /// A webhook's body, checked before its signature is computed.
    pub max_webhook_bytes: usize,
    /// A file upload's body (`/v1/domains/{d}/files`: documents in any format).
    pub max_upload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_k: 100,
            max_query_bytes: 4096,
            max_filter_bytes: 4096,
            max_domains: 64,
            max_context_tokens: 16_000,
            max_ingest_documents: 1000,
            max_batch_bytes: 8 * 1024 * 1024,
            max_webhook_bytes: 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
        }
    }
}

/// When reads see writes: a serving node's applier task tails the changelog, so reads take the
/// shards as applied; a one-shot command (the CLI) has no such task and catches up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    #[default]
    AsApplied,
    CaughtUp,
}

/// This node's id: made once and kept beside its shards, so a node that restarts is the same
/// node (it takes back its own claims at once).
fn node_id(shards: &std::path::Path) -> String {
    let path = shards.join(".node-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return id.trim().to_string();
    }
    let id = format!("node-{:016x}", rand::random::<u64>());
    if let Err(e) = std::fs::write(&path, &id) {
        tracing::warn!(path = %path.display(), error = %e, "cannot keep the node id");
    }
    id
}

/// A unit enum's serde name (`snake_case`), for adapters that carry it as a string.
pub fn snake<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A model this node cannot load: the cause is logged, the caller told which model.
fn unavailable_model(id: &str, e: &anyhow::Error) -> ApiError {
    tracing::warn!(error = %e, model = %id, "model unavailable");
    ApiError::new(
        Code::Unavailable,
        format!("the model `{id}` is unavailable on this node (logged)"),
    )
}

/// The domain `name` of a pass the service just made for it.
fn opened(pass: &Pass, name: &str) -> ApiResult<dartmouth_domains::Domain> {
    pass.domain(name)
        .cloned()
        .ok_or_else(|| ApiError::internal("pass without its domain"))
}

pub struct ServiceConfig {
    pub store: Store,
    pub shards: Arc<Shards>,
    pub models: ModelArgs,
    /// Models loaded before the service starts (tests inject theirs here; otherwise empty).
    pub preloaded: crate::models::Loaded,
    pub jwt: Option<JwtConfig>,
    pub rate_limits: RateLimits,
    pub limits: Limits,
    /// Bytes the query-embedding cache may hold (0: off).
    pub embedding_cache_bytes: usize,
    /// Bytes the result cache may hold (0: off).
    pub result_cache_bytes: usize,
    /// Domains that take Shopify webhooks.
    pub shopify: Vec<ShopifyWebhook>,
    pub read_mode: ReadMode,
    /// The domains this node holds (`serve --domains`); `None`: all of them.
    pub placement: Option<Vec<String>>,
    /// Where snapshots are created, listed and restored from by name.
    pub snapshot_dir: std::path::PathBuf,
    /// The key snapshots are encrypted with (`--snapshot-key-env`); `None`: none can be.
    pub snapshot_key: Option<dartmouth_views::seal::SnapshotKey>,
}

pub struct Service {
    store: Store,
    shards: Arc<Shards>,
    models: ModelArgs,
    /// The local models this node has loaded (only those its domains and requests use).
    loaded: crate::models::Loaded,
    jwt: Option<JwtConfig>,
    throttle: Throttle,
    pub limits: Limits,
    pub metrics: Metrics,
    /// What catch-ups quarantined and rebuilt, on every path (read into `metrics`).
    applier_events: dartmouth_views::ApplierEvents,
    /// Query embeddings, keyed by the caller's scope (the domains it may read), model and text.
    embed_cache: Cache<Vec<f32>>,
    /// Search results, keyed by scope, each domain's applied sequence and the request.
    result_cache: Cache<SearchOutput>,
    ready: AtomicBool,
    /// Shop-sync leases this node held before it (re)started have been given back.
    shops_released: AtomicBool,
    /// The local operator, which the applier lists domains as (looked up once).
    operator: OnceLock<Caller>,
    /// Webhook-enabled domains by name.
    webhooks: HashMap<String, ShopifyWebhook>,
    /// One Shopify job at a time per domain: an inventory update re-renders the stored product,
    /// so two concurrent ones (two variants of a product selling out together) would each
    /// write the product with only its own change.
    shopify_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    read_mode: ReadMode,
    started: std::time::Instant,
    /// Asynchronous indexing tasks on this node.
    tasks: tasks::Tasks,
    placement: Option<std::collections::BTreeSet<String>>,
    snapshot_dir: std::path::PathBuf,
    snapshot_key: Option<dartmouth_views::seal::SnapshotKey>,
    /// The principals client certificates name on the HTTP and gRPC listeners (TLS with
    /// `--tls-client-principal`).
    certificates: OnceLock<(Arc<crate::tls::Peers>, Arc<crate::tls::Peers>)>,
    /// This node's id (kept in its data directory): its claim on building a generation.
    node_id: String,
    /// The domains whose switch this node is starting or building now (by domain id).
    switching: Mutex<HashMap<i64, switch::Running>>,
}

impl Service {
    pub fn new(config: ServiceConfig) -> ApiResult<Service> {
        Ok(Service {
            store: config.store,
            models: config.models,
            loaded: config.preloaded,
            jwt: config.jwt,
            throttle: Throttle::new(config.rate_limits)?,
            limits: config.limits,
            metrics: Metrics::new(),
            applier_events: dartmouth_views::ApplierEvents::default(),
            embed_cache: Cache::new(config.embedding_cache_bytes),
            result_cache: Cache::new(config.result_cache_bytes),
            ready: AtomicBool::new(false),
            shops_released: AtomicBool::new(false),
            operator: OnceLock::new(),
            webhooks: config
                .shopify
                .into_iter()
                .map(|h| (h.domain.clone(), h))
                .collect(),
            shopify_locks: Mutex::new(HashMap::new()),
            read_mode: config.read_mode,
            started: std::time::Instant::now(),
            tasks: tasks::Tasks::default(),
            placement: config.placement.map(|p| p.into_iter().collect()),
            snapshot_dir: config.snapshot_dir,
            snapshot_key: config.snapshot_key,
            certificates: OnceLock::new(),
            node_id: node_id(config.shards.root()),
            switching: Mutex::new(HashMap::new()),
            shards: config.shards,
        })
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            store: &self.store,
            shards: &self.shards,
            runtime: Handle::current(),
            events: Some(&self.applier_events),
        }
    }

    /// The metrics in Prometheus' text format, with the applier's counts brought up to date.
    pub fn render_metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.sync_applier(
            self.applier_events.quarantined.load(Relaxed),
            self.applier_events.rebuilt.load(Relaxed),
        );
        let (down, fallback_reads) = self.store.outage();
        self.metrics.sync_store(down, fallback_reads);
        self.metrics.render()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The caller a bearer credential stands for (an API key `dk_…` or a JWT), then the
    /// principal's rate limit: [`Service::authenticate_from`] without a client certificate
    /// (the CLI's `--key`). The transports call `authenticate_from` with the `Authorization`
    /// header's raw bytes and their connection's certificate principal: the header is decoded
    /// there, once.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> ApiResult<Caller> {
        self.authenticate_from(authorization, None).await
    }

    /// The listeners' client-certificate principals (`serve` over TLS sets them once).
    pub fn set_certificates(&self, http: Arc<crate::tls::Peers>, grpc: Arc<crate::tls::Peers>) {
        let _ = self.certificates.set((http, grpc));
    }

    /// The principal the client certificate of the connection from `peer` names, on the
    /// HTTP listener (`grpc` false) or the gRPC one.
    pub fn certificate_principal(
        &self,
        grpc: bool,
        peer: Option<std::net::SocketAddr>,
    ) -> Option<crate::tls::CertifiedPrincipal> {
        let (http_peers, grpc_peers) = self.certificates.get()?;
        let peers = if grpc { grpc_peers } else { http_peers };
        peers.get(peer?)
    }

    /// The caller of a request: its `Authorization` header when it has one, else the principal
    /// its connection's verified client certificate names, else none (401).
    #[tracing::instrument(name = "auth", level = "info", skip_all, fields(step = "authenticate"))]
    pub async fn authenticate_from(
        &self,
        authorization: Option<&[u8]>,
        certificate: Option<&crate::tls::CertifiedPrincipal>,
    ) -> ApiResult<Caller> {
        let outcome = match (authorization, certificate) {
            (None, Some(c)) => self
                .store
                .authenticate_certificate(&c.name, c.expires_at)
                .await
                .map_err(ApiError::from),
            _ => self.authenticate_inner(authorization).await,
        };
        if let Err(e) = &outcome {
            self.metrics.denied(e.code);
        }
        let caller = outcome?;
        self.rate_limit(&caller)?;
        Ok(caller)
    }

    /// The principal's rate limit (one budget for HTTP, gRPC and webhooks).
    fn rate_limit(&self, caller: &Caller) -> ApiResult<()> {
        self.throttle
            .principal(caller.name())
            .inspect_err(|e| self.metrics.denied(e.code))
    }

    /// The client address's rate limit: spent by every request before anything else is done
    /// with it (authentication, its audit, a webhook's HMAC), so unauthenticated floods stop
    /// here.
    pub fn throttle_address(&self, ip: Option<std::net::IpAddr>) -> ApiResult<()> {
        self.throttle
            .address(ip)
            .inspect_err(|e| self.metrics.denied(e.code))
    }

    /// Housekeeping the server runs now and then: idle rate-limit budgets forgotten, counted
    /// authentication failures written to the audit log.
    pub async fn tidy(&self) {
        self.throttle.tidy();
        if let Err(e) = self.store.flush_audit().await {
            tracing::warn!(error = %e, "audit flush");
        }
    }

    async fn authenticate_inner(&self, authorization: Option<&[u8]>) -> ApiResult<Caller> {
        let header = authorization.ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                "missing credentials: send `Authorization: Bearer <key or token>`",
            )
        })?;
        // A header value is visible ASCII (RFC 9110); anything else is no credential.
        let header = std::str::from_utf8(header)
            .ok()
            .filter(|h| h.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .ok_or_else(|| {
                ApiError::new(Code::Unauthenticated, "authorization: not printable ASCII")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthenticated,
                    "authorization: expected `Bearer <key or token>`",
                )
            })?;
        if token.starts_with("dk_") {
            return Ok(self.store.authenticate_key(token).await?);
        }
        match &self.jwt {
            Some(config) => Ok(self.store.authenticate_jwt(config, token).await?),
            None => Err(ApiError::new(
                Code::Unauthenticated,
                "invalid credentials (no JWT issuer is configured; use an API key)",
            )),
        }
    }

    /// Whether this node holds `domain` (`serve --domains`).
    pub fn holds(&self, domain: &str) -> bool {
        self.placement.as_ref().is_none_or(|p| p.contains(domain))
    }

    #[tracing::instrument(name = "auth", level = "info", skip_all, fields(step = "authorize"))]
    async fn authorize(&self, caller: &Caller, domains: &[String], role: Role) -> ApiResult<Pass> {
        if domains.len() > self.limits.max_domains {
            return Err(ApiError::invalid(format!(
                "domains: at most {} per request",
                self.limits.max_domains
            )));
        }
        // A node holding some domains only: "every domain the caller may read" means those of
        // them it holds.
        let held;
        let domains = match &self.placement {
            Some(placement) if domains.is_empty() => {
                held = self
                    .store
                    .accessible(caller, role)
                    .await?
                    .into_iter()
                    .map(|d| d.name)
                    .filter(|name| placement.contains(name))
                    .collect::<Vec<_>>();
                if held.is_empty() {
                    return Err(ApiError::new(
                        Code::Unavailable,
                        "this node holds none of the domains the caller may use (serve --domains); \
                         ask a node that does",
                    ));
                }
                &held[..]
            }
            _ => domains,
        };
        match self.store.authorize(caller, domains, role).await {
            // Access first: a domain the caller may not use stays a missing one (404), held
            // here or not.
            Ok(pass) => match domains.iter().find(|d| !self.holds(d)) {
                Some(elsewhere) => Err(ApiError::new(
                    Code::Unavailable,
                    format!(
                        "domain `{elsewhere}` is not held by this node (serve --domains); send \
                         its requests to a node that holds it"
                    ),
                )),
                None => Ok(pass),
            },
            Err(e) => {
                let e = self.refine_denial(caller, domains, role, e).await;
                self.metrics.denied(e.code);
                Err(e)
            }
        }
    }

    /// A caller refused a role on domains it can read learns that it lacks the role (403);
    /// otherwise the answer stays that of a missing domain (404), revealing nothing.
    async fn refine_denial(
        &self,
        caller: &Caller,
        domains: &[String],
        role: Role,
        e: dartmouth_domains::Error,
    ) -> ApiError {
        // Only a missing domain is refined (not a missing principal, say).
        if !e.is_missing_domain() || role == Role::Read || domains.is_empty() {
            return e.into();
        }
        match self.store.authorize(caller, domains, Role::Read).await {
            Ok(_) => ApiError::new(
                Code::PermissionDenied,
                format!(
                    "principal `{}` may not {} {}",
                    caller.name(),
                    if role == Role::Admin {
                        "administer"
                    } else {
                        "write to"
                    },
                    domains.join(", ")
                ),
            ),
            Err(_) => e.into(),
        }
    }

    fn embedder(&self, spec: &ModelSpec) -> ApiResult<Arc<dyn Embedder>> {
        self.models
            .embedder_for(&self.loaded, spec)
            .map_err(|e| unavailable_model(&spec.id, &e))
    }

    fn reranker(&self, id: &str) -> ApiResult<Arc<dyn dartmouth_engine::embed::Reranker>> {
        self.models.reranker(&self.loaded, id).map_err(|e| match e {
            crate::models::RerankerError::Model(e) => admin::model_error("rerank.model", e),
            crate::models::RerankerError::Load(e) => unavailable_model(id, &e),
        })
    }

    /// The catalogue and what this node has of each model: anyone authenticated may read it
    /// (it names no domain).
    pub fn list_models(&self, _caller: &Caller) -> Vec<crate::models::ModelInfo> {
        self.models.list(&self.loaded)
    }

    /// Runs CPU-bound or blocking work off the async workers.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Service) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(ApiError::internal)?
    }

    /// Readiness: the store answers.
    /// Readiness: `Ok(None)` ready; `Ok(Some(why))` ready but degraded — the store cannot be
    /// reached, so searches answer from the shards with the credentials and grants this node
    /// keeps while writes and admin calls get 503 (a balancer should keep sending it reads);
    /// an error while starting.
    pub async fn check_ready(&self) -> ApiResult<Option<String>> {
        if !self.is_ready() {
            return Err(ApiError::new(Code::Unavailable, "starting"));
        }
        match self.store.ping().await {
            Ok(()) => Ok(None),
            Err(e) if e.is_unreachable() => Ok(Some(
                "degraded: the store is unreachable; searches answer, writes and admin calls get 503"
                    .into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// While the store is unreachable, asks it again (every `every`) so that everything
    /// resumes by itself once it answers.
    pub async fn probe_store(&self) {
        if self.store.outage().0 {
            let _ = self.store.ping().await;
        }
    }
}
