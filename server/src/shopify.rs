//! Shopify over HTTP: the catalog upload's body (format detection, UTF-8, parsing into indexing
//! items) and webhook signatures. The service (`service/catalog.rs`) runs the writes; this
//! module only reads bytes and checks signatures, so both routes share the indexer's parsers and
//! messages.

use base64::Engine as _;
use dartmouth_indexer::{Item, shopify, shopify_item};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::error::{ApiError, ApiResult};

/// The label record places start with: `body:3: …`, `body: products[2]: …`.
pub const BODY_LABEL: &str = "body";
/// The label of a webhook payload's place: `webhook: inventory item 808950810: …`.
pub const WEBHOOK_LABEL: &str = "webhook";

/// A domain that takes Shopify webhooks: the shop's signing secret and the principal its
/// writes are attributed to (its grants decide what the webhook may do).
#[derive(Clone)]
pub struct ShopifyWebhook {
    pub domain: String,
    pub principal: String,
    /// The app's client secret (or the shop's webhook signing secret); bytes as configured.
    pub secret: Vec<u8>,
    /// The shop's address; product URLs become `<base_url>/products/<handle>`.
    pub base_url: Option<String>,
}

impl std::fmt::Debug for ShopifyWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyWebhook")
            .field("domain", &self.domain)
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(raw body, secret)). Compared in constant time
/// (`Mac::verify_slice`); a header that is not base64 is simply wrong.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The shapes a catalog upload may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatalogFormat {
    /// Admin REST `{"products":[…]}`, `{"product":{…}}`, a bare array, or storefront
    /// `/products.json`.
    Json,
    /// A product CSV export (legacy or 2025 headers).
    Csv,
    /// GraphQL bulk-operation JSONL.
    Bulk,
}

impl CatalogFormat {
    pub fn parse(name: &str) -> ApiResult<CatalogFormat> {
        match name {
            "json" => Ok(CatalogFormat::Json),
            "csv" => Ok(CatalogFormat::Csv),
            "bulk" | "jsonl" => Ok(CatalogFormat::Bulk),
            other => Err(ApiError::invalid(format!(
                "format: `{}` is not one of json, csv, bulk",
                dartmouth_domains::names::shown(other)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CatalogFormat::Json => "json",
            CatalogFormat::Csv => "csv",
            CatalogFormat::Bulk => "bulk",
        }
    }

    /// The format a request says (Content-Type) or, failing that, its body shows: a first line
    /// that is an object with `__typename` is bulk JSONL, `{` or `[` is JSON, anything else CSV.
    pub fn sniff(text: &str, content_type: Option<&str>) -> CatalogFormat {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("text/csv" | "application/csv") => return CatalogFormat::Csv,
            Some("application/jsonl" | "application/x-ndjson" | "application/x-jsonlines") => {
                return CatalogFormat::Bulk;
            }
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if first.contains("\"__typename\"")
            && serde_json::from_str::<Value>(first)
                .is_ok_and(|v| v.get("__typename").is_some_and(Value::is_string))
        {
            return CatalogFormat::Bulk;
        }
        if first.starts_with('{') || first.starts_with('[') {
            CatalogFormat::Json
        } else {
            CatalogFormat::Csv
        }
    }
}

/// The body as text (a leading byte-order mark dropped); invalid UTF-8 is named by line.
pub fn utf8_body(bytes: &[u8]) -> ApiResult<&str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        ApiError::invalid(format!(
            "{BODY_LABEL}:{line}: invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })
}

/// A whole JSON body; a syntax error is named by line.
pub fn json_body(text: &str, label: &str) -> ApiResult<Value> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("{label}:{}: malformed JSON: {e}", e.line())))
}

/// Why a catalog is refused before anything is written (both are 400s).
#[derive(Debug)]
pub enum Refusal {
    /// The body cannot be read in the format (its place named): when the format was a guess,
    /// the caller says so.
    Body(ApiError),
    /// A full sync of a catalog without products, which would delete every document.
    EmptyFullSync(ApiError),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Body(e) | Refusal::EmptyFullSync(e) => e,
        }
    }
}

