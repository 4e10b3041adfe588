//! The OpenAPI 3.1 document served at `/openapi.json`, derived from the code: each route's
//! handler in `http.rs` carries its operation (`#[utoipa::path]`), and every request and answer
//! is the Rust type the handler decodes or encodes (`#[derive(ToSchema)]`, field descriptions
//! from their doc comments). Tests check every route is in it, every field has a description,
//! and every JSON answer the HTTP suite receives validates against it.

use utoipa::OpenApi;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, RefOr, ResponseBuilder, SecurityRequirement,
};

use crate::http;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dartmouth Knowledge",
        description = "Hybrid BM25 + vector retrieval over access-controlled knowledge domains. \
            Every /v1 route needs `Authorization: Bearer <API key or JWT>` (except Shopify \
            webhooks, which are signed); a domain the caller cannot read answers exactly as one \
            that does not exist. Errors are `{\"error\": {\"code\", \"message\"}}`; 429 and 503 \
            carry `Retry-After` (seconds). Writes answer the sequence they were acknowledged \
            with: pass it as `min_seq` to read your own writes."
    ),
    paths(
        http::search,
        http::context,
        http::document,
        http::chunk,
        http::ingest,
        http::upload_catalog,
        http::upload_files,
        http::delete_document,
        http::delete_documents,
        http::shopify_webhook,
        http::list_domains,
        http::create_domain,
        http::domain_stats,
        http::update_domain,
        http::delete_domain,
        http::reindex,
        http::rollback_model,
        http::drop_old_generation,
        http::connect_shop,
        http::shop_status,
        http::shop_status_alias,
        http::disconnect_shop,
        http::sync_shop,
        http::list_tasks,
        http::task,
        http::cancel_task,
        http::list_principals,
        http::create_principal,
        http::delete_principal,
        http::members,
        http::add_member,
        http::remove_member,
        http::list_grants,
        http::grant,
        http::revoke_grant,
        http::list_keys,
        http::create_key,
        http::revoke_key,
        http::delegate,
        http::audit,
        http::list_snapshots,
        http::create_snapshot,
        http::restore_snapshot,
        http::list_models,
        http::live_stats,
        http::mcp,
        http::admin_page,
        http::healthz,
        http::ready,
        http::metrics,
        http::openapi_json,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Conventions),
)]
struct Api;

/// What every operation shares: the error answer, and the credential it needs.
struct Conventions;

/// Routes a caller reaches without a credential.
const OPEN: [&str; 5] = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/admin"];

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        // A type another flattens into itself (`#[serde(flatten)]`: an `allOf` part) cannot be
        // closed to other fields, though it refuses unknown fields where it is parsed (the
        // model catalogue's `deny_unknown_fields`): the whole would match nothing.
        let parts: Vec<String> = components
            .schemas
            .values()
            .filter_map(|s| match s {
                RefOr::T(Schema::AllOf(all)) => Some(all.items.iter()),
                _ => None,
            })
            .flatten()
            .filter_map(|part| match part {
                RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_string),
                RefOr::T(_) => None,
            })
            .collect();
        for name in parts {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
                object.additional_properties = None;
            }
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "an API key (`dk_…`, `dartmouth key create`) or a JWT (a delegated \
                         token, or one from the configured issuer)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "shopifyHmac",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Shopify-Hmac-Sha256",
                "base64(HMAC-SHA256(raw body, the shop's webhook secret))",
            ))),
        );
        let retry_after = HeaderBuilder::new()
            .schema(Some(<u64 as utoipa::PartialSchema>::schema()))
            .description(Some(
                "with 429 and 503: seconds to wait before trying again",
            ))
            .build();
        let error = ResponseBuilder::new()
            .description(
                "an error: its `code` gives the status (invalid_argument 400, unauthenticated \
                 401, permission_denied 403, not_found 404, conflict 409, payload_too_large 413, \
                 rate_limited 429, unavailable 503, internal 500)",
            )
            .header("Retry-After", retry_after)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Error",
                    ))))
                    .build(),
            )
            .build();
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN.contains(&path.as_str());
            let webhook = path.starts_with("/v1/webhooks/");
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .insert("default".into(), RefOr::T(error.clone()));
                if webhook {
                    op.security = Some(vec![SecurityRequirement::new(
                        "shopifyHmac",
                        Vec::<String>::new(),
                    )]);
                } else if !open {
                    op.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                }
            }
        }
    }
}

/// The document, as served.
pub fn document() -> serde_json::Value {
    serde_json::to_value(Api::openapi()).unwrap_or_default()
}
