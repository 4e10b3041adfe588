//! JWT verification and delegated tokens against a real SQLite store; RS256 and EdDSA keys are
//! made by the `openssl` command line.

use std::process::Command;

use dartmouth_domains::{Error, JwtConfig, JwtKey, PrincipalKind, Role, Store};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256";
const DELEGATION: &[u8] = b"delegation-secret-delegation-secret!!";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (private PEM, public PEM) for `algorithm` ("ed25519" or "rsa").
fn keypair(dir: &std::path::Path, algorithm: &str) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join(format!("{algorithm}.pem"));
    let p = private.to_str().unwrap();
    match algorithm {
        "rsa" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
    };
    let public = openssl(&["pkey", "-in", p, "-pubout"]);
    (std::fs::read(&private).unwrap(), public)
}

fn token(alg: Algorithm, kid: &str, key: &EncodingKey, claims: serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "exp": now() + 300, "aud": "dartmouth", "iss": "https://idp.test"})
}

#[tokio::test]
async fn tokens_are_verified_strictly_and_delegation_only_narrows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    let admin = store.local_admin().await.unwrap();
    let settings = json!({});
    for d in ["kb", "catalog", "hr"] {
        store.create_domain(&admin, d, "", &settings).await.unwrap();
    }
    store
        .create_principal(&admin, "assistant", PrincipalKind::Agent)
        .await
        .unwrap();
    store
        .grant(&admin, "assistant", "kb", Role::Read)
        .await
        .unwrap();
    store
        .grant(&admin, "assistant", "catalog", Role::Read)
        .await
        .unwrap();
    // End users are principals too: a delegated token reads what both may read.
    for (user, domains) in [("user-42", &["kb", "catalog"][..]), ("user-7", &["hr"][..])] {
        store
            .create_principal(&admin, user, PrincipalKind::User)
            .await
            .unwrap();
        for d in domains {
            store.grant(&admin, user, d, Role::Read).await.unwrap();
        }
    }

    let (rsa_private, rsa_public) = keypair(dir.path(), "rsa");
    let (ed_private, ed_public) = keypair(dir.path(), "ed25519");
    let config = JwtConfig {
        issuer: "https://idp.test".into(),
        audience: "dartmouth".into(),
        keys: vec![
            JwtKey::hs256("hs", SECRET).unwrap(),
            JwtKey::rs256_pem("rs", &rsa_public).unwrap(),
            JwtKey::eddsa_pem("ed", &ed_public).unwrap(),
            JwtKey::hs256("delegation", DELEGATION).unwrap(),
        ],
        delegation: Some(("delegation".into(), DELEGATION.to_vec())),
    };
    assert!(JwtKey::hs256("short", b"too short").is_err());
    assert!(JwtKey::rs256_pem("bad", b"not a pem").is_err());

    let hs = EncodingKey::from_secret(SECRET);
    let rs = EncodingKey::from_rsa_pem(&rsa_private).unwrap();
    let ed = EncodingKey::from_ed_pem(&ed_private).unwrap();
    for (alg, kid, key) in [
        (Algorithm::HS256, "hs", &hs),
        (Algorithm::RS256, "rs", &rs),
        (Algorithm::EdDSA, "ed", &ed),
    ] {
        let caller = store
            .authenticate_jwt(&config, &token(alg, kid, key, claims("assistant")))
            .await
            .unwrap();
        assert_eq!(caller.name(), "assistant", "{alg:?}");
    }

    let refused = |reason: &'static str| {
        move |r: Result<dartmouth_domains::Caller, Error>| match r {
            Err(Error::Unauthenticated(m)) => assert!(m.contains(reason), "{m} (wanted {reason})"),
            other => panic!("expected a refusal ({reason}), got {other:?}"),
        }
    };
    let check = |t: String| {
        let store = store.clone();
        let config = &config;
        async move { store.authenticate_jwt(config, &t).await }
    };
    refused("malformed")(check("not.a.token".into()).await);
    refused("malformed")(check("x".repeat(100)).await);
    refused("too long")(check("a".repeat(20_000)).await);
    // alg=none: an unsigned token.
    let none_header = base64url(br#"{"alg":"none","typ":"JWT","kid":"hs"}"#);
    let body = base64url(claims("assistant").to_string().as_bytes());
    refused("malformed")(check(format!("{none_header}.{body}.")).await);
    // An HS256 token naming the RS256 key (the classic key-confusion attack).
    refused("algorithm not allowed")(
        check(token(
            Algorithm::HS256,
            "rs",
            &EncodingKey::from_secret(&rsa_public),
            claims("assistant"),
        ))
        .await,
    );
    refused("unknown key id")(
        check(token(Algorithm::HS256, "other", &hs, claims("assistant"))).await,
    );
    refused("bad signature")(
        check(token(
            Algorithm::HS256,
            "hs",
            &EncodingKey::from_secret(b"wrong-secret-wrong-secret-wrong!!"),
            claims("assistant"),
        ))
        .await,
    );
    let mut c = claims("assistant");
    c["exp"] = json!(now() - 3600);
    refused("expired")(check(token(Algorithm::HS256, "hs", &hs, c)).await);
    let mut c = claims("assistant");
    c["aud"] = json!("someone-else");
    refused("wrong audience")(check(token(Algorithm::HS256, "hs", &hs, c)).await);
    let mut c = claims("assistant");
    c["iss"] = json!("https://evil.test");
    refused("wrong issuer")(check(token(Algorithm::HS256, "hs", &hs, c)).await);
    let mut c = claims("assistant");
    c.as_object_mut().unwrap().remove("exp");
    refused("missing claim")(check(token(Algorithm::HS256, "hs", &hs, c)).await);
    refused("unknown principal")(check(token(Algorithm::HS256, "hs", &hs, claims("ghost"))).await);

    // Delegation: only domains the agent and the end user can both read, read-only, for at
    // most 15 minutes; the token carries no more.
    let agent = store.act_as(&admin, "assistant").await.unwrap();
    assert!(matches!(
        store
            .mint_delegated(&config, &agent, "user-42", &["hr".into()], 60)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .mint_delegated(&config, &agent, "user-42", &["kb".into()], 10_000)
            .await,
        Err(Error::Invalid {
            field: "ttl_seconds",
            ..
        })
    ));
    // user-7 reads only hr, which the assistant cannot: nothing in common.
    assert!(matches!(
        store
            .mint_delegated(&config, &agent, "user-7", &[], 60)
            .await,
        Err(Error::Invalid {
            field: "domains",
            ..
        })
    ));
    let both = store
        .mint_delegated(&config, &agent, "user-42", &[], 60)
        .await
        .unwrap();
    assert_eq!(both.domains, ["catalog", "kb"]);
    let delegated = store
        .mint_delegated(&config, &agent, "user-42", &["kb".into()], 900)
        .await
        .unwrap()
        .token;
    let acting = store.authenticate_jwt(&config, &delegated).await.unwrap();
    assert_eq!(acting.name(), "assistant");
    let pass = store.authorize(&acting, &[], Role::Read).await.unwrap();
    let names: Vec<&str> = pass.domains().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["kb"]);
    assert!(
        store
            .authorize(&acting, &["catalog".into()], Role::Read)
            .await
            .is_err()
    );
    // Its lifetime is capped.
    let payload = delegated.split('.').nth(1).unwrap();
    let minted: serde_json::Value = serde_json::from_slice(&base64url_decode(payload)).unwrap();
    assert!(minted["exp"].as_u64().unwrap() <= now() + 900);
    assert_eq!(minted["on_behalf_of"], "user-42");
    // Even the admin's delegated token is a reader's.
    let admin_token = store
        .mint_delegated(&config, &admin, "user-7", &["hr".into()], 60)
        .await
        .unwrap()
        .token;
    let as_admin = store.authenticate_jwt(&config, &admin_token).await.unwrap();
    assert!(!as_admin.is_superuser());
    assert!(
        store
            .authorize(&as_admin, &["kb".into()], Role::Read)
            .await
            .is_err()
    );
    for role in [Role::Write, Role::Admin] {
        assert!(
            store
                .authorize(&as_admin, &["hr".into()], role)
                .await
                .is_err()
        );
    }
    // The end user's grants are re-checked on use: revoked, the token opens nothing.
    store.revoke_grant(&admin, "user-42", "kb").await.unwrap();
    let acting = store.authenticate_jwt(&config, &delegated).await.unwrap();
    assert!(
        store
            .authorize(&acting, &[], Role::Read)
            .await
            .unwrap()
            .domains()
            .is_empty()
    );
    // A token that claims to be delegated but lives longer than 15 minutes is refused.
    let mut c = claims("assistant");
    c["on_behalf_of"] = json!("user-42");
    c["exp"] = json!(now() + 3600);
    refused("lives too long")(
        check(token(
            Algorithm::HS256,
            "delegation",
            &EncodingKey::from_secret(DELEGATION),
            c,
        ))
        .await,
    );

    let audit = store.audit_since(&admin, 0).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "authenticate" && e.detail == "expired")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "delegate" && e.target == "user-42")
    );
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let vals: Vec<u32> = s
        .bytes()
        .map(|c| A.iter().position(|a| *a == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
