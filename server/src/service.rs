//! The service layer both transports call. Handlers only decode, call one of these methods with
//! the authenticated caller, and encode; everything else — rate limits, request limits, access,
//! caching, embedding, searching, context packing — happens here, once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dartmouth_domains::{
    Caller, Delegation, Domain, Grant, JwtConfig, KeyInfo, KeyScope, Pass, Principal,
    PrincipalKind, Role, Store, StoredDocument,
};
use dartmouth_engine::{
    BranchHit, Catalog, DomainSettings, Embedder, Embedding, FacetCount, Filter, Fusion, MAX_K,
    Mode, ModelSpec, SearchRequest,
};
use dartmouth_indexer::{Chunker, IndexJob, IndexSummary, Item, Progress, SourceDoc};
use dartmouth_views::{Applier, StoreSink};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Handle;

use crate::cache::{Cache, Weigh};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::Metrics;
use crate::models::ModelArgs;
use crate::shopify::{CatalogFormat, ShopifyOutput, ShopifyWebhook};
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
        }
    }
}

pub struct ServiceConfig {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub models: ModelArgs,
    pub jwt: Option<JwtConfig>,
    pub rate_limits: RateLimits,
    pub limits: Limits,
    /// Bytes the query-embedding cache may hold (0: off).
    pub embedding_cache_bytes: usize,
    /// Bytes the result cache may hold (0: off).
    pub result_cache_bytes: usize,
    /// Domains that take Shopify webhooks.
    pub shopify: Vec<ShopifyWebhook>,
}

