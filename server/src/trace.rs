//! Request and trace ids: every HTTP request and gRPC call runs in a span carrying its request
//! id (`x-request-id`, or made) and its trace id — a W3C `traceparent`'s when the caller sent one,
//! so the service's log lines join the caller's trace; a new one otherwise. With
//! `DARTMOUTH_LOG_FORMAT=json` every log line is a JSON object with both ids. With
//! `--otlp-endpoint` the spans go to an OpenTelemetry collector over OTLP/gRPC: the request's
//! span continues the caller's trace, its stages (auth, embed, bm25, ann, fuse, rerank,
//! hydrate) are its children, and the logged trace id is the exported one.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use axum::http::HeaderMap;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// Where spans are exported: a collector's OTLP/gRPC endpoint, checked at start-up.
#[derive(Clone, Debug)]
pub struct Otlp {
    endpoint: String,
    /// The CA an `https://` endpoint is verified against (PEM); the public roots otherwise.
    ca: Option<Vec<u8>>,
}

impl Otlp {
    /// `endpoint` must be an `http://` or `https://` URL with a host; `ca` a readable PEM
    /// file holding a certificate, for an `https://` endpoint.
    pub fn new(endpoint: &str, ca: Option<PathBuf>) -> Result<Self> {
        let uri: axum::http::Uri = endpoint
            .parse()
            .with_context(|| format!("--otlp-endpoint `{endpoint}`: not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("--otlp-endpoint `{endpoint}`: the scheme must be http:// or https://"),
        };
        if uri.host().is_none_or(str::is_empty) {
            bail!("--otlp-endpoint `{endpoint}`: no host");
        }
        let ca = match ca {
            Some(path) if !https => bail!(
                "--otlp-ca {}: only for an https:// endpoint, not `{endpoint}`",
                path.display()
            ),
            Some(path) => {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("--otlp-ca {}: cannot read", path.display()))?;
                let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                    .collect::<Result<Vec<rustls::pki_types::CertificateDer<'_>>, _>>()
                    .map_err(|e| anyhow::anyhow!("--otlp-ca {}: {e}", path.display()))?;
                if certs.is_empty() {
                    bail!("--otlp-ca {}: no PEM certificate in it", path.display());
                }
                Some(pem)
            }
            None => None,
        };
        Ok(Self {
            endpoint: endpoint.to_string(),
            ca,
        })
    }
}

/// Logging (and span export) for the life of the process; dropping it flushes the spans not
/// yet exported.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "spans not exported at shutdown");
        }
    }
}

/// The crates whose spans are exported: the service's own, at info and above (the
/// dependencies' spans stay out of the trace).
fn exported() -> tracing_subscriber::filter::Targets {
    let info = tracing::Level::INFO;
    tracing_subscriber::filter::Targets::new()
        .with_target("dartmouth_server", info)
        .with_target("dartmouth_views", info)
        .with_target("dartmouth_engine", info)
}

/// Installs the process's logging: text or JSON lines on stderr (`DARTMOUTH_LOG_FORMAT`),
/// filtered by `DARTMOUTH_LOG` (default `warn`); and, given `otlp`, span export over
/// OTLP/gRPC in batches (the `OTEL_BSP_*` variables tune them). Call it once, from within a
/// Tokio runtime when exporting.
pub fn init(otlp: Option<&Otlp>) -> Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DARTMOUTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Text for people, or one JSON object a line for a log pipeline: each with the fields of
    // the spans it is in (the request and trace ids among them).
    let logs = match std::env::var("DARTMOUTH_LOG_FORMAT").as_deref() {
        Ok("json") => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        Ok("text") | Err(std::env::VarError::NotPresent) => logs.with_filter(filter).boxed(),
        Ok(other) => bail!("DARTMOUTH_LOG_FORMAT: `{other}` is neither `text` nor `json`"),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("DARTMOUTH_LOG_FORMAT: not UTF-8; `text` or `json`")
        }
    };
    let provider = otlp.map(exporter).transpose()?;
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("dartmouth"))
            .with_filter(exported())
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .context("logging was set up twice")?;
    Ok(Telemetry { provider })
}

