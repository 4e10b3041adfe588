//! Shopify catalogs: every real export and payload shape parsed into one [`Product`] model, and
//! a product normalised into one document whose text reads well to an LLM and whose variants
//! populate filterable attributes.
//!
//! Shapes: Admin REST products JSON (`{"products":[…]}`, a bare array, or `{"product":{…}}`),
//! the storefront `/products.json`, GraphQL bulk-operation JSONL, product CSV exports (legacy
//! and 2025 headers) and webhook payloads. IDs are u64 (a `gid://` wins over a JSON number,
//! which JavaScript-made payloads round); money is an exact decimal, never a float.

mod bulk;
mod csv;
mod json;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dartmouth_engine::{AttrValue, Attributes, Decimal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::source::{Format, SourceDoc};
use crate::{Error, Result};

pub use bulk::read_bulk;
pub use csv::read_csv;
pub use json::{read_json, webhook};

/// One product with its variants, as every source shape normalises it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Product {
    /// Shopify's numeric id; CSV exports carry none (the handle identifies them).
    pub id: Option<u64>,
    pub handle: String,
    pub title: String,
    /// The description as plain text (from `body_html`).
    pub description: String,
    pub vendor: String,
    pub product_type: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// active | draft | archived (lower case); storefront exports have none.
    pub status: Option<String>,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub url: Option<String>,
    /// When Shopify last changed the product (milliseconds since the epoch), when the source
    /// says: an update older than the stored product is not applied.
    #[serde(default)]
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductOption {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Variant {
    pub id: Option<u64>,
    pub title: String,
    pub sku: Option<String>,
    pub barcode: Option<String>,
    pub price: Option<Decimal>,
    pub compare_at_price: Option<Decimal>,
    /// Values of the product's options, in the product's option order.
    pub options: Vec<String>,
    /// Storefront exports say only whether a variant can be bought.
    pub available: Option<bool>,
    /// Whether Shopify tracks this variant's stock (`inventory_management: shopify`).
    pub tracked: bool,
    /// The catalog's total quantity (all locations).
    pub inventory_quantity: Option<i64>,
    /// `continue` lets customers buy when out of stock.
    pub continue_selling: bool,
    pub inventory_item_id: Option<u64>,
    /// Quantities per location from inventory updates; when present they replace
    /// `inventory_quantity`.
    pub levels: BTreeMap<u64, i64>,
    /// When Shopify last changed the variant (milliseconds since the epoch), if said.
    #[serde(default)]
    pub updated_at: Option<i64>,
    /// When each location's level was set, from its update's `updated_at`: an older update of
    /// the same level is not applied.
    #[serde(default)]
    pub level_times: BTreeMap<u64, i64>,
}

impl Variant {
    /// Units on hand: the per-location levels when known, else the catalog's quantity.
    pub fn quantity(&self) -> Option<i64> {
        if self.levels.is_empty() {
            self.inventory_quantity
        } else {
            Some(self.levels.values().sum())
        }
    }

    /// Whether a customer can buy it now.
    pub fn in_stock(&self) -> bool {
        if let Some(a) = self.available {
            return a;
        }
        if !self.tracked || self.continue_selling {
            return true;
        }
        // Multi-location CSV exports carry no quantity: buyable until an update says not.
        self.quantity().is_none_or(|q| q > 0)
    }
}

/// What one record of a Shopify source says.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Box<Product>),
    /// products/delete: the product's id.
    Delete(u64),
    /// inventory_levels/update, a bulk `InventoryLevel`, or inventory_items/update (`tracked`).
    Inventory(InventoryUpdate),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InventoryUpdate {
    pub inventory_item_id: u64,
    pub location_id: Option<u64>,
    /// `None`: the level is no longer tracked at that location.
    pub available: Option<i64>,
    /// From inventory_items/update: whether the item is tracked at all.
    pub tracked: Option<bool>,
    /// When Shopify made the change (milliseconds since the epoch), if said.
    pub updated_at: Option<i64>,
}

/// What an inventory update did to a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryOutcome {
    Applied,
    /// The level already holds a newer update: nothing changed.
    Stale,
    /// No variant of the product holds the item.
    NoVariant,
}

/// The secondary key an inventory update finds its product by.
pub fn inventory_key(inventory_item_id: u64) -> String {
    format!("inventory_item:{inventory_item_id}")
}

/// Key prefix counting a catalog's variants.
pub const VARIANT_KEY_PREFIX: &str = "variant:";

impl Product {
    /// The document id: Shopify's product id, or the handle for CSV exports.
    pub fn doc_id(&self) -> String {
        match self.id {
            Some(id) => id.to_string(),
            None => self.handle.clone(),
        }
    }

