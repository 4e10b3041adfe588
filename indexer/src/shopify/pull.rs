//! Pulling a shop's catalog through the Admin GraphQL API: a full sync as a bulk operation
//! whose grouped JSONL result is streamed into [`BulkStream`], an incremental sync as the
//! paginated `products` query filtered on `updated_at`, and deleted products from
//! `deletionEvents`.
//!
//! The contract, from Shopify's Admin GraphQL reference:
//! - `bulkOperationRunQuery(query:, groupObjects:)` returns `bulkOperation { id status }` and
//!   `userErrors { field message code }`; `OPERATION_IN_PROGRESS` when the app's bulk query slot
//!   is taken (<https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/bulkOperationRunQuery>,
//!   <https://shopify.dev/docs/api/admin-graphql/latest/enums/BulkOperationUserErrorCode>);
//! - a `BulkOperation` is polled by id through `node(id:)`, which every version serves
//!   (`currentBulkOperation` is deprecated from 2026-01): `status` CREATED → RUNNING →
//!   COMPLETED / FAILED / CANCELED (or CANCELING, EXPIRED), `errorCode`, `objectCount` (a string),
//!   `url` and `partialDataUrl`, which expire after a week
//!   (<https://shopify.dev/docs/api/admin-graphql/2026-07/objects/BulkOperation>);
//! - `products(first:, after:, query:, sortKey: UPDATED_AT)` with `pageInfo { hasNextPage
//!   endCursor }` (<https://shopify.dev/docs/api/admin-graphql/2026-01/queries/products>);
//! - `deletionEvents(subjectTypes: [PRODUCT], sortKey: CREATED_AT, query:)` with `occurredAt`,
//!   `subjectId` (the query filter's name is not documented: `occurred_at`, checked again here) (<https://shopify.dev/docs/api/admin-graphql/2027-01/queries/deletionEvents>).

use std::io::BufReader;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::admin::AdminApi;
use super::bulk::BulkStream;
use super::json::product_from_json;
use super::{Change, Product, parse_id_str};
use crate::{Error, ErrorKind, Result};

/// The bulk query of a full sync: products with their options, featured image, variants (their
/// selected options and prices), each variant's inventory levels per location, the collections
/// they are in and the metafields named in `metafields` (`namespace.key`). Five connections,
/// two levels deep: the documented limits
/// (<https://shopify.dev/docs/api/usage/bulk-operations/queries#operation-restrictions>).
pub fn products_bulk_query(metafields: &[String]) -> String {
    let metafields = if metafields.is_empty() {
        String::new()
    } else {
        format!(
            "\n        metafields(keys: {}) {{ edges {{ node {{ __typename id namespace key value }} }} }}",
            serde_json::to_string(metafields).unwrap_or_default()
        )
    };
    format!(
        r#"{{
  products {{
    edges {{
      node {{
        __typename
        id
        handle
        title
        descriptionHtml
        vendor
        productType
        tags
        status
        updatedAt
        onlineStoreUrl
        options {{ name values }}
        featuredMedia {{ preview {{ image {{ url }} }} }}
        collections {{ edges {{ node {{ __typename id title }} }} }}{metafields}
        variants {{
          edges {{
            node {{
              __typename
              id
              title
              sku
              barcode
              price
              compareAtPrice
              inventoryQuantity
              inventoryPolicy
              updatedAt
              selectedOptions {{ name value }}
              inventoryItem {{
                id
                tracked
                inventoryLevels {{
                  edges {{
                    node {{
                      __typename
                      id
                      location {{ id }}
                      quantities(names: ["available"]) {{ name quantity }}
                    }}
                  }}
                }}
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}"#
    )
}

const RUN_BULK: &str = "mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}";

const POLL_BULK: &str = "query PollBulk($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount url partialDataUrl }
  }
}";

const CANCEL_BULK: &str = "mutation CancelBulk($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}";

/// One page of the incremental query; the fields are the bulk query's.
fn products_page_query(metafields: &[String]) -> String {
    let metafields = if metafields.is_empty() {
        String::new()
    } else {
        format!(
            "\n      metafields(first: {}, keys: {}) {{ nodes {{ namespace key value }} }}",
            metafields.len(),
            serde_json::to_string(metafields).unwrap_or_default()
        )
    };
    format!(
        r#"query ProductsPage($first: Int!, $after: String, $query: String) {{
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id handle title descriptionHtml vendor productType tags status updatedAt onlineStoreUrl
      options {{ name values }}
      featuredMedia {{ preview {{ image {{ url }} }} }}
      collections(first: 50) {{ nodes {{ title }} }}{metafields}
      variants(first: 100) {{
        nodes {{
          id title sku barcode price compareAtPrice inventoryQuantity inventoryPolicy updatedAt
          selectedOptions {{ name value }}
          inventoryItem {{
            id tracked
            inventoryLevels(first: 50) {{
              nodes {{ location {{ id }} quantities(names: ["available"]) {{ name quantity }} }}
            }}
          }}
        }}
      }}
    }}
  }}
}}"#
    )
}

const DELETIONS_PAGE: &str = r#"query Deletions($first: Int!, $after: String, $query: String) {
  deletionEvents(first: $first, after: $after, subjectTypes: [PRODUCT], query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { occurredAt subjectId subjectType }
  }
}"#;

/// How a finished bulk operation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkDone {
    pub id: String,
    /// The JSONL result; `None` when it found no objects.
    pub url: Option<String>,
    pub object_count: u64,
}

fn shop_error(api: &AdminApi, kind: ErrorKind, message: impl std::fmt::Display) -> Error {
    Error::Shop {
        kind,
        message: format!("shop {}: {message}", api.shop()),
    }
}

/// Starts the bulk query `query`; when the app's bulk slot is taken, waits (polling every
/// `poll`) until it is free, up to `patience`.
pub fn start_bulk(
    api: &mut AdminApi,
    query: &str,
    poll: Duration,
    patience: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Result<String> {
    let started = Instant::now();
    loop {
        let data = api.query(RUN_BULK, json!({ "query": query }))?;
        let run = &data["bulkOperationRunQuery"];
        let errors = run["userErrors"].as_array().cloned().unwrap_or_default();
        if errors.is_empty() {
            return run["bulkOperation"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    shop_error(
                        api,
                        ErrorKind::Unavailable,
                        "bulkOperationRunQuery returned no operation",
                    )
                });
        }
        let busy = errors
            .iter()
            .all(|e| e["code"] == "OPERATION_IN_PROGRESS" || e["code"] == "LIMIT_REACHED");
        if !busy || started.elapsed() >= patience || cancelled() {
            let messages: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "{} ({})",
                        e["message"].as_str().unwrap_or(""),
                        e["code"].as_str().unwrap_or("")
                    )
                })
                .collect();
            return Err(shop_error(
                api,
                if busy {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::BadRequest
                },
                format!("cannot start the bulk query: {}", messages.join("; ")),
            ));
        }
        std::thread::sleep(poll);
    }
}

