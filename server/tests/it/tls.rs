//! TLS on both listeners, with certificates made here (rcgen): HTTPS and gRPC over TLS with
//! verifying clients, plain text refused on the TLS ports, a wrong host refused by the client,
//! bad certificate files refused at start with the file named, and a certificate swapped under
//! load with no request failing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use serde_json::{Value, json};

use crate::support::*;
use dartmouth_server::proto as pb;

/// A certificate authority of the test's own.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names`, valid from `from` to `to` (years), with its key (PEM).
    fn server(&self, names: &[&str], from: i32, to: i32) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

impl Ca {
    /// A client certificate with this common name and, when given, this URI SAN; with its key.
    fn client(&self, cn: &str, uri: Option<&str>) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(u) = uri {
            params.subject_alt_names = vec![rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(u).unwrap(),
            )];
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS client that trusts only `ca` and presents `identity` (certificate, key; PEM).
fn agent_with(ca: &Ca, identity: Option<&(String, String)>) -> ureq::Agent {
    let root = ureq::tls::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    let mut tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])));
    if let Some((cert, key)) = identity {
        let cert = ureq::tls::Certificate::from_pem(cert.as_bytes()).unwrap();
        let key = ureq::tls::PrivateKey::from_pem(key.as_bytes()).unwrap();
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn write_pair(dir: &Path, stem: &str, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

/// An HTTPS client that trusts only `ca`.
fn agent(ca: &Ca) -> ureq::Agent {
    agent_with(ca, None)
}

fn get(agent: &ureq::Agent, url: &str, key: Option<&str>) -> Result<(u16, String), ureq::Error> {
    let mut req = agent.get(url);
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    let mut resp = req.call()?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_to_string()?))
}

fn post(agent: &ureq::Agent, url: &str, key: &str, body: &Value) -> (u16, Value) {
    let mut resp = agent
        .post(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_json().unwrap())
}

/// `https://127.0.0.1:P` → `https://localhost:P` (the name the certificates carry).
fn by_name(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

fn wait_ready(agent: &ureq::Agent, s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = get(agent, &format!("{}/readyz", by_name(&s.http)), None) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the TLS server never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 4] {
    [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]
}

#[test]
fn https_and_grpc_over_tls_with_verifying_clients() {
    let (dir, data, keys) = setup();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("dartmouth test ca");
    let (cert, key) = write_pair(
        certs.path(),
        "server",
        &ca.server(&["localhost"], 2020, 2090),
    );
    // Everything the server says at trace level goes to a file: the private key must not.
    let log = certs.path().join("server.log");
    let s = start_logged(&data, &tls_args(&cert, &key), &[], &log);
    assert!(s.http.starts_with("https://"), "{}", s.http);
    let https = agent(&ca);
    wait_ready(&https, &s);

    // A search over HTTPS, with the credential the plain-text tests use.
    let (status, found) = post(
        &https,
        &format!("{}/v1/search", by_name(&s.http)),
        &keys.reader,
        &json!({"query": "return policy", "domains": ["help"], "k": 3}),
    );
    assert_eq!(status, 200, "{found}");
    assert!(found["hits"].as_array().is_some(), "{found}");
    let (status, _) = get(&https, &format!("{}/v1/domains", by_name(&s.http)), None).unwrap();
    assert_eq!(
        status, 401,
        "a missing credential over TLS is refused as over plain text"
    );

    // Plain HTTP on the TLS port gets no answer.
    let plain = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let plain_url = s.http.replacen("https://", "http://", 1);
    assert!(
        get(&plain, &format!("{plain_url}/healthz"), None).is_err(),
        "plain text answered on the TLS port"
    );
    // A client that reaches the server by a name the certificate does not carry refuses it.
    let by_address = get(&https, &format!("{}/healthz", s.http), None);
    assert!(
        by_address.is_err(),
        "a certificate for `localhost` accepted for 127.0.0.1"
    );
    // A client that does not trust the CA refuses the certificate.
    let other = agent(&Ca::new("another ca"));
    assert!(get(&other, &format!("{}/healthz", by_name(&s.http)), None).is_err());

    // gRPC over TLS, verified against the CA, with the same credential.
    let rt = runtime();
    rt.block_on(async {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
            .domain_name("localhost");
        let channel = tonic::transport::Channel::from_shared(s.grpc.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = pb::retrieval_client::RetrievalClient::new(channel);
        let answer = client
            .search(with_key(
                pb::SearchRequest {
                    query: "return policy".into(),
                    domains: vec!["help".into()],
                    k: 3,
                    ..Default::default()
                },
                Some(&keys.reader),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.hits.len(), found["hits"].as_array().unwrap().len());
        // Without TLS the gRPC port does not serve.
        let plain =
            tonic::transport::Channel::from_shared(s.grpc.replacen("https://", "http://", 1))
                .unwrap()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(5))
                .connect()
                .await;
        if let Ok(channel) = plain {
            let refused = pb::retrieval_client::RetrievalClient::new(channel)
                .search(with_key(
                    pb::SearchRequest {
                        query: "x".into(),
                        ..Default::default()
                    },
                    Some(&keys.reader),
                ))
                .await;
            assert!(refused.is_err(), "plain-text gRPC answered on the TLS port");
        }
    });
    drop(s);
    drop(dir);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.len() > 1000,
        "the trace-level log holds little: {logged}"
    );
    let pem = std::fs::read_to_string(&key).unwrap();
    for line in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!logged.contains(line), "the TLS private key is in the log");
    }
}

