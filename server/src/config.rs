//! `dartmouth serve` configuration: a TOML file, then `DARTMOUTH_*` variables and flags over it,
//! validated once at start-up into a `ServeConfig`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dartmouth_domains::{JwtConfig, JwtKey};
use serde::Deserialize;

use crate::service::Limits;
use crate::shopify::ShopifyWebhook;
use crate::throttle::{AddressBlock, RateLimit, RateLimits};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags and DARTMOUTH_* variables override what it says.
    #[arg(long, env = "DARTMOUTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP address [default: 127.0.0.1:8787].
    #[arg(long, env = "DARTMOUTH_HTTP")]
    pub http: Option<SocketAddr>,
    /// gRPC address [default: 127.0.0.1:50051].
    #[arg(long, env = "DARTMOUTH_GRPC")]
    pub grpc: Option<SocketAddr>,
    /// Requests per minute per principal, shared by HTTP, gRPC and webhooks; 0 turns it off
    /// [default: 100].
    #[arg(long, env = "DARTMOUTH_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a principal may send at once [default: the per-minute rate].
    #[arg(long, env = "DARTMOUTH_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Requests per minute per client address, spent before authentication; 0 turns it off
    /// [default: 1000].
    #[arg(long, env = "DARTMOUTH_IP_RATE_LIMIT")]
    pub ip_rate_limit: Option<u32>,
    /// Requests a client address may send at once [default: the per-minute rate].
    #[arg(long, env = "DARTMOUTH_IP_RATE_BURST")]
    pub ip_rate_burst: Option<u32>,
    /// A principal without a rate limit (an internal agent); repeatable.
    #[arg(long = "rate-limit-exempt", value_name = "PRINCIPAL")]
    pub rate_limit_exempt: Vec<String>,
    /// Client addresses without a rate limit (`10.0.0.0/8`, `::1`); repeatable.
    #[arg(long = "ip-rate-limit-exempt", value_name = "ADDRESS[/PREFIX]")]
    pub ip_rate_limit_exempt: Vec<String>,
    /// Largest request body in bytes [default: 8 MiB].
    #[arg(long, env = "DARTMOUTH_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes of query embeddings kept (per scope, model and text); 0 turns the cache off
    /// [default: 16 MiB].
    #[arg(long, env = "DARTMOUTH_EMBEDDING_CACHE_BYTES")]
    pub embedding_cache_bytes: Option<usize>,
    /// Bytes of search results kept (per scope, applied sequences and request); 0 turns the
    /// cache off [default: 64 MiB].
    #[arg(long, env = "DARTMOUTH_RESULT_CACHE_BYTES")]
    pub result_cache_bytes: Option<usize>,
    /// How often the applier looks for new changes, in milliseconds [default: 100].
    #[arg(long, env = "DARTMOUTH_APPLY_INTERVAL_MS")]
    pub apply_interval_ms: Option<u64>,
    /// Async worker threads [default: the number of cores].
    #[arg(long, env = "DARTMOUTH_WORKERS")]
    pub workers: Option<usize>,
    /// The nodes sharing the store behind one balancer: each takes 1/N of the rate limits,
    /// so that the configured budgets hold for the deployment [default: 1].
    #[arg(long, env = "DARTMOUTH_NODES")]
    pub nodes: Option<u32>,
    /// Hold and serve only these domains (comma-separated; default: every domain), so that a
    /// deployment can spread domains over nodes.
    #[arg(long = "domains", env = "DARTMOUTH_DOMAINS", value_delimiter = ',')]
    pub domains: Option<Vec<String>>,
    /// Accept JWTs from this issuer (with --jwt-audience and one key).
    #[arg(long, env = "DARTMOUTH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "DARTMOUTH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// HS256 shared secret (also signs delegated tokens).
    #[arg(long, env = "DARTMOUTH_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// RS256 public key (PEM file).
    #[arg(long, env = "DARTMOUTH_JWT_RS256_PEM")]
    pub jwt_rs256_pem: Option<PathBuf>,
    /// EdDSA (Ed25519) public key (PEM file).
    #[arg(long, env = "DARTMOUTH_JWT_EDDSA_PEM")]
    pub jwt_eddsa_pem: Option<PathBuf>,
    /// Take Shopify webhooks for DOMAIN at /v1/webhooks/shopify/DOMAIN, signed with the secret
    /// in $ENV_VAR, written as PRINCIPAL (which needs write on DOMAIN); repeatable. Overrides a
    /// `[[shopify]]` table of the same domain.
    #[arg(long = "shopify-webhook", value_name = "DOMAIN=PRINCIPAL=ENV_VAR")]
    pub shopify_webhook: Vec<String>,
    /// Serve HTTPS and gRPC over TLS with this certificate chain (PEM; needs --tls-key). The
    /// pair is re-read when either file changes and on SIGHUP.
    #[arg(long, env = "DARTMOUTH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DARTMOUTH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask clients for a certificate signed by one of these CAs (PEM), on both listeners.
    #[arg(long, env = "DARTMOUTH_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// `required` (default: a client without a valid certificate cannot connect) or
    /// `optional` (one without a certificate connects and authenticates as before).
    #[arg(long, env = "DARTMOUTH_TLS_CLIENT_AUTH", requires = "tls_client_ca")]
    pub tls_client_auth: Option<String>,
    /// How a client certificate names a principal, for requests without an Authorization
    /// header: `cn` (the subject's common name) or `san-uri:PREFIX` (a URI SAN starting with
    /// PREFIX, the rest the name: `san-uri:spiffe://corp/agents/`). Without it a certificate
    /// only opens the connection.
    #[arg(
        long,
        env = "DARTMOUTH_TLS_CLIENT_PRINCIPAL",
        requires = "tls_client_ca"
    )]
    pub tls_client_principal: Option<String>,
    /// Export spans over OTLP/gRPC to this collector (`http://collector:4317`, or `https://…`
    /// verified against the public roots or --otlp-ca): a request's span with its stages (auth,
    /// embed, bm25, ann, fuse, rerank, hydrate), continuing a caller's W3C `traceparent`.
    #[arg(long, env = "DARTMOUTH_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The CA (PEM) an `https://` OTLP endpoint's certificate is verified against.
    #[arg(long, env = "DARTMOUTH_OTLP_CA", requires = "otlp_endpoint")]
    pub otlp_ca: Option<PathBuf>,
}