/// The catalog's records as indexing items (bad records stay in place as errors, reported by
/// the job). Refused outright (nothing written): a body none of whose records can be read,
/// and a full sync of a catalog that holds no products (it would delete every document).
pub fn read_catalog(
    text: &str,
    format: CatalogFormat,
    base_url: Option<&str>,
    full_sync: bool,
) -> Result<Vec<dartmouth_indexer::Result<Item>>, Refusal> {
    let changes: Vec<dartmouth_indexer::Result<shopify::Change>> = match format {
        CatalogFormat::Json => shopify::read_json(
            json_body(text, BODY_LABEL).map_err(Refusal::Body)?,
            BODY_LABEL,
        ),
        CatalogFormat::Bulk => shopify::read_bulk(text, BODY_LABEL),
        CatalogFormat::Csv => shopify::read_csv(text.as_bytes(), BODY_LABEL).collect(),
    };
    let items: Vec<_> = changes
        .into_iter()
        .map(|c| shopify_item(c, BODY_LABEL, base_url))
        .collect();
    if items.is_empty() {
        return Err(Refusal::Body(ApiError::invalid(format!(
            "{BODY_LABEL}: the catalog holds no products"
        ))));
    }
    if items.iter().all(Result::is_err) {
        let mut errors = items.into_iter().filter_map(Result::err);
        let first = errors
            .next()
            .map(ApiError::from)
            .map_or_else(String::new, |e| e.message);
        let more = errors.count();
        return Err(Refusal::Body(ApiError::invalid(if more == 0 {
            first
        } else {
            format!("{first} (and {more} more records failed; nothing was written)")
        })));
    }
    if full_sync && !items.iter().any(|i| matches!(i, Ok(Item::Doc(_)))) {
        return Err(Refusal::EmptyFullSync(ApiError::invalid(
            "full_sync: the catalog holds no products, so a full sync would delete every document",
        )));
    }
    Ok(items)
}

/// What a catalog upload or a webhook did: the fields of the indexer's summary a client needs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShopifyOutput {
    /// The domain written.
    pub domain: String,
    /// The catalog's format (uploads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<CatalogFormat>,
    /// The webhook's topic, as sent (webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The domain's changelog sequence the writes were acknowledged with (or the one already
    /// applied when nothing changed): pass it as `min_seq` to read your own writes.
    pub seq: u64,
    /// Products new to the domain.
    pub added: usize,
    /// Products whose content, attributes or source changed.
    pub updated: usize,
    /// Products already stored as sent: not rewritten (a retried webhook lands here).
    pub unchanged: usize,
    /// Products deleted (a delete, or a full sync's products the catalog no longer has).
    pub deleted: usize,
    /// Products and stock levels older than what the domain holds (by Shopify's
    /// `updated_at`: a late or replayed delivery): not applied.
    pub stale: usize,
    /// A webhook delivery already processed (its `X-Shopify-Webhook-Id`): not processed again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Records that could not be indexed.
    pub failed_count: usize,
    /// `place: reason` of each record not indexed (the first 1000).
    pub failed: Vec<String>,
    /// Products with nothing to index.
    pub skipped: Vec<String>,
    /// Why a full sync deleted nothing, when it did not.
    pub notes: Vec<String>,
    /// Chunks written.
    pub chunks: usize,
    /// Chunks the model embedded; the other written chunks kept their stored vectors.
    pub embedded_chunks: usize,
}

