//! GraphQL bulk-operation JSONL: one object per line with `__typename`; children name their
//! parent with `__parentId` and may come before or after it. Products gather their variants
//! (and variants their `ProductVariantPricePair` prices); `InventoryLevel`s under a `Location`
//! become inventory updates. A child whose parent is not in the file is reported with its line.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::json::{product_from_json, variant_from_json};
use super::{Change, InventoryUpdate, parse_id_str, parse_money};
use crate::{Error, Result};

struct Line {
    number: usize,
    object: Map<String, Value>,
}

impl Line {
    fn typename(&self) -> &str {
        self.object
            .get("__typename")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn id(&self) -> Option<&str> {
        self.object.get("id").and_then(Value::as_str)
    }

    /// `__parentId`, or a variant's `product.product_id` in a variants-only export.
    fn parent(&self) -> Option<&str> {
        self.object
            .get("__parentId")
            .and_then(Value::as_str)
            .or_else(|| {
                self.object
                    .get("product")
                    .and_then(Value::as_object)
                    .and_then(|p| p.get("product_id").or_else(|| p.get("id")))
                    .and_then(Value::as_str)
            })
    }
}

/// Parses a whole bulk file (children may precede parents, so it is read before joining).
pub fn read_bulk(text: &str, file: &str) -> Vec<Result<Change>> {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let place = format!("{file}:{}", i + 1);
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(object)) => {
                let line = Line {
                    number: i + 1,
                    object,
                };
                if line.typename().is_empty() {
                    out.push(Err(Error::bad(place, "missing field `__typename`")));
                } else {
                    lines.push(line);
                }
            }
            Ok(_) => out.push(Err(Error::bad(place, "expected a JSON object"))),
            Err(e) => out.push(Err(Error::bad(place, format!("malformed JSON: {e}")))),
        }
    }
    let by_id: HashMap<&str, &Line> = lines
        .iter()
        .filter_map(|l| l.id().map(|id| (id, l)))
        .collect();
    let mut children: HashMap<&str, Vec<&Line>> = HashMap::new();
    for l in &lines {
        if let Some(parent) = l.parent() {
            if by_id.contains_key(parent) {
                children.entry(parent).or_default().push(l);
            } else if l.typename() != "Product" {
                out.push(Err(Error::bad(
                    format!("{file}:{}", l.number),
                    format!(
                        "{} {} belongs to {parent}, which is not in the file",
                        l.typename(),
                        l.id().unwrap_or("(no id)")
                    ),
                )));
            }
        }
    }
    let kids = |id: &str, typename: &str| -> Vec<&Line> {
        children
            .get(id)
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|l| l.typename() == typename)
                    .collect()
            })
            .unwrap_or_default()
    };
    for l in &lines {
        let place = format!("{file}:{}", l.number);
        match l.typename() {
            "Product" => {
                let id = l.id().unwrap_or("");
                let result = product_from_json(&l.object, &place).and_then(|mut p| {
                    let mut variants = kids(id, "ProductVariant");
                    variants.sort_by_key(|v| {
                        (v.object.get("position").and_then(Value::as_u64), v.number)
                    });
                    for v in variants {
                        let vplace = format!("{file}:{}", v.number);
                        let mut variant = variant_from_json(&v.object, &vplace, &p.options)?;
                        let vid = v.id().unwrap_or("");
                        for pair in kids(vid, "ProductVariantPricePair") {
                            let pp = format!("{file}:{}", pair.number);
                            if let Some(price) = pair.object.get("price") {
                                variant.price = parse_money(price, &pp, "price")?.or(variant.price);
                            }
                            if let Some(c) = pair.object.get("compareAtPrice") {
                                variant.compare_at_price = parse_money(c, &pp, "compareAtPrice")?
                                    .or(variant.compare_at_price);
                            }
                        }
                        p.variants.push(variant);
                    }
                    Ok(p)
                });
                out.push(result.map(|p| Change::Upsert(Box::new(p))));
            }
            "InventoryLevel" => {
                let Some(location) = l.parent().filter(|p| by_id.contains_key(p)) else {
                    continue; // reported above as an orphan
                };
                out.push(inventory_level(l, location, &place).map(Change::Inventory));
            }
            _ => {}
        }
    }
    out
}

fn inventory_level(l: &Line, location: &str, place: &str) -> Result<InventoryUpdate> {
    let item = l
        .object
        .get("item")
        .and_then(Value::as_object)
        .and_then(|i| i.get("inventory_item_id").or_else(|| i.get("id")))
        .and_then(Value::as_str)
        .and_then(parse_id_str)
        .ok_or_else(|| Error::bad(place, "field `item.inventory_item_id` is missing"))?;
    let available = match l.object.get("quantities") {
        Some(Value::Array(q)) => q
            .iter()
            .filter_map(Value::as_object)
            .find(|q| q.get("name").and_then(Value::as_str) == Some("available"))
            .and_then(|q| q.get("quantity"))
            .and_then(Value::as_i64),
        _ => l.object.get("available").and_then(Value::as_i64),
    };
    Ok(InventoryUpdate {
        inventory_item_id: item,
        location_id: parse_id_str(location),
        available,
        tracked: None,
        updated_at: l
            .object
            .get("updatedAt")
            .and_then(Value::as_str)
            .and_then(super::parse_time),
    })
}
