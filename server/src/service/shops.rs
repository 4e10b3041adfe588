//! Shops connected to domains: pull sync from the Shopify Admin API (issue 29).
//!
//! A connection names the shop, the API version and the environment variable (or `file:PATH`)
//! holding the access token on each node; the token is read when a sync runs and is never
//! stored, logged or answered. A sync is an indexing task: **full**, a bulk operation whose
//! result is streamed into the job as a full sync (what the shop no longer has is deleted only
//! when no record failed); **incremental**, the products updated since the last good run's
//! start (less an overlap) and the deletions since then. One node syncs a shop at a time (a
//! lease in the store); the state (last run, counts, the incremental mark, the last error in
//! words) is stored when the job ends.

use std::sync::Arc;
use std::time::Duration;

use dartmouth_domains::{Caller, Role, ShopBinding, ShopConnection};
use dartmouth_indexer::shopify::Change;
use dartmouth_indexer::shopify::admin::{AdminApi, RetryPolicy};
use dartmouth_indexer::shopify::pull::{
    ResultStream, await_bulk, deletions_page, products_bulk_query, products_page,
    register_webhooks, start_bulk, stream_result,
};
use dartmouth_indexer::{IndexSummary, Item, shopify_item};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::admin::format_millis;
use super::tasks::{Items, Task, TaskOut};
use super::{Service, opened};
use crate::error::{ApiError, ApiResult, Code};

/// How long a node's hold on a shop's sync lasts without being renewed: a minute, or a
/// test's (`DARTMOUTH_SHOPIFY_LEASE_MS`).
fn lease_ms() -> i64 {
    std::env::var("DARTMOUTH_SHOPIFY_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|ms| *ms >= 300)
        .unwrap_or(60_000)
}
/// The incremental mark is the last good run's start less this, for clocks and late writes.
const OVERLAP_MS: i64 = 5 * 60_000;
/// Hosts accepted as shops besides `*.myshopify.com`, reached over plain HTTP: a local
/// Shopify-compatible test server (comma-separated `host:port`).
pub const PLAIN_HOSTS_ENV: &str = "DARTMOUTH_SHOPIFY_PLAIN_HOSTS";

/// `POST /v1/domains/{d}/shopify/connection`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    /// The shop's host (`acme.myshopify.com`).
    pub shop: String,
    /// The environment variable (or `file:PATH`) holding the token on each node.
    pub token_env: String,
    /// The Admin API version (default 2026-01).
    #[serde(default)]
    pub api_version: Option<String>,
    /// A schedule: `15m`, `1h`, `90s` (at least a minute).
    #[serde(default)]
    pub every: Option<String>,
    /// Metafields read with each product (`namespace.key`): attributes `metafield.namespace.key`.
    #[serde(default)]
    pub metafields: Vec<String>,
    /// This service's public base URL (`https://…`): the shop is subscribed to deliver product
    /// and inventory webhooks to `{url}/v1/webhooks/shopify/{domain}`.
    #[serde(default)]
    pub register_webhooks: Option<String>,
}

/// `POST /v1/domains/{d}/shopify/sync`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncInput {
    /// Every product (a bulk operation), then delete what the shop no longer has (only when no
    /// record failed); default: the products changed since the last good run, and the deletions
    /// since.
    #[serde(default)]
    pub full: bool,
}