    /// Applies an inventory update to the variant holding the item, unless that level already
    /// holds a newer one (a replayed or late delivery).
    pub fn apply_inventory(&mut self, u: &InventoryUpdate) -> InventoryOutcome {
        let Some(v) = self
            .variants
            .iter_mut()
            .find(|v| v.inventory_item_id == Some(u.inventory_item_id))
        else {
            return InventoryOutcome::NoVariant;
        };
        if let (Some(at), Some(location)) = (u.updated_at, u.location_id) {
            if v.level_times
                .get(&location)
                .is_some_and(|known| *known > at)
            {
                return InventoryOutcome::Stale;
            }
            v.level_times.insert(location, at);
        }
        if let Some(tracked) = u.tracked {
            v.tracked = tracked;
        }
        if let Some(location) = u.location_id {
            if v.levels.is_empty() {
                // The catalog's total has no per-location breakdown: the first level heard
                // replaces it (exact for single-location stores, which are most).
                v.inventory_quantity = None;
            }
            match u.available {
                Some(q) => {
                    v.levels.insert(location, q);
                    v.tracked = true;
                }
                None => {
                    v.levels.remove(&location);
                }
            }
            // A quantity is live information: a storefront's `available` no longer applies.
            v.available = None;
        }
        InventoryOutcome::Applied
    }

    /// Reconciles this product, about to be written, with the stored version of it. `false`:
    /// the stored one is newer (by `updated_at`), so this one must not be written. Otherwise
    /// the inventory levels the store heard of after this product's variant was last changed
    /// are kept: a late products/update never reverts a newer stock level.
    pub fn reconcile(&mut self, stored: &Product) -> bool {
        if let (Some(mine), Some(theirs)) = (self.updated_at, stored.updated_at)
            && mine < theirs
        {
            return false;
        }
        let Some(product_at) = self.updated_at else {
            // A source without times (a CSV export) is taken as it is.
            return true;
        };
        for v in &mut self.variants {
            let Some(item) = v.inventory_item_id else {
                continue;
            };
            let Some(old) = stored
                .variants
                .iter()
                .find(|s| s.inventory_item_id == Some(item))
            else {
                continue;
            };
            let as_of = v.updated_at.map_or(product_at, |t| t.max(product_at));
            for (location, at) in &old.level_times {
                if *at > as_of {
                    if v.levels.is_empty() {
                        v.inventory_quantity = None;
                    }
                    match old.levels.get(location) {
                        Some(q) => v.levels.insert(*location, *q),
                        None => v.levels.remove(location),
                    };
                    v.level_times.insert(*location, *at);
                    v.tracked |= old.tracked;
                    v.available = None;
                }
            }
        }
        true
    }

    /// The document: text for people and models, attributes for filters and facets, the
    /// product itself as the source (so inventory updates can re-render it), and its keys.
    pub fn to_source_doc(&self, place: &str, base_url: Option<&str>) -> Result<SourceDoc> {
        if self.title.trim().is_empty() {
            return Err(Error::bad(place, "field `title` is missing or empty"));
        }
        let url = self.url.clone().or_else(|| {
            base_url
                .filter(|_| !self.handle.is_empty())
                .map(|b| format!("{}/products/{}", b.trim_end_matches('/'), self.handle))
        });
        let source = serde_json::to_string(self)
            .map_err(|e| Error::bad(place, format!("cannot store the product: {e}")))?;
        let mut keys = Vec::new();
        for (i, v) in self.variants.iter().enumerate() {
            keys.push(match v.id {
                Some(id) => format!("{VARIANT_KEY_PREFIX}{id}"),
                None => format!("{VARIANT_KEY_PREFIX}{}/{}", self.doc_id(), i + 1),
            });
            if let Some(item) = v.inventory_item_id {
                keys.push(inventory_key(item));
            }
        }
        Ok(SourceDoc {
            id: self.doc_id(),
            title: self.title.trim().to_string(),
            text: self.render(),
            url,
            format: Format::Text,
            place: place.to_string(),
            attributes: self.attributes(),
            source: Some(source),
            keys,
        })
    }