/// Polls the bulk operation `id` until it ends; cancelled runs cancel it at the shop too.
pub fn await_bulk(
    api: &mut AdminApi,
    id: &str,
    poll: Duration,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(u64),
) -> Result<BulkDone> {
    loop {
        if cancelled() {
            let _ = api.query(CANCEL_BULK, json!({ "id": id }));
            return Err(shop_error(
                api,
                ErrorKind::Conflict,
                "the sync was cancelled",
            ));
        }
        let data = api.query(POLL_BULK, json!({ "id": id }))?;
        let op = &data["node"];
        if op.is_null() {
            return Err(shop_error(
                api,
                ErrorKind::Unavailable,
                format!("bulk operation {id} is unknown to the shop"),
            ));
        }
        let count = match &op["objectCount"] {
            Value::String(s) => s.parse().unwrap_or(0),
            v => v.as_u64().unwrap_or(0),
        };
        progress(count);
        match op["status"].as_str().unwrap_or("") {
            "COMPLETED" => {
                return Ok(BulkDone {
                    id: id.to_string(),
                    url: op["url"].as_str().map(str::to_string),
                    object_count: count,
                });
            }
            "CREATED" | "RUNNING" | "CANCELING" => std::thread::sleep(poll),
            status => {
                let code = op["errorCode"].as_str().unwrap_or("none");
                let partial = if op["partialDataUrl"].is_string() {
                    " (a partial result exists; it is not used: a sync needs the whole catalog)"
                } else {
                    ""
                };
                return Err(shop_error(
                    api,
                    ErrorKind::Unavailable,
                    format!("bulk operation {id} ended {status}, error code {code}{partial}"),
                ));
            }
        }
    }
}

/// A bulk result being downloaded, read a line at a time.
pub type ResultStream = BulkStream<BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>>;