/// The file form; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    ip_rate_limit: Option<u32>,
    ip_rate_burst: Option<u32>,
    #[serde(default)]
    rate_limit_exempt: Vec<String>,
    #[serde(default)]
    ip_rate_limit_exempt: Vec<String>,
    max_body_bytes: Option<usize>,
    max_batch_bytes: Option<usize>,
    max_webhook_bytes: Option<usize>,
    max_upload_bytes: Option<usize>,
    max_k: Option<usize>,
    max_query_bytes: Option<usize>,
    max_context_tokens: Option<usize>,
    embedding_cache_bytes: Option<usize>,
    result_cache_bytes: Option<usize>,
    apply_interval_ms: Option<u64>,
    workers: Option<usize>,
    domains: Option<Vec<String>>,
    nodes: Option<u32>,
    jwt: Option<JwtFile>,
    /// `[[shopify]]` tables: the domains that take Shopify webhooks.
    #[serde(default)]
    shopify: Vec<ShopifyFile>,
    /// `[tls]`: `cert` and `key`, paths to PEM files.
    tls: Option<TlsFile>,
    otlp_endpoint: Option<String>,
    otlp_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: PathBuf,
    key: PathBuf,
    /// `client_ca`, `client_auth`, `client_principal`: as the flags.
    client_ca: Option<PathBuf>,
    client_auth: Option<String>,
    client_principal: Option<String>,
}

/// `[[shopify]]`: `{ domain = "store", secret_env = "SHOPIFY_STORE_SECRET", principal =
/// "shopify-sync" }`, optionally `base_url = "https://shop.example"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopifyFile {
    domain: String,
    /// The name of an environment variable holding the signing secret (secrets stay out of
    /// files).
    secret_env: String,
    principal: String,
    #[serde(default)]
    base_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtFile {
    issuer: String,
    audience: String,
    /// The name of an environment variable holding the HS256 secret (secrets stay out of files).
    hs256_secret_env: Option<String>,
    rs256_pem: Option<PathBuf>,
    eddsa_pem: Option<PathBuf>,
}