/// A connection as answered: the binding, the state, when it runs next.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ShopConnection)]
pub struct ConnectionOut {
    /// The domain it syncs into.
    pub domain: String,
    /// The shop's host (`acme.myshopify.com`).
    pub shop: String,
    /// The Admin API version asked for.
    pub api_version: String,
    /// The environment variable (or `file:PATH`) holding the token on each node; the token itself
    /// is never stored or answered.
    pub token_env: String,
    /// Scheduled runs every so many milliseconds (`null`: on demand only).
    pub every_ms: Option<i64>,
    /// Metafields read with each product (`namespace.key`).
    pub metafields: Vec<String>,
    /// When the next scheduled run is due, in milliseconds since the epoch (`null`: none).
    pub next_run: Option<i64>,
    /// Whether a node is syncing the shop now.
    pub syncing: bool,
    /// `last` (the last run: kind, started, finished, duration_ms, added, updated, unchanged,
    /// deleted, failed, embedded_chunks, cancelled, error), `mark` (where the next incremental run
    /// starts from, milliseconds since the epoch), `error` (the last error, in words).
    #[schema(value_type = Object)]
    pub state: Value,
    /// On connect with `register_webhooks`: each topic, `created` or `existed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Vec<String>>)]
    pub webhooks: Vec<(String, &'static str)>,
}

impl From<ShopConnection> for ConnectionOut {
    fn from(c: ShopConnection) -> Self {
        ConnectionOut {
            domain: c.domain,
            shop: c.binding.shop,
            api_version: c.binding.api_version,
            token_env: c.binding.token_env,
            every_ms: c.binding.every_ms,
            metafields: c.binding.metafields,
            next_run: c.next_run,
            syncing: c.syncing.is_some(),
            state: c.state,
            webhooks: Vec::new(),
        }
    }
}

/// The API version a connection gets when none is given.
pub const DEFAULT_API_VERSION: &str = "2026-01";

/// `15m`, `2h`, `90s`, `1d` in milliseconds.
pub fn parse_every(s: &str) -> ApiResult<i64> {
    let s = s.trim();
    let bad = || {
        ApiError::invalid(format!(
            "every: `{}` is not a duration like 90s, 15m, 2h or 1d",
            dartmouth_domains::names::shown(s)
        ))
    };
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms).ok_or_else(bad)
}

fn plain_hosts() -> Vec<String> {
    std::env::var(PLAIN_HOSTS_ENV)
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// The base URL of a shop's Admin API: `https://{shop}` for `*.myshopify.com`, plain HTTP for a
/// configured test host; anything else is refused naming the field.
fn shop_base(shop: &str) -> ApiResult<String> {
    let label = shop.strip_suffix(".myshopify.com").unwrap_or("");
    if !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Ok(format!("https://{shop}"));
    }
    if plain_hosts().iter().any(|h| h == shop) {
        return Ok(format!("http://{shop}"));
    }
    Err(ApiError::invalid(format!(
        "shop: `{}` is not a shop's *.myshopify.com domain",
        dartmouth_domains::names::shown(shop)
    )))
}

/// The token named by `token_env` on this node: the variable's value, or a `file:` path's
/// contents, trimmed. Its absence names the field, never a value.
fn read_token(token_env: &str) -> ApiResult<String> {
    let token = match token_env.strip_prefix("file:") {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ApiError::invalid(format!(
                "token_env: cannot read the token file `{path}` on this node: {e}"
            ))
        })?,
        None => std::env::var(token_env).map_err(|_| {
            ApiError::invalid(format!(
                "token_env: the environment variable `{token_env}` is not set on this node"
            ))
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(ApiError::invalid(format!(
            "token_env: `{token_env}` is empty on this node"
        )));
    }
    Ok(token)
}

/// The retry policy: Shopify's pace, or a test's (`DARTMOUTH_SHOPIFY_BACKOFF_MS`).
fn policy() -> RetryPolicy {
    let mut p = RetryPolicy::default();
    if let Some(ms) = std::env::var("DARTMOUTH_SHOPIFY_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        p.backoff = Duration::from_millis(ms);
    }
    p
}

fn api_for(binding: &ShopBinding, policy: RetryPolicy) -> ApiResult<AdminApi> {
    let base = shop_base(&binding.shop)?;
    let token = read_token(&binding.token_env)?;
    Ok(AdminApi::new(
        &base,
        &binding.shop,
        &binding.api_version,
        &token,
        policy,
    ))
}

