//! TLS on both listeners (rustls with ring; no OpenSSL): one certificate and key, checked at
//! start-up (readable, PEM, not expired, the key the certificate's), swapped in place when
//! the files change or on SIGHUP — a handshake after the swap gets the new pair, connections
//! already open keep theirs — and kept as they were when the new files are bad (logged).
//! Handshakes run off the accept loop, each bounded in time, so a slow or hostile client holds
//! up no other. HTTP speaks HTTP/1.1 over it (ALPN `http/1.1`), gRPC HTTP/2 (ALPN `h2`).
//!
//! Client certificates (`--tls-client-ca`): required or optional, verified against the given
//! CAs by rustls' WebPKI verifier; with `--tls-client-principal` a verified certificate's
//! subject CN or URI SAN names the principal a request without an `Authorization` header acts
//! as. The name is read at the handshake and kept per connection (`Peers`, by the client's
//! address, dropped with the connection), where the transports look it up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the files are looked at for a change (SIGHUP reloads at once).
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Where the certificate chain and its key are (PEM), and what is asked of clients.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: Option<ClientTls>,
}

/// Client certificates: the CAs that sign them, whether one is required, and how one names a
/// principal.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub required: bool,
    pub principal: Option<ClientPrincipal>,
}

/// Where a client certificate names its principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPrincipal {
    /// The subject's common name.
    Cn,
    /// A URI subject alternative name starting with this prefix; the rest is the name.
    SanUri(String),
}

impl ClientTls {
    /// The settings from their flags (or the `[tls]` table): each bad value names its flag.
    pub fn from_settings(
        ca: Option<PathBuf>,
        auth: Option<&str>,
        principal: Option<&str>,
    ) -> Result<Option<ClientTls>> {
        let Some(ca) = ca else {
            if auth.is_some() || principal.is_some() {
                bail!("--tls-client-auth and --tls-client-principal need --tls-client-ca");
            }
            return Ok(None);
        };
        let required = match auth.unwrap_or("required") {
            "required" => true,
            "optional" => false,
            other => bail!("--tls-client-auth: `{other}` is neither `required` nor `optional`"),
        };
        let principal = match principal {
            None => None,
            Some("cn") => Some(ClientPrincipal::Cn),
            Some(p) => match p.strip_prefix("san-uri:") {
                Some(prefix) if !prefix.is_empty() => Some(ClientPrincipal::SanUri(prefix.into())),
                _ => bail!("--tls-client-principal: `{p}` is neither `cn` nor `san-uri:PREFIX`"),
            },
        };
        Ok(Some(ClientTls {
            ca,
            required,
            principal,
        }))
    }

    /// The verifier of client certificates against the CA file, checked at start.
    fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>> {
        let shown = self.ca.display();
        let pem = std::fs::read(&self.ca)
            .with_context(|| format!("--tls-client-ca {shown}: cannot read"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow!("--tls-client-ca {shown}: not PEM certificates: {e}"))?;
        if certs.is_empty() {
            bail!("--tls-client-ca {shown}: no certificate in it");
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots
                .add(c)
                .map_err(|e| anyhow!("--tls-client-ca {shown}: {e}"))?;
        }
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        let builder = if self.required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        builder
            .build()
            .map_err(|e| anyhow!("--tls-client-ca {shown}: {e}"))
    }
}

/// What a verified client certificate names: a principal, until the certificate expires.
#[derive(Debug, Clone)]
pub struct CertifiedPrincipal {
    pub name: Arc<str>,
    /// The certificate's `notAfter`, in milliseconds since the epoch.
    pub expires_at: Option<i64>,
}

/// Every open connection of one listener, by the client's address, with the principal its
/// certificate names (if any). Each connection has an entry of its own, so a new connection
/// from an address a closed one used replaces that one's principal (with its own, or none),
/// and the closed one's late removal cannot touch it.
#[derive(Debug, Default)]
pub struct Peers(Mutex<HashMap<SocketAddr, (u64, Option<CertifiedPrincipal>)>>);

impl Peers {
    /// The principal the certificate of the connection from `peer` names, if any.
    pub fn get(&self, peer: SocketAddr) -> Option<CertifiedPrincipal> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .and_then(|(_, p)| p.clone())
    }

