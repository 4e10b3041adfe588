//! The service in process: a temporary SQLite store and data directory, fake embedders (and any
//! reranker a test injects), called directly or through `http::router` with
//! `tower::ServiceExt::oneshot` — no process, no socket, so a failure names its route and case.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use dartmouth_domains::{Caller, PrincipalKind, Role, Store};
use dartmouth_engine::embed::Reranker;
use dartmouth_server::models::{Loaded, ModelArgs};
use dartmouth_server::service::{
    DomainInput, GrantInput, IngestDocument, IngestInput, KeyInput, Limits, PrincipalInput,
    ReadMode, SearchInput, SearchOutput, Service, ServiceConfig,
};
use serde_json::Value;
use tower::ServiceExt as _;

pub struct InProcess {
    pub rt: tokio::runtime::Runtime,
    pub svc: Arc<Service>,
    pub admin: Caller,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// A service over a new store and data directory, with `rerankers` loaded already.
    pub fn new(rerankers: &[(&str, Arc<dyn Reranker>)]) -> InProcess {
        InProcess::with_limits(rerankers, Limits::default())
    }

    pub fn with_limits(rerankers: &[(&str, Arc<dyn Reranker>)], limits: Limits) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut preloaded = Loaded::default();
        for (id, r) in rerankers {
            preloaded = preloaded.with_reranker(id, Arc::clone(r));
        }
        let svc = rt.block_on(async {
            let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
            Arc::new(
                Service::new(ServiceConfig {
                    store,
                    shards: Arc::new(dartmouth_engine::Shards::open(dir.path()).unwrap()),
                    models: ModelArgs {
                        models_dir: std::env::var_os("DARTMOUTH_MODELS_DIR").map(Into::into),
                        ort_library: std::env::var_os("ORT_DYLIB_PATH").map(Into::into),
                        openai_url: None,
                        openai_key: None,
                    },
                    preloaded,
                    jwt: None,
                    rate_limits: Default::default(),
                    limits,
                    embedding_cache_bytes: 1 << 20,
                    result_cache_bytes: 0,
                    shopify: Vec::new(),
                    read_mode: ReadMode::CaughtUp,
                    placement: None,
                    snapshot_dir: dir.path().join("snapshots"),
                    snapshot_key: None,
                })
                .unwrap(),
            )
        });
        svc.set_ready();
        let admin = rt.block_on(svc.local_caller(None)).unwrap();
        let router = dartmouth_server::http::router(Arc::clone(&svc));
        InProcess {
            rt,
            svc,
            admin,
            router,
            _dir: dir,
        }
    }

    /// A domain of the fake embedder (of `dim`, default 384) holding `docs` (id, text).
    pub fn domain(&self, name: &str, embedder: &str, dim: Option<usize>, docs: &[(&str, &str)]) {
        let input = DomainInput {
            name: name.into(),
            embedder: Some(embedder.into()),
            dim,
            ..DomainInput::default()
        };
        self.rt
            .block_on(self.svc.create_domain(&self.admin, input))
            .unwrap();
        if docs.is_empty() {
            return;
        }
        let documents = docs
            .iter()
            .map(|(id, text)| IngestDocument {
                id: (*id).into(),
                title: String::new(),
                text: (*text).into(),
                url: None,
                attributes: Default::default(),
            })
            .collect();
        self.rt
            .block_on(
                self.svc
                    .ingest(&self.admin, name, IngestInput { documents }),
            )
            .unwrap();
    }

    /// A principal of `kind` with `grants` (domain, role).
    pub fn principal(&self, name: &str, kind: PrincipalKind, grants: &[(&str, Role)]) {
        let principal = PrincipalInput {
            name: name.into(),
            kind,
        };
        self.rt
            .block_on(self.svc.create_principal(&self.admin, principal))
            .unwrap();
        for (d, role) in grants {
            let grant = GrantInput {
                principal: name.into(),
                domain: (*d).into(),
                role: *role,
            };
            self.rt
                .block_on(self.svc.grant(&self.admin, grant))
                .unwrap();
        }
    }

    /// A principal that may read `domains`, as the local operator acting for it.
    pub fn reader(&self, name: &str, domains: &[&str]) -> Caller {
        let grants: Vec<(&str, Role)> = domains.iter().map(|d| (*d, Role::Read)).collect();
        self.principal(name, PrincipalKind::Agent, &grants);
        self.rt.block_on(self.svc.local_caller(Some(name))).unwrap()
    }

    /// A new key of `principal` (optionally restricted to `domains` and to `role`): its secret.
    pub fn key(&self, principal: &str, domains: Option<&[&str]>, role: Option<Role>) -> String {
        let input = KeyInput {
            principal: principal.into(),
            domains: domains.map(|d| d.iter().map(|s| s.to_string()).collect()),
            expires_in: None,
            role,
        };
        self.rt
            .block_on(self.svc.create_key(&self.admin, input))
            .unwrap()
            .secret
    }

    pub fn search(
        &self,
        caller: &Caller,
        input: SearchInput,
    ) -> Result<SearchOutput, dartmouth_server::error::ApiError> {
        self.rt.block_on(self.svc.search(caller, input))
    }

    /// One HTTP request through the router: its status and JSON body (`Null` when empty, a
    /// string when not JSON), checked against the OpenAPI document.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        if let Some(k) = key {
            headers.push(("Authorization", format!("Bearer {k}")));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.raw(
            method,
            path,
            &headers,
            body.unwrap_or_default().as_bytes().to_vec(),
        )
    }

    /// One HTTP request with these headers and body bytes.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Body::from(body)).unwrap();
        self.rt.block_on(async {
            let res = self.router.clone().oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            // Every answer checked against the OpenAPI document, as over the wire.
            crate::openapi::check_answer(method, path, status, content_type.as_deref(), &value);
            (status, value)
        })
    }

    /// Files (name, bytes) in one multipart upload to `path`.
    pub fn upload(&self, path: &str, key: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
        let (content_type, body) = crate::support::multipart(files);
        let auth = format!("Bearer {key}");
        self.raw(
            "POST",
            path,
            &[("Authorization", &auth), ("Content-Type", &content_type)],
            body,
        )
    }

    /// The files of a directory in one multipart upload to a domain.
    pub fn upload_dir(&self, domain: &str, key: &str, dir: &Path) {
        let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let (status, out) = self.upload(&format!("/v1/domains/{domain}/files"), key, &refs);
        assert_eq!(status, 200, "{out}");
    }
}