/// Each bad pair stops the start with an error naming the file; nothing listens.
#[test]
fn bad_certificate_files_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = Ca::new("dartmouth test ca");
    let good = write_pair(dir.path(), "good", &ca.server(&["localhost"], 2020, 2090));
    let expired = write_pair(
        dir.path(),
        "expired",
        &ca.server(&["localhost"], 2001, 2002),
    );
    let future = write_pair(dir.path(), "future", &ca.server(&["localhost"], 2080, 2090));
    let other = write_pair(dir.path(), "other", &ca.server(&["localhost"], 2020, 2090));
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases: [(&str, &Path, &Path, &str); 6] = [
        ("expired", &expired.0, &expired.1, "expired"),
        ("not yet valid", &future.0, &future.1, "not valid before"),
        (
            "another certificate's key",
            &good.0,
            &other.1,
            "is not the key of the certificate",
        ),
        ("no certificate", &not_pem, &good.1, "no certificate in it"),
        ("no key", &good.0, &not_pem, "no private key in it"),
        ("a missing file", &missing, &good.1, "cannot read"),
    ];
    for (what, cert, key, says) in cases {
        let mut args = vec!["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"];
        args.extend(tls_args(cert, key));
        let (ok, stdout, stderr) = cli_run(&data, &args);
        assert!(!ok, "{what}: the server started");
        assert!(
            !stdout.contains("listening"),
            "{what}: it listened: {stdout}"
        );
        assert!(
            stderr.contains(says)
                && (stderr.contains(cert.to_str().unwrap())
                    || stderr.contains(key.to_str().unwrap())),
            "{what}: the error does not say `{says}` naming the file: {stderr}"
        );
    }
    // One without the other is refused by the flags.
    let (ok, _, stderr) = cli_run(&data, &["serve", "--tls-cert", good.0.to_str().unwrap()]);
    assert!(!ok && stderr.contains("--tls-key"), "{stderr}");
}