/// The changes in a finished bulk operation's result, read from its URL as they arrive.
/// `Ok(None)`: the URL has expired (the caller runs the operation again).
pub fn stream_result(url: &str) -> Result<Option<ResultStream>> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let response = agent.get(url).call().map_err(|e| Error::Shop {
        kind: ErrorKind::Unavailable,
        message: format!("cannot download the bulk result: {e}"),
    })?;
    let status = response.status().as_u16();
    // Signed storage URLs answer 403 (or 400/410) once they expire.
    if matches!(status, 400 | 403 | 404 | 410) {
        return Ok(None);
    }
    if status != 200 {
        return Err(Error::Shop {
            kind: ErrorKind::Unavailable,
            message: format!("downloading the bulk result answered {status}"),
        });
    }
    let reader: Box<dyn std::io::Read + Send + Sync> = Box::new(response.into_body().into_reader());
    Ok(Some(BulkStream::new(
        BufReader::with_capacity(1 << 16, reader),
        "bulk result",
    )))
}

/// A page of products changed since a time, and the cursor of the next.
#[derive(Debug)]
pub struct Page {
    pub changes: Vec<Result<Change>>,
    pub next: Option<String>,
}

/// Products updated at or after `since` (an ISO 8601 time), a page of `first` at a time.
pub fn products_page(
    api: &mut AdminApi,
    metafields: &[String],
    since: Option<&str>,
    after: Option<&str>,
    first: u32,
) -> Result<Page> {
    let query = since.map(|s| format!("updated_at:>='{s}'"));
    let data = api.query(
        &products_page_query(metafields),
        json!({ "first": first, "after": after, "query": query }),
    )?;
    let products = &data["products"];
    let changes = products["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let place = format!(
                        "products page{}: product {}",
                        after.map(|a| format!(" after {a}")).unwrap_or_default(),
                        i + 1
                    );
                    let o = n
                        .as_object()
                        .ok_or_else(|| Error::bad(&place, "expected an object"))?;
                    let p: Product = product_from_json(o, &place)?;
                    Ok(Change::Upsert(Box::new(p)))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Page {
        changes,
        next: next_cursor(products),
    })
}

fn next_cursor(connection: &Value) -> Option<String> {
    (connection["pageInfo"]["hasNextPage"] == true)
        .then(|| {
            connection["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_string)
        })
        .flatten()
}

/// Products deleted at or after `since`: their ids, a page at a time.
pub fn deletions_page(
    api: &mut AdminApi,
    since: &str,
    after: Option<&str>,
    first: u32,
) -> Result<(Vec<u64>, Option<String>)> {
    let data = api.query(
        DELETIONS_PAGE,
        json!({ "first": first, "after": after, "query": format!("occurred_at:>='{since}'") }),
    )?;
    let events = &data["deletionEvents"];
    let ids = events["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n["subjectType"] == "PRODUCT")
                // The filter's name is not documented: the time is checked here too.
                .filter(|n| {
                    n["occurredAt"]
                        .as_str()
                        .and_then(super::parse_time)
                        .zip(super::parse_time(since))
                        .is_none_or(|(at, from)| at >= from)
                })
                .filter_map(|n| n["subjectId"].as_str().and_then(parse_id_str))
                .collect()
        })
        .unwrap_or_default();
    Ok((ids, next_cursor(events)))
}

/// The webhook topics a pull-synced shop also pushes: products and inventory.
pub const WEBHOOK_TOPICS: &[&str] = &[
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "INVENTORY_LEVELS_UPDATE",
    "INVENTORY_ITEMS_UPDATE",
];

const CREATE_WEBHOOK: &str =
    "mutation Subscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: { uri: $uri, format: JSON }) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}";

/// Subscribes `uri` to [`WEBHOOK_TOPICS`] with `webhookSubscriptionCreate` (`uri` replaced the
/// deprecated `callbackUrl` in 2025-10:
/// <https://shopify.dev/docs/api/admin-graphql/2025-10/mutations/webhooksubscriptioncreate>).
/// A topic already delivered to `uri` counts as subscribed. Answers each topic with `created`
/// or `existed`; any other refusal is an error naming the topic.
pub fn register_webhooks(api: &mut AdminApi, uri: &str) -> Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    for topic in WEBHOOK_TOPICS {
        let data = api.query(CREATE_WEBHOOK, json!({ "topic": topic, "uri": uri }))?;
        let create = &data["webhookSubscriptionCreate"];
        let errors: Vec<&str> = create["userErrors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect())
            .unwrap_or_default();
        let outcome = if errors.is_empty() && create["webhookSubscription"].is_object() {
            "created"
        } else if !errors.is_empty() && errors.iter().all(|m| m.contains("already been taken")) {
            "existed"
        } else {
            return Err(shop_error(
                api,
                ErrorKind::BadRequest,
                format!(
                    "cannot subscribe {uri} to {topic}: {}",
                    if errors.is_empty() {
                        "no subscription returned".to_string()
                    } else {
                        errors.join("; ")
                    }
                ),
            ));
        };
        out.push((topic.to_string(), outcome));
    }
    Ok(out)
}