pub struct Service {
    store: Store,
    catalog: Arc<Catalog>,
    models: ModelArgs,
    embedders: Mutex<HashMap<String, Arc<dyn Embedder>>>,
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
    /// The local operator, which the applier lists domains as (looked up once).
    operator: OnceLock<Caller>,
    /// Webhook-enabled domains by name.
    webhooks: HashMap<String, ShopifyWebhook>,
    /// One Shopify job at a time per domain: an inventory update re-renders the stored product,
    /// so two concurrent ones (two variants of a product selling out together) would each
    /// write the product with only its own change.
    shopify_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

// ---- the contract ------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FusionInput {
    /// "weighted" (default) or "rrf".
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub bm25_weight: Option<f32>,
    #[serde(default)]
    pub vector_weight: Option<f32>,
    #[serde(default)]
    pub rrf_k: Option<f32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    pub query: String,
    /// Empty: every domain the caller may read.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub k: Option<usize>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub fusion: Option<FusionInput>,
    #[serde(default)]
    pub candidates: Option<usize>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub facets: Vec<String>,
    #[serde(default)]
    pub facet_size: Option<usize>,
    #[serde(default)]
    pub explain: bool,
    /// Read your own writes: domain → the sequence its write was acknowledged with.
    #[serde(default)]
    pub min_seq: BTreeMap<String, u64>,
    /// One hit per document.
    #[serde(default)]
    pub collapse: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HitOut {
    pub domain: String,
    pub doc_id: String,
    pub chunk_id: String,
    pub chunk_idx: u64,
    pub title: String,
    pub url: Option<String>,
    pub heading: Option<String>,
    pub text: String,
    /// `text` around the query terms, each wrapped in `<em>…</em>`, HTML-escaped: safe to
    /// render (the marks are its only markup).
    pub snippet: String,
    pub char_start: u64,
    pub char_end: u64,
    pub score: f32,
    pub bm25: Option<BranchHit>,
    pub vector: Option<BranchHit>,
    pub model: String,
    pub index_seq: u64,
    pub attributes: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub documents: u64,
    pub chunks: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchOutput {
    pub hits: Vec<HitOut>,
    pub total: Totals,
    pub facets: BTreeMap<String, Vec<FacetCount>>,
    /// The domains searched.
    pub domains: Vec<String>,
    pub took_ms: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextInput {
    pub query: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub min_seq: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassageOut {
    pub marker: usize,
    pub domain: String,
    pub doc_id: String,
    pub chunk_ids: Vec<String>,
    pub title: String,
    pub url: Option<String>,
    pub text: String,
    pub char_start: u64,
    pub char_end: u64,
    pub score: f32,
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContextOutput {
    /// The passages, each headed by `[marker]` and its provenance, ready to paste into a prompt.
    pub context: String,
    pub passages: Vec<PassageOut>,
    pub tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkOut {
    pub chunk_id: String,
    pub idx: usize,
    pub text: String,
    pub char_start: u64,
    pub char_end: u64,
    pub heading: Option<String>,
}

/// One chunk of a document, with the document's provenance.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkWithDocument {
    pub domain: String,
    pub doc_id: String,
    pub title: String,
    pub url: Option<String>,
    pub chunk: ChunkOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentOut {
    pub domain: String,
    pub doc_id: String,
    pub title: String,
    pub url: Option<String>,
    pub attributes: Value,
    pub chunks: Vec<ChunkOut>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestDocument {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Filterable attributes: `{"vendor": "Acme", "price": 19.99, "tags": ["a", "b"]}`.
    #[serde(default)]
    pub attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestInput {
    pub documents: Vec<IngestDocument>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestOutput {
    pub domain: String,
    pub documents: usize,
    pub chunks: usize,
    /// The domain's changelog sequence this ingest was acknowledged with: pass it as
    /// `min_seq` to read your own writes.
    pub seq: u64,
}

/// A catalog upload's parameters (the query string, and the request's Content-Type).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogUpload {
    /// json, csv or bulk; by default from the Content-Type (text/csv, application/jsonl),
    /// then the body (`{`/`[`: JSON; a first line with `__typename`: bulk; else CSV).
    #[serde(default)]
    pub format: Option<String>,
    /// Delete the domain's documents the catalog does not mention (only when no record failed).
    #[serde(default)]
    pub full_sync: bool,
    /// The shop's address; product URLs become `<base_url>/products/<handle>`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(skip)]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// "minilm" (default) or "fake" (deterministic hashing, for tests and demos).
    #[serde(default)]
    pub embedder: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalInput {
    pub name: String,
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantInput {
    pub principal: String,
    pub domain: String,
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    pub principal: String,
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Seconds from now.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// The highest role the key may use (default: the creating credential's).
    #[serde(default)]
    pub role: Option<Role>,
}

/// A delegated token's request: the end user an agent acts for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateInput {
    pub end_user: String,
    /// Narrow to these domains (default: every domain both may read).
    #[serde(default)]
    pub domains: Vec<String>,
    /// 1 to 900 seconds (default 300).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub key: KeyInfo,
    /// Shown once; only its SHA-256 is stored.
    pub secret: String,
}

// ---- implementation ----------------------------------------------------------------------

impl Service {
    pub fn new(config: ServiceConfig) -> ApiResult<Service> {
        Ok(Service {
            store: config.store,
            catalog: config.catalog,
            models: config.models,
            embedders: Mutex::new(HashMap::new()),
            jwt: config.jwt,
            throttle: Throttle::new(config.rate_limits)?,
            limits: config.limits,
            metrics: Metrics::new(),
            applier_events: dartmouth_views::ApplierEvents::default(),
            embed_cache: Cache::new(config.embedding_cache_bytes),
            result_cache: Cache::new(config.result_cache_bytes),
            ready: AtomicBool::new(false),
            operator: OnceLock::new(),
            webhooks: config
                .shopify
                .into_iter()
                .map(|h| (h.domain.clone(), h))
                .collect(),
            shopify_locks: Mutex::new(HashMap::new()),
        })
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            store: &self.store,
            catalog: &self.catalog,
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
    /// principal's rate limit. Both transports call this and only this.
    pub async fn authenticate(&self, authorization: Option<&str>) -> ApiResult<Caller> {
        let outcome = self.authenticate_inner(authorization).await;
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

    async fn authenticate_inner(&self, authorization: Option<&str>) -> ApiResult<Caller> {
        let header = authorization.ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                "missing credentials: send `Authorization: Bearer <key or token>`",
            )
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

    async fn authorize(&self, caller: &Caller, domains: &[String], role: Role) -> ApiResult<Pass> {
        if domains.len() > self.limits.max_domains {
            return Err(ApiError::invalid(format!(
                "domains: at most {} per request",
                self.limits.max_domains
            )));
        }
        match self.store.authorize(caller, domains, role).await {
            Ok(pass) => Ok(pass),
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
        let mut map = self.embedders.lock().map_err(ApiError::internal)?;
        if let Some(e) = map.get(&spec.id) {
            return Ok(Arc::clone(e));
        }
        let e: Arc<dyn Embedder> = Arc::from(self.models.embedder_for(spec).map_err(|e| {
            tracing::warn!(error = %e, model = %spec.id, "embedder unavailable");
            ApiError::new(
                Code::Unavailable,
                format!("the model `{}` is unavailable (logged)", spec.id),
            )
        })?);
        map.insert(spec.id.clone(), Arc::clone(&e));
        Ok(e)
    }

    fn check_search(&self, input: &SearchInput) -> ApiResult<()> {
        let l = &self.limits;
        if input.query.len() > l.max_query_bytes {
            return Err(ApiError::invalid(format!(
                "query: {} bytes; the limit is {}",
                input.query.len(),
                l.max_query_bytes
            )));
        }
        if let Some(k) = input.k
            && (k == 0 || k > l.max_k.min(MAX_K))
        {
            return Err(ApiError::invalid(format!(
                "k: must be 1 to {}, got {k}",
                l.max_k.min(MAX_K)
            )));
        }
        if let Some(f) = &input.filter
            && f.len() > l.max_filter_bytes
        {
            return Err(ApiError::invalid(format!(
                "filter: {} bytes; the limit is {}",
                f.len(),
                l.max_filter_bytes
            )));
        }
        if input.facets.len() > dartmouth_engine::MAX_FACETS {
            return Err(ApiError::invalid(format!(
                "facets: at most {} per request, got {}",
                dartmouth_engine::MAX_FACETS,
                input.facets.len()
            )));
        }
        let max_name = dartmouth_engine::validate::MAX_ATTR_NAME_BYTES;
        if let Some((i, f)) = input
            .facets
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > max_name)
        {
            return Err(ApiError::invalid(format!(
                "facets[{i}]: {} bytes; an attribute name is at most {max_name}",
                f.len()
            )));
        }
        if input.min_seq.len() > l.max_domains {
            return Err(ApiError::invalid(format!(
                "min_seq: at most {} domains per request",
                l.max_domains
            )));
        }
        Ok(())
    }

    /// Waits for (by applying) each `min_seq` domain's changes up to the given sequence.
    async fn read_your_writes(
        self: &Arc<Self>,
        pass: &Pass,
        min_seq: &BTreeMap<String, u64>,
    ) -> ApiResult<()> {
        let missing = |name: &str| {
            ApiError::from(dartmouth_domains::Error::NotFound {
                what: "domain",
                name: dartmouth_domains::names::shown(name),
            })
        };
        for (name, &seq) in min_seq {
            let domain = pass.domain(name).cloned().ok_or_else(|| missing(name))?;
            let applied = self
                .applier()
                .existing_shard(&domain)?
                .map_or(0, |shard| shard.applied_seq());
            if applied >= seq {
                continue;
            }
            let oldest = self
                .store
                .first_change_at(&self.store.system(), domain.id, applied)
                .await?;
            let id = domain.id;
            // A domain deleted while this request ran is answered as the missing domain it is.
            let reached = self
                .blocking(move |s| Ok(s.applier().catch_up(&domain)?))
                .await
                .map_err(|e| {
                    if e.code == Code::NotFound {
                        missing(name)
                    } else {
                        e
                    }
                })?;
            self.searchable_since(oldest);
            if reached < seq
                && self
                    .store
                    .domain_by_id(&self.store.system(), id)
                    .await?
                    .is_none()
            {
                return Err(missing(name));
            }
            if reached < seq {
                return Err(ApiError::invalid(format!(
                    "min_seq.{name}: sequence {seq} has not been written (the domain is at {reached})"
                )));
            }
        }
        Ok(())
    }

    /// Records that changes acknowledged at `oldest` (the first of a catch-up) are searchable.
    fn searchable_since(&self, oldest: Option<i64>) {
        if let Some(at) = oldest {
            let ms = dartmouth_domains::now_millis().saturating_sub(at).max(0);
            self.metrics
                .searchable_after(std::time::Duration::from_millis(ms as u64));
        }
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

    pub async fn search(
        self: &Arc<Self>,
        caller: &Caller,
        input: SearchInput,
    ) -> ApiResult<SearchOutput> {
        let started = Instant::now();
        self.check_search(&input)?;
        let pass = self.authorize(caller, &input.domains, Role::Read).await?;
        self.read_your_writes(&pass, &input.min_seq).await?;
        let mut out = self.search_pass(&pass, &input).await?;
        out.took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    async fn search_pass(&self, pass: &Pass, input: &SearchInput) -> ApiResult<SearchOutput> {
        let reader = self.applier().reader_as_is(pass)?;
        // Keyed by the domains' identities, never their names: a domain deleted and created
        // again under its name shares no cache entry with the old one.
        let scope: Vec<String> = reader.applied().map(|(id, _)| id.to_string()).collect();
        let cache_key = format!(
            "{:?}|{}",
            reader.applied().collect::<Vec<_>>(),
            serde_json::to_string(&(
                input.query.as_str(),
                &input.k,
                &input.mode,
                &input.fusion,
                &input.candidates,
                &input.filter,
                &input.facets,
                &input.facet_size,
                input.explain,
                input.collapse
            ))
            .map_err(ApiError::internal)?
        );
        if let Some(hit) = self.result_cache.get(&cache_key) {
            self.metrics.cache("result", true);
            return Ok((*hit).clone());
        }
        self.metrics.cache("result", false);
        let mode = input.mode.unwrap_or_default();
        let mut req = SearchRequest::new(input.query.clone());
        req.mode = mode;
        req.k = input.k.unwrap_or(10);
        req.candidates = input.candidates.unwrap_or(100);
        req.collapse = input.collapse;
        req.facets = input.facets.clone();
        req.facet_size = input.facet_size.unwrap_or(10);
        req.fusion = fusion_of(input.fusion.as_ref())?;
        req.filter = input
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| Filter::parse(f).map_err(|e| ApiError::invalid(format!("filter: {e}"))))
            .transpose()?;
        req.validate_parameters()?;
        let spec = reader.model()?.cloned();
        // A hybrid query not in the embedding cache is embedded inside the search, while its
        // BM25 branch runs; the vector branch alone has to wait for it.
        let mut embed_later = None;
        if mode != Mode::Bm25
            && let Some(spec) = &spec
        {
            let key = embedding_key(&scope, spec, &input.query);
            match self.cached_embedding(&key, spec) {
                Some(e) => req.vector = Some(e),
                None if mode == Mode::Hybrid => embed_later = Some((self.embedder(spec)?, key)),
                None => req.vector = Some(self.embed_query(key, spec, &input.query).await?),
            }
        }
        let embedded: Arc<Mutex<Option<Vec<f32>>>> = Arc::default();
        let explain = input.explain;
        let fusion = req.fusion;
        let query = input.query.clone();
        let model = spec.map(|s| s.id).unwrap_or_default();
        let metrics = self.metrics.clone();
        let (slot, embed_metrics) = (Arc::clone(&embedded), self.metrics.clone());
        let embedder = embed_later.as_ref().map(|(e, _)| Arc::clone(e));
        let out = tokio::task::spawn_blocking(move || -> ApiResult<SearchOutput> {
            let response = match embedder {
                Some(embedder) => {
                    let text = query.clone();
                    reader.search_embedding(
                        &req,
                        Box::new(move || {
                            let t = Instant::now();
                            let e = embedder.embed_query(&text)?;
                            embed_metrics.stage("embed", t.elapsed());
                            if let Ok(mut slot) = slot.lock() {
                                *slot = Some(e.values.clone());
                            }
                            Ok(e)
                        }),
                    )?
                }
                None => reader.search(&req)?,
            };
            metrics.stages(&response.timings);
            let highlighter = dartmouth_engine::Highlighter::new(&query);
            let hits = response
                .hits
                .into_iter()
                .map(|h| HitOut {
                    snippet: highlighter.snippet_html(&h.text, 240),
                    explain: explain.then(|| explain_hit(&fusion, h.bm25, h.vector, h.score)),
                    domain: h.domain,
                    doc_id: h.doc_id,
                    chunk_id: h.chunk_id,
                    chunk_idx: h.chunk_idx,
                    title: h.title,
                    url: h.url,
                    heading: h.heading,
                    text: h.text,
                    char_start: h.char_start,
                    char_end: h.char_end,
                    score: h.score,
                    bm25: h.bm25,
                    vector: h.vector,
                    model: model.clone(),
                    index_seq: h.index_seq,
                    attributes: h.attributes,
                })
                .collect();
            Ok(SearchOutput {
                hits,
                total: Totals {
                    documents: response.filtered_documents,
                    chunks: response.filtered_chunks,
                },
                facets: response.facets,
                domains: reader.domains().map(str::to_string).collect(),
                took_ms: 0.0,
            })
        })
        .await
        .map_err(ApiError::internal)??;
        if let Some((_, key)) = embed_later
            && let Some(values) = embedded.lock().map_err(ApiError::internal)?.take()
        {
            self.embed_cache.put(key, values);
        }
        self.result_cache.put(cache_key, out.clone());
        Ok(out)
    }

    /// The query vector cached for this scope, model and text (counted as a hit or a miss).
    fn cached_embedding(&self, key: &str, spec: &ModelSpec) -> Option<Embedding> {
        let hit = self.embed_cache.get(key);
        self.metrics.cache("embedding", hit.is_some());
        hit.map(|v| Embedding {
            model_id: spec.id.clone(),
            values: (*v).clone(),
        })
    }

    /// Embeds a query on the blocking pool and caches it under `key`.
    async fn embed_query(
        &self,
        key: String,
        spec: &ModelSpec,
        query: &str,
    ) -> ApiResult<Embedding> {
        let embedder = self.embedder(spec)?;
        let text = query.to_string();
        let t = Instant::now();
        let e = tokio::task::spawn_blocking(move || embedder.embed_query(&text))
            .await
            .map_err(ApiError::internal)??;
        self.metrics.stage("embed", t.elapsed());
        self.embed_cache.put(key, e.values.clone());
        Ok(e)
    }

    pub async fn context(
        self: &Arc<Self>,
        caller: &Caller,
        input: ContextInput,
    ) -> ApiResult<ContextOutput> {
        let budget = input.max_tokens.unwrap_or(1000);
        if budget == 0 || budget > self.limits.max_context_tokens {
            return Err(ApiError::invalid(format!(
                "max_tokens: must be 1 to {}, got {budget}",
                self.limits.max_context_tokens
            )));
        }
        let search = SearchInput {
            query: input.query,
            domains: input.domains,
            k: Some(self.limits.max_k.min(50)),
            mode: input.mode,
            filter: input.filter,
            min_seq: input.min_seq,
            ..SearchInput::default()
        };
        let found = self.search(caller, search).await?;
        Ok(pack_context(found.hits, budget))
    }

    pub async fn document(
        &self,
        caller: &Caller,
        domain: &str,
        id: &str,
    ) -> ApiResult<DocumentOut> {
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Read)
            .await?;
        let doc = self
            .store
            .document(&pass, domain, id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotFound,
                    format!(
                        "document `{}` does not exist in domain `{domain}`",
                        dartmouth_domains::names::shown(id)
                    ),
                )
            })?;
        Ok(document_out(domain, doc))
    }

    /// The `idx`th chunk of a document (the same access rules as [`Service::document`]).
    pub async fn chunk(
        &self,
        caller: &Caller,
        domain: &str,
        id: &str,
        idx: usize,
    ) -> ApiResult<ChunkWithDocument> {
        let doc = self.document(caller, domain, id).await?;
        let chunk = doc.chunks.into_iter().nth(idx).ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!(
                    "chunk {idx} does not exist in document `{}`",
                    dartmouth_domains::names::shown(id)
                ),
            )
        })?;
        Ok(ChunkWithDocument {
            domain: doc.domain,
            doc_id: doc.doc_id,
            title: doc.title,
            url: doc.url,
            chunk,
        })
    }

    pub async fn ingest(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        input: IngestInput,
    ) -> ApiResult<IngestOutput> {
        if input.documents.is_empty() || input.documents.len() > self.limits.max_ingest_documents {
            return Err(ApiError::invalid(format!(
                "documents: send 1 to {} per request, got {}",
                self.limits.max_ingest_documents,
                input.documents.len()
            )));
        }
        let bytes: usize = input
            .documents
            .iter()
            .map(|d| {
                d.id.len()
                    + d.title.len()
                    + d.text.len()
                    + d.url.as_ref().map_or(0, String::len)
                    + d.attributes
                        .iter()
                        .map(|(k, v)| k.len() + v.weight())
                        .sum::<usize>()
            })
            .sum();
        if bytes > self.limits.max_batch_bytes {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "documents: {bytes} bytes of content; the limit is {} per request",
                    self.limits.max_batch_bytes
                ),
            ));
        }
        let mut sources = Vec::with_capacity(input.documents.len());
        for (i, d) in input.documents.into_iter().enumerate() {
            let place = format!("documents[{i}]");
            let mut attributes = dartmouth_engine::Attributes::new();
            for (name, value) in &d.attributes {
                let values = match value {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                let parsed = values
                    .iter()
                    .map(|v| dartmouth_engine::AttrValue::from_json(name, v))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ApiError::invalid(format!("{place}.attributes.{name}: {e}")))?;
                attributes.insert(name.clone(), parsed);
            }
            // The one validator, on the whole batch before anything is written: a request
            // with one bad document stores nothing.
            dartmouth_engine::validate::check_fields(
                &d.id,
                &d.title,
                d.url.as_deref(),
                &d.text,
                &attributes,
            )
            .map_err(|e| ApiError::invalid(format!("{place}.{e}")))?;
            sources.push(SourceDoc {
                id: d.id,
                title: d.title,
                text: d.text,
                url: d.url,
                format: dartmouth_indexer::Format::Text,
                place,
                attributes,
                source: None,
                keys: Vec::new(),
            });
        }
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let domain_row: Domain = pass
            .domain(domain)
            .cloned()
            .ok_or_else(|| ApiError::internal("pass without its domain"))?;
        let name = domain.to_string();
        self.blocking(move |s| {
            let summary =
                s.index_items(pass, domain_row, sources.into_iter().map(Ok), true, false)?;
            Ok(IngestOutput {
                domain: name,
                documents: summary.documents,
                chunks: summary.chunks,
                seq: summary.applied_seq,
            })
        })
        .await
    }

    // ---- Shopify: catalog uploads (writers) and signed webhooks ----

    /// Indexes a Shopify catalog (Admin REST or storefront JSON, product CSV export, GraphQL
    /// bulk JSONL), each product one document. Records that cannot be read are listed in
    /// `failed` and the rest is written; a body none of whose records can be read is refused.
    pub async fn upload_catalog<B>(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        upload: CatalogUpload,
        body: B,
    ) -> ApiResult<ShopifyOutput>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let format = upload
            .format
            .as_deref()
            .map(CatalogFormat::parse)
            .transpose()?;
        if let Some(b) = &upload.base_url
            && !(b.starts_with("https://") || b.starts_with("http://"))
        {
            return Err(ApiError::invalid(format!(
                "base_url: must start with https:// or http://, got `{}`",
                dartmouth_domains::names::shown(b)
            )));
        }
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let name = domain.to_string();
        let explicit = format.is_some();
        self.blocking(move |s| {
            let text = crate::shopify::utf8_body(body.as_ref())?;
            let format = format
                .unwrap_or_else(|| CatalogFormat::sniff(text, upload.content_type.as_deref()));
            let items = crate::shopify::read_catalog(
                text,
                format,
                upload.base_url.as_deref(),
                upload.full_sync,
            )
            .map_err(|mut e| {
                // `garbage` fails as a CSV header: say the format was a guess.
                if !explicit && e.message.starts_with(crate::shopify::BODY_LABEL) {
                    e.message.push_str(&format!(
                        " (read as {}, detected from the request; choose with ?format=json, csv or bulk)",
                        format.as_str()
                    ));
                }
                e
            })?;
            let mut out = ShopifyOutput::new(s.run_shopify(pass, &name, items, upload.full_sync)?);
            out.format = Some(format);
            Ok(out)
        })
        .await
    }

    /// The webhook settings of `domain`; a domain without them answers as a missing domain.
    fn webhook_config(&self, domain: &str) -> ApiResult<&ShopifyWebhook> {
        self.webhooks.get(domain).ok_or_else(|| {
            self.metrics.denied(Code::NotFound);
            ApiError::from(dartmouth_domains::Error::NotFound {
                what: "domain",
                name: dartmouth_domains::names::shown(domain),
            })
        })
    }

    fn bad_signature(&self) -> ApiError {
        self.metrics.webhook("shopify", false);
        self.metrics.denied(Code::Unauthenticated);
        // No detail: a prober learns nothing about what was wrong.
        ApiError::new(
            Code::Unauthenticated,
            "webhook signature missing or invalid",
        )
    }

    /// What can be refused before the body is read: a domain without webhooks (the 404 of a
    /// missing domain) and an unsigned request (401).
    pub fn shopify_webhook_gate(&self, domain: &str, signature: Option<&str>) -> ApiResult<()> {
        self.webhook_config(domain)?;
        if signature.is_none_or(|s| s.trim().is_empty()) {
            return Err(self.bad_signature());
        }
        Ok(())
    }

    /// A Shopify webhook: authenticated by `X-Shopify-Hmac-Sha256` over the raw body (checked
    /// before the body is parsed), written as the domain's configured principal through the
    /// normal authorization (so its grants apply). Shopify retries deliveries: one whose
    /// `X-Shopify-Webhook-Id` was processed is acknowledged without processing, and an update
    /// older than the stored product or stock level (by `updated_at`) is not applied.
    pub async fn shopify_webhook<B>(
        self: &Arc<Self>,
        domain: &str,
        signature: Option<&str>,
        delivery: ShopifyDelivery,
        body: B,
    ) -> ApiResult<ShopifyOutput>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        self.shopify_webhook_gate(domain, signature)?;
        if body.as_ref().len() > self.limits.max_webhook_bytes {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!(
                    "body: {} bytes; a webhook is at most {}",
                    body.as_ref().len(),
                    self.limits.max_webhook_bytes
                ),
            ));
        }
        let hook = self.webhook_config(domain)?.clone();
        if !crate::shopify::verify_signature(&hook.secret, body.as_ref(), signature.unwrap_or("")) {
            tracing::info!("shopify webhook with a bad signature");
            return Err(self.bad_signature());
        }
        self.metrics.webhook("shopify", true);
        let caller = self.webhook_caller(&hook.principal).await?;
        self.rate_limit(&caller)?;
        let pass = self
            .authorize(&caller, &[domain.to_string()], Role::Write)
            .await
            .inspect_err(|e| {
                tracing::warn!(
                    principal = %hook.principal, error = %e,
                    "shopify webhook: the configured principal may not write to the domain"
                );
            })?;
        let value = crate::shopify::json_body(
            crate::shopify::utf8_body(body.as_ref())?,
            crate::shopify::BODY_LABEL,
        )?;
        let label = crate::shopify::WEBHOOK_LABEL;
        let topic = delivery.topic;
        let item = dartmouth_indexer::shopify_item(
            dartmouth_indexer::shopify::webhook(value, topic.as_deref(), label),
            label,
            hook.base_url.as_deref(),
        );
        // A payload we cannot use (an unsupported topic, a missing field) and an inventory
        // update for an item no product in the domain holds are answered 200 with the failure
        // listed (and logged by the job), not 4xx: Shopify retries any non-2xx delivery for
        // days and then drops the subscription, and a retry cannot fix either. Failures a
        // retry can fix (the store or the model unavailable) stay 5xx.
        let name = domain.to_string();
        // Ids longer than Shopify's (a UUID) are not kept: such a delivery is just processed.
        let id = delivery.id.filter(|id| !id.is_empty() && id.len() <= 256);
        let mut out = self
            .blocking(move |s| {
                let _one_at_a_time = s.shopify_lock(&name)?;
                if let Some(id) = &id
                    && Handle::current().block_on(s.store.delivered(&pass, &name, id))?
                {
                    let mut out = ShopifyOutput::new(IndexSummary {
                        domain: name.clone(),
                        applied_seq: s
                            .applier()
                            .existing_shard(
                                pass.domain(&name)
                                    .ok_or_else(|| ApiError::internal("pass"))?,
                            )?
                            .map_or(0, |shard| shard.applied_seq()),
                        ..IndexSummary::default()
                    });
                    out.duplicate = true;
                    return Ok(out);
                }
                let domain_row = pass
                    .domain(&name)
                    .cloned()
                    .ok_or_else(|| ApiError::internal("pass without its domain"))?;
                let summary = s.index_items(pass.clone(), domain_row, vec![item], false, false)?;
                if let Some(id) = &id {
                    Handle::current().block_on(s.store.record_delivery(&pass, &name, id))?;
                }
                Ok(ShopifyOutput::new(summary))
            })
            .await?;
        out.topic = topic;
        Ok(out)
    }

    /// One Shopify job at a time per domain (see `shopify_locks`).
    /// Call from blocking code (the lock is waited for in place).
    fn shopify_lock(&self, domain: &str) -> ApiResult<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self.shopify_locks.lock().map_err(ApiError::internal)?;
            Arc::clone(locks.entry(domain.to_string()).or_default())
        };
        Ok(lock.blocking_lock_owned())
    }

    /// The principal a domain's webhooks write as (the local operator acts as it).
    async fn webhook_caller(&self, principal: &str) -> ApiResult<Caller> {
        let operator = match self.operator.get() {
            Some(a) => a,
            None => {
                let a = self.store.local_admin().await?;
                self.operator.get_or_init(|| a)
            }
        };
        self.store.act_as(operator, principal).await.map_err(|e| {
            tracing::warn!(principal, error = %e, "shopify webhook: principal unavailable");
            ApiError::new(
                Code::Unavailable,
                "the webhook's principal is unavailable (logged)",
            )
        })
    }

    /// Checks each webhook's principal once at start-up (a typo fails loudly, not per
    /// delivery).
    pub async fn check_webhooks(&self) -> ApiResult<()> {
        for hook in self.webhooks.values() {
            self.webhook_caller(&hook.principal).await.map_err(|_| {
                ApiError::invalid(format!(
                    "shopify webhook for domain `{}`: principal `{}` does not exist (create it, \
                     and grant it write on the domain)",
                    hook.domain, hook.principal
                ))
            })?;
        }
        Ok(())
    }

    /// Runs Shopify items through the indexer into `domain` (which `pass` opens for writing).
    fn run_shopify(
        &self,
        pass: Pass,
        domain: &str,
        items: Vec<dartmouth_indexer::Result<Item>>,
        full_sync: bool,
    ) -> ApiResult<IndexSummary> {
        let domain_row: Domain = pass
            .domain(domain)
            .cloned()
            .ok_or_else(|| ApiError::internal("pass without its domain"))?;
        let _one_at_a_time = self.shopify_lock(domain)?;
        self.index_items(pass, domain_row, items, false, full_sync)
    }

    /// Runs an indexing job into `domain` (which `pass` opens for writing) through the store.
    fn index_items<T: Into<Item>>(
        &self,
        pass: Pass,
        domain: Domain,
        items: impl IntoIterator<Item = dartmouth_indexer::Result<T>, IntoIter: Send>,
        stop_on_error: bool,
        full_sync: bool,
    ) -> ApiResult<IndexSummary> {
        let applier = self.applier();
        let shard = applier.shard(&domain)?;
        // Caught up first, so a job that writes nothing (a retried webhook) still answers a
        // sequence that covers what the store holds.
        applier.catch_up(&domain)?;
        let settings: DomainSettings = shard.settings().clone();
        let embedder = self.embedder(&settings.model)?;
        let sizer = self
            .models
            .sizer_for(&settings.model)
            .map_err(|e| ApiError::new(Code::Unavailable, format!("tokenizer: {e}")))?;
        let sink = Arc::new(StoreSink {
            applier: &applier,
            pass,
            domain,
            shard,
        });
        Ok(IndexJob {
            sink,
            embedder: embedder.as_ref(),
            chunker: Chunker::new(sizer, settings.chunk_tokens, settings.chunk_overlap),
            batch_docs: 64,
            stop_on_error,
            full_sync,
        }
        .run(items, &Progress::hidden())?)
    }

    // ---- admin: the store checks the role (superuser or the domain's admin) ----

    pub async fn list_domains(&self, caller: &Caller) -> ApiResult<Vec<Domain>> {
        Ok(self.store.list_domains(caller).await?)
    }

    pub async fn create_domain(
        self: &Arc<Self>,
        caller: &Caller,
        input: DomainInput,
    ) -> ApiResult<Domain> {
        let kind = match input.embedder.as_deref().unwrap_or("minilm") {
            "minilm" => crate::models::EmbedderKind::Minilm,
            "fake" => crate::models::EmbedderKind::Fake,
            other => {
                return Err(ApiError::invalid(format!(
                    "embedder: `{other}` is not one of minilm, fake"
                )));
            }
        };
        let spec = crate::models::spec_for(kind, None, None)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let settings =
            dartmouth_views::new_domain_settings(&input.name, &DomainSettings::new(spec))?;
        let domain = self
            .store
            .create_domain(caller, &input.name, &input.description, &settings)
            .await?;
        let made = domain.clone();
        self.blocking(move |s| Ok(s.applier().shard(&made).map(drop)?))
            .await?;
        Ok(domain)
    }

    pub async fn delete_domain(self: &Arc<Self>, caller: &Caller, name: &str) -> ApiResult<Domain> {
        let domain = self.store.delete_domain(caller, name).await?;
        let gone = domain.clone();
        self.blocking(move |s| Ok(s.applier().remove_shard(&gone)?))
            .await?;
        Ok(domain)
    }

    pub async fn list_principals(&self, caller: &Caller) -> ApiResult<Vec<Principal>> {
        Ok(self.store.list_principals(caller).await?)
    }

    pub async fn create_principal(
        &self,
        caller: &Caller,
        input: PrincipalInput,
    ) -> ApiResult<Principal> {
        Ok(self
            .store
            .create_principal(caller, &input.name, input.kind)
            .await?)
    }

    pub async fn list_grants(&self, caller: &Caller) -> ApiResult<Vec<Grant>> {
        Ok(self.store.list_grants(caller).await?)
    }

    pub async fn grant(&self, caller: &Caller, input: GrantInput) -> ApiResult<Grant> {
        match self
            .store
            .grant(caller, &input.principal, &input.domain, input.role)
            .await
        {
            Ok(g) => Ok(g),
            Err(e) => Err(self
                .refine_denial(caller, std::slice::from_ref(&input.domain), Role::Admin, e)
                .await),
        }
    }

    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        principal: &str,
        domain: &str,
    ) -> ApiResult<()> {
        match self.store.revoke_grant(caller, principal, domain).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .refine_denial(caller, &[domain.to_string()], Role::Admin, e)
                .await),
        }
    }

    pub async fn list_keys(&self, caller: &Caller) -> ApiResult<Vec<KeyInfo>> {
        Ok(self.store.list_keys(caller).await?)
    }

    pub async fn create_key(&self, caller: &Caller, input: KeyInput) -> ApiResult<NewKey> {
        let expires_at = input
            .expires_in
            .map(|s| dartmouth_domains::now_millis() + (s.min(10 * 365 * 86_400) as i64) * 1000);
        let scope = KeyScope {
            domains: input.domains,
            role: input.role,
            expires_at,
        };
        let (key, secret) = self
            .store
            .create_key(caller, &input.principal, scope)
            .await?;
        Ok(NewKey { key, secret })
    }

    /// A delegated token for `caller` acting for an end user: read-only, at most 15 minutes,
    /// the domains both may read.
    pub async fn delegate(&self, caller: &Caller, input: DelegateInput) -> ApiResult<Delegation> {
        let config = self.jwt.as_ref().ok_or_else(|| {
            ApiError::new(
                Code::Unavailable,
                "delegation is not configured (serve with --jwt-hs256-secret)",
            )
        })?;
        if input.domains.len() > self.limits.max_domains {
            return Err(ApiError::invalid(format!(
                "domains: at most {} per request",
                self.limits.max_domains
            )));
        }
        Ok(self
            .store
            .mint_delegated(
                config,
                caller,
                &input.end_user,
                &input.domains,
                input.ttl_seconds.unwrap_or(300),
            )
            .await?)
    }

    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        Ok(self.store.revoke_key(caller, id).await?)
    }

    /// Readiness: the store answers.
    pub async fn check_ready(&self) -> ApiResult<()> {
        if !self.is_ready() {
            return Err(ApiError::new(Code::Unavailable, "starting"));
        }
        self.store.ping().await?;
        Ok(())
    }

    /// Applies every domain's new changes; returns the largest backlog seen (in changes).
    pub fn apply_all(&self) -> ApiResult<u64> {
        let applier = self.applier();
        let admin = match self.operator.get() {
            Some(a) => a,
            None => {
                let a = applier.runtime.block_on(self.store.local_admin())?;
                self.operator.get_or_init(|| a)
            }
        };
        let domains = applier.runtime.block_on(self.store.list_domains(admin))?;
        // Shards of domains deleted through another node (or while this one was down).
        for name in applier.remove_orphans(&domains)? {
            tracing::info!(domain = %name, "removed the shard of a deleted domain");
        }
        let mut lag = 0;
        // One domain that cannot be applied (logged) must not hold the others back.
        for d in &domains {
            let outcome = (|| -> ApiResult<u64> {
                let last = applier
                    .runtime
                    .block_on(self.store.last_seq(&self.store.system(), d.id))?;
                let applied = applier.shard(d)?.applied_seq();
                // Behind: apply. Ahead (a restored store): `catch_up` rebuilds.
                if last != applied {
                    let oldest = applier.runtime.block_on(self.store.first_change_at(
                        &self.store.system(),
                        d.id,
                        applied,
                    ))?;
                    let t = Instant::now();
                    applier.catch_up(d)?;
                    self.metrics.stage("apply", t.elapsed());
                    self.searchable_since(oldest);
                }
                Ok(last.saturating_sub(applied))
            })();
            match outcome {
                Ok(behind) => lag = lag.max(behind),
                // Deleted since the list was read.
                Err(e) if e.code == Code::NotFound => {
                    tracing::debug!(domain = %d.name, "applier: the domain is gone");
                }
                Err(e) => tracing::warn!(domain = %d.name, error = %e, "applier"),
            }
        }
        self.metrics.set_lag(lag);
        Ok(lag)
    }
}

