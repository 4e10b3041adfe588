//! Shopify JSON: Admin REST products (`{"products":[…]}`, a bare array, `{"product":{…}}`),
//! the storefront `/products.json`, and webhook payloads (also wrapped as in Shopify's webhook
//! reference, `{"name": topic, "response": payload}`). Field names are read in REST's
//! snake_case and GraphQL's camelCase.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    Change, InventoryUpdate, Product, ProductOption, Variant, gid_id, parse_id, parse_money,
    parse_tags,
};
use crate::html::html_fragment_to_text;
use crate::{Error, Result};

type Obj = Map<String, Value>;

/// The first of `names` present (and not null) in `o`.
fn field<'a>(o: &'a Obj, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| o.get(*n).filter(|v| !v.is_null()))
}

fn string(o: &Obj, names: &[&str]) -> String {
    match field(o, names) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn opt_string(o: &Obj, names: &[&str]) -> Option<String> {
    Some(string(o, names)).filter(|s| !s.is_empty())
}

/// Shopify's id of an object: its `admin_graphql_api_id` (or GraphQL `id`) gid when it has
/// one, else its numeric `id`.
fn object_id(o: &Obj, place: &str) -> Result<Option<u64>> {
    if let Some(id) = gid_id(o.get("admin_graphql_api_id")).or_else(|| gid_id(o.get("id"))) {
        return Ok(Some(id));
    }
    match o.get("id") {
        Some(v) => parse_id(v, place, "id"),
        None => Ok(None),
    }
}

/// A GraphQL connection (`{"nodes": […]}` or `{"edges": [{"node": …}]}`) as the array of its
/// nodes; anything else as it is.
fn connection(v: &Value) -> std::borrow::Cow<'_, Value> {
    if let Some(nodes) = v.get("nodes").filter(|n| n.is_array()) {
        return std::borrow::Cow::Borrowed(nodes);
    }
    match v.get("edges").and_then(Value::as_array) {
        Some(edges) => std::borrow::Cow::Owned(Value::Array(
            edges.iter().map(|e| e["node"].clone()).collect(),
        )),
        None => std::borrow::Cow::Borrowed(v),
    }
}

/// One product object in any of the JSON shapes.
pub(crate) fn product_from_json(o: &Obj, place: &str) -> Result<Product> {
    let id = object_id(o, place)?;
    let handle = string(o, &["handle"]);
    let title = string(o, &["title"]);
    if title.is_empty() {
        return Err(Error::bad(place, "field `title` is missing or empty"));
    }
    let body = match field(o, &["body_html", "bodyHtml", "descriptionHtml"]) {
        Some(Value::String(s)) => html_fragment_to_text(s),
        _ => string(o, &["description"]),
    };
    let options = match field(o, &["options"]) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_object)
            .map(|opt| ProductOption {
                name: string(opt, &["name"]),
                values: match opt.get("values") {
                    Some(Value::Array(v)) => v
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => Vec::new(),
                },
            })
            .filter(|opt| !opt.name.is_empty())
            .collect(),
        Some(_) => return Err(Error::bad(place, "field `options` must be an array")),
        None => Vec::new(),
    };
    let variants = field(o, &["variants"]).map(connection);
    let variants = match variants.as_deref() {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let vp = format!("{place}: variant {}", i + 1);
                let v = v
                    .as_object()
                    .ok_or_else(|| Error::bad(&vp, "expected an object"))?;
                variant_from_json(v, &vp, &options)
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(Error::bad(place, "field `variants` must be an array")),
        None => Vec::new(),
    };
    let category = match field(o, &["category", "product_category"]) {
        Some(Value::Object(c)) => opt_string(c, &["full_name", "fullName", "name"]),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    Ok(Product {
        id,
        handle,
        title,
        description: body,
        vendor: string(o, &["vendor"]),
        product_type: string(o, &["product_type", "productType"]),
        category,
        tags: parse_tags(field(o, &["tags"])),
        status: opt_string(o, &["status"]).map(|s| s.to_ascii_lowercase()),
        options,
        variants,
        url: opt_string(o, &["onlineStoreUrl", "online_store_url"]),
        updated_at: time(o),
        image: image(o),
        collections: match field(o, &["collections"]).map(connection).as_deref() {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_object)
                .map(|c| string(c, &["title"]))
                .filter(|t| !t.is_empty())
                .collect(),
            _ => Vec::new(),
        },
        metafields: match field(o, &["metafields"]).map(connection).as_deref() {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_object)
                .filter_map(metafield)
                .collect(),
            _ => BTreeMap::new(),
        },
    })
}

