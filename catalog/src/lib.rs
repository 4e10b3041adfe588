//! Shopping, in one place: the fields a catalog's products are filed under, the canonical
//! names shops' variant options map onto, a domain's catalog settings, and query
//! understanding ("pink hoodie in size M under $50" → text and filter).
//!
//! It depends on no member: the indexer renders products with it, the views read a domain's
//! catalog settings and vocabulary with it, the server and eval understand queries with it.
//! The engine knows attributes, groups and filters, not shops.

pub mod options;
pub mod understand;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The attribute names a product and its variants are filed under (what filters, facets and
/// query understanding name).
pub mod fields {
    /// A variant's price (a number).
    pub const PRICE: &str = "price";
    /// The price before a sale (a number), when the shop gives one.
    pub const COMPARE_AT_PRICE: &str = "compare_at_price";
    /// A variant priced below its compare-at price.
    pub const ON_SALE: &str = "on_sale";
    /// A variant that can be bought now.
    pub const IN_STOCK: &str = "in_stock";
    /// A variant's stock-keeping unit.
    pub const SKU: &str = "sku";
    /// The canonical size option (`Sizes`, `Mug size` → `size`), in the letters shops use.
    pub const SIZE: &str = "size";
    /// The canonical colour option (`Colors`, `Base colour` → `color`).
    pub const COLOR: &str = "color";
    /// The fields a variant has of its own, which no shop option may be filed under.
    pub const VARIANT: [&str; 5] = [PRICE, COMPARE_AT_PRICE, ON_SALE, IN_STOCK, SKU];
}

/// The catalog settings of a domain (kept in the store beside the engine's settings, under
/// `catalog`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// A shop's option name (as a filter field: `case_size`) → the canonical field its values
    /// are also filed under (`device`), or `""` for none. Names not listed follow the built-in
    /// vocabulary (`Sizes`, `Mug size` → `size`; `Colors` → `color`; see the README).
    #[serde(default)]
    pub option_names: BTreeMap<String, String>,
}

impl CatalogSettings {
    pub fn is_default(&self) -> bool {
        self == &CatalogSettings::default()
    }

    /// Checks the option-name mapping; the error names the entry at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (from, to) in &self.option_names {
            let field_like = |s: &str| {
                s.len() <= 64
                    && s.chars()
                        .all(|c| c == '_' || c.is_alphanumeric() && !c.is_uppercase())
            };
            if from.is_empty() || !field_like(from) || !field_like(to) {
                return Err(format!(
                    "catalog.option_names: `{from}` → `{to}`: names are lowercase letters, digits \
                     and `_`, at most 64 bytes (an option \"Case size\" is `case_size`)"
                ));
            }
            if fields::VARIANT.contains(&to.as_str()) {
                return Err(format!(
                    "catalog.option_names: `{from}` cannot be filed under `{to}`, a variant field of its own"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_are_checked() {
        let with = |from: &str, to: &str| CatalogSettings {
            option_names: BTreeMap::from([(from.to_string(), to.to_string())]),
        };
        assert!(with("case_size", "device").validate().is_ok());
        assert!(with("mug_size", "").validate().is_ok());
        for (from, to) in [("", "size"), ("Case size", "size"), ("case_size", "Size")] {
            let e = with(from, to).validate().unwrap_err();
            assert!(e.contains("lowercase letters"), "{from} → {to}: {e}");
        }
        for to in fields::VARIANT {
            let e = with("case_size", to).validate().unwrap_err();
            assert!(e.contains("a variant field of its own"), "{to}: {e}");
        }
    }
}