    fn enter(self: &Arc<Self>, peer: SocketAddr, named: Option<CertifiedPrincipal>) -> PeerEntry {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, (id, named));
        PeerEntry {
            peers: Arc::clone(self),
            peer,
            id,
        }
    }
}

/// A connection's entry in its `Peers`, removed when the connection closes (only its own).
struct PeerEntry {
    peers: Arc<Peers>,
    peer: SocketAddr,
    id: u64,
}

impl Drop for PeerEntry {
    fn drop(&mut self) {
        let mut map = self.peers.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.peer).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.peer);
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key in `files`, checked: both readable and PEM, the chain's
/// first certificate valid now, the key its own. Each error names the file and the flag.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey> {
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
    };
    let cert_pem = read("--tls-cert", &files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            anyhow!(
                "--tls-cert {}: not PEM certificates: {e}",
                files.cert.display()
            )
        })?;
    let Some(leaf) = chain.first() else {
        bail!(
            "--tls-cert {}: no certificate in it (expected `-----BEGIN CERTIFICATE-----`)",
            files.cert.display()
        );
    };
    let (not_before, not_after) = validity(leaf).ok_or_else(|| {
        anyhow!(
            "--tls-cert {}: the first certificate is not X.509 DER that can be read",
            files.cert.display()
        )
    })?;
    let now = SystemTime::now();
    if now > not_after {
        bail!(
            "--tls-cert {}: the certificate expired at {} (unix seconds)",
            files.cert.display(),
            unix(not_after)
        );
    }
    if now < not_before {
        bail!(
            "--tls-cert {}: the certificate is not valid before {} (unix seconds)",
            files.cert.display(),
            unix(not_before)
        );
    }
    let key_pem = read("--tls-key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow!(
            "--tls-key {}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow!(
            "--tls-key {} is not the key of the certificate in --tls-cert {}",
            files.key.display(),
            files.cert.display()
        ),
        e => anyhow!("--tls-key {}: {e}", files.key.display()),
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The certificate in use; a reload swaps it.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// The server's TLS: both listeners' configurations over one reloadable certificate.
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    http: Arc<rustls::ServerConfig>,
    grpc: Arc<rustls::ServerConfig>,
    /// The principals client certificates name, per listener.
    pub http_peers: Arc<Peers>,
    pub grpc_peers: Arc<Peers>,
}

impl Tls {
    /// Loads and checks the files (see [`load`]).
    pub fn new(files: TlsFiles) -> Result<Arc<Tls>> {
        let current = Arc::new(Current(RwLock::new(Arc::new(load(&files)?))));
        let verifier = files.client.as_ref().map(ClientTls::verifier).transpose()?;
        let config = |alpn: &[u8]| -> Result<Arc<rustls::ServerConfig>> {
            let builder = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .context("tls protocol versions")?;
            let builder = match &verifier {
                Some(v) => builder.with_client_cert_verifier(Arc::clone(v)),
                None => builder.with_no_client_auth(),
            };
            let mut c =
                builder.with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        Ok(Arc::new(Tls {
            http: config(b"http/1.1")?,
            grpc: config(b"h2")?,
            current,
            files,
            http_peers: Arc::default(),
            grpc_peers: Arc::default(),
        }))
    }

    /// How client certificates name principals, if they do.
    fn principal(&self) -> Option<ClientPrincipal> {
        self.files.client.as_ref().and_then(|c| c.principal.clone())
    }

    /// Loads the files again: on success new handshakes get the new pair; on failure the old
    /// one stays and the error says why.
    pub fn reload(&self) -> Result<()> {
        let fresh = load(&self.files)?;
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Reloads when either file changes (looked at every 2 s) and on SIGHUP, until `stop`.
    pub fn watch(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            // A file's modification time tells a change (nanoseconds on the file systems
            // a server runs on); SIGHUP reloads whatever the times say.
            let stamp = |files: &TlsFiles| {
                [&files.cert, &files.key]
                    .map(|p| std::fs::metadata(p).ok().and_then(|m| m.modified().ok()))
            };
            let mut seen = stamp(&tls.files);
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let hup = std::future::pending::<()>();
                let asked = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => false,
                    _ = hup => true,
                };
                let now = stamp(&tls.files);
                if !asked && now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files.cert.display(),
                        "tls certificate reloaded"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "tls certificate not reloaded: the previous one stays in use"
                    ),
                }
            }
        })
    }

    /// HTTPS connections on `tcp`, for `axum::serve`.
    pub fn http_listener(&self, tcp: TcpListener) -> Result<TlsListener> {
        let (rx, local) = accept_loop(
            tcp,
            Arc::clone(&self.http),
            Arc::clone(&self.http_peers),
            self.principal(),
        )?;
        Ok(TlsListener { rx, local })
    }

    /// gRPC-over-TLS connections on `tcp`, for tonic's `serve_with_incoming`.
    pub fn grpc_incoming(
        &self,
        tcp: TcpListener,
    ) -> Result<tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>>> {
        let (rx, _) = accept_loop(
            tcp,
            Arc::clone(&self.grpc),
            Arc::clone(&self.grpc_peers),
            self.principal(),
        )?;
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut rx = rx;
            while let Some((stream, _)) = rx.recv().await {
                if tx.send(Ok(stream)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(out))
    }
}