/// This node's hold on a shop's sync, renewed as the sync goes.
struct Hold {
    svc: Arc<Service>,
    domain_id: i64,
    renewed: std::time::Instant,
    /// The runtime to reach the store from: the job reads its items on a thread of its own,
    /// outside any runtime.
    runtime: tokio::runtime::Handle,
    /// The lease's length, read once per sync.
    lease_ms: i64,
}

impl Hold {
    /// Renews the lease when a third of it has passed; `false` when it was lost.
    fn keep(&mut self) -> bool {
        if self.renewed.elapsed() < Duration::from_millis(self.lease_ms as u64 / 3) {
            return true;
        }
        self.renewed = std::time::Instant::now();
        let system = self.svc.store.system();
        self.runtime
            .block_on(self.svc.store.renew_shop_sync(
                &system,
                self.domain_id,
                &self.svc.node_id,
                self.lease_ms,
            ))
            .unwrap_or(false)
    }
}

fn lost() -> dartmouth_indexer::Error {
    dartmouth_indexer::Error::Shop {
        kind: dartmouth_indexer::ErrorKind::Conflict,
        message: "this node lost its hold on the shop's sync (the store was unreachable for a minute); nothing was deleted".into(),
    }
}

/// The items of one sync, fetched as the job asks for them.
struct ShopItems {
    api: AdminApi,
    hold: Hold,
    /// Why the shop could not be read (not a record's fault): the sync fails with it.
    fatal: Arc<std::sync::Mutex<Option<String>>>,
    task: Arc<Task>,
    /// How often a bulk operation is polled.
    poll: Duration,
    stage: Stage,
    /// Incremental: products updated since (ISO 8601).
    since: Option<String>,
    base_url: String,
    metafields: Vec<String>,
}

enum Stage {
    Start,
    Bulk(Box<ResultStream>),
    Pages(
        Option<String>,
        std::vec::IntoIter<dartmouth_indexer::Result<Change>>,
    ),
    Deletions(std::vec::IntoIter<u64>),
    Done,
}

impl ShopItems {
    fn fail(&mut self, e: dartmouth_indexer::Error) -> Option<dartmouth_indexer::Result<Item>> {
        self.stage = Stage::Done;
        if let Ok(mut f) = self.fatal.lock() {
            *f = Some(e.to_string());
        }
        Some(Err(e))
    }
}

impl Drop for ShopItems {
    /// The run's Admin API calls go to the metrics when its items are done with.
    fn drop(&mut self) {
        let st = &self.api.stats;
        self.hold
            .svc
            .metrics
            .shop_calls(st.requests, st.throttled, st.retried);
    }
}

impl Iterator for ShopItems {
    type Item = dartmouth_indexer::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if !matches!(self.stage, Stage::Done) && !self.hold.keep() {
                return self.fail(lost());
            }
            match &mut self.stage {
                Stage::Done => return None,
                Stage::Start => {
                    let first = if self.since.is_none() {
                        self.open_bulk()
                    } else {
                        self.page(None)
                    };
                    match first {
                        Ok(stage) => self.stage = stage,
                        Err(e) => return self.fail(e),
                    }
                }
                Stage::Bulk(stream) => match stream.next() {
                    Some(change) => {
                        return Some(shopify_item(change, "bulk result", Some(&self.base_url)));
                    }
                    None => self.stage = Stage::Done,
                },
                Stage::Pages(next, changes) => {
                    if let Some(change) = changes.next() {
                        return Some(shopify_item(change, "products", Some(&self.base_url)));
                    }
                    match next.take() {
                        Some(cursor) => match self.page(Some(cursor)) {
                            Ok(stage) => self.stage = stage,
                            Err(e) => return self.fail(e),
                        },
                        None => match self.deletions() {
                            Ok(ids) => self.stage = Stage::Deletions(ids.into_iter()),
                            Err(e) => return self.fail(e),
                        },
                    }
                }
                Stage::Deletions(ids) => match ids.next() {
                    Some(id) => {
                        return Some(shopify_item(Ok(Change::Delete(id)), "deletionEvents", None));
                    }
                    None => self.stage = Stage::Done,
                },
            }
        }
    }
}

