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

use crate::access::Caller;
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
            Err(reason) => {
                self.audit("anonymous", "authenticate", "jwt", "denied", &reason)
                    .await?;
                Err(Error::Unauthenticated(format!("invalid token ({reason})")))
            }
        }
    }

    async fn verify_jwt(
        &self,
        config: &JwtConfig,
        token: &str,
    ) -> std::result::Result<Caller, String> {
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
        let mut caller = self
            .caller_named(&sub)
            .await
            .map_err(|_| "unknown principal".to_string())?;
        if claims.on_behalf_of.is_some() {
            // A delegated token never carries more than a reader's scope.
            caller.superuser = false;
        }
        caller.only = claims.domains;
        Ok(caller)
    }

    /// Mints a delegated token: `caller` acting for `end_user`, limited to `domains` (each of
    /// which the caller must be able to read) for at most `MAX_DELEGATION_SECS`.
    pub async fn mint_delegated(
        &self,
        config: &JwtConfig,
        caller: &Caller,
        end_user: &str,
        domains: &[String],
        ttl_secs: u64,
    ) -> Result<String> {
        let Some((kid, secret)) = &config.delegation else {
            return Err(Error::invalid(
                "delegation",
                "no delegation key is configured",
            ));
        };
        crate::names::validate_text("end user", end_user, 256)?;
        if domains.is_empty() {
            return Err(Error::invalid(
                "domains",
                "a delegated token names its domains",
            ));
        }
        // Fails, as for a missing domain, when any is not readable by the caller.
        let pass = self.authorize(caller, domains, Role::Read).await?;
        let claims = Claims {
            sub: Some(caller.name().to_string()),
            exp: Some(now_secs() + ttl_secs.clamp(1, MAX_DELEGATION_SECS)),
            aud: Some(config.audience.clone()),
            iss: Some(config.issuer.clone()),
            domains: Some(pass.domains().iter().map(|d| d.name.clone()).collect()),
            on_behalf_of: Some(end_user.to_string()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
            .map_err(|e| Error::invalid("delegation", e.to_string()))?;
        self.audit(
            caller.name(),
            "delegate",
            end_user,
            "ok",
            &domains.join(","),
        )
        .await?;
        Ok(token)
    }
}
