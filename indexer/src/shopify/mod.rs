//! Shopify catalogs: every real export and payload shape parsed into one [`Product`] model, and
//! a product normalised into one document whose text reads well to an LLM and whose variants
//! populate filterable attributes.
//!
//! Shapes: Admin REST products JSON (`{"products":[…]}`, a bare array, or `{"product":{…}}`),
//! the storefront `/products.json`, GraphQL bulk-operation JSONL, product CSV exports (legacy
//! and 2025 headers) and webhook payloads. IDs are u64 (a `gid://` wins over a JSON number,
//! which JavaScript-made payloads round); money is an exact decimal, never a float.

pub mod admin;
mod bulk;
mod csv;
mod json;
mod parse;
pub mod pull;
mod render;
mod stock;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use dartmouth_engine::Decimal;
use serde::{Deserialize, Serialize};

pub use bulk::{BulkStream, read_bulk};
pub use csv::read_csv;
pub use json::{read_json, webhook};
pub(crate) use parse::{gid_id, parse_id_str, parse_money_str, parse_tags, split_tags};
pub use parse::{parse_id, parse_money, parse_time};
pub(crate) use render::strip_availability;
pub use render::{VARIANT_KEY_PREFIX, money, option_field};
pub use stock::{InventoryOutcome, InventoryUpdate, inventory_key};

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
    /// The product's featured image (its first), a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The titles of the collections the product is in (the Admin API's `collections`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Metafields a domain asks for, by `namespace.key`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metafields: BTreeMap<String, String>,
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

impl Product {
    /// The document id: Shopify's product id, or the handle for CSV exports.
    pub fn doc_id(&self) -> String {
        match self.id {
            Some(id) => id.to_string(),
            None => self.handle.clone(),
        }
    }
}
