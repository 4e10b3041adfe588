//! JWT verification and delegated tokens.
//!
//! Each configured key pins its algorithm (HS256, RS256 or EdDSA) and is selected by the token's
//! `kid`; a token whose header names another algorithm, or `none`, is refused before any
//! signature check. `exp`, `aud`, `iss` and `sub` are required; `sub` names the principal.
//!
//! Delegated tokens: the service mints a short-lived HS256 token for a principal acting for an
//! end user. Its `domains` claim is checked against the principal's grants when minted and again
//! when used, so it can only narrow them.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::access::{Caller, EndUser};
use crate::model::Role;
use crate::store::Store;
use crate::{Error, Result};

/// Longest lifetime of a delegated token.
pub const MAX_DELEGATION_SECS: u64 = 900;
const LEEWAY_SECS: u64 = 30;

/// One verification key.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: String,
    pub algorithm: Algorithm,
    key: DecodingKey,
}

impl JwtKey {
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<JwtKey> {
        if secret.len() < 32 {
            return Err(Error::invalid(
                "jwt key",
                format!("HS256 key `{kid}` must be at least 32 bytes"),
            ));
        }
        Ok(JwtKey {
            kid: kid.into(),
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        })
    }

    pub fn rs256_pem(kid: &str, public_pem: &[u8]) -> Result<JwtKey> {
        Ok(JwtKey {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            key: DecodingKey::from_rsa_pem(public_pem)
                .map_err(|e| Error::invalid("jwt key", format!("RS256 key `{kid}`: {e}")))?,
        })
    }

    pub fn eddsa_pem(kid: &str, public_pem: &[u8]) -> Result<JwtKey> {
        Ok(JwtKey {
            kid: kid.into(),
            algorithm: Algorithm::EdDSA,
            key: DecodingKey::from_ed_pem(public_pem)
                .map_err(|e| Error::invalid("jwt key", format!("EdDSA key `{kid}`: {e}")))?,
        })
    }
}

