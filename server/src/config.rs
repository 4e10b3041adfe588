//! `dartmouth serve` configuration: a TOML file, then `DARTMOUTH_*` variables and flags over it,
//! validated once at start-up into a `ServeConfig`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dartmouth_domains::{JwtConfig, JwtKey};
use serde::Deserialize;

use crate::service::{Limits, RateLimit};

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
    /// Requests per second per principal, shared by HTTP and gRPC; 0 turns limiting off
    /// [default: 100].
    #[arg(long, env = "DARTMOUTH_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests a principal may send at once above the rate [default: 2 × rate].
    #[arg(long, env = "DARTMOUTH_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Largest request body in bytes [default: 8 MiB].
    #[arg(long, env = "DARTMOUTH_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Query embeddings kept (per scope, model and text); 0 turns the cache off
    /// [default: 10000].
    #[arg(long, env = "DARTMOUTH_EMBEDDING_CACHE_ENTRIES")]
    pub embedding_cache_entries: Option<usize>,
    /// Search results kept (per scope, applied sequences and request); 0 turns the cache off
    /// [default: 10000].
    #[arg(long, env = "DARTMOUTH_RESULT_CACHE_ENTRIES")]
    pub result_cache_entries: Option<usize>,
    /// How often the applier looks for new changes, in milliseconds [default: 100].
    #[arg(long, env = "DARTMOUTH_APPLY_INTERVAL_MS")]
    pub apply_interval_ms: Option<u64>,
    /// Async worker threads [default: the number of cores].
    #[arg(long, env = "DARTMOUTH_WORKERS")]
    pub workers: Option<usize>,
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
}

/// The file form; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    max_body_bytes: Option<usize>,
    max_k: Option<usize>,
    max_query_bytes: Option<usize>,
    max_context_tokens: Option<usize>,
    embedding_cache_entries: Option<usize>,
    result_cache_entries: Option<usize>,
    apply_interval_ms: Option<u64>,
    workers: Option<usize>,
    jwt: Option<JwtFile>,
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
    pub rate_limit: Option<RateLimit>,
    pub limits: Limits,
    pub embedding_cache_entries: usize,
    pub result_cache_entries: usize,
    pub apply_interval: Duration,
    pub workers: usize,
    pub jwt: Option<JwtConfig>,
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
        let rate = self.rate_limit.or(file.rate_limit).unwrap_or(100);
        let rate_limit = (rate > 0).then(|| RateLimit {
            per_second: rate,
            burst: self
                .rate_burst
                .or(file.rate_burst)
                .unwrap_or(rate.saturating_mul(2)),
        });
        let mut limits = Limits::default();
        if let Some(n) = self.max_body_bytes.or(file.max_body_bytes) {
            if n < 1024 {
                bail!("max_body_bytes: at least 1024, got {n}");
            }
            limits.max_body_bytes = n;
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
        let jwt = self.jwt(file.jwt)?;
        if let Some(j) = &jwt {
            tracing::info!(keys = j.keys.len(), "jwt enabled");
        }
        Ok(ServeConfig {
            http: self.http.or(file.http).unwrap_or(default_addr(8787)),
            grpc: self.grpc.or(file.grpc).unwrap_or(default_addr(50051)),
            rate_limit,
            limits,
            embedding_cache_entries: self
                .embedding_cache_entries
                .or(file.embedding_cache_entries)
                .unwrap_or(10_000),
            result_cache_entries: self
                .result_cache_entries
                .or(file.result_cache_entries)
                .unwrap_or(10_000),
            apply_interval: Duration::from_millis(
                self.apply_interval_ms
                    .or(file.apply_interval_ms)
                    .unwrap_or(100)
                    .clamp(5, 60_000),
            ),
            workers,
            jwt,
        })
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