    /// The chunk text: facts first (vendor, type, tags), the description, then options and
    /// every variant with SKU, price, compare-at price and availability.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut facts = Vec::new();
        if !self.vendor.trim().is_empty() {
            facts.push(format!("Vendor: {}", self.vendor.trim()));
        }
        if !self.product_type.trim().is_empty() {
            facts.push(format!("Type: {}", self.product_type.trim()));
        }
        if let Some(c) = &self.category {
            facts.push(format!("Category: {c}"));
        }
        if !self.tags.is_empty() {
            facts.push(format!("Tags: {}", self.tags.join(", ")));
        }
        if let Some(st) = &self.status
            && st != "active"
        {
            facts.push(format!("Status: {st}"));
        }
        if !facts.is_empty() {
            s.push_str(&facts.join(". "));
            s.push_str(".\n\n");
        }
        let description = self.description.trim();
        if !description.is_empty() {
            s.push_str(description);
            s.push_str("\n\n");
        }
        let options: Vec<&ProductOption> = self.real_options().collect();
        if !options.is_empty() {
            s.push_str("Options: ");
            let parts: Vec<String> = options
                .iter()
                .map(|o| format!("{}: {}", o.name, o.values.join(", ")))
                .collect();
            s.push_str(&parts.join("; "));
            s.push_str(".\n");
        }
        if !self.variants.is_empty() {
            s.push_str("Variants:\n");
            for v in &self.variants {
                s.push_str("- ");
                let name = if v.title.is_empty() || v.title == "Default Title" {
                    self.title.trim()
                } else {
                    v.title.as_str()
                };
                s.push_str(name);
                if let Some(sku) = v.sku.as_deref().filter(|x| !x.is_empty()) {
                    let _ = write!(s, " (SKU {sku})");
                }
                if let Some(p) = v.price {
                    let _ = write!(s, ": {}", money(p));
                    if let Some(c) = v.compare_at_price.filter(|c| *c > p) {
                        let _ = write!(s, ", was {}", money(c));
                    }
                }
                let marker = availability(v);
                if !marker.is_empty() {
                    s.push(' ');
                    s.push_str(marker);
                }
                s.push('\n');
            }
        }
        s.trim_end().to_string()
    }

    /// Options that mean something (Shopify names a product without options `Title`, with
    /// the single value `Default Title`).
    fn real_options(&self) -> impl Iterator<Item = &ProductOption> {
        self.options
            .iter()
            .filter(|o| !(o.values.len() <= 1 && o.values.iter().all(|v| v == "Default Title")))
    }