fn exporter(otlp: &Otlp) -> Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(otlp.endpoint.clone());
    if otlp.endpoint.starts_with("https://") {
        let tls = tonic::transport::ClientTlsConfig::new();
        builder = builder.with_tls_config(match &otlp.ca {
            Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => tls.with_webpki_roots(),
        });
    }
    let exporter = builder
        .build()
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint `{}`: {e}", otlp.endpoint))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "dartmouth".into());
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

/// An OTLP/gRPC collector that only counts the spans it is sent (`bench load --otlp`, where
/// the exporter's cost is measured, not a collector's): serves on `addr` until the runtime
/// stops.
pub fn span_counter(addr: std::net::SocketAddr) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse, trace_service_server,
    };
    #[derive(Clone)]
    struct Counter(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    #[tonic::codegen::async_trait]
    impl trace_service_server::TraceService for Counter {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize = request
                .into_inner()
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.0
                .fetch_add(spans, std::sync::atomic::Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }
    let count = std::sync::Arc::default();
    let service =
        trace_service_server::TraceServiceServer::new(Counter(std::sync::Arc::clone(&count)));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(addr),
    );
    count
}

/// Joins `span` (a request's, not yet entered) to the caller's trace when `headers` carry a
/// `traceparent`, and records in its `trace_id` field the trace it belongs to: the exported
/// one when spans are exported, the caller's or a new one otherwise.
pub fn join(span: &tracing::Span, headers: &HeaderMap) {
    let parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    if let Some(parent) = &parent {
        let cx = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            parent.trace,
            parent.span,
            parent.flags,
            true,
            TraceState::default(),
        ));
        // Fails only when no span is exported (no layer, or this span filtered out).
        let _ = span.set_parent(cx);
    }
    let exported = span.context().span().span_context().trace_id();
    let trace = if exported != TraceId::INVALID {
        exported
    } else {
        parent.map_or_else(|| TraceId::from(rand::random::<u128>()), |p| p.trace)
    };
    span.record("trace_id", tracing::field::display(format!("{trace:032x}")));
}

/// The parts of a `traceparent` the trace continues from.
struct Parent {
    trace: TraceId,
    span: SpanId,
    flags: TraceFlags,
}

/// The request id a caller gave (`x-request-id`, 1 to 128 visible ASCII characters, no space:
/// it cannot forge a field of a text log line), or a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| (b'!'..=b'~').contains(&b))
        })
        .map_or_else(new_request_id, str::to_string)
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The caller's trace and span in a `traceparent` value, if it is well formed.
fn parse_traceparent(value: &str) -> Option<Parent> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let [version, trace, parent, flags, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let ok = hex(version, 2)
        && *version != "ff"
        // Version 00 has exactly four fields; later versions may add more.
        && (rest.is_empty() || *version != "00")
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    if !ok {
        return None;
    }
    Some(Parent {
        trace: TraceId::from_hex(trace).ok()?,
        span: SpanId::from_hex(parent).ok()?,
        // Only the sampled bit is defined; the rest must not be propagated as set.
        flags: TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1),
    })
}

/// The span of one gRPC call (tonic's `trace_fn`): its method, request id and trace id.
pub fn grpc_span(req: &axum::http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        method = %req.uri().path(),
        request_id = %request_id(req.headers()),
        trace_id = tracing::field::Empty,
    );
    join(&span, req.headers());
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace_of(value: &str) -> Option<String> {
        parse_traceparent(value).map(|p| format!("{:032x}", p.trace))
    }

    #[test]
    fn traceparents_are_read_as_the_recommendation_says() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_of(&format!("00-{t}-00f067aa0ba902b7-01")).as_deref(),
            Some(t)
        );
        assert_eq!(
            trace_of(&format!("01-{t}-00f067aa0ba902b7-01-extra")).as_deref(),
            Some(t)
        );
        for bad in [
            format!("00-{t}-00f067aa0ba902b7-01-extra"),
            format!("ff-{t}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{t}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", t.to_uppercase()),
            format!("00-{t}-00f067aa0ba902b7"),
            "garbage".to_string(),
        ] {
            assert_eq!(trace_of(&bad), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        // A request id that would add a field to a text log line is replaced.
        h.insert("x-request-id", "a status=200".parse().unwrap());
        assert_ne!(request_id(&h), "a status=200");
        h.insert("x-request-id", "req-1".parse().unwrap());
        assert_eq!(request_id(&h), "req-1");
    }
}
