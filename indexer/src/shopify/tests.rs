use dartmouth_engine::AttrValue;
use serde_json::Value;

use super::render::{AVAILABILITY_IN_STOCK, AVAILABILITY_SOLD_OUT};
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
    let variant = |a: &dartmouth_engine::Attributes| match a["variants"].as_slice() {
        [AttrValue::Group(v)] => v.clone(),
        other => panic!("one variant expected, got {other:?}"),
    };
    let v = variant(&p.attributes());
    assert_eq!(v["in_stock"], vec![AttrValue::Bool(true)]);
    assert_eq!(v["size"], vec![AttrValue::Keyword("M".into())]);
    assert_eq!(v["option.size"], vec![AttrValue::Keyword("M".into())]);
    assert!(p.render().contains("- M: 45.00 [in stock]"));
    let u = InventoryUpdate {
        inventory_item_id: 7,
        location_id: Some(1),
        available: Some(0),
        tracked: None,
        updated_at: None,
    };
    assert_eq!(p.apply_inventory(&u), InventoryOutcome::Applied);
    let v = variant(&p.attributes());
    assert_eq!(v["in_stock"], vec![AttrValue::Bool(false)]);
    assert_eq!(v["size"], vec![AttrValue::Keyword("M".into())]);
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