/// What tokens must carry to be accepted, and the keys that may have signed them.
#[derive(Clone)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    pub keys: Vec<JwtKey>,
    /// Signs delegated tokens (HS256; also one of `keys` so they verify).
    pub delegation: Option<(String, Vec<u8>)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    // Optional here so that a missing one is reported by the validation as a missing claim.
    sub: Option<String>,
    exp: Option<u64>,
    aud: Option<String>,
    iss: Option<String>,
    /// Narrows the principal's grants to these domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domains: Option<Vec<String>>,
    /// The end user a delegated token acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<String>,
    /// Caps the principal's grants at this role (`read`, `write`, `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// A delegated token as minted: the token, when it expires and what it opens.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delegation {
    /// The token (a JWT): `Authorization: Bearer <token>`.
    pub token: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    /// The end user the agent acts for.
    pub end_user: String,
    /// What it opens: the domains both may read.
    pub domains: Vec<String>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// The caller a bearer JWT stands for. Every refusal is `Unauthenticated` with a short
    /// reason and is audited.
    pub async fn authenticate_jwt(&self, config: &JwtConfig, token: &str) -> Result<Caller> {
        match self.verify_jwt(config, token).await {
            Ok(caller) => Ok(caller),
            Err(Refused::Store(e)) => Err(e),
            Err(Refused::Reason(reason)) => {
                self.count_refusal("anonymous", "jwt", &reason);
                Err(Error::Unauthenticated(format!("invalid token ({reason})")))
            }
        }
    }

    /// The principal a token names, or why it is refused (a store that cannot be reached is no
    /// reason to refuse: that error is returned as it is).
    async fn named(&self, name: &str, unknown: &str) -> std::result::Result<Caller, Refused> {
        self.caller_named(name).await.map_err(|e| {
            if e.is_unreachable() {
                Refused::Store(e)
            } else {
                Refused::Reason(unknown.to_string())
            }
        })
    }

    async fn verify_jwt(
        &self,
        config: &JwtConfig,
        token: &str,
    ) -> std::result::Result<Caller, Refused> {
        if token.len() > 16 * 1024 {
            return Err("too long".into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed".to_string())?;
        let key = match &header.kid {
            Some(kid) => config.keys.iter().find(|k| &k.kid == kid),
            None if config.keys.len() == 1 => config.keys.first(),
            None => None,
        }
        .ok_or_else(|| "unknown key id".to_string())?;
        if header.alg != key.algorithm {
            return Err("algorithm not allowed for this key".into());
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_audience(&[&config.audience]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => "expired",
                K::InvalidAudience => "wrong audience",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "missing claim",
                _ => "invalid",
            }
            .to_string()
        })?;
        let claims = data.claims;
        let sub = claims.sub.ok_or_else(|| "missing claim".to_string())?;
        let mut caller = self.named(&sub, "unknown principal").await?;
        let exp = claims.exp.ok_or_else(|| "missing claim".to_string())?;
        let mut role = claims
            .role
            .as_deref()
            .map(Role::parse)
            .transpose()
            .map_err(|_| "unknown role".to_string())?;
        if let Some(user) = &claims.on_behalf_of {
            // A delegated token: read-only, short-lived, and bounded by the end user's grants
            // as well as the principal's, re-checked on every use.
            if exp > now_secs() + MAX_DELEGATION_SECS + LEEWAY_SECS {
                return Err(Refused::Reason("delegated token lives too long".into()));
            }
            let end_user = self.named(user, "unknown end user").await?;
            caller.on_behalf_of = Some(EndUser {
                id: end_user.id,
                name: end_user.name,
            });
            role = Some(Role::Read);
        }
        let exp_ms = i64::try_from(exp.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok(caller.narrowed(claims.domains, role, Some(exp_ms)))
    }

    /// Mints a delegated token: `caller` acting for `end_user` (a principal), read-only, for
    /// the domains both may read — those of `domains` (all such when empty) — for `ttl_secs`
    /// of at most [`MAX_DELEGATION_SECS`], and never past the caller's own expiry.
    pub async fn mint_delegated(
        &self,
        config: &JwtConfig,
        caller: &Caller,
        end_user: &str,
        domains: &[String],
        ttl_secs: u64,
    ) -> Result<Delegation> {
        let Some((kid, secret)) = &config.delegation else {
            return Err(Error::Unavailable(
                "delegation: no delegation key is configured (serve with --jwt-hs256-secret)"
                    .into(),
            ));
        };
        crate::names::validate_name("end_user", end_user)?;
        if ttl_secs == 0 || ttl_secs > MAX_DELEGATION_SECS {
            return Err(Error::invalid(
                "ttl_seconds",
                format!("must be 1 to {MAX_DELEGATION_SECS}, got {ttl_secs}"),
            ));
        }
        if caller.is_delegated() {
            return Err(Error::Forbidden(
                "a delegated token cannot delegate again".into(),
            ));
        }
        let user = self.caller_named(end_user).await?;
        let delegated = caller.clone().narrowed(None, Some(Role::Read), None);
        let delegated = Caller {
            on_behalf_of: Some(EndUser {
                id: user.id,
                name: user.name.clone(),
            }),
            ..delegated
        }
        .narrowed(None, None, None);
        // Fails, as for a missing domain, when any named domain is not readable by both.
        let pass = self.authorize(&delegated, domains, Role::Read).await?;
        let names: Vec<String> = pass.domains().iter().map(|d| d.name.clone()).collect();
        if names.is_empty() {
            return Err(Error::invalid(
                "domains",
                format!(
                    "`{}` and `{}` can read no domain in common",
                    caller.name(),
                    user.name
                ),
            ));
        }
        let now = now_secs();
        let mut exp = now + ttl_secs;
        if let Some(mine) = caller.expires_at() {
            exp = exp.min(u64::try_from(mine / 1000).unwrap_or(0));
        }
        let claims = Claims {
            sub: Some(caller.name().to_string()),
            exp: Some(exp),
            aud: Some(config.audience.clone()),
            iss: Some(config.issuer.clone()),
            domains: Some(names.clone()),
            on_behalf_of: Some(user.name.clone()),
            role: Some(Role::Read.as_str().to_string()),
            iat: Some(now),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
            .map_err(|e| Error::invalid("delegation", e.to_string()))?;
        self.audit(caller.name(), "delegate", end_user, "ok", &names.join(","))
            .await?;
        Ok(Delegation {
            token,
            expires_at: i64::try_from(exp.saturating_mul(1000)).unwrap_or(i64::MAX),
            end_user: user.name,
            domains: names,
        })
    }
}

/// Why a token is not accepted.
enum Refused {
    /// Refused: the reason is audited, not returned.
    Reason(String),
    /// Not decided: the store could not be reached.
    Store(Error),
}

impl From<String> for Refused {
    fn from(reason: String) -> Self {
        Refused::Reason(reason)
    }
}

impl From<&str> for Refused {
    fn from(reason: &str) -> Self {
        Refused::Reason(reason.to_string())
    }
}
