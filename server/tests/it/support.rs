//! What the server's integration tests share: the `dartmouth` binary run as a CLI and as a
//! server on loopback, HTTP (ureq) and gRPC (tonic) calls, Shopify signatures and JWTs, and
//! the help-centre fixture with a principal and a key per role.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dartmouth_server::proto::retrieval_client::RetrievalClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

pub const JWT_SECRET: &str = "a-test-secret-that-is-at-least-32-bytes";
/// The shop's webhook signing secret, passed to the server in this variable.
pub const SHOPIFY_SECRET: &str = "shpss_a-test-shop-secret";
pub const SHOPIFY_SECRET_ENV: &str = "DARTMOUTH_TEST_SHOPIFY_SECRET";

/// `dartmouth --data-dir DATA ARGS…`, which must succeed; its standard output.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli_run(data, args);
    assert!(ok, "dartmouth {args:?}: {err}");
    out
}

/// The binary under test: this build's, or `DARTMOUTH_TEST_BIN` (to run these tests against
/// another build, an older one among them).
pub fn binary() -> PathBuf {
    std::env::var_os("DARTMOUTH_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_dartmouth")),
        PathBuf::from,
    )
}

/// `dartmouth --data-dir DATA ARGS…`: (succeeded, stdout, stderr).
pub fn cli_run(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A new key made by the CLI (`key create ARGS…`): its secret.
pub fn key_with(data: &Path, args: &[&str]) -> String {
    let mut all = vec!["key", "create"];
    all.extend_from_slice(args);
    let out = cli(data, &all);
    out.split_whitespace()
        .find(|w| w.starts_with("dk_") && w.len() > 40)
        .unwrap()
        .to_string()
}

pub fn key_for(data: &Path, principal: &str) -> String {
    key_with(data, &["--principal", principal])
}

pub struct Server {
    child: Child,
    pub http: String,
    pub grpc: String,
    _dir: Option<tempfile::TempDir>,
    pub data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dartmouth serve` on loopback ports over `data` (which `dir`, kept alive with the server,
/// holds), with JWTs and a Shopify secret configured and a 20 ms applier; `extra` flags last.
pub fn start(dir: tempfile::TempDir, data: PathBuf, extra: &[&str]) -> Server {
    let mut s = start_on(&data, extra);
    s._dir = Some(dir);
    s
}

/// [`start`] for a data directory the caller keeps.
pub fn start_on(data: &Path, extra: &[&str]) -> Server {
    start_with_env(data, extra, &[])
}

/// `start_on` with environment variables for the server process.
pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    spawn(data, extra, env, Stdio::inherit())
}

/// `start_with_env` logging everything (`DARTMOUTH_LOG=trace`) to the file `log`.
pub fn start_logged(data: &Path, extra: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
    let mut env = env.to_vec();
    env.push(("DARTMOUTH_LOG", "trace"));
    let file = std::fs::File::create(log).unwrap();
    spawn(data, extra, &env, Stdio::from(file))
}

fn spawn(data: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
    let mut child = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
            "--jwt-issuer",
            "dk-test",
            "--jwt-audience",
            "dartmouth",
            "--jwt-hs256-secret",
            JWT_SECRET,
        ])
        // A 20 ms applier unless the test sets its own.
        .args(if extra.contains(&"--apply-interval-ms") {
            &[][..]
        } else {
            &["--apply-interval-ms", "20"][..]
        })
        .args(extra)
        .env(SHOPIFY_SECRET_ENV, SHOPIFY_SECRET)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} address in {line:?}"))
            .to_string()
    };
    let tls = line.split_whitespace().any(|w| w == "tls=on");
    let scheme = if tls { "https" } else { "http" };
    let server = Server {
        http: format!("{scheme}://{}", addr("http")),
        grpc: format!("{scheme}://{}", addr("grpc")),
        child,
        _dir: None,
        data: data.to_path_buf(),
    };
    if tls {
        return server; // its test waits with a client that trusts its certificate
    }
    // Ready once the applier has run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&server, "GET", "/readyz", None, None).0 != 200 {
        assert!(Instant::now() < deadline, "server never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// (status, JSON body or the raw text as a string)
pub fn call(
    s: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, body, _) = call_full(s, method, path, key, body);
    (status, body)
}

/// (status, JSON body or the raw text as a string, Retry-After)
pub fn call_full(
    s: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, Value, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{}{path}", s.http);
    let auth = key.map(|k| format!("Bearer {k}"));
    let response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = agent.delete(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("PATCH", b) => {
            let mut r = agent.patch(&url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(b.unwrap_or("").as_bytes())
        }
        (_, b) => {
            let mut r = agent.post(&url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(b.unwrap_or("").as_bytes())
        }
    };
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let content_type = content_type(&response);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    crate::openapi::check_answer(method, path, status, content_type.as_deref(), &value);
    (status, value, retry)
}

/// A POST with exactly these headers and raw body bytes.
pub fn post_raw(s: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut r = agent.post(format!("{}{path}", s.http));
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    let mut response = r.send(body).unwrap();
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    crate::openapi::check_answer("POST", path, status, content_type.as_deref(), &value);
    (status, value)
}

/// An answer's `Content-Type`.
pub fn content_type(response: &ureq::http::Response<ureq::Body>) -> Option<String> {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// base64(HMAC-SHA256(body, secret)), as Shopify signs a webhook.
pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A signed Shopify webhook delivery.
pub fn webhook(s: &Server, domain: &str, topic: &str, payload: &Value) -> (u16, Value) {
    webhook_delivery(s, domain, topic, None, payload)
}

/// A signed Shopify webhook delivery with its `X-Shopify-Webhook-Id`.
pub fn webhook_delivery(
    s: &Server,
    domain: &str,
    topic: &str,
    id: Option<&str>,
    payload: &Value,
) -> (u16, Value) {
    let body = payload.to_string();
    let signature = shopify_signature(SHOPIFY_SECRET, body.as_bytes());
    let mut headers = vec![
        ("X-Shopify-Topic", topic),
        ("X-Shopify-Hmac-Sha256", signature.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(id) = id {
        headers.push(("X-Shopify-Webhook-Id", id));
    }
    post_raw(
        s,
        &format!("/v1/webhooks/shopify/{domain}"),
        &headers,
        body.as_bytes(),
    )
}

pub fn jwt(sub: &str, exp_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"sub": sub, "iss": "dk-test", "aud": "dartmouth", "exp": now + exp_offset});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs256".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn channel(s: &Server) -> Channel {
    Channel::from_shared(s.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn grpc_client(s: &Server) -> RetrievalClient<Channel> {
    RetrievalClient::new(channel(s).await)
}

pub fn with_key<T>(msg: T, key: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(k) = key {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    r
}

/// The value of one Prometheus sample line (`name{labels} value`) of `/metrics`, 0 if absent.
pub fn metric(s: &Server, line_start: &str) -> f64 {
    let (_, m) = call(s, "GET", "/metrics", None, None);
    m.as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `f` every 20 ms until it holds or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two domains (help, secret) with the sample help centre; principals and keys per role.
pub fn setup() -> (tempfile::TempDir, PathBuf, Keys) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    let sample = sample.to_str().unwrap();
    for d in ["help", "secret", "scratch", "scratch-grpc"] {
        cli(&data, &["domain", "create", d, "--embedder", "fake"]);
    }
    cli(&data, &["index", "--domain", "help", sample]);
    cli(&data, &["index", "--domain", "secret", sample]);
    for (p, domain, role) in [
        ("reader", "help", "read"),
        ("writer", "help", "write"),
        ("other", "secret", "read"),
    ] {
        cli(&data, &["principal", "create", p, "--kind", "agent"]);
        cli(&data, &["grant", p, domain, role]);
    }
    // The end user agents act for with delegated tokens.
    cli(&data, &["principal", "create", "enduser", "--kind", "user"]);
    cli(&data, &["grant", "enduser", "help", "read"]);
    let keys = Keys {
        reader: key_for(&data, "reader"),
        writer: key_for(&data, "writer"),
        other: key_for(&data, "other"),
        admin: key_for(&data, "admin"),
        // The superuser's key restricted to one domain: an admin of help, no superuser.
        restricted: key_with(&data, &["--principal", "admin", "--domain", "help"]),
        expiring: key_with(&data, &["--principal", "reader", "--expires-in", "1h"]),
        // Spare keys of `writer` for the matrix's revocations (HTTP, gRPC), by their ids.
        spare: [0, 1].map(|_| key_for(&data, "writer")[..11].to_string()),
    };
    (dir, data, keys)
}

pub struct Keys {
    pub reader: String,
    pub writer: String,
    pub other: String,
    pub admin: String,
    pub restricted: String,
    pub expiring: String,
    pub spare: [String; 2],
}

/// A `multipart/form-data` body of files (name, bytes) and its Content-Type.
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "dk-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