/// New certificate files are taken up without a restart (on change, and on SIGHUP), no
/// request failing meanwhile; bad new files leave the old pair serving.
#[test]
fn a_certificate_is_swapped_under_load_without_a_failed_request() {
    let (dir, data, keys) = setup();
    let certs = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old ca");
    let new_ca = Ca::new("new ca");
    let (cert, key) = write_pair(
        certs.path(),
        "server",
        &old_ca.server(&["localhost"], 2020, 2090),
    );
    // No rate limits: the load below is many times the default budget.
    let unlimited = ["--ip-rate-limit", "0", "--rate-limit", "0"];
    let s = start(
        dir,
        data,
        &[&tls_args(&cert, &key)[..], &unlimited].concat(),
    );
    let old_client = agent(&old_ca);
    wait_ready(&old_client, &s);
    let url = format!("{}/v1/search", by_name(&s.http));
    let body = json!({"query": "return policy", "domains": ["help"], "k": 3, "mode": "bm25"});

    // Load: clients that trust both CAs, each with its own connections, searching without
    // pause while the files change underneath.
    let both = {
        let roots = [old_ca.pem(), new_ca.pem()]
            .map(|p| ureq::tls::Certificate::from_pem(p.as_bytes()).unwrap());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots.to_vec())))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        agent
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            let (url, body, key) = (url.clone(), body.clone(), keys.reader.clone());
            let agent = both.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = agent
                        .post(&url)
                        .header("Authorization", format!("Bearer {key}"))
                        .header("Content-Type", "application/json")
                        .send(body.to_string())
                        .map(|r| r.status().as_u16() == 200);
                    if matches!(ok, Ok(true)) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // A fresh client (so a fresh connection and handshake) that trusts only `ca`.
    let served_by =
        |ca: &Ca| get(&agent(ca), &format!("{}/healthz", by_name(&s.http)), None).is_ok();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !served_by(&new_ca),
        "the new CA's certificate served before the swap"
    );

    // Bad files first: the old pair keeps serving.
    std::fs::write(&cert, "not a certificate").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(served_by(&old_ca), "bad files replaced the serving pair");

    // The new pair, written key first (a watcher may look between the two writes: the key
    // alone does not match the old certificate, so nothing is swapped until both are new).
    let (new_cert, new_key) = new_ca.server(&["localhost"], 2020, 2090);
    std::fs::write(&key, &new_key).unwrap();
    std::fs::write(&cert, &new_cert).unwrap();
    assert!(
        eventually(10, || served_by(&new_ca)),
        "the new certificate was not taken up"
    );
    assert!(
        !served_by(&old_ca),
        "the old certificate still served a new connection"
    );

    // SIGHUP reloads whatever the files' times say: a pair from the old CA written with the
    // files' previous modification times, which the watcher does not notice, then a signal.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_time, key_time) = (mtime(&cert), mtime(&key));
    let (again_cert, again_key) = old_ca.server(&["localhost"], 2020, 2090);
    for (path, pem, time) in [
        (&key, &again_key, key_time),
        (&cert, &again_cert, cert_time),
    ] {
        std::fs::write(path, pem).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        served_by(&new_ca),
        "the watcher reloaded files whose times did not change: this would not test SIGHUP"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        eventually(10, || served_by(&old_ca)),
        "SIGHUP did not reload the pair"
    );

    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(done > 50, "only {done} requests were made under the swaps");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across the swaps",
        done + failed
    );
}