impl ShopifyOutput {
    pub fn new(summary: dartmouth_indexer::IndexSummary) -> ShopifyOutput {
        ShopifyOutput {
            domain: summary.domain,
            format: None,
            topic: None,
            seq: summary.applied_seq,
            added: summary.added,
            updated: summary.updated,
            unchanged: summary.unchanged,
            deleted: summary.deleted,
            stale: summary.stale,
            duplicate: false,
            failed_count: summary.failed_count,
            failed: summary.failed,
            skipped: summary.skipped,
            notes: summary.notes,
            chunks: summary.chunks,
            embedded_chunks: summary.embedded_chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_base64_hmac_sha256_of_the_raw_body() {
        // RFC 4231 test case 2, base64 of 5bdcc146…ec3843.
        let good = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";
        let body = b"what do ya want for nothing?";
        assert!(verify_signature(b"Jefe", body, good));
        assert!(verify_signature(b"Jefe", body, &format!(" {good} ")));
        assert!(!verify_signature(
            b"Jefe",
            b"what do ya want for nothing? ",
            good
        ));
        assert!(!verify_signature(b"jefe", body, good));
        assert!(!verify_signature(b"Jefe", body, "not base64!"));
        assert!(!verify_signature(b"Jefe", body, ""));
        // Hex of the right MAC is not the right header.
        assert!(!verify_signature(
            b"Jefe",
            body,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
    }

    #[test]
    fn formats_are_sniffed_from_the_content_type_then_the_body() {
        use CatalogFormat::*;
        assert_eq!(CatalogFormat::sniff("{\"products\":[]}", None), Json);
        assert_eq!(CatalogFormat::sniff("\n  [ {} ]", None), Json);
        assert_eq!(
            CatalogFormat::sniff(
                "{\"id\":\"gid://shopify/Product/1\",\"__typename\":\"Product\"}\n{}",
                None
            ),
            Bulk
        );
        // A products document that merely mentions __typename below its first line is JSON.
        assert_eq!(
            CatalogFormat::sniff("{\n \"products\": [{\"__typename\": \"Product\"}]}", None),
            Json
        );
        assert_eq!(CatalogFormat::sniff("Handle,Title\nx,y", None), Csv);
        assert_eq!(
            CatalogFormat::sniff("{}", Some("text/csv; charset=utf-8")),
            Csv
        );
        assert_eq!(CatalogFormat::sniff("{}", Some("application/json")), Json);
        assert!(CatalogFormat::parse("xml").is_err());
    }

    #[test]
    fn bad_bodies_are_named_by_line() {
        let e = utf8_body(b"Handle,Title\nok,\xff\n").unwrap_err();
        assert_eq!(e.message, "body:2: invalid UTF-8 at byte 16");
        assert_eq!(utf8_body(b"\xEF\xBB\xBFHandle").ok(), Some("Handle"));
        let body = |r: Result<_, Refusal>| match r {
            Err(Refusal::Body(e)) => e,
            other => panic!("{other:?}"),
        };
        let e = body(read_catalog(
            "{\n\"products\": [\n,]}",
            CatalogFormat::Json,
            None,
            false,
        ));
        assert!(e.message.starts_with("body:3: malformed JSON"), "{e}");
        let e = body(read_catalog(
            "{\"items\": []}",
            CatalogFormat::Json,
            None,
            false,
        ));
        assert!(e.message.starts_with("body: expected"), "{e}");
        let e = body(read_catalog(
            "Name,Price\nx,1\n",
            CatalogFormat::Csv,
            None,
            false,
        ));
        assert!(e.message.contains("body:1: unknown header dialect"), "{e}");
        let e = body(read_catalog("", CatalogFormat::Csv, None, false));
        assert!(e.message.starts_with("body"), "{e}");
    }

    #[test]
    fn a_full_sync_needs_products() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/datasets/shopify/graphql_bulk_jsonl/inventory_levels.jsonl");
        let levels = std::fs::read_to_string(path).unwrap();
        assert_eq!(CatalogFormat::sniff(&levels, None), CatalogFormat::Bulk);
        let items = read_catalog(&levels, CatalogFormat::Bulk, None, false).unwrap();
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Ok(Item::Inventory { .. })))
        );
        assert!(!items.iter().any(|i| matches!(i, Ok(Item::Doc(_)))));
        let Err(Refusal::EmptyFullSync(e)) = read_catalog(&levels, CatalogFormat::Bulk, None, true)
        else {
            panic!("a full sync of no products was not refused")
        };
        assert!(e.message.starts_with("full_sync"), "{e}");
    }
}
