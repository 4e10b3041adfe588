//! Prometheus metrics: per-route latency, per-stage timings, denials, cache hits, webhook
//! signature checks, applier lag (in changes, and in seconds from acknowledgement to searchable).
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
    requests: HistogramVec,
    stages: HistogramVec,
    denied: IntCounterVec,
    cache: IntCounterVec,
    webhooks: IntCounterVec,
    lag: IntGauge,
    searchable: Histogram,
    applier: IntCounterVec,
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
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(applier.clone()),
            Box::new(stages.clone()),
            Box::new(denied.clone()),
            Box::new(cache.clone()),
            Box::new(webhooks.clone()),
            Box::new(lag.clone()),
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
            searchable,
            applier,
        }
    }

    /// Brings the applier's event counters up to the totals counted since start.
    pub fn sync_applier(&self, quarantined: u64, rebuilt: u64) {
        for (event, total) in [("quarantined", quarantined), ("rebuilt", rebuilt)] {
            let c = self.applier.with_label_values(&[event]);
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// A catch-up made changes searchable, the oldest acknowledged `delay` ago.
    pub fn searchable_after(&self, delay: Duration) {
        self.searchable.observe(delay.as_secs_f64());
    }

    pub fn request(&self, transport: &str, route: &str, code: &str, took: Duration) {
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

    pub fn set_lag(&self, changes: u64) {
        self.lag.set(changes.min(i64::MAX as u64) as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