/// Accepts TCP connections and hands over each whose handshake succeeds within the bound;
/// a failed handshake is logged at debug level and costs nothing else.
fn accept_loop(
    tcp: TcpListener,
    config: Arc<rustls::ServerConfig>,
    peers: Arc<Peers>,
    principal: Option<ClientPrincipal>,
) -> Result<(mpsc::Receiver<(TlsConn, SocketAddr)>, SocketAddr)> {
    let local = tcp.local_addr().context("tls listener address")?;
    let acceptor = TlsAcceptor::from(config);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum does.
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            // Without it a handshake's small flights meet delayed ACKs: ~40 ms a connection.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "tcp nodelay");
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            let (peers, principal) = (Arc::clone(&peers), principal.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        // The principal a verified client certificate names, for this
                        // connection's lifetime and no longer than the certificate's.
                        let entry = principal.as_ref().map(|p| {
                            let named = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|leaf| {
                                    let name = principal_of(leaf, p)?;
                                    let expires_at = validity(leaf).map(|(_, to)| {
                                        i64::try_from(unix(to).saturating_mul(1000))
                                            .unwrap_or(i64::MAX)
                                    });
                                    Some(CertifiedPrincipal {
                                        name: Arc::from(name.as_str()),
                                        expires_at,
                                    })
                                });
                            peers.enter(peer, named)
                        });
                        let _ = tx
                            .send((
                                TlsConn {
                                    inner: Box::new(tls),
                                    local,
                                    peer,
                                    _entry: entry,
                                },
                                peer,
                            ))
                            .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    Ok((rx, local))
}

/// A TLS connection, with the addresses of its two ends.
pub struct TlsConn {
    inner: Box<TlsStream<TcpStream>>,
    local: SocketAddr,
    peer: SocketAddr,
    /// Its client certificate's principal in the listener's `Peers`, while it is open.
    _entry: Option<PeerEntry>,
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// gRPC sees a TLS connection as it sees a TCP one: `Request::remote_addr` works the same.
impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: Some(self.local),
            remote_addr: Some(self.peer),
        }
    }
}

/// HTTPS connections for `axum::serve` (wrapped in `tap_io` there, so that `ConnectInfo`
/// gives the client's address as over plain TCP).
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (it never does while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// `notBefore` and `notAfter` of a DER X.509 certificate: Certificate ::= SEQUENCE {
/// tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity
/// SEQUENCE { notBefore, notAfter }, … }, … }.
fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    // After serial, signature algorithm and issuer.
    let (tag, validity, _) = der(tbs_after(cert, 3)?)?;
    (tag == 0x30).then_some(())?;
    let (t1, not_before, rest) = der(validity)?;
    let (t2, not_after, _) = der(rest)?;
    Some((time(t1, not_before)?, time(t2, not_after)?))
}

/// The fields of a DER X.509 certificate's tbsCertificate after its optional version and the
/// next `skip` fields.
fn tbs_after(cert: &[u8], skip: usize) -> Option<&[u8]> {
    let (tag, certificate, _) = der(cert)?;
    (tag == 0x30).then_some(())?;
    let (tag, tbs, _) = der(certificate)?;
    (tag == 0x30).then_some(())?;
    let mut rest = tbs;
    let (tag, _, after) = der(rest)?;
    if tag == 0xa0 {
        rest = after; // the explicit version
    }
    for _ in 0..skip {
        rest = der(rest)?.2;
    }
    Some(rest)
}

