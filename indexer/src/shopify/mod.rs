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

    /// Applies an inventory update to the variant holding the item; false if none does.
    pub fn apply_inventory(&mut self, u: &InventoryUpdate) -> bool {
        let Some(v) = self
            .variants
            .iter_mut()
            .find(|v| v.inventory_item_id == Some(u.inventory_item_id))
        else {
            return false;
        };
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

/// `Size` → `size`, `Fabric Weight` → `fabric_weight`: option names as filter fields.
pub fn option_field(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
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
        };
        assert!(p.apply_inventory(&u));
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
        assert!(!p.apply_inventory(&InventoryUpdate {
            inventory_item_id: 8,
            ..u
        }));
    }
}