    pub fn attributes(&self) -> Attributes {
        let mut a: Attributes = BTreeMap::new();
        let mut put = |name: String, v: AttrValue| {
            let values = a.entry(name).or_default();
            if !values.contains(&v) {
                values.push(v);
            }
        };
        let kw = |s: &str| AttrValue::Keyword(s.trim().to_string());
        if !self.vendor.trim().is_empty() {
            put("vendor".into(), kw(&self.vendor));
        }
        if !self.product_type.trim().is_empty() {
            put("product_type".into(), kw(&self.product_type));
        }
        if let Some(c) = &self.category {
            put("category".into(), kw(c));
        }
        for t in &self.tags {
            put("tags".into(), kw(t));
        }
        if let Some(st) = &self.status {
            put("status".into(), kw(st));
        }
        if !self.handle.is_empty() {
            put("handle".into(), kw(&self.handle));
        }
        if let Some(id) = self.id {
            put("product_id".into(), AttrValue::Keyword(id.to_string()));
        }
        let names: Vec<String> = self.options.iter().map(|o| option_field(&o.name)).collect();
        let mut in_stock = false;
        let mut on_sale = false;
        let mut inventory: Option<i64> = None;
        for v in &self.variants {
            let available = v.in_stock();
            in_stock |= available;
            if let Some(p) = v.price {
                put("price".into(), AttrValue::Number(p));
                if let Some(c) = v.compare_at_price {
                    put("compare_at_price".into(), AttrValue::Number(c));
                    on_sale |= c > p;
                }
            }
            if let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) {
                put("sku".into(), kw(sku));
            }
            if v.tracked
                && let Some(q) = v.quantity()
            {
                *inventory.get_or_insert(0) += q.max(0);
            }
            for (name, value) in names.iter().zip(&v.options) {
                if value.is_empty() || value == "Default Title" {
                    continue;
                }
                put(format!("option.{name}"), kw(value));
                if available {
                    put(format!("available.{name}"), kw(value));
                }
            }
        }
        put("in_stock".into(), AttrValue::Bool(in_stock));
        put("on_sale".into(), AttrValue::Bool(on_sale));
        if let Some(q) = inventory
            && let Some(d) = Decimal::from_int(q)
        {
            put("inventory".into(), AttrValue::Number(d));
        }
        if let Some(d) = Decimal::from_int(self.variants.len() as i64) {
            put("variant_count".into(), AttrValue::Number(d));
        }
        a
    }
}

/// The longest option field, so that `available.<field>` fits an attribute name.
const MAX_OPTION_FIELD_BYTES: usize =
    dartmouth_engine::validate::MAX_ATTR_NAME_BYTES - "available.".len();

/// `Size` → `size`, `Fabric Weight` → `fabric_weight`: option names as filter fields. A name
/// longer than an attribute name may be (Shopify allows 255 characters) is cut on a character
/// boundary; the product's text keeps it whole.
pub fn option_field(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if out.len() > MAX_OPTION_FIELD_BYTES {
        let mut end = MAX_OPTION_FIELD_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.truncate(out.trim_end_matches('_').len());
    }
    out
}

/// `19.9` → `19.90`: money with at least two decimals.
pub fn money(d: Decimal) -> String {
    let s = d.to_string();
    match s.split_once('.') {
        None => format!("{s}.00"),
        Some((_, f)) if f.len() == 1 => format!("{s}0"),
        _ => s,
    }
}

/// The availability marker at the end of a variant line. Both markers are ten characters and
/// four word-piece tokens, so a stock flip never moves a chunk boundary, and the embedding
/// input leaves them out (see `job::embedding_input`): a stock change never changes a vector.
/// Quantities live in the `inventory` attribute, not in the text, for the same reason.
fn availability(v: &Variant) -> &'static str {
    if !v.in_stock() {
        AVAILABILITY_SOLD_OUT
    } else if v.tracked && v.available.is_none() && !v.continue_selling && v.quantity().is_none() {
        "" // a multi-location export without quantities: unknown
    } else {
        AVAILABILITY_IN_STOCK
    }
}

pub(crate) const AVAILABILITY_SOLD_OUT: &str = "[sold out]";
pub(crate) const AVAILABILITY_IN_STOCK: &str = "[in stock]";

/// Removes availability markers (`[in stock]`, `[sold out]`) and the space before each.
pub(crate) fn strip_availability(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(AVAILABILITY_IN_STOCK) && !text.contains(AVAILABILITY_SOLD_OUT) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.replace(&format!(" {AVAILABILITY_IN_STOCK}"), "")
            .replace(&format!(" {AVAILABILITY_SOLD_OUT}"), "")
            .replace(AVAILABILITY_IN_STOCK, "")
            .replace(AVAILABILITY_SOLD_OUT, ""),
    )
}

/// Parses Shopify's timestamps (`2021-12-31T19:00:00-05:00`, `2019-01-01 00:00:00.000Z`,
/// RFC 3339 in general) into milliseconds since the epoch; `None` when it is not one.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = digits[2..].parse().ok()?;
            sign * (h * 60 + m)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Parses a Shopify id: a `gid://shopify/Type/123` (query suffix ignored), an integer, or