fn fusion_of(input: Option<&FusionInput>) -> ApiResult<Fusion> {
    let Some(f) = input else {
        return Ok(Fusion::default());
    };
    let bm25_weight = f.bm25_weight.unwrap_or(1.0);
    Ok(match f.method.as_deref().unwrap_or("weighted") {
        "rrf" => Fusion::Rrf {
            k: f.rrf_k.unwrap_or(dartmouth_engine::RRF_K_DEFAULT),
            bm25_weight,
            vector_weight: f.vector_weight.unwrap_or(1.0),
        },
        "weighted" => {
            let default_vector = match Fusion::default() {
                Fusion::Weighted { vector_weight, .. } => vector_weight,
                Fusion::Rrf { .. } => 1.0,
            };
            Fusion::Weighted {
                bm25_weight,
                vector_weight: f.vector_weight.unwrap_or(default_vector),
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "fusion.method: `{other}` is not one of weighted, rrf"
            )));
        }
    })
}

fn explain_hit(
    fusion: &Fusion,
    bm25: Option<BranchHit>,
    vector: Option<BranchHit>,
    score: f32,
) -> Value {
    let formula = match fusion {
        Fusion::Rrf {
            k,
            bm25_weight,
            vector_weight,
        } => format!(
            "rrf: {bm25_weight} / ({k} + bm25.rank) + {vector_weight} / ({k} + vector.rank); a branch that missed adds 0"
        ),
        Fusion::Weighted {
            bm25_weight,
            vector_weight,
        } => format!(
            "weighted: {bm25_weight} × minmax(bm25.score) + {vector_weight} × minmax(vector.score) over each branch's candidates; a branch that missed adds 0"
        ),
    };
    serde_json::json!({
        "fusion": fusion,
        "formula": formula,
        "bm25": bm25,
        "vector": vector,
        "score": score,
    })
}