impl ShopItems {
    /// A full sync's start: the bulk query run to its end, its result opened.
    fn open_bulk(&mut self) -> dartmouth_indexer::Result<Stage> {
        let task = Arc::clone(&self.task);
        let cancelled = move || task.cancelled();
        let id = start_bulk(
            &mut self.api,
            &products_bulk_query(&self.metafields),
            self.poll,
            Duration::from_secs(600),
            &cancelled,
        )?;
        let hold = &mut self.hold;
        let mut held = true;
        let done = await_bulk(&mut self.api, &id, self.poll, &cancelled, &mut |_| {
            held = held && hold.keep();
        });
        if !held {
            return Err(lost());
        }
        let Some(url) = done?.url else {
            // The shop has no products: nothing to read, and a full sync of nothing would
            // delete everything, so it fails.
            return Err(dartmouth_indexer::Error::Shop {
                kind: dartmouth_indexer::ErrorKind::BadRequest,
                message: format!(
                    "shop {}: the bulk query found no products; nothing was deleted",
                    self.api.shop()
                ),
            });
        };
        match stream_result(&url)? {
            Some(stream) => Ok(Stage::Bulk(Box::new(stream))),
            None => Err(dartmouth_indexer::Error::Shop {
                kind: dartmouth_indexer::ErrorKind::Unavailable,
                message: "the bulk result's URL expired before it was read; run the sync again"
                    .into(),
            }),
        }
    }

    /// A page of changed products (the first without a cursor).
    fn page(&mut self, after: Option<String>) -> dartmouth_indexer::Result<Stage> {
        let page = products_page(
            &mut self.api,
            &self.metafields,
            self.since.as_deref(),
            after.as_deref(),
            100,
        )?;
        Ok(Stage::Pages(page.next, page.changes.into_iter()))
    }

    fn deletions(&mut self) -> dartmouth_indexer::Result<Vec<u64>> {
        let since = self.since.clone().unwrap_or_default();
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (ids, next) = deletions_page(&mut self.api, &since, after.as_deref(), 250)?;
            all.extend(ids);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }
}

