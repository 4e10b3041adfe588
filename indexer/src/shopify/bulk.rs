//! GraphQL bulk-operation JSONL: one object per line with `__typename`; children name their
//! parent with `__parentId` and may come before or after it. Products gather their variants
//! (and variants their `ProductVariantPricePair` prices and their `InventoryLevel`s, one per
//! location), their `Collection`s, `Metafield`s and first `MediaImage` (or `Image`); `InventoryLevel`s under a `Location` become inventory updates. A child whose
//! parent is not in the file is reported with its line.
//!
//! [`read_bulk`] reads a whole file (an upload: children may precede their parents);
//! [`BulkStream`] reads a grouped result (`groupObjects: true`, what a pull sync asks for:
//! every object follows its parent) a line at a time, holding one product's lines at once.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use serde_json::{Map, Value};

use super::json::{metafield, product_from_json, variant_from_json};
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

/// One line of a bulk file as an object with a `__typename`, or the error naming it; `None`
/// for a blank line.
fn parse_line(raw: &str, number: usize, file: &str) -> Option<Result<Line>> {
    if raw.trim().is_empty() {
        return None;
    }
    let place = format!("{file}:{number}");
    Some(match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(object)) => {
            let line = Line { number, object };
            if line.typename().is_empty() {
                Err(Error::bad(place, "missing field `__typename`"))
            } else {
                Ok(line)
            }
        }
        Ok(_) => Err(Error::bad(place, "expected a JSON object")),
        Err(e) => Err(Error::bad(place, format!("malformed JSON: {e}"))),
    })
}

/// Parses a whole bulk file (children may precede parents, so it is read before joining).
pub fn read_bulk(text: &str, file: &str) -> Vec<Result<Change>> {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw, i + 1, file) {
            Some(Ok(line)) => lines.push(line),
            Some(Err(e)) => out.push(Err(e)),
            None => {}
        }
    }
    join(&lines, file, false, &mut out);
    out
}

/// A grouped bulk result read as a stream: a line without a parent (a product, a location)
/// starts a group, its descendants follow it, and the group is joined when the next one starts
/// or the input ends. Memory holds one group, whatever the file's size. A line whose parent is
/// not in its group is reported with its line number.
pub struct BulkStream<R> {
    input: R,
    file: String,
    number: usize,
    group: Vec<Line>,
    ready: VecDeque<Result<Change>>,
    /// Bytes read so far (progress, and the place of a read error).
    pub bytes: u64,
    done: bool,
}

impl<R: BufRead> BulkStream<R> {
    pub fn new(input: R, file: &str) -> BulkStream<R> {
        BulkStream {
            input,
            file: file.to_string(),
            number: 0,
            group: Vec::new(),
            ready: VecDeque::new(),
            bytes: 0,
            done: false,
        }
    }

    fn flush(&mut self) {
        let group = std::mem::take(&mut self.group);
        let mut out = Vec::new();
        join(&group, &self.file, true, &mut out);
        self.ready.extend(out);
    }
}

impl<R: BufRead> Iterator for BulkStream<R> {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        let mut raw = String::new();
        while self.ready.is_empty() && !self.done {
            raw.clear();
            match self.input.read_line(&mut raw) {
                Ok(0) => {
                    self.done = true;
                    self.flush();
                }
                Ok(n) => {
                    self.bytes += n as u64;
                    self.number += 1;
                    match parse_line(&raw, self.number, &self.file) {
                        Some(Ok(line)) => {
                            if line.parent().is_none() {
                                self.flush();
                            }
                            self.group.push(line);
                        }
                        Some(Err(e)) => self.ready.push_back(Err(e)),
                        None => {}
                    }
                }
                Err(e) => {
                    self.done = true;
                    self.group.clear();
                    self.ready.push_back(Err(Error::bad(
                        format!("{}:{}", self.file, self.number + 1),
                        format!("cannot read the result: {e}"),
                    )));
                }
            }
        }
        self.ready.pop_front()
    }
}

/// Joins parsed lines: each product with its variants (their prices and levels), each
/// location's inventory levels as updates; orphans reported.
fn join(lines: &[Line], file: &str, grouped: bool, out: &mut Vec<Result<Change>>) {
    let by_id: HashMap<&str, &Line> = lines
        .iter()
        .filter_map(|l| l.id().map(|id| (id, l)))
        .collect();
    let mut children: HashMap<&str, Vec<&Line>> = HashMap::new();
    for l in lines {
        if let Some(parent) = l.parent() {
            if by_id.contains_key(parent) {
                children.entry(parent).or_default().push(l);
            } else if l.typename() != "Product" {
                out.push(Err(Error::bad(
                    format!("{file}:{}", l.number),
                    format!(
                        "{} {} belongs to {parent}, which is not {}",
                        l.typename(),
                        l.id().unwrap_or("(no id)"),
                        if grouped {
                            "before it (a grouped result lists each object after its parent)"
                        } else {
                            "in the file"
                        }
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
    for l in lines {
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
                        for level in kids(vid, "InventoryLevel") {
                            let lp = format!("{file}:{}", level.number);
                            let (location, available) = variant_level(level, &lp)?;
                            if let Some(q) = available {
                                variant.levels.insert(location, q);
                            }
                        }
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
                    for c in kids(id, "Collection") {
                        if let Some(t) = c.object.get("title").and_then(Value::as_str)
                            && !t.trim().is_empty()
                        {
                            p.collections.push(t.trim().to_string());
                        }
                    }
                    for m in kids(id, "Metafield") {
                        p.metafields.extend(metafield(&m.object));
                    }
                    // The first image listed, when the product line named none.
                    if p.image.is_none() {
                        p.image = kids(id, "MediaImage")
                            .into_iter()
                            .chain(kids(id, "Image"))
                            .min_by_key(|l| l.number)
                            .and_then(|l| {
                                let o = &l.object;
                                o.get("image")
                                    .and_then(|i| i.get("url"))
                                    .or_else(|| o.get("url"))
                                    .or_else(|| o.get("src"))
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            });
                    }
                    Ok(p)
                });
                out.push(result.map(|p| Change::Upsert(Box::new(p))));
            }
            "InventoryLevel" => {
                // Under a location: an update. Under a variant: read with its product above.
                let Some(location) = l
                    .parent()
                    .filter(|p| by_id.get(p).is_some_and(|o| o.typename() == "Location"))
                else {
                    continue; // reported above as an orphan, or a variant's
                };
                out.push(inventory_level(l, location, &place).map(Change::Inventory));
            }
            _ => {}
        }
    }
}

/// A level nested under a variant (`inventoryItem { inventoryLevels { … } }`): its location's
/// id and its `available` quantity.
fn variant_level(l: &Line, place: &str) -> Result<(u64, Option<i64>)> {
    let location = l
        .object
        .get("location")
        .and_then(Value::as_object)
        .and_then(|o| o.get("id"))
        .and_then(Value::as_str)
        .and_then(parse_id_str)
        .ok_or_else(|| Error::bad(place, "field `location.id` is missing"))?;
    Ok((location, available(l)))
}

/// The `available` quantity of a level: GraphQL's `quantities` list, or REST's `available`.
fn available(l: &Line) -> Option<i64> {
    match l.object.get("quantities") {
        Some(Value::Array(q)) => q
            .iter()
            .filter_map(Value::as_object)
            .find(|q| q.get("name").and_then(Value::as_str) == Some("available"))
            .and_then(|q| q.get("quantity"))
            .and_then(Value::as_i64),
        _ => l.object.get("available").and_then(Value::as_i64),
    }
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
    let available = available(l);
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