/// Rough token count for an LLM prompt: one token per 4 characters (OpenAI's rule of thumb;
/// model tokenizers differ, so budgets keep a margin).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Fills `budget` tokens with the best passages: hits in score order, one passage per document
/// (chunks of the same document merged in text order, overlaps removed), each with a marker.
pub fn pack_context(hits: Vec<HitOut>, budget: usize) -> ContextOutput {
    struct Building {
        score: f32,
        first: HitOut,
        chunks: Vec<HitOut>,
    }
    let mut docs: Vec<Building> = Vec::new();
    let mut used = 0usize;
    for hit in hits {
        let cost = estimate_tokens(&hit.text) + 1;
        if let Some(b) = docs
            .iter_mut()
            .find(|b| b.first.domain == hit.domain && b.first.doc_id == hit.doc_id)
        {
            // A chunk whose range the passage already covers adds nothing.
            if b.chunks
                .iter()
                .any(|c| c.char_start <= hit.char_start && hit.char_end <= c.char_end)
            {
                continue;
            }
            if used + cost > budget {
                continue;
            }
            used += cost;
            b.chunks.push(hit);
            continue;
        }
        let header = format!(
            "[{}] {} ({}/{})\n",
            docs.len() + 1,
            hit.title,
            hit.domain,
            hit.doc_id
        );
        let cost = cost + estimate_tokens(&header);
        if used + cost > budget {
            continue;
        }
        used += cost;
        docs.push(Building {
            score: hit.score,
            first: hit.clone(),
            chunks: vec![hit],
        });
    }
    let mut passages = Vec::with_capacity(docs.len());
    let mut context = String::new();
    for (i, mut b) in docs.into_iter().enumerate() {
        b.chunks.sort_by_key(|c| (c.char_start, c.char_end));
        let mut text = String::new();
        let mut end = 0u64;
        for c in &b.chunks {
            if !text.is_empty() {
                if c.char_start > end {
                    text.push_str(" … ");
                } else {
                    // Overlapping neighbours: keep only the part after what is already there.
                    let skip = (end - c.char_start) as usize;
                    text.extend(c.text.chars().skip(skip));
                    end = end.max(c.char_end);
                    continue;
                }
            }
            text.push_str(&c.text);
            end = end.max(c.char_end);
        }
        let marker = i + 1;
        let first = &b.first;
        let mut header = format!(
            "[{marker}] {} — {}/{}",
            first.title, first.domain, first.doc_id
        );
        if let Some(url) = &first.url {
            header.push_str(&format!(" <{url}>"));
        }
        context.push_str(&header);
        context.push('\n');
        context.push_str(&text);
        context.push_str("\n\n");
        passages.push(PassageOut {
            marker,
            domain: first.domain.clone(),
            doc_id: first.doc_id.clone(),
            chunk_ids: b.chunks.iter().map(|c| c.chunk_id.clone()).collect(),
            title: first.title.clone(),
            url: first.url.clone(),
            tokens: estimate_tokens(&text),
            char_start: b.chunks.first().map_or(0, |c| c.char_start),
            char_end: end,
            score: b.score,
            text,
        });
    }
    let tokens = estimate_tokens(&context);
    ContextOutput {
        context,
        passages,
        tokens,
    }
}