/// A product's featured image in any shape: REST `image.src` or the first of `images`,
/// GraphQL `featuredMedia.preview.image.url` or `featuredImage.url`.
fn image(o: &Obj) -> Option<String> {
    let url = |v: &Value| {
        ["src", "url"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    };
    o.get("image")
        .and_then(url)
        .or_else(|| o.get("images").and_then(|i| i.get(0)).and_then(url))
        .or_else(|| {
            o.get("featuredMedia")
                .map(|m| &m["preview"]["image"])
                .and_then(url)
        })
        .or_else(|| o.get("featuredImage").and_then(url))
}

/// A metafield object as `(namespace.key, value)`; one without a key or value is skipped.
pub(crate) fn metafield(m: &Obj) -> Option<(String, String)> {
    let (ns, key, value) = (
        string(m, &["namespace"]),
        string(m, &["key"]),
        string(m, &["value"]),
    );
    (!key.is_empty() && !value.is_empty()).then(|| {
        let name = if ns.is_empty() {
            key
        } else {
            format!("{ns}.{key}")
        };
        (name, value)
    })
}

/// The object's `updated_at` (`updatedAt`) as milliseconds since the epoch.
fn time(o: &Obj) -> Option<i64> {
    field(o, &["updated_at", "updatedAt"])
        .and_then(Value::as_str)
        .and_then(super::parse_time)
}

/// One variant object (REST, storefront or GraphQL names).
pub(crate) fn variant_from_json(
    v: &Obj,
    place: &str,
    options: &[ProductOption],
) -> Result<Variant> {
    let mut values: Vec<String> = ["option1", "option2", "option3"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
        .collect();
    if values.is_empty()
        && let Some(Value::Array(sel)) = v.get("selectedOptions")
    {
        // GraphQL: [{"name":"Size","value":"M"}], matched to the product's option order.
        let pairs: Vec<(String, String)> = sel
            .iter()
            .filter_map(Value::as_object)
            .map(|s| (string(s, &["name"]), string(s, &["value"])))
            .collect();
        values = options
            .iter()
            .map(|o| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == o.name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
    }
    let management = string(v, &["inventory_management", "inventoryManagement"]);
    let item = v.get("inventoryItem").and_then(Value::as_object);
    // GraphQL (2024-07 on) says whether stock is counted on the inventory item.
    let item_tracked = item.and_then(|i| i.get("tracked")).and_then(Value::as_bool);
    let quantity = match field(v, &["inventory_quantity", "inventoryQuantity"]) {
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
            Error::bad(
                place,
                format!("field `inventory_quantity`: `{n}` is not a whole number"),
            )
        })?),
        Some(other) => {
            return Err(Error::bad(
                place,
                format!("field `inventory_quantity`: expected a number, got {other}"),
            ));
        }
        None => None,
    };
    let inventory_item_id = match field(v, &["inventory_item_id"]) {
        Some(x) => parse_id(x, place, "inventory_item_id")?,
        None => match v.get("inventoryItem").and_then(Value::as_object) {
            Some(item) => gid_id(item.get("inventory_item_id").or_else(|| item.get("id"))),
            None => None,
        },
    };
    let available = match field(v, &["available", "availableForSale"]) {
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(Error::bad(
                place,
                format!("field `available`: expected true or false, got {other}"),
            ));
        }
        None => None,
    };
    Ok(Variant {
        id: object_id(v, place)?,
        title: string(v, &["title"]),
        sku: opt_string(v, &["sku"]),
        barcode: opt_string(v, &["barcode"]),
        price: match field(v, &["price"]) {
            Some(p) => parse_money(p, place, "price")?,
            None => None,
        },
        compare_at_price: match field(v, &["compare_at_price", "compareAtPrice"]) {
            Some(p) => parse_money(p, place, "compare_at_price")?,
            None => None,
        },
        options: values,
        available,
        // REST says `shopify` when Shopify counts stock; without the field (storefront,
        // webhooks from some apps) a quantity means it is counted.
        tracked: management.eq_ignore_ascii_case("shopify")
            || (management.is_empty() && item_tracked == Some(true))
            || (management.is_empty()
                && item_tracked.is_none()
                && quantity.is_some()
                && available.is_none()),
        inventory_quantity: quantity,
        continue_selling: string(v, &["inventory_policy", "inventoryPolicy"])
            .eq_ignore_ascii_case("continue"),
        inventory_item_id,
        levels: item
            .map(|i| item_levels(i, place))
            .transpose()?
            .unwrap_or_default(),
        updated_at: time(v),
        level_times: Default::default(),
    })
}