pub struct ServeConfig {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub rate_limits: RateLimits,
    pub limits: Limits,
    pub embedding_cache_bytes: usize,
    pub result_cache_bytes: usize,
    pub apply_interval: Duration,
    pub workers: usize,
    /// The domains this node holds (`None`: all).
    pub placement: Option<Vec<String>>,
    pub jwt: Option<JwtConfig>,
    /// Domains that take Shopify webhooks, with their secrets (read once, at start-up).
    pub shopify: Vec<ShopifyWebhook>,
    /// TLS on both listeners (`None`: plain text).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Where spans are exported (`None`: nowhere).
    pub otlp: Option<crate::trace::Otlp>,
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config {}: cannot read", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
}

impl ServeArgs {
    pub fn resolve(&self) -> Result<ServeConfig> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let default_addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        // Budgets are the deployment's: each of N nodes takes its share (rounded up).
        let nodes = self.nodes.or(file.nodes).unwrap_or(1);
        if nodes == 0 {
            bail!("nodes: at least 1");
        }
        let limit = |rate: u32, burst: Option<u32>| {
            (rate > 0).then(|| RateLimit {
                per_minute: rate.div_ceil(nodes),
                burst: burst.unwrap_or(rate).div_ceil(nodes),
            })
        };
        let mut exempt_addresses = Vec::new();
        for (i, a) in file
            .ip_rate_limit_exempt
            .iter()
            .map(|a| ("ip_rate_limit_exempt", a))
            .chain(
                self.ip_rate_limit_exempt
                    .iter()
                    .map(|a| ("--ip-rate-limit-exempt", a)),
            )
            .enumerate()
        {
            exempt_addresses
                .push(AddressBlock::parse(a.1).map_err(|e| anyhow::anyhow!("{}[{i}]: {e}", a.0))?);
        }
        let rate_limits = RateLimits {
            principal: limit(
                self.rate_limit.or(file.rate_limit).unwrap_or(100),
                self.rate_burst.or(file.rate_burst),
            ),
            address: limit(
                self.ip_rate_limit.or(file.ip_rate_limit).unwrap_or(1000),
                self.ip_rate_burst.or(file.ip_rate_burst),
            ),
            exempt_principals: file
                .rate_limit_exempt
                .iter()
                .chain(&self.rate_limit_exempt)
                .cloned()
                .collect(),
            exempt_addresses,
        };
        let mut limits = Limits::default();
        for (name, flag, value, slot) in [
            (
                "max_body_bytes",
                self.max_body_bytes,
                file.max_body_bytes,
                &mut limits.max_body_bytes,
            ),
            (
                "max_batch_bytes",
                None,
                file.max_batch_bytes,
                &mut limits.max_batch_bytes,
            ),
            (
                "max_webhook_bytes",
                None,
                file.max_webhook_bytes,
                &mut limits.max_webhook_bytes,
            ),
            (
                "max_upload_bytes",
                None,
                file.max_upload_bytes,
                &mut limits.max_upload_bytes,
            ),
        ] {
            if let Some(n) = flag.or(value) {
                if n < 1024 {
                    bail!("{name}: at least 1024, got {n}");
                }
                *slot = n;
            }
        }
        if let Some(k) = file.max_k {
            if k == 0 || k > dartmouth_engine::MAX_K {
                bail!("max_k: 1 to {}, got {k}", dartmouth_engine::MAX_K);
            }
            limits.max_k = k;
        }
        if let Some(q) = file.max_query_bytes {
            if q == 0 || q > dartmouth_engine::MAX_QUERY_BYTES {
                bail!(
                    "max_query_bytes: 1 to {}, got {q}",
                    dartmouth_engine::MAX_QUERY_BYTES
                );
            }
            limits.max_query_bytes = q;
        }
        if let Some(t) = file.max_context_tokens {
            limits.max_context_tokens = t.max(1);
        }
        let workers = self
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if workers == 0 {
            bail!("workers: at least 1");
        }
        let shopify = self.shopify(file.shopify)?;
        let jwt = self.jwt(file.jwt)?;
        if let Some(j) = &jwt {
            tracing::info!(keys = j.keys.len(), "jwt enabled");
        }
        let otlp = match self.otlp_endpoint.clone().or(file.otlp_endpoint) {
            Some(endpoint) => Some(crate::trace::Otlp::new(
                &endpoint,
                self.otlp_ca.clone().or(file.otlp_ca),
            )?),
            None if file.otlp_ca.is_some() => bail!("otlp_ca: needs otlp_endpoint"),
            None => None,
        };
        Ok(ServeConfig {
            otlp,
            http: self.http.or(file.http).unwrap_or(default_addr(8787)),
            grpc: self.grpc.or(file.grpc).unwrap_or(default_addr(50051)),
            rate_limits,
            limits,
            embedding_cache_bytes: self
                .embedding_cache_bytes
                .or(file.embedding_cache_bytes)
                .unwrap_or(16 << 20),
            result_cache_bytes: self
                .result_cache_bytes
                .or(file.result_cache_bytes)
                .unwrap_or(64 << 20),
            apply_interval: Duration::from_millis(
                self.apply_interval_ms
                    .or(file.apply_interval_ms)
                    .unwrap_or(100)
                    .clamp(5, 60_000),
            ),
            workers,
            placement: self.domains.clone().or(file.domains),
            jwt,
            shopify,
            tls: {
                let has_table = file.tls.is_some();
                let t = file.tls.unwrap_or_default();
                let pair = match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                    (None, None) if has_table => Some((t.cert, t.key)),
                    (None, None) => None,
                    _ => bail!("--tls-cert and --tls-key go together"),
                };
                match pair {
                    Some((cert, key)) => Some(crate::tls::TlsFiles {
                        cert,
                        key,
                        client: crate::tls::ClientTls::from_settings(
                            self.tls_client_ca.clone().or(t.client_ca),
                            self.tls_client_auth.as_deref().or(t.client_auth.as_deref()),
                            self.tls_client_principal
                                .as_deref()
                                .or(t.client_principal.as_deref()),
                        )?,
                    }),
                    None => None,
                }
            },
        })
    }

    /// The `[[shopify]]` tables, then the `--shopify-webhook` flags (a flag replaces a table of
    /// the same domain). Each secret is read from its variable here, once.
    fn shopify(&self, file: Vec<ShopifyFile>) -> Result<Vec<ShopifyWebhook>> {
        let mut out: Vec<ShopifyWebhook> = Vec::new();
        for (i, t) in file.into_iter().enumerate() {
            let place = format!("shopify[{i}]");
            let hook = webhook(&place, t.domain, t.principal, &t.secret_env, t.base_url)?;
            if out.iter().any(|h| h.domain == hook.domain) {
                bail!("{place}: domain `{}` is configured twice", hook.domain);
            }
            out.push(hook);
        }
        let from_file = out.len();
        for flag in &self.shopify_webhook {
            let place = format!("--shopify-webhook {flag}");
            let mut parts = flag.splitn(3, '=');
            let (Some(domain), Some(principal), Some(var)) =
                (parts.next(), parts.next(), parts.next())
            else {
                bail!("{place}: expected DOMAIN=PRINCIPAL=ENV_VAR");
            };
            let hook = webhook(&place, domain.into(), principal.into(), var, None)?;
            match out.iter().position(|h| h.domain == hook.domain) {
                Some(at) if at < from_file => {
                    // Keep the table's base_url: the flag has no place for one.
                    let base_url = out[at].base_url.take();
                    out[at] = ShopifyWebhook { base_url, ..hook };
                }
                Some(_) => bail!("{place}: domain `{}` is configured twice", hook.domain),
                None => out.push(hook),
            }
        }
        for h in &out {
            tracing::info!(domain = %h.domain, principal = %h.principal, "shopify webhooks enabled");
        }
        Ok(out)
    }

    fn jwt(&self, file: Option<JwtFile>) -> Result<Option<JwtConfig>> {
        let file = file.unwrap_or_default();
        let issuer = self.jwt_issuer.clone().unwrap_or(file.issuer);
        let audience = self.jwt_audience.clone().unwrap_or(file.audience);
        let secret = match (&self.jwt_hs256_secret, &file.hs256_secret_env) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(var)) => Some(
                std::env::var(var)
                    .with_context(|| format!("jwt.hs256_secret_env: ${var} is not set"))?,
            ),
            (None, None) => None,
        };
        let rs256 = self.jwt_rs256_pem.clone().or(file.rs256_pem);
        let eddsa = self.jwt_eddsa_pem.clone().or(file.eddsa_pem);
        let mut keys = Vec::new();
        let mut delegation = None;
        if let Some(secret) = &secret {
            if secret.len() < 32 {
                bail!("jwt hs256 secret: at least 32 bytes");
            }
            keys.push(JwtKey::hs256("hs256", secret.as_bytes())?);
            delegation = Some(("hs256".to_string(), secret.as_bytes().to_vec()));
        }
        for (kid, path, make) in [
            ("rs256", rs256, JwtKey::rs256_pem as fn(&str, &[u8]) -> _),
            ("eddsa", eddsa, JwtKey::eddsa_pem),
        ] {
            if let Some(path) = path {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("jwt {kid} key {}: cannot read", path.display()))?;
                keys.push(
                    make(kid, &pem).with_context(|| format!("jwt {kid} key {}", path.display()))?,
                );
            }
        }
        if keys.is_empty() {
            if !issuer.is_empty() || !audience.is_empty() {
                bail!(
                    "jwt: an issuer or audience is set but no key (hs256 secret, rs256 or eddsa PEM)"
                );
            }
            return Ok(None);
        }
        if issuer.is_empty() || audience.is_empty() {
            bail!("jwt: keys are configured, so --jwt-issuer and --jwt-audience are required");
        }
        Ok(Some(JwtConfig {
            issuer,
            audience,
            keys,
            delegation,
        }))
    }
}

