//! Stock: inventory updates applied to a stored product, and a product update reconciled with
//! the stored one, so that a late or replayed delivery never reverts newer state.

use super::Product;

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

impl Product {
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
}
