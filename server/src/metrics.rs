//! Prometheus metrics: per-route latency, per-stage timings, denials, cache hits, webhook
//! signature checks, applier lag (in changes, and in seconds from acknowledgement to searchable),
//! shop pull syncs (runs, products, Admin API calls, durations).
//! Labels never carry a domain name or a principal: `/metrics` is unauthenticated.

use std::time::Duration;

use dartmouth_engine::SearchTimings;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::error::Code;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The last minute's request latencies, for the admin page's live figures.
    recent: std::sync::Arc<std::sync::Mutex<Recent>>,
    requests: HistogramVec,
    stages: HistogramVec,
    denied: IntCounterVec,
    cache: IntCounterVec,
    webhooks: IntCounterVec,
    lag: IntGauge,
    store_up: IntGauge,
    store_fallback: prometheus::IntCounter,
    searchable: Histogram,
    applier: IntCounterVec,
    shop_syncs: IntCounterVec,
    shop_products: IntCounterVec,
    shop_calls: IntCounterVec,
    shop_duration: HistogramVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Metrics {
    #[allow(
        clippy::expect_used,
        reason = "fixed metric definitions; a clash is a bug"
    )]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "dartmouth_request_duration_seconds",
                "Request latency by transport, route and outcome code.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["transport", "route", "code"],
        )
        .expect("metric");
        let stages = HistogramVec::new(
            HistogramOpts::new(
                "dartmouth_stage_duration_seconds",
                "Time per search stage (embed, bm25, ann, fuse, hydrate) and per applier catch-up (apply).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )
        .expect("metric");
        let denied = IntCounterVec::new(
            Opts::new(
                "dartmouth_denied_total",
                "Refused requests by reason (unauthenticated, not_found for unreadable or missing domains, permission_denied, rate_limited).",
            ),
            &["code"],
        )
        .expect("metric");
        let cache = IntCounterVec::new(
            Opts::new(
                "dartmouth_cache_total",
                "Cache lookups by cache and outcome.",
            ),
            &["cache", "outcome"],
        )
        .expect("metric");
        let webhooks = IntCounterVec::new(
            Opts::new(
                "dartmouth_webhook_verifications_total",
                "Webhook signature checks by source (shopify) and outcome (ok, bad_signature: missing or wrong).",
            ),
            &["source", "outcome"],
        )
        .expect("metric");
        for outcome in ["ok", "bad_signature"] {
            webhooks.with_label_values(&["shopify", outcome]);
        }
        let lag = IntGauge::new(
            "dartmouth_applier_lag_changes",
            "Changes acknowledged by the store but not yet searchable (largest over the domains).",
        )
        .expect("metric");
        let store_up = IntGauge::new(
            "dartmouth_store_up",
            "1 while the store answers, 0 while it cannot be reached (searches then answer from the credentials and grants this node keeps; writes get 503).",
        )
        .expect("metric");
        store_up.set(1);
        let store_fallback = prometheus::IntCounter::new(
            "dartmouth_store_fallback_reads_total",
            "Authentication and authorisation reads answered from what this node keeps because the store could not be reached.",
        )
        .expect("metric");
        let searchable = Histogram::with_opts(
            HistogramOpts::new(
                "dartmouth_ingest_to_searchable_seconds",
                "From a write's acknowledgement by the store to the applier making it searchable (the oldest change of each catch-up).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("metric");
        let applier = IntCounterVec::new(
            Opts::new(
                "dartmouth_applier_events_total",
                "Applier events: quarantined (a stored document a shard refused, skipped; see `dartmouth domain stats` and the audit log for which and why) and rebuilt (a shard ahead of its store, rebuilt from it).",
            ),
            &["event"],
        )
        .expect("metric");
        for event in ["quarantined", "rebuilt"] {
            applier.with_label_values(&[event]);
        }
        let shop_syncs = IntCounterVec::new(
            Opts::new(
                "dartmouth_shopify_syncs_total",
                "Shop pull syncs by kind (full, incremental) and outcome (succeeded, failed, cancelled).",
            ),
            &["kind", "outcome"],
        )
        .expect("metric");
        let shop_products = IntCounterVec::new(
            Opts::new(
                "dartmouth_shopify_sync_products_total",
                "Products seen by shop pull syncs, by change (added, updated, unchanged, deleted, failed).",
            ),
            &["change"],
        )
        .expect("metric");
        for change in ["added", "updated", "unchanged", "deleted", "failed"] {
            shop_products.with_label_values(&[change]);
        }
        let shop_calls = IntCounterVec::new(
            Opts::new(
                "dartmouth_shopify_api_requests_total",
                "Admin API requests of shop pull syncs, by outcome (sent, throttled: THROTTLED or 429, retried: after a 5xx or network error).",
            ),
            &["outcome"],
        )
        .expect("metric");
        for outcome in ["sent", "throttled", "retried"] {
            shop_calls.with_label_values(&[outcome]);
        }
        let shop_duration = HistogramVec::new(
            HistogramOpts::new(
                "dartmouth_shopify_sync_duration_seconds",
                "How long shop pull syncs take, by kind.",
            )
            .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
            &["kind"],
        )
        .expect("metric");
        for m in [
            Box::new(shop_syncs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(shop_products.clone()),
            Box::new(shop_calls.clone()),
            Box::new(shop_duration.clone()),
            Box::new(requests.clone()),
            Box::new(applier.clone()),
            Box::new(stages.clone()),
            Box::new(denied.clone()),
            Box::new(cache.clone()),
            Box::new(webhooks.clone()),
            Box::new(lag.clone()),
            Box::new(store_up.clone()),
            Box::new(store_fallback.clone()),
            Box::new(searchable.clone()),
        ] {
            registry.register(m).expect("register");
        }
        Metrics {
            registry,
            requests,
            stages,
            denied,
            cache,
            webhooks,
            lag,
            store_up,
            store_fallback,
            searchable,
            applier,
            shop_syncs,
            shop_products,
            shop_calls,
            shop_duration,
            recent: std::sync::Arc::new(std::sync::Mutex::new(Recent {
                since: std::time::Instant::now(),
                entries: std::collections::VecDeque::new(),
            })),
        }
    }

    /// Brings the applier's event counters up to the totals counted since start.
    pub fn sync_applier(&self, quarantined: u64, rebuilt: u64) {
        for (event, total) in [("quarantined", quarantined), ("rebuilt", rebuilt)] {
            let c = self.applier.with_label_values(&[event]);
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// The store's reachability and the reads answered without it since start.
    pub fn sync_store(&self, down: bool, fallback_reads: u64) {
        self.store_up.set(i64::from(!down));
        self.store_fallback
            .inc_by(fallback_reads.saturating_sub(self.store_fallback.get()));
    }

    /// A catch-up made changes searchable, the oldest acknowledged `delay` ago.
    pub fn searchable_after(&self, delay: Duration) {
        self.searchable.observe(delay.as_secs_f64());
    }

    pub fn request(&self, transport: &str, route: &str, code: &str, took: Duration) {
        if !matches!(
            route,
            "/healthz" | "/readyz" | "/metrics" | "/v1/stats" | "LiveStats"
        ) && !route.starts_with("/admin")
            && let Ok(mut recent) = self.recent.lock()
        {
            recent.push(std::time::Instant::now(), took);
        }
        self.requests
            .with_label_values(&[transport, route, code])
            .observe(took.as_secs_f64());
    }

    pub fn stage(&self, stage: &str, took: Duration) {
        self.stages
            .with_label_values(&[stage])
            .observe(took.as_secs_f64());
    }

    pub fn stages(&self, t: &SearchTimings) {
        for (stage, us) in [
            ("bm25", t.bm25_us),
            ("ann", t.ann_us),
            ("fuse", t.fuse_us),
            ("hydrate", t.hydrate_us),
        ] {
            if us > 0 {
                self.stage(stage, Duration::from_micros(us));
            }
        }
    }

    pub fn denied(&self, code: Code) {
        if matches!(
            code,
            Code::Unauthenticated | Code::NotFound | Code::PermissionDenied | Code::RateLimited
        ) {
            self.denied.with_label_values(&[code.as_str()]).inc();
        }
    }

    pub fn cache(&self, cache: &str, hit: bool) {
        self.cache
            .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
            .inc();
    }

    pub fn webhook(&self, source: &str, verified: bool) {
        self.webhooks
            .with_label_values(&[source, if verified { "ok" } else { "bad_signature" }])
            .inc();
    }

    /// A shop sync's end: its outcome, what it did to how many products, how long it took.
    pub fn shop_sync(&self, kind: &str, outcome: &str, changes: &[(&str, usize)], took: Duration) {
        self.shop_syncs.with_label_values(&[kind, outcome]).inc();
        for (change, n) in changes {
            self.shop_products
                .with_label_values(&[change])
                .inc_by(*n as u64);
        }
        self.shop_duration
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }

    /// A shop sync's Admin API calls.
    pub fn shop_calls(&self, sent: u64, throttled: u64, retried: u64) {
        for (outcome, n) in [
            ("sent", sent),
            ("throttled", throttled),
            ("retried", retried),
        ] {
            self.shop_calls.with_label_values(&[outcome]).inc_by(n);
        }
    }

    pub fn set_lag(&self, changes: u64) {
        self.lag.set(changes.min(i64::MAX as u64) as i64);
    }

    /// The text exposition format.
    /// Requests in the last minute (API requests on both transports; not health probes, metrics
    /// or the admin page's own files and polls): count, per second, median and 99th percentile.
    pub fn recent(&self) -> RecentFigures {
        let now = std::time::Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return RecentFigures::default();
        };
        recent.expire(now);
        let mut took: Vec<f64> = recent.entries.iter().map(|(_, t)| *t).collect();
        took.sort_by(f64::total_cmp);
        let at = |q: f64| {
            took.get(((took.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let window = now.duration_since(recent.since).min(WINDOW).as_secs_f64();
        RecentFigures {
            requests_last_minute: took.len() as u64,
            qps: if window > 0.0 {
                took.len() as f64 / window.max(1.0)
            } else {
                0.0
            },
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

const WINDOW: Duration = Duration::from_secs(60);
/// At most this many latencies are kept (the oldest go first under a flood).
const RECENT_CAP: usize = 200_000;

struct Recent {
    since: std::time::Instant,
    /// (when, milliseconds)
    entries: std::collections::VecDeque<(std::time::Instant, f64)>,
}

impl Recent {
    fn push(&mut self, at: std::time::Instant, took: Duration) {
        self.expire(at);
        if self.entries.len() >= RECENT_CAP {
            self.entries.pop_front();
        }
        self.entries.push_back((at, took.as_secs_f64() * 1e3));
    }

    fn expire(&mut self, now: std::time::Instant) {
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.entries.pop_front();
        }
    }
}

/// The last minute's requests.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct RecentFigures {
    /// Requests answered in the last 60 seconds (health, metrics and admin page requests not
    /// counted).
    pub requests_last_minute: u64,
    /// Those requests per second.
    pub qps: f64,
    /// Their median latency, in milliseconds.
    pub p50_ms: f64,
    /// Their 99th-percentile latency, in milliseconds.
    pub p99_ms: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