/// The principal a DER X.509 certificate names: its subject's common name, or the rest of the
/// first URI SAN starting with the prefix. A name that is not printable ASCII, or empty, is
/// none.
fn principal_of(cert: &[u8], how: &ClientPrincipal) -> Option<String> {
    // After serial, signature algorithm, issuer and validity.
    let (tag, subject, after) = der(tbs_after(cert, 4)?)?;
    (tag == 0x30).then_some(())?;
    let name = match how {
        ClientPrincipal::Cn => common_name(subject)?,
        ClientPrincipal::SanUri(prefix) => {
            // After the subject: its key, then optional [1] and [2] ids, then [3] extensions.
            let mut rest = der(after)?.2;
            let extensions = loop {
                let (tag, content, next) = der(rest)?;
                if tag == 0xa3 {
                    break content;
                }
                rest = next;
            };
            let (_, mut list, _) = der(extensions)?;
            let mut found = None;
            while !list.is_empty() {
                let (_, extension, next) = der(list)?;
                list = next;
                let (tag, oid, mut fields) = der(extension)?;
                // subjectAltName, 2.5.29.17.
                if tag != 0x06 || oid != [0x55, 0x1d, 0x11] {
                    continue;
                }
                let (tag, _, after_critical) = der(fields)?;
                if tag == 0x01 {
                    fields = after_critical; // the critical flag
                }
                let (_, value, _) = der(fields)?;
                let (_, mut names, _) = der(value)?;
                while !names.is_empty() {
                    let (tag, uri, next) = der(names)?;
                    names = next;
                    // uniformResourceIdentifier, [6] IA5String.
                    if tag == 0x86
                        && let Some(rest) = std::str::from_utf8(uri)
                            .ok()
                            .and_then(|u| u.strip_prefix(prefix.as_str()))
                    {
                        found = Some(rest.to_string());
                        break;
                    }
                }
                break;
            }
            found?
        }
    };
    (!name.is_empty() && name.len() <= 128 && name.bytes().all(|b| (b'!'..=b'~').contains(&b)))
        .then_some(name)
}

/// The common name (2.5.4.3) in a DER Name's contents.
fn common_name(mut rdns: &[u8]) -> Option<String> {
    while !rdns.is_empty() {
        let (_, set, next) = der(rdns)?;
        rdns = next;
        let (_, pair, _) = der(set)?;
        let (tag, oid, value) = der(pair)?;
        if tag == 0x06 && oid == [0x55, 0x04, 0x03] {
            let (_, text, _) = der(value)?;
            return std::str::from_utf8(text).ok().map(str::to_string);
        }
    }
    None
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, bytes: &[u8]) -> Option<SystemTime> {
    // ASCII only: the slicing below is by byte.
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.is_ascii())?
        .strip_suffix('Z')?;
    let digits = |s: &str| -> Option<u64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|i| digits(&rest[i..i + 2]));
    let (month, day) = (month?, day?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let secs = days_from_civil(year, month, day)? * 86_400 + hour? * 3600 + minute? * 60 + second?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm); none
/// before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_read_as_the_calendar_says() {
        let at = |tag, s: &str| unix(time(tag, s.as_bytes()).unwrap());
        assert_eq!(at(0x17, "700101000000Z"), 0);
        assert_eq!(at(0x17, "000301000000Z"), 951_868_800); // 2000-03-01
        assert_eq!(at(0x18, "20261206113000Z"), 1_796_556_600);
        assert_eq!(at(0x17, "491231235959Z"), 2_524_607_999); // 2049-12-31T23:59:59
        for bad in [
            "",
            "Z",
            "7001010000Z",
            "701301000000Z",
            "70010100000aZ",
            "700101000000",
        ] {
            assert!(time(0x17, bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(time(0x04, b"700101000000Z").is_none());
    }

    #[test]
    fn der_elements_within_bounds_only() {
        assert_eq!(
            der(&[0x30, 2, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        assert_eq!(der(&[0x30, 0x81, 1, 7]), Some((0x30, &[7u8][..], &[][..])));
        assert!(der(&[0x30, 3, 1]).is_none());
        assert!(der(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(der(&[0x30]).is_none());
    }
}