fn webhook(
    place: &str,
    domain: String,
    principal: String,
    secret_env: &str,
    base_url: Option<String>,
) -> Result<ShopifyWebhook> {
    let (domain, principal, secret_env) = (domain.trim(), principal.trim(), secret_env.trim());
    if domain.is_empty() {
        bail!("{place}: domain is empty");
    }
    if principal.is_empty() {
        bail!("{place}: principal is empty");
    }
    if secret_env.is_empty() {
        bail!("{place}: secret_env is empty (the name of the variable holding the secret)");
    }
    let secret =
        std::env::var(secret_env).with_context(|| format!("{place}: ${secret_env} is not set"))?;
    if secret.trim().is_empty() {
        bail!("{place}: ${secret_env} is empty");
    }
    if let Some(b) = &base_url
        && !(b.starts_with("https://") || b.starts_with("http://"))
    {
        bail!("{place}: base_url must start with https:// or http://, got `{b}`");
    }
    Ok(ShopifyWebhook {
        domain: domain.to_string(),
        principal: principal.to_string(),
        secret: secret.into_bytes(),
        base_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(toml: &str, flags: &[&str]) -> Result<ServeConfig> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, toml)?;
        let args = ServeArgs {
            config: Some(path),
            shopify_webhook: flags.iter().map(|f| f.to_string()).collect(),
            ..ServeArgs::default()
        };
        args.resolve()
    }

    fn args(flags: &[&str]) -> ServeArgs {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        <Serve as clap::Parser>::parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .args
    }

    #[test]
    fn an_otlp_endpoint_is_checked_at_start_up_naming_it() {
        let ok = args(&["--otlp-endpoint", "http://collector:4317"]).resolve();
        assert!(ok.unwrap().otlp.is_some());
        for (flags, says) in [
            (
                vec!["--otlp-endpoint", "collector:4317"],
                "the scheme must be http:// or https://",
            ),
            (
                vec!["--otlp-endpoint", "ftp://collector"],
                "the scheme must be http://",
            ),
            (
                vec!["--otlp-endpoint", "http://"],
                "--otlp-endpoint `http://`",
            ),
            (
                vec!["--otlp-endpoint", "http://c:4317", "--otlp-ca", "ca.pem"],
                "only for an https:// endpoint",
            ),
            (
                vec![
                    "--otlp-endpoint",
                    "https://c:4317",
                    "--otlp-ca",
                    "/nonexistent/ca.pem",
                ],
                "--otlp-ca /nonexistent/ca.pem: cannot read",
            ),
        ] {
            let e = args(&flags)
                .resolve()
                .err()
                .unwrap_or_else(|| panic!("{flags:?}"));
            assert!(format!("{e:#}").contains(says), "{flags:?}: {e:#}");
        }
    }

    #[test]
    fn client_certificates_are_read_from_the_tls_table_and_flags_override_it() {
        let table = "[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\n\
                     client_auth = \"optional\"\nclient_principal = \"san-uri:spiffe://corp/\"\n";
        let c = with_file(table, &[]).unwrap();
        let client = c.tls.unwrap().client.unwrap();
        assert_eq!(client.ca, PathBuf::from("ca.pem"));
        assert!(!client.required);
        assert_eq!(
            client.principal,
            Some(crate::tls::ClientPrincipal::SanUri("spiffe://corp/".into()))
        );
        let c = with_file(
            "[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\n",
            &[],
        )
        .unwrap();
        let client = c.tls.unwrap().client.unwrap();
        assert!(client.required, "required unless said");
        assert_eq!(client.principal, None, "no mapping unless said");
        for (bad, want) in [
            ("client_auth = \"maybe\"", "--tls-client-auth: `maybe`"),
            (
                "client_principal = \"san-uri:\"",
                "--tls-client-principal: `san-uri:`",
            ),
        ] {
            let toml = format!(
                "[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\n{bad}\n"
            );
            let e = with_file(&toml, &[]).err().unwrap();
            assert!(e.to_string().contains(want), "{e}");
        }
        let e = with_file(
            "[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_principal = \"cn\"\n",
            &[],
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("need --tls-client-ca"), "{e}");
    }

    #[test]
    fn rate_limits_are_shared_by_the_nodes() {
        let c = with_file("rate_limit = 100\nip_rate_limit = 1000\nnodes = 3\n", &[]).unwrap();
        let principal = c.rate_limits.principal.unwrap();
        let address = c.rate_limits.address.unwrap();
        assert_eq!((principal.per_minute, principal.burst), (34, 34));
        assert_eq!((address.per_minute, address.burst), (334, 334));
        let one = with_file("rate_limit = 100\n", &[]).unwrap();
        assert_eq!(one.rate_limits.principal.unwrap().per_minute, 100);
        assert!(with_file("nodes = 0\n", &[]).is_err());
    }

    #[test]
    fn shopify_tables_read_their_secret_once_and_flags_override_them() {
        // PATH is set in every test environment; its value stands in for a secret.
        let path = std::env::var("PATH").unwrap();
        let c = with_file(
            r#"
[[shopify]]
domain = "store"
secret_env = "PATH"
principal = "shopify-sync"
base_url = "https://shop.example"
"#,
            &["outlet=outlet-sync=PATH"],
        )
        .unwrap();
        assert_eq!(c.shopify.len(), 2);
        assert_eq!(c.shopify[0].domain, "store");
        assert_eq!(c.shopify[0].principal, "shopify-sync");
        assert_eq!(c.shopify[0].secret, path.as_bytes());
        assert_eq!(
            c.shopify[0].base_url.as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(c.shopify[1].domain, "outlet");
        assert!(!format!("{:?}", c.shopify[0]).contains(&path));

        let c = with_file(
            "[[shopify]]\ndomain = \"store\"\nsecret_env = \"PATH\"\nprincipal = \"a\"\n",
            &["store=b=PATH"],
        )
        .unwrap();
        assert_eq!(c.shopify.len(), 1);
        assert_eq!(c.shopify[0].principal, "b");
    }

    #[test]
    fn shopify_misconfiguration_fails_at_start_up_naming_it() {
        let unset = "DARTMOUTH_TEST_SURELY_UNSET_SHOPIFY_SECRET";
        let e = with_file(
            &format!(
                "[[shopify]]\ndomain = \"store\"\nsecret_env = \"{unset}\"\nprincipal = \"p\"\n"
            ),
            &[],
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains(unset), "{e}");
        assert!(e.to_string().contains("shopify[0]"), "{e}");
        let e = with_file("", &[&format!("store=p={unset}")]).err().unwrap();
        assert!(e.to_string().contains(unset), "{e}");
        let e = with_file("", &["store=p"]).err().unwrap();
        assert!(e.to_string().contains("DOMAIN=PRINCIPAL=ENV_VAR"), "{e}");
        let twice = "[[shopify]]\ndomain = \"s\"\nsecret_env = \"PATH\"\nprincipal = \"p\"\n";
        let e = with_file(&format!("{twice}{twice}"), &[]).err().unwrap();
        assert!(e.to_string().contains("twice"), "{e}");
        let e = with_file(
            "[[shopify]]\ndomain = \"s\"\nsecret = \"inline\"\nprincipal = \"p\"\n",
            &[],
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("secret"), "{e}");
    }
}