/// A GraphQL inventory item's `inventoryLevels`: the `available` quantity per location.
fn item_levels(item: &Obj, place: &str) -> Result<BTreeMap<u64, i64>> {
    let mut levels = BTreeMap::new();
    let Some(list) = item.get("inventoryLevels").map(connection) else {
        return Ok(levels);
    };
    for l in list.as_ref().as_array().into_iter().flatten() {
        let location = gid_id(l.get("location").and_then(|x| x.get("id")))
            .ok_or_else(|| Error::bad(place, "inventory level without `location.id`"))?;
        let available = l["quantities"].as_array().and_then(|q| {
            q.iter()
                .find(|q| q["name"] == "available")
                .and_then(|q| q["quantity"].as_i64())
        });
        if let Some(q) = available {
            levels.insert(location, q);
        }
    }
    Ok(levels)
}

/// Reads a products JSON file: `{"products":[…]}`, a bare array of products, or one
/// `{"product":{…}}`. Each product is its own record: a bad one is reported with its index
/// and the others still come.
pub fn read_json(value: Value, file: &str) -> Vec<Result<Change>> {
    let products: Vec<Value> = match value {
        Value::Array(a) => a,
        Value::Object(mut o) => match (o.remove("products"), o.remove("product")) {
            (Some(Value::Array(a)), _) => a,
            (_, Some(p @ Value::Object(_))) => vec![p],
            _ => {
                return vec![Err(Error::bad(
                    file,
                    "expected `{\"products\": [...]}`, `{\"product\": {...}}` or an array of products",
                ))];
            }
        },
        _ => return vec![Err(Error::bad(file, "expected a JSON object or array"))],
    };
    products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let place = format!("{file}: products[{i}]");
            let o = p
                .as_object()
                .ok_or_else(|| Error::bad(&place, "expected a product object"))?;
            Ok(Change::Upsert(Box::new(product_from_json(o, &place)?)))
        })
        .collect()
}

/// A webhook payload. `topic` (products/create, products/update, products/delete,
/// inventory_levels/update, inventory_items/update) comes from the `X-Shopify-Topic` header,
/// the wrapper's `name`, or — when neither says — the payload's shape.
pub fn webhook(value: Value, topic: Option<&str>, place: &str) -> Result<Change> {
    let (topic, payload) = match value {
        Value::Object(mut o) if o.contains_key("response") && o.contains_key("name") => {
            let name = o.get("name").and_then(Value::as_str).map(str::to_string);
            (
                topic.map(str::to_string).or(name),
                o.remove("response").unwrap_or_default(),
            )
        }
        other => (topic.map(str::to_string), other),
    };
    let o = payload
        .as_object()
        .ok_or_else(|| Error::bad(place, "a webhook payload must be a JSON object"))?;
    let topic = match topic {
        Some(t) => t,
        None if o.contains_key("inventory_item_id") => "inventory_levels/update".into(),
        None if o.contains_key("title") || o.contains_key("variants") => "products/update".into(),
        None if o.len() == 1 && o.contains_key("id") => "products/delete".into(),
        None if o.contains_key("tracked") && o.contains_key("sku") => {
            "inventory_items/update".into()
        }
        None => {
            return Err(Error::bad(
                place,
                "cannot tell the webhook topic from the payload; pass --topic",
            ));
        }
    };
    match topic.as_str() {
        "products/create" | "products/update" => {
            Ok(Change::Upsert(Box::new(product_from_json(o, place)?)))
        }
        "products/delete" => match object_id(o, place)? {
            Some(id) => Ok(Change::Delete(id)),
            None => Err(Error::bad(place, "field `id` is missing")),
        },
        "inventory_levels/update" => {
            let item = match o.get("inventory_item_id") {
                Some(v) => parse_id(v, place, "inventory_item_id")?,
                None => None,
            }
            .ok_or_else(|| Error::bad(place, "field `inventory_item_id` is missing"))?;
            let location = match o.get("location_id") {
                Some(v) => parse_id(v, place, "location_id")?,
                None => None,
            }
            .ok_or_else(|| Error::bad(place, "field `location_id` is missing"))?;
            let available = match o.get("available") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| {
                    Error::bad(
                        place,
                        format!("field `available`: `{n}` is not a whole number"),
                    )
                })?),
                Some(other) => {
                    return Err(Error::bad(
                        place,
                        format!("field `available`: expected a number, got {other}"),
                    ));
                }
            };
            Ok(Change::Inventory(InventoryUpdate {
                inventory_item_id: item,
                location_id: Some(location),
                available,
                tracked: None,
                updated_at: time(o),
            }))
        }
        "inventory_items/update" => {
            let item =
                object_id(o, place)?.ok_or_else(|| Error::bad(place, "field `id` is missing"))?;
            let tracked = match o.get("tracked") {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            };
            Ok(Change::Inventory(InventoryUpdate {
                inventory_item_id: item,
                location_id: None,
                available: None,
                tracked,
                updated_at: time(o),
            }))
        }
        other => Err(Error::bad(
            place,
            format!(
                "webhook topic `{other}` is not one of products/create, products/update, \
                 products/delete, inventory_levels/update, inventory_items/update"
            ),
        )),
    }
}