/// Client certificates: required, a connection without one (or with one another CA signed)
/// never gets an answer; a verified certificate's URI SAN names the principal a request
/// without an Authorization header acts as — with that principal's grants, no more; a header
/// wins over the certificate; a certificate naming no principal is a 401; over gRPC too.
/// Optional, with the common name: a client without a certificate authenticates as before.
#[test]
fn client_certificates_gate_connections_and_name_principals() {
    let (dir, data, keys) = setup();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("dartmouth test ca");
    let (cert, key) = write_pair(
        certs.path(),
        "server",
        &ca.server(&["localhost"], 2020, 2090),
    );
    let clients = Ca::new("internal services");
    let client_ca = certs.path().join("clients.pem");
    std::fs::write(&client_ca, clients.pem()).unwrap();
    let reader = clients.client("svc-reader", Some("spiffe://corp/agents/reader"));
    let nobody = clients.client("svc-nobody", Some("spiffe://corp/agents/nobody"));
    let foreign = Ca::new("someone else").client("svc-reader", Some("spiffe://corp/agents/reader"));
    let mut args: Vec<&str> = tls_args(&cert, &key).to_vec();
    args.extend([
        "--tls-client-ca",
        client_ca.to_str().unwrap(),
        "--tls-client-principal",
        "san-uri:spiffe://corp/agents/",
    ]);
    let data_dir = data.clone();
    let s = start_on(&data_dir, &args);
    let as_reader = agent_with(&ca, Some(&reader));
    wait_ready(&as_reader, &s);
    let url = |path: &str| format!("{}{path}", by_name(&s.http));
    let search =
        |agent: &ureq::Agent, domain: &str, key: Option<&str>| -> Result<u16, ureq::Error> {
            let mut req = agent.post(&url("/v1/search"));
            if let Some(k) = key {
                req = req.header("Authorization", &format!("Bearer {k}"));
            }
            let resp = req
                .header("Content-Type", "application/json")
                .send(json!({"query": "refund", "domains": [domain]}).to_string())?;
            Ok(resp.status().as_u16())
        };
    // Required: no certificate, or one of another CA: no connection at all.
    assert!(search(&agent_with(&ca, None), "help", Some(&keys.admin)).is_err());
    assert!(search(&agent_with(&ca, Some(&foreign)), "help", Some(&keys.admin)).is_err());
    // The certificate's principal, with its grants (reader: help only).
    assert_eq!(search(&as_reader, "help", None).unwrap(), 200);
    assert_eq!(search(&as_reader, "secret", None).unwrap(), 404);
    let (status, _) = get(&as_reader, &url("/v1/audit"), None).unwrap();
    assert_eq!(status, 403, "a reader's certificate is no admin");
    // A header wins over the certificate.
    let (status, _) = get(&as_reader, &url("/v1/audit"), Some(&keys.admin)).unwrap();
    assert_eq!(status, 200);
    assert_eq!(search(&as_reader, "help", Some("dk_wrong")).unwrap(), 401);
    // A verified certificate naming no principal.
    assert_eq!(
        search(&agent_with(&ca, Some(&nobody)), "help", None).unwrap(),
        401
    );
    // gRPC, with the same certificate and no credential.
    let rt = runtime();
    let hits = rt.block_on(async {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca.pem()))
            .identity(tonic::transport::Identity::from_pem(&reader.0, &reader.1))
            .domain_name("localhost");
        let channel = tonic::transport::Channel::from_shared(s.grpc.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = pb::retrieval_client::RetrievalClient::new(channel);
        let found = client
            .search(pb::SearchRequest {
                query: "refund".into(),
                domains: vec!["help".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let hidden = client
            .search(pb::SearchRequest {
                query: "refund".into(),
                domains: vec!["secret".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), tonic::Code::NotFound);
        found.hits.len()
    });
    assert!(hits > 0);
    drop(s);

    // Optional, named by the common name: without a certificate, keys work as before.
    let clients_cn = Ca::new("internal services, by name");
    let cn_ca = certs.path().join("clients-cn.pem");
    std::fs::write(&cn_ca, clients_cn.pem()).unwrap();
    let by_cn = clients_cn.client("reader", None);
    let mut args: Vec<&str> = tls_args(&cert, &key).to_vec();
    args.extend([
        "--tls-client-ca",
        cn_ca.to_str().unwrap(),
        "--tls-client-auth",
        "optional",
        "--tls-client-principal",
        "cn",
    ]);
    let s = start(dir, data, &args);
    let plain = agent_with(&ca, None);
    wait_ready(&plain, &s);
    let url = |path: &str| format!("{}{path}", by_name(&s.http));
    let status = |agent: &ureq::Agent, key: Option<&str>| {
        let mut req = agent.post(&url("/v1/search"));
        if let Some(k) = key {
            req = req.header("Authorization", &format!("Bearer {k}"));
        }
        req.header("Content-Type", "application/json")
            .send(r#"{"query":"refund","domains":["help"]}"#)
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&plain, Some(&keys.reader)), 200);
    assert_eq!(status(&plain, None), 401);
    assert_eq!(status(&agent_with(&ca, Some(&by_cn)), None), 200);
}

#[test]
fn bad_client_certificate_settings_stop_the_start_naming_them() {
    let (dir, data, _keys) = setup();
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("dartmouth test ca");
    let (cert, key) = write_pair(
        certs.path(),
        "server",
        &ca.server(&["localhost"], 2020, 2090),
    );
    let not_pem = certs.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let tls = tls_args(&cert, &key);
    for (extra, want) in [
        (
            vec!["--tls-client-ca", not_pem.to_str().unwrap()],
            "--tls-client-ca",
        ),
        (
            vec!["--tls-client-ca", "/nowhere/ca.pem"],
            "--tls-client-ca /nowhere/ca.pem: cannot read",
        ),
        (
            vec![
                "--tls-client-ca",
                ca_file.to_str().unwrap(),
                "--tls-client-auth",
                "maybe",
            ],
            "--tls-client-auth: `maybe`",
        ),
        (
            vec![
                "--tls-client-ca",
                ca_file.to_str().unwrap(),
                "--tls-client-principal",
                "email",
            ],
            "--tls-client-principal: `email`",
        ),
    ] {
        let mut args = vec!["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"];
        args.extend_from_slice(&tls);
        args.extend(extra);
        let (ok, _, err) = cli_run(&data, &args);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }
    drop(dir);
}