fn document_out(domain: &str, doc: StoredDocument) -> DocumentOut {
    let chunks = doc
        .chunks
        .into_iter()
        .enumerate()
        .map(|(idx, c)| ChunkOut {
            chunk_id: format!("{}#{idx}", doc.external_id),
            idx,
            text: c.text,
            char_start: c.char_start,
            char_end: c.char_end,
            heading: c.heading,
        })
        .collect();
    DocumentOut {
        domain: domain.to_string(),
        doc_id: doc.external_id,
        title: doc.title,
        url: doc.url,
        attributes: doc.attributes,
        chunks,
    }
}

/// What a Shopify webhook delivery's headers say besides its signature.
#[derive(Debug, Clone, Default)]
pub struct ShopifyDelivery {
    /// `X-Shopify-Topic`.
    pub topic: Option<String>,
    /// `X-Shopify-Webhook-Id`: the same for every retry of one delivery.
    pub id: Option<String>,
}

/// The query-embedding cache's key: the caller's scope (never shared across scopes), the model
/// and the text.
fn embedding_key(scope: &[String], spec: &ModelSpec, query: &str) -> String {
    format!("{scope:?}|{}|{query}", spec.id)
}

impl Weigh for HitOut {
    fn weight(&self) -> usize {
        size_of::<HitOut>()
            + [
                &self.domain,
                &self.doc_id,
                &self.chunk_id,
                &self.title,
                &self.text,
                &self.snippet,
                &self.model,
            ]
            .iter()
            .map(|s| s.capacity())
            .sum::<usize>()
            + self.url.weight()
            + self.heading.weight()
            + self.attributes.weight()
            + self.explain.as_ref().map_or(0, Weigh::weight)
    }
}

impl Weigh for SearchOutput {
    fn weight(&self) -> usize {
        size_of::<SearchOutput>()
            + self.hits.iter().map(Weigh::weight).sum::<usize>()
            + self
                .facets
                .iter()
                .map(|(name, counts)| {
                    name.capacity()
                        + counts.len() * size_of::<FacetCount>()
                        + counts.iter().map(|c| c.value.weight()).sum::<usize>()
                })
                .sum::<usize>()
            + self.domains.iter().map(String::capacity).sum::<usize>()
    }
}