/// an integer string. Floats are refused: they have already lost digits.
pub fn parse_id(v: &Value, place: &str, field: &str) -> Result<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            Error::bad(
                place,
                format!("field `{field}`: `{n}` is not a whole positive id"),
            )
        }),
        Value::String(s) => parse_id_str(s)
            .map(Some)
            .ok_or_else(|| Error::bad(place, format!("field `{field}`: `{s}` is not an id"))),
        other => Err(Error::bad(
            place,
            format!("field `{field}`: expected an id, got {other}"),
        )),
    }
}

pub(crate) fn parse_id_str(s: &str) -> Option<u64> {
    let s = s.trim();
    let tail = match s.strip_prefix("gid://shopify/") {
        Some(rest) => rest.rsplit_once('/')?.1,
        None => s,
    };
    let tail = tail.split('?').next().unwrap_or(tail);
    tail.parse().ok()
}

/// A `gid://shopify/…` id when `v` is one (payloads made from templates put URLs there).
pub(crate) fn gid_id(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_str)
        .filter(|s| s.starts_with("gid://shopify/"))
        .and_then(parse_id_str)
}

/// A price: a decimal string or number; errors name the field.
pub fn parse_money(v: &Value, place: &str, field: &str) -> Result<Option<Decimal>> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // GraphQL MoneyV2: {"amount": "59.0", "currencyCode": "USD"}.
        Value::Object(o) if o.contains_key("amount") => {
            return parse_money(&o["amount"], place, field);
        }
        other => {
            return Err(Error::bad(
                place,
                format!("field `{field}`: expected a price, got {other}"),
            ));
        }
    };
    parse_money_str(&text, place, field)
}

pub(crate) fn parse_money_str(text: &str, place: &str, field: &str) -> Result<Option<Decimal>> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<Decimal>()
        .map(Some)
        .map_err(|e| Error::bad(place, format!("field `{field}`: {e}")))
}