/// The keys of the help-centre fixture, one per role.
pub struct Keys {
    pub reader: String,
    pub writer: String,
    pub other: String,
    pub admin: String,
    /// The superuser's key restricted to `help`: an admin of help, no superuser.
    pub restricted: String,
}

/// The help-centre fixture in process: `help` and `secret` holding the sample help centre,
/// an empty `scratch`; `reader` (help, read), `writer` (help, write), `other` (secret, read).
pub fn help_centre() -> (InProcess, Keys) {
    let p = InProcess::new(&[]);
    for d in ["help", "secret", "scratch"] {
        p.domain(d, "fake", None, &[]);
    }
    for (name, domain, role) in [
        ("reader", "help", Role::Read),
        ("writer", "help", Role::Write),
        ("other", "secret", Role::Read),
    ] {
        p.principal(name, PrincipalKind::Agent, &[(domain, role)]);
    }
    let admin = p.key("admin", None, None);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample/help-centre");
    p.upload_dir("help", &admin, &sample);
    p.upload_dir("secret", &admin, &sample);
    let keys = Keys {
        reader: p.key("reader", None, None),
        writer: p.key("writer", None, None),
        other: p.key("other", None, None),
        restricted: p.key("admin", Some(&["help"]), None),
        admin,
    };
    (p, keys)
}

/// [`help_centre`] with `writer` also a writer of `scratch`.
pub fn help_centre_with_scratch_writer() -> (InProcess, Keys) {
    let (p, keys) = help_centre();
    let grant = GrantInput {
        principal: "writer".into(),
        domain: "scratch".into(),
        role: Role::Write,
    };
    p.rt.block_on(p.svc.grant(&p.admin, grant)).unwrap();
    (p, keys)
}

/// The error message of a JSON error body.
pub fn message(reply: &Value) -> &str {
    reply["error"]["message"].as_str().unwrap_or_default()
}
