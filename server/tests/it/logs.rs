//! What the server writes about itself: JSON log lines carrying each request's request id and
//! trace id (a caller's W3C `traceparent` continued) over HTTP and gRPC; and secrets — API keys,
//! the JWT secret and tokens, the webhook secret, a shop's token, the snapshot key — never in a
//! log line at any level, an answer, an audit row, the metrics or a snapshot; and spans exported
//! over OTLP/gRPC to a collector (a receiver of the real protocol here), continuing a caller's
//! trace.

use std::path::Path;

use dartmouth_server::proto as pb;
use serde_json::{Value, json};

use crate::support::*;

/// The log's lines, each a JSON object (the test fails on any other line).
fn json_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// The `done` line of the request whose span has `request_id`.
fn done_line<'a>(lines: &'a [Value], request_id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| {
            l["message"] == "done"
                && l["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["request_id"] == request_id))
        })
        .unwrap_or_else(|| panic!("no `done` line for {request_id}"))
}

fn span_of<'a>(line: &'a Value, name: &str) -> &'a Value {
    line["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} span in {line}"))
}

#[test]
fn json_log_lines_carry_the_request_and_trace_ids_over_http_and_grpc() {
    let (dir, data, keys) = setup();
    let log = dir.path().join("server.log");
    let s = start_logged(&data, &[], &[("DARTMOUTH_LOG_FORMAT", "json")], &log);
    let (http_trace, grpc_trace) = (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
    );
    let auth = format!("Bearer {}", keys.reader);
    let traceparent = format!("00-{http_trace}-00f067aa0ba902b7-01");
    let (status, _) = post_raw(
        &s,
        "/v1/search",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("traceparent", &traceparent),
            ("x-request-id", "req-http-1"),
        ],
        br#"{"query":"refund","domains":["help"]}"#,
    );
    assert_eq!(status, 200);
    // Without a traceparent (or with a malformed one): a trace id of its own.
    post_raw(
        &s,
        "/v1/search",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("traceparent", "00-not-a-trace-01"),
            ("x-request-id", "req-http-2"),
        ],
        br#"{"query":"refund","domains":["help"]}"#,
    );
    let rt = runtime();
    rt.block_on(async {
        let mut request = with_key(
            pb::SearchRequest {
                query: "refund".into(),
                domains: vec!["help".into()],
                ..Default::default()
            },
            Some(&keys.reader),
        );
        let md = request.metadata_mut();
        md.insert(
            "traceparent",
            format!("00-{grpc_trace}-b7ad6b7169203331-01")
                .parse()
                .unwrap(),
        );
        md.insert("x-request-id", "req-grpc-1".parse().unwrap());
        grpc_client(&s).await.search(request).await.unwrap();
    });
    drop(s);
    let lines = json_lines(&log);
    assert!(lines.len() > 10, "{} lines", lines.len());
    let http = done_line(&lines, "req-http-1");
    assert_eq!(span_of(http, "http")["trace_id"], http_trace, "{http}");
    assert_eq!(
        (&http["level"], &http["status"]),
        (&json!("INFO"), &json!(200)),
        "{http}"
    );
    let own = &span_of(done_line(&lines, "req-http-2"), "http")["trace_id"];
    let own = own.as_str().unwrap();
    assert!(own.len() == 32 && own != http_trace, "{own}");
    let grpc = done_line(&lines, "req-grpc-1");
    let span = span_of(grpc, "grpc");
    assert_eq!(span["trace_id"], grpc_trace, "{grpc}");
    assert_eq!(span["method"], "/dartmouth.v1.Retrieval/Search", "{grpc}");
    assert_eq!(grpc["code"], "OK", "{grpc}");
}

#[test]
fn a_bad_log_format_stops_the_start_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary())
        .args(["--data-dir"])
        .arg(tmp.path())
        .args(["domain", "list"])
        .env("DARTMOUTH_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DARTMOUTH_LOG_FORMAT: `yaml` is neither"),
        "{err}"
    );
}

fn record(answers: &mut Vec<String>, (status, body): (u16, Value)) {
    answers.push(format!("{status} {body}"));
}