impl Service {
    /// Binds a shop to `domain` (its admins). The token must be readable on this node and the
    /// shop must take it and serve the API version (one call, `shop { name }` and the listed
    /// versions); nothing is stored otherwise.
    pub async fn connect_shop(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        input: ConnectInput,
    ) -> ApiResult<ConnectionOut> {
        let every_ms = input.every.as_deref().map(parse_every).transpose()?;
        let binding = ShopBinding {
            shop: input.shop.trim().to_ascii_lowercase(),
            api_version: input
                .api_version
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_string()),
            token_env: input.token_env,
            every_ms,
            metafields: input.metafields,
        };
        // The store's own checks first (field names), then the admin check, then the shop.
        binding.validate().map_err(ApiError::from)?;
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Admin)
            .await?;
        opened(&pass, domain)?;
        let hook = input
            .register_webhooks
            .as_deref()
            .map(|base| self.webhook_uri(domain, base))
            .transpose()?;
        let check = binding.clone();
        let webhooks = self
            .blocking(move |_| {
                let mut api = api_for(&check, policy())?;
                let data = api.query(
                    "query Check { shop { name } publicApiVersions { handle supported } }",
                    json!({}),
                )?;
                let listed: Vec<&str> = data["publicApiVersions"]
                    .as_array()
                    .map(|v| v.iter().filter_map(|v| v["handle"].as_str()).collect())
                    .unwrap_or_default();
                if !listed.is_empty() && !listed.contains(&check.api_version.as_str()) {
                    return Err(ApiError::invalid(format!(
                        "api_version: the shop does not list `{}` (it lists {})",
                        check.api_version,
                        listed.join(", ")
                    )));
                }
                match hook {
                    Some(uri) => register_webhooks(&mut api, &uri).map_err(|e| {
                        let mut e = ApiError::from(e);
                        e.message = format!("register_webhooks: {}", e.message);
                        e
                    }),
                    None => Ok(Vec::new()),
                }
            })
            .await
            .map_err(|mut e| {
                // The shop's answers name the field they are about.
                if e.message.starts_with("register_webhooks:") {
                } else if e.message.contains("refused the access token") {
                    e.message = format!("token_env: {}", e.message);
                } else if e.message.contains("(404)") {
                    e.message = format!("api_version: {}", e.message);
                }
                e
            })?;
        let c = self.store.connect_shop(caller, domain, &binding).await?;
        Ok(ConnectionOut {
            webhooks,
            ..c.into()
        })
    }

    /// Where the shop delivers `domain`'s webhooks, from this service's public base URL; the
    /// domain must take webhooks on this node (its secret and principal are configured).
    fn webhook_uri(&self, domain: &str, base: &str) -> ApiResult<String> {
        let base = base.trim().trim_end_matches('/');
        let host = base.strip_prefix("https://").unwrap_or("");
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(ApiError::invalid(format!(
                "register_webhooks: `{}` is not an https:// URL (Shopify delivers webhooks only over HTTPS)",
                dartmouth_domains::names::shown(base)
            )));
        }
        if !self.webhooks.contains_key(domain) {
            return Err(ApiError::invalid(format!(
                "register_webhooks: domain `{domain}` takes no webhooks on this node; configure \
                 a [[shopify]] table with its secret and principal first"
            )));
        }
        Ok(format!("{base}/v1/webhooks/shopify/{domain}"))
    }

    /// Unbinds `domain`'s shop (its admins); the documents stay.
    pub async fn disconnect_shop(&self, caller: &Caller, domain: &str) -> ApiResult<()> {
        Ok(self.store.disconnect_shop(caller, domain).await?)
    }

    /// The connection and its sync state (readers of the domain).
    pub async fn shop_status(&self, caller: &Caller, domain: &str) -> ApiResult<ConnectionOut> {
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Read)
            .await?;
        self.store
            .shop_connection(&pass, domain)
            .await?
            .map(ConnectionOut::from)
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotFound,
                    format!("domain `{domain}` has no shop connected (dartmouth shopify connect)"),
                )
            })
    }

    /// Starts a sync of `domain`'s shop as a task of `caller` (writers): incremental unless
    /// `full` or no run has succeeded yet. A sync another node runs is a 409.
    pub async fn sync_shop(
        self: &Arc<Self>,
        caller: &Caller,
        domain: &str,
        input: SyncInput,
    ) -> ApiResult<TaskOut> {
        let pass = self
            .authorize(caller, &[domain.to_string()], Role::Write)
            .await?;
        let target = opened(&pass, domain)?;
        let conn = self
            .store
            .shop_connection(&pass, domain)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotFound,
                    format!("domain `{domain}` has no shop connected (dartmouth shopify connect)"),
                )
            })?;
        self.start_sync(caller, target, conn, input.full).await
    }

    /// Claims the shop's lease and queues the sync; the lease is given back, with the state,
    /// when the job ends.
    pub(super) async fn start_sync(
        self: &Arc<Self>,
        caller: &Caller,
        domain: dartmouth_domains::Domain,
        conn: ShopConnection,
        full: bool,
    ) -> ApiResult<TaskOut> {
        let mut api = api_for(&conn.binding, policy())?;
        let since = (!full)
            .then(|| conn.state["mark"].as_i64())
            .flatten()
            .map(|m| format_millis(m - OVERLAP_MS));
        let kind = if since.is_some() {
            "incremental"
        } else {
            "full"
        };
        let system = self.store.system();
        let claimed = self
            .store
            .claim_shop_sync(&system, conn.domain_id, &self.node_id, lease_ms())
            .await?;
        if !claimed {
            return Err(ApiError::new(
                Code::Conflict,
                format!("domain `{}`: its shop is being synced already", conn.domain),
            ));
        }
        api.stats = Default::default();
        let started = dartmouth_domains::now_millis();
        let base_url = format!("https://{}", conn.binding.shop);
        let full_sync = since.is_none();
        let every = conn.binding.every_ms;
        let metafields = conn.binding.metafields.clone();
        let previous = conn.state.clone();
        let domain_id = conn.domain_id;
        let fatal: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let failed_shop = Arc::clone(&fatal);
        let then: super::tasks::Then =
            Box::new(move |svc: &Service, outcome: ApiResult<IndexSummary>| {
                let shop_error = failed_shop.lock().ok().and_then(|f| f.clone());
                let finished = dartmouth_domains::now_millis();
                let mut state = previous.clone();
                let mut run = json!({"kind": kind, "started": started, "finished": finished,
                    "duration_ms": finished - started});
                match &outcome {
                    Ok(s) => {
                        run["added"] = json!(s.added);
                        run["updated"] = json!(s.updated);
                        run["unchanged"] = json!(s.unchanged);
                        run["deleted"] = json!(s.deleted);
                        run["failed"] = json!(s.failed_count);
                        run["embedded_chunks"] = json!(s.embedded_chunks);
                        run["cancelled"] = json!(s.cancelled);
                        if let Some(e) = &shop_error {
                            run["error"] = json!(e);
                            state["error"] = json!(e);
                        } else if s.failed_count == 0 && !s.cancelled {
                            state["mark"] = json!(started);
                            state["error"] = Value::Null;
                        } else {
                            let why = s
                                .failed
                                .first()
                                .cloned()
                                .unwrap_or_else(|| "cancelled".into());
                            state["error"] = json!(why);
                        }
                    }
                    Err(e) => {
                        run["error"] = json!(e.message);
                        state["error"] = json!(e.message);
                    }
                }
                state["last"] = run;
                let outcome_name = match &outcome {
                    Ok(s) if shop_error.is_none() && s.cancelled => "cancelled",
                    Ok(_) if shop_error.is_none() => "succeeded",
                    _ => "failed",
                };
                let s = outcome.as_ref().ok();
                let n = |f: fn(&IndexSummary) -> usize| s.map_or(0, f);
                svc.metrics.shop_sync(
                    kind,
                    outcome_name,
                    &[
                        ("added", n(|s| s.added)),
                        ("updated", n(|s| s.updated)),
                        ("unchanged", n(|s| s.unchanged)),
                        ("deleted", n(|s| s.deleted)),
                        ("failed", n(|s| s.failed_count)),
                    ],
                    Duration::from_millis((finished - started).max(0) as u64),
                );
                let next = every.map(|e| finished + e + rand::random_range(0..=e / 10));
                let system = svc.store.system();
                let recorded = svc.applier().runtime.block_on(svc.store.finish_shop_sync(
                    &system,
                    domain_id,
                    &svc.node_id,
                    &state,
                    next,
                ));
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "cannot record the shop sync's state");
                }
                match (outcome, shop_error) {
                    // What was written stays; the run failed because the shop did.
                    (Ok(s), Some(e)) => Err(ApiError::new(
                        Code::Unavailable,
                        format!(
                            "{e} ({} products written before it failed, nothing deleted)",
                            s.documents
                        ),
                    )),
                    (outcome, _) => outcome,
                }
            });
        let files = vec![format!("shopify {} ({kind})", conn.binding.shop)];
        let poll = Duration::from_millis(
            std::env::var("DARTMOUTH_SHOPIFY_POLL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000),
        );
        let svc = Arc::clone(self);
        let runtime = tokio::runtime::Handle::current();
        self.spawn_index_task_with(
            caller,
            domain,
            files,
            move |task| {
                Box::new(ShopItems {
                    api,
                    hold: Hold {
                        svc,
                        domain_id,
                        renewed: std::time::Instant::now(),
                        runtime,
                        lease_ms: lease_ms(),
                    },
                    fatal,
                    task,
                    poll,
                    stage: Stage::Start,
                    since,
                    base_url,
                    metafields,
                }) as Items
            },
            full_sync,
            Some(then),
        )
    }
}