/// Tags: REST sends one comma-separated string, storefront and GraphQL an array.
pub(crate) fn parse_tags(v: Option<&Value>) -> Vec<String> {
    let mut tags: Vec<String> = match v {
        Some(Value::String(s)) => split_tags(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    tags.dedup();
    tags
}

pub(crate) fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_times_parse_to_the_same_instant() {
        let a = parse_time("2021-12-31T19:00:00-05:00").unwrap();
        let b = parse_time("2022-01-01 00:00:00.000Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, 1_640_995_200_000);
        assert_eq!(parse_time("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(
            parse_time("2024-02-29T12:00:00+0130"),
            Some(1_709_202_600_000)
        );
        for bad in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-12-31T19:00:00 EST",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn late_and_replayed_updates_never_revert_newer_stock() {
        let mut p = Product {
            title: "Mug".into(),
            updated_at: Some(1_000),
            variants: vec![Variant {
                inventory_item_id: Some(7),
                inventory_quantity: Some(5),
                tracked: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let level = |available, at| InventoryUpdate {
            inventory_item_id: 7,
            location_id: Some(1),
            available: Some(available),
            tracked: None,
            updated_at: Some(at),
        };
        assert_eq!(
            p.apply_inventory(&level(0, 3_000)),
            InventoryOutcome::Applied
        );
        // A delivery of an older level, or the same one again, changes nothing newer.
        assert_eq!(p.apply_inventory(&level(9, 2_000)), InventoryOutcome::Stale);
        assert_eq!(
            p.apply_inventory(&level(0, 3_000)),
            InventoryOutcome::Applied
        );
        assert_eq!(p.variants[0].quantity(), Some(0));
        // A products/update made before that level was set keeps the level.
        let mut late = Product {
            updated_at: Some(2_500),
            variants: vec![Variant {
                inventory_item_id: Some(7),
                inventory_quantity: Some(5),
                tracked: true,
                ..Default::default()
            }],
            ..p.clone()
        };
        assert!(late.reconcile(&p));
        assert_eq!(late.variants[0].quantity(), Some(0));
        // One older than the stored product is not written at all.
        let mut older = Product {
            updated_at: Some(500),
            ..p.clone()
        };
        assert!(!older.reconcile(&p));
        // One made after the level carries its own, newer quantity.
        let mut newer = Product {
            updated_at: Some(4_000),
            variants: vec![Variant {
                inventory_item_id: Some(7),
                inventory_quantity: Some(12),
                tracked: true,
                ..Default::default()
            }],
            ..p.clone()
        };
        assert!(newer.reconcile(&p));
        assert_eq!(newer.variants[0].quantity(), Some(12));
    }

    fn variant(price: &str, qty: Option<i64>) -> Variant {
        Variant {
            title: "M".into(),
            price: Some(price.parse().unwrap()),
            options: vec!["M".into()],
            tracked: true,
            inventory_quantity: qty,
            inventory_item_id: Some(7),
            ..Default::default()
        }
    }

    #[test]
    fn ids_trust_the_gid_and_refuse_floats() {
        let p = "f:1";
        assert_eq!(
            parse_id(
                &serde_json::json!("gid://shopify/Product/788032119674292922"),
                p,
                "id"
            )
            .unwrap(),
            Some(788032119674292922)
        );
        assert_eq!(
            parse_id_str("gid://shopify/InventoryLevel/97912455357?inventory_item_id=1"),
            Some(97912455357)
        );
        let big: Value = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(parse_id(&big, p, "id").unwrap(), Some(u64::MAX));
        let float: Value = serde_json::from_str("1.5e17").unwrap();
        assert!(
            parse_id(&float, p, "id")
                .unwrap_err()
                .to_string()
                .contains("f:1: field `id`")
        );
    }

    #[test]
    fn money_is_exact() {
        let d = parse_money(&serde_json::json!("19.99"), "p", "price")
            .unwrap()
            .unwrap();
        assert_eq!(d.micros(), 19_990_000);
        assert_eq!(money(d), "19.99");
        assert_eq!(money("25".parse().unwrap()), "25.00");
        assert_eq!(money("2.5".parse().unwrap()), "2.50");
        let e = parse_money(&serde_json::json!("12,50"), "x.csv:4", "Variant Price").unwrap_err();
        assert!(
            e.to_string().starts_with("x.csv:4: field `Variant Price`"),
            "{e}"
        );
    }

    #[test]
    fn availability_markers_are_stripped_exactly() {
        assert_eq!(
            strip_availability("- M: 45.00 [in stock]\n- L: 45.00 [sold out]\n- S [in stock]"),
            "- M: 45.00\n- L: 45.00\n- S"
        );
        assert_eq!(strip_availability("a [note]"), "a [note]");
        assert_eq!(AVAILABILITY_IN_STOCK.len(), AVAILABILITY_SOLD_OUT.len());
    }

    #[test]
    fn inventory_updates_flip_availability() {
        let mut p = Product {
            title: "Hoodie".into(),
            options: vec![ProductOption {
                name: "Size".into(),
                values: vec!["M".into()],
            }],
            variants: vec![variant("45.00", Some(3))],
            ..Default::default()
        };
        let a = p.attributes();
        assert_eq!(a["in_stock"], vec![AttrValue::Bool(true)]);
        assert_eq!(a["available.size"], vec![AttrValue::Keyword("M".into())]);
        assert!(p.render().contains("- M: 45.00 [in stock]"));
        let u = InventoryUpdate {
            inventory_item_id: 7,
            location_id: Some(1),
            available: Some(0),
            tracked: None,
            updated_at: None,
        };
        assert_eq!(p.apply_inventory(&u), InventoryOutcome::Applied);
        let a = p.attributes();
        assert_eq!(a["in_stock"], vec![AttrValue::Bool(false)]);
        assert!(!a.contains_key("available.size"));
        assert!(p.render().contains("[sold out]"));
        assert_eq!(
            strip_availability(&p.render()),
            strip_availability(&{
                let mut q = p.clone();
                q.variants[0].levels.insert(1, 9);
                q.render()
            })
        );
        assert_eq!(
            p.apply_inventory(&InventoryUpdate {
                inventory_item_id: 8,
                ..u.clone()
            }),
            InventoryOutcome::NoVariant
        );
    }
}