/// Every secret the server holds or is shown, looked for in everything it writes: the log at
/// trace level (text and JSON), every answer, the audit log, the metrics and a snapshot.
#[test]
fn secrets_never_leak() {
    use base64::Engine as _;
    let (dir, data, keys) = setup();
    let snapshot_key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let shop_token = "shpat_0123456789abcdef0123456789abcdef";
    let wrong_key = "dk_wrongwrong_0123456789abcdef0123456789abcdef01234567";
    let jwt_token = jwt("reader", 600);
    // A shop that refuses every token (401), keeping what it was sent.
    let shop = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let shop_host = shop.local_addr().unwrap().to_string();
    let seen: std::sync::Arc<std::sync::Mutex<String>> = Default::default();
    {
        let seen = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in shop.incoming().flatten() {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 43\r\nConnection: close\r\n\r\n{\"errors\":\"[API] Invalid API key or acce\"}",
                );
            }
        });
    }
    let mut answers: Vec<String> = Vec::new();
    for format in ["text", "json"] {
        let log = dir.path().join(format!("server-{format}.log"));
        let hook = format!("help=writer={SHOPIFY_SECRET_ENV}");
        let s = start_logged(
            &data,
            &[
                "--snapshot-key-env",
                "SNAPSHOT_KEY",
                "--shopify-webhook",
                &hook,
                "--rate-limit",
                "0",
                "--ip-rate-limit",
                "0",
            ],
            &[
                ("DARTMOUTH_LOG_FORMAT", format),
                ("SNAPSHOT_KEY", &snapshot_key),
                ("SHOP_TOKEN", shop_token),
                ("DARTMOUTH_SHOPIFY_PLAIN_HOSTS", shop_host.as_str()),
            ],
            &log,
        );
        let search = r#"{"query":"refund","domains":["help"]}"#;
        for key in [
            keys.reader.as_str(),
            wrong_key,
            jwt_token.as_str(),
            "",
            "Basic abc",
        ] {
            record(
                &mut answers,
                call(&s, "POST", "/v1/search", Some(key), Some(search)),
            );
        }
        record(
            &mut answers,
            call(&s, "GET", "/v1/keys", Some(&keys.admin), None),
        );
        record(
            &mut answers,
            call(
                &s,
                "POST",
                "/v1/keys",
                Some(&keys.admin),
                Some(r#"{"principal":"reader"}"#),
            ),
        );
        // A webhook with a wrong signature, and a signed one.
        record(
            &mut answers,
            webhook(&s, "help", "products/update", &json!({"id": 1})),
        );
        let payload = br#"{"id":9001,"title":"Leak mug","variants":[{"id":9002,"price":"3.00"}]}"#;
        let signature = shopify_signature(SHOPIFY_SECRET, payload);
        record(
            &mut answers,
            post_raw(
                &s,
                "/v1/webhooks/shopify/help",
                &[
                    ("X-Shopify-Topic", "products/update"),
                    ("X-Shopify-Hmac-Sha256", &signature),
                ],
                payload,
            ),
        );
        // A shop whose token is in SHOP_TOKEN, refusing it: its sync fails.
        record(
            &mut answers,
            call(
                &s,
                "POST",
                "/v1/domains/scratch/shopify/connection",
                Some(&keys.admin),
                Some(&json!({"shop": shop_host, "token_env": "SHOP_TOKEN"}).to_string()),
            ),
        );
        let (status, task) = call(
            &s,
            "POST",
            "/v1/domains/scratch/shopify/sync",
            Some(&keys.admin),
            Some(r#"{"full":true}"#),
        );
        answers.push(format!("{status} {task}"));
        if let Some(id) = task["id"].as_str() {
            eventually(30, || {
                let (_, t) = call(
                    &s,
                    "GET",
                    &format!("/v1/tasks/{id}"),
                    Some(&keys.admin),
                    None,
                );
                let over = matches!(t["status"].as_str(), Some("failed" | "succeeded"));
                answers.push(t.to_string());
                over
            });
        }
        record(
            &mut answers,
            call(
                &s,
                "POST",
                "/v1/snapshots",
                Some(&keys.admin),
                Some(&format!(r#"{{"name":"leak-{format}","encrypt":true}}"#)),
            ),
        );
        record(
            &mut answers,
            call(
                &s,
                "POST",
                "/v1/snapshots",
                Some(&keys.admin),
                Some(&format!(r#"{{"name":"plain-{format}"}}"#)),
            ),
        );
        record(
            &mut answers,
            call(&s, "GET", "/v1/audit?limit=1000", Some(&keys.admin), None),
        );
        record(&mut answers, call(&s, "GET", "/metrics", None, None));
        record(
            &mut answers,
            call(&s, "GET", "/v1/stats", Some(&keys.admin), None),
        );
        drop(s);
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.len() > 1000,
            "the log at trace level holds little: {logged}"
        );
        answers.push(logged);
    }
    assert!(
        seen.lock().unwrap().contains(shop_token),
        "the shop was never sent the token, so its refusal proves nothing: {}",
        answers
            .iter()
            .filter(|a| a.contains("shop") || a.contains("task"))
            .map(|a| &a[..a.len().min(300)])
            .collect::<Vec<_>>()
            .join("\n")
    );
    let audit = cli(&data, &["audit", "--since", "1h", "--json"]);
    answers.push(audit);
    // Every file of every snapshot, plain ones included (they hold key hashes, not keys).
    let mut stack = vec![data.join("snapshots")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                answers
                    .push(String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned());
            }
        }
    }
    let secrets: Vec<(&str, &str)> = vec![
        ("the admin's key", &keys.admin),
        ("the reader's key", &keys.reader),
        ("the writer's key", &keys.writer),
        ("a wrong key presented", wrong_key),
        ("a JWT", &jwt_token),
        ("the JWT secret", JWT_SECRET),
        ("the webhook secret", SHOPIFY_SECRET),
        ("a shop's token", shop_token),
        ("the snapshot key", &snapshot_key),
    ];
    for (what, secret) in secrets {
        // The secret part of a key (after its public id) is what must never be written.
        let needle = secret
            .get(12..)
            .filter(|_| secret.starts_with("dk_"))
            .unwrap_or(secret);
        for text in &answers {
            assert!(
                !text.contains(needle),
                "{what} leaked into: {}",
                &text[..text.len().min(400)]
            );
        }
    }
}

/// An OTLP/gRPC trace receiver (the collector's protocol): keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<otlp::trace::v1::Span>>>);

mod otlp {
    pub use opentelemetry_proto::tonic::collector::trace::v1 as collector;
    pub use opentelemetry_proto::tonic::trace;
}

#[tonic::codegen::async_trait]
impl otlp::collector::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<otlp::collector::ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<otlp::collector::ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                kept.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(
            otlp::collector::ExportTraceServiceResponse::default(),
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    /// The spans of trace `trace` received so far.
    fn trace(&self, trace: &str) -> Vec<otlp::trace::v1::Span> {
        let kept = self.0.lock().unwrap();
        kept.iter()
            .filter(|s| hex(&s.trace_id) == trace)
            .cloned()
            .collect()
    }
}

/// Checks one request's trace: its root span (`root`) is the child of the caller's span
/// `parent`, every stage named is in the trace, and every span of it descends from the root
/// within the root's time.
fn check_trace(spans: &[otlp::trace::v1::Span], root: &str, parent: &str, stages: &[&str]) {
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let roots: Vec<_> = spans.iter().filter(|s| s.name == root).collect();
    assert_eq!(roots.len(), 1, "{names:?}");
    let top = roots[0];
    assert_eq!(hex(&top.parent_span_id), parent, "{names:?}");
    for stage in stages {
        assert!(names.contains(stage), "no {stage} span in {names:?}");
    }
    let by_id: std::collections::HashMap<Vec<u8>, &otlp::trace::v1::Span> =
        spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    for span in spans.iter().filter(|s| s.span_id != top.span_id) {
        let mut at = span;
        let mut hops = 0;
        while at.span_id != top.span_id {
            at = by_id.get(&at.parent_span_id).unwrap_or_else(|| {
                panic!("{}: its parent is not in the trace ({names:?})", span.name)
            });
            hops += 1;
            assert!(hops < 10, "{}: a cycle", span.name);
        }
        assert!(
            span.start_time_unix_nano >= top.start_time_unix_nano
                && span.end_time_unix_nano <= top.end_time_unix_nano,
            "{} outside {root}'s time",
            span.name
        );
    }
}

#[test]
fn spans_reach_an_otlp_collector_continuing_the_callers_trace() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let collector = Collector::default();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(
                otlp::collector::trace_service_server::TraceServiceServer::new(collector.clone()),
            )
            .serve(addr),
    );
    let (_dir, data, keys) = setup();
    let endpoint = format!("http://{addr}");
    let s = start_with_env(
        &data,
        &["--otlp-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let (http_trace, http_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let (grpc_trace, grpc_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let auth = format!("Bearer {}", keys.reader);
    let (status, _) = post_raw(
        &s,
        "/v1/search",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("traceparent", &format!("00-{http_trace}-{http_parent}-01")),
        ],
        br#"{"query":"refund policy","domains":["help"],"mode":"hybrid"}"#,
    );
    assert_eq!(status, 200);
    rt.block_on(async {
        let mut request = with_key(
            pb::SearchRequest {
                query: "reset my password".into(),
                domains: vec!["help".into()],
                ..Default::default()
            },
            Some(&keys.reader),
        );
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{grpc_trace}-{grpc_parent}-01").parse().unwrap(),
        );
        grpc_client(&s).await.search(request).await.unwrap();
    });
    let stages = ["auth", "embed", "bm25", "ann", "fuse", "hydrate"];
    let complete = |trace: &str| {
        let names: Vec<String> = collector.trace(trace).into_iter().map(|s| s.name).collect();
        stages.iter().all(|n| names.iter().any(|m| m == n))
    };
    assert!(
        eventually(30, || complete(http_trace) && complete(grpc_trace)),
        "spans received: {:?}",
        collector
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.name.clone(), hex(&s.trace_id)))
            .collect::<Vec<_>>()
    );
    check_trace(&collector.trace(http_trace), "http", http_parent, &stages);
    check_trace(&collector.trace(grpc_trace), "grpc", grpc_parent, &stages);
    drop(s);
}