impl Service {
    /// Scheduled syncs whose time has come, of the domains this node holds: each started once
    /// (a run missed while every node was down is one run, not many); a shop another node
    /// syncs is left to it. A sync that cannot start records why and waits for its next time.
    pub(super) fn run_due_syncs(
        self: &Arc<Self>,
        admin: &Caller,
        domains: &[dartmouth_domains::Domain],
    ) {
        let applier = self.applier();
        let system = self.store.system();
        let now = dartmouth_domains::now_millis();
        if !self
            .shops_released
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            match applier
                .runtime
                .block_on(self.store.release_shop_syncs(&system, &self.node_id))
            {
                Ok(n) if n > 0 => {
                    tracing::info!(
                        released = n,
                        "gave back the shop syncs this node held when it stopped"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot give back this node's shop syncs"),
            }
        }
        let Ok(connections) = applier
            .runtime
            .block_on(self.store.shop_connections(&system))
        else {
            return;
        };
        for c in connections {
            if c.syncing.is_some() || c.next_run.is_none_or(|n| n > now) {
                continue;
            }
            let Some(d) = domains.iter().find(|d| d.id == c.domain_id).cloned() else {
                continue;
            };
            let (svc, admin) = (Arc::clone(self), admin.clone());
            applier.runtime.spawn(async move {
                let (domain_id, every, mut state) = (c.domain_id, c.binding.every_ms, c.state.clone());
                let name = c.domain.clone();
                match svc.start_sync(&admin, d, c, false).await {
                    Ok(task) => tracing::info!(domain = %name, task = %task.id, "scheduled shop sync"),
                    Err(e) if e.code == Code::Conflict => {}
                    Err(e) => {
                        tracing::warn!(domain = %name, error = %e.message, "a scheduled shop sync cannot start");
                        let system = svc.store.system();
                        let owner = svc.node_id.clone();
                        if svc.store.claim_shop_sync(&system, domain_id, &owner, lease_ms()).await.unwrap_or(false) {
                            state["error"] = json!(e.message);
                            let next = every.map(|e| dartmouth_domains::now_millis() + e);
                            let _ = svc.store.finish_shop_sync(&system, domain_id, &owner, &state, next).await;
                        }
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_and_times() {
        assert_eq!(parse_every("15m").unwrap(), 900_000);
        assert_eq!(parse_every("90s").unwrap(), 90_000);
        assert_eq!(parse_every("2h").unwrap(), 7_200_000);
        for bad in ["", "15", "m", "15x", "-1m"] {
            assert!(
                parse_every(bad).unwrap_err().message.starts_with("every:"),
                "{bad}"
            );
        }
        assert_eq!(format_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_millis(1_640_995_200_000), "2022-01-01T00:00:00Z");
        assert_eq!(format_millis(1_709_208_000_000), "2024-02-29T12:00:00Z");
    }

    #[test]
    fn shops_are_myshopify_hosts() {
        assert_eq!(
            shop_base("acme.myshopify.com").unwrap(),
            "https://acme.myshopify.com"
        );
        for bad in [
            "acme.com",
            ".myshopify.com",
            "a b.myshopify.com",
            "evil.com/x.myshopify.com",
        ] {
            assert!(
                shop_base(bad).unwrap_err().message.starts_with("shop:"),
                "{bad}"
            );
        }
        let e = read_token("DARTMOUTH_TEST_NO_SUCH_VARIABLE").unwrap_err();
        assert!(
            e.message.starts_with("token_env:") && e.message.contains("not set"),
            "{}",
            e.message
        );
    }
}
