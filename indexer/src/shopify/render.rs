//! A product as the document agents read: the text (facts, description, options, one line per
//! variant with price and availability) and the attributes filters and facets use.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dartmouth_engine::{AttrValue, Attributes, Decimal};

use super::{Product, ProductOption, Variant, inventory_key};
use crate::doc::{Format, SourceDoc};
use crate::{Error, Result};
use dartmouth_catalog::fields;
use dartmouth_catalog::options::{canonical_option, canonical_value};

/// Key prefix counting a catalog's variants.
pub const VARIANT_KEY_PREFIX: &str = "variant:";

impl Product {
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

    /// The chunk text: facts first (vendor, type, tags, collections, metafields), the description, then options and
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
        if !self.collections.is_empty() {
            facts.push(format!("Collections: {}", self.collections.join(", ")));
        }
        for (name, value) in &self.metafields {
            let key = name.rsplit('.').next().unwrap_or(name).replace('_', " ");
            facts.push(format!("{key}: {}", value.trim()));
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

    /// The attributes with the built-in option vocabulary (see [`Product::attributes_with`]).
    pub fn attributes(&self) -> Attributes {
        self.attributes_with(&BTreeMap::new())
    }

    /// Product fields (vendor, type, tags, …, total inventory) and one group element per
    /// variant under `variants`: price, compare-at price, on sale, in stock, SKU, and each
    /// option under its canonical name (`size`, `color`; `option_names` overrides the
    /// vocabulary, see `options.rs`) and under the shop's own (`option.sizes`). A filter's
    /// conditions on variant fields hold together on one variant.
    pub fn attributes_with(&self, option_names: &BTreeMap<String, String>) -> Attributes {
        let mut a: Attributes = BTreeMap::new();
        let mut put = |name: &str, v: AttrValue| {
            let values = a.entry(name.to_string()).or_default();
            if !values.contains(&v) {
                values.push(v);
            }
        };
        let kw = |s: &str| AttrValue::Keyword(s.trim().to_string());
        if !self.vendor.trim().is_empty() {
            put("vendor", kw(&self.vendor));
        }
        if !self.product_type.trim().is_empty() {
            put("product_type", kw(&self.product_type));
        }
        if let Some(c) = &self.category {
            put("category", kw(c));
        }
        for t in &self.tags {
            put("tags", kw(t));
        }
        for c in &self.collections {
            put("collections", kw(c));
        }
        for (name, value) in &self.metafields {
            put(&format!("metafield.{name}"), kw(value));
        }
        if let Some(image) = &self.image {
            put("image", kw(image));
        }
        if let Some(st) = &self.status {
            put("status", kw(st));
        }
        if !self.handle.is_empty() {
            put("handle", kw(&self.handle));
        }
        if let Some(id) = self.id {
            put("product_id", AttrValue::Keyword(id.to_string()));
        }
        let names: Vec<(String, Option<String>)> = self
            .options
            .iter()
            .map(|o| {
                (
                    format!("option.{}", option_field(&o.name)),
                    canonical_option(&o.name, option_names),
                )
            })
            .collect();
        let mut inventory: Option<i64> = None;
        for v in &self.variants {
            let mut variant: Attributes = BTreeMap::new();
            let mut set = |name: &str, value: AttrValue| {
                let values = variant.entry(name.to_string()).or_default();
                if !values.contains(&value) {
                    values.push(value);
                }
            };
            set(fields::IN_STOCK, AttrValue::Bool(v.in_stock()));
            let mut on_sale = false;
            if let Some(p) = v.price {
                set(fields::PRICE, AttrValue::Number(p));
                if let Some(c) = v.compare_at_price {
                    set(fields::COMPARE_AT_PRICE, AttrValue::Number(c));
                    on_sale = c > p;
                }
            }
            set(fields::ON_SALE, AttrValue::Bool(on_sale));
            if let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) {
                set(fields::SKU, kw(sku));
            }
            if v.tracked
                && let Some(q) = v.quantity()
            {
                *inventory.get_or_insert(0) += q.max(0);
            }
            for ((field, canonical), value) in names.iter().zip(&v.options) {
                if value.trim().is_empty() || value == "Default Title" {
                    continue;
                }
                set(field, kw(value));
                if let Some(c) = canonical {
                    set(c, AttrValue::Keyword(canonical_value(c, value)));
                }
            }
            put("variants", AttrValue::Group(variant));
        }
        if self.variants.is_empty() {
            put(fields::IN_STOCK, AttrValue::Bool(false));
            put(fields::ON_SALE, AttrValue::Bool(false));
        }
        if let Some(q) = inventory
            && let Some(d) = Decimal::from_int(q)
        {
            put("inventory", AttrValue::Number(d));
        }
        if let Some(d) = Decimal::from_int(self.variants.len() as i64) {
            put("variant_count", AttrValue::Number(d));
        }
        a
    }
}

/// The longest option field, so that `option.<field>` fits an attribute name.
const MAX_OPTION_FIELD_BYTES: usize =
    dartmouth_engine::validate::MAX_ATTR_NAME_BYTES - "option.".len();

/// `Size` → `size`, `Fabric Weight` → `fabric_weight`: option names as filter fields
/// ([`dartmouth_catalog::options::option_field`]). A name longer than an attribute name may
/// be (Shopify allows 255 characters) is cut on a character boundary; the product's text
/// keeps it whole.
pub fn option_field(name: &str) -> String {
    let mut out = dartmouth_catalog::options::option_field(name);
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
pub(super) fn availability(v: &Variant) -> &'static str {
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
