//! Every file in `../shared/datasets/shopify/` parsed with the product and variant counts of
//! its README, and one malformed file per format. (The sync through a store and shard is
//! `views/tests/it/sync.rs`.)

use std::path::PathBuf;

use dartmouth_engine::AttrValue;
use dartmouth_indexer::SourceReader;
use dartmouth_indexer::shopify::{Change, Product, read_bulk, read_csv, read_json, webhook};

fn shopify(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets/shopify")
        .join(rel)
}

fn products(changes: &[dartmouth_indexer::Result<Change>]) -> Vec<&Product> {
    changes
        .iter()
        .filter_map(|c| match c {
            Ok(Change::Upsert(p)) => Some(p.as_ref()),
            _ => None,
        })
        .collect()
}

fn counts(changes: &[dartmouth_indexer::Result<Change>]) -> (usize, usize) {
    let p = products(changes);
    (p.len(), p.iter().map(|p| p.variants.len()).sum())
}

fn json_file(rel: &str) -> Vec<dartmouth_indexer::Result<Change>> {
    let text = std::fs::read_to_string(shopify(rel)).unwrap();
    read_json(serde_json::from_str(&text).unwrap(), rel)
}

#[test]
fn admin_rest_files() {
    let docs = json_file("admin_rest/products_docs_example.json");
    assert_eq!(counts(&docs), (2, 5));
    let ipod = products(&docs)[0];
    assert_eq!(ipod.id, Some(632910392));
    assert_eq!(ipod.tags, ["Emotive", "Flash Memory", "MP3", "Music"]);
    assert!(!ipod.description.contains('<'), "{}", ipod.description);
    let demo = json_file("admin_rest/products_united_by_blue_demo.json");
    assert_eq!(counts(&demo), (25, 96));
    assert!(demo.iter().all(Result::is_ok));
    let cap = products(&demo)[0];
    assert_eq!(cap.variants[0].price.unwrap().micros(), 48_000_000);
    assert_eq!(cap.variants[0].inventory_quantity, Some(2));
    assert_eq!(cap.variants[0].inventory_item_id, Some(48717910966438));
    assert_eq!(cap.status.as_deref(), Some("active"));
}

#[test]
fn storefront_file() {
    let changes = json_file("storefront/products_annies_farm.json");
    assert_eq!(counts(&changes), (17, 17));
    let p = products(&changes)[0];
    assert_eq!(p.variants[0].available, Some(true));
    assert_eq!(p.status, None);
    // Storefront tags arrive as an array; a trailing space in the vendor is trimmed.
    assert_eq!(p.vendor, "Annie's Organic Farm");
}

#[test]
fn csv_exports_both_files() {
    let f = std::fs::File::open(shopify("csv/product_template_official.csv")).unwrap();
    let template: Vec<_> = read_csv(f, "template.csv").collect();
    assert!(template.iter().all(Result::is_ok), "{template:?}");
    assert_eq!(counts(&template), (3, 16));
    let shirt = products(&template)[0];
    assert_eq!(shirt.handle, "example-shirt");
    assert_eq!(shirt.options[0].name, "Color");
    assert_eq!(
        shirt.category.as_deref().map(|c| c.starts_with("Apparel")),
        Some(true)
    );
    let f = std::fs::File::open(shopify("csv/products_export_life_made_magic.csv")).unwrap();
    let export: Vec<_> = read_csv(f, "export.csv").collect();
    assert!(export.iter().all(Result::is_ok));
    assert_eq!(counts(&export), (338, 3675));
    // Multi-line quoted HTML descriptions come out as text.
    assert!(
        products(&export)
            .iter()
            .any(|p| p.description.contains('\n') && !p.description.contains("<p>"))
    );
}

#[test]
fn csv_2025_dialect_and_malformed_rows() {
    let csv = "Title,URL handle,Description,Vendor,Product category,Type,Tags,Published on online store,Status,SKU,Barcode,Option1 name,Option1 value,Option2 name,Option2 value,Price,Compare-at price,Inventory tracker,Inventory quantity,Continue selling when out of stock\n\
Blue Hoodie,blue-hoodie,\"<p>Warm.</p>\n<p>Fleece lined.</p>\",Acme,Apparel,Hoodies,\"winter, fleece\",TRUE,Active,HD-M,,Size,M,Color,Blue,45.00,60.00,shopify,3,FALSE\n\
,blue-hoodie,,,,,,,,HD-L,,,L,,Blue,45.00,,shopify,0,FALSE\n\
Red Cap,red-cap,Cap,Acme,,Hats,,TRUE,Active,RC-1,,,,,,abc,,,,\n\
Green Mug,green-mug,Mug,Acme,,Mugs,,TRUE,Active,GM-1,,,,,,12.5,,,,\n\
Short,short,\n";
    let items: Vec<_> = read_csv(csv.as_bytes(), "new.csv").collect();
    assert_eq!(items.len(), 4, "{items:?}");
    let hoodie = match &items[0] {
        Ok(Change::Upsert(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(hoodie.variants.len(), 2);
    assert_eq!(hoodie.tags, ["winter", "fleece"]);
    assert_eq!(hoodie.variants[1].options, ["L", "Blue"]);
    assert!(hoodie.variants[0].in_stock() && !hoodie.variants[1].in_stock());
    let attrs = hoodie.attributes();
    // The M is in stock, the L sold out: each variant says so under the canonical `size`.
    let in_stock_sizes: Vec<&AttrValue> = attrs["variants"]
        .iter()
        .filter_map(|v| match v {
            AttrValue::Group(g) if g["in_stock"] == [AttrValue::Bool(true)] => g.get("size"),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(in_stock_sizes, [&AttrValue::Keyword("M".into())]);
    assert_eq!(attrs["status"], [AttrValue::Keyword("active".into())]);
    // A bad price fails its product with the line and the column; the next product goes on.
    let e = items[1].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("new.csv:5: field `Price`"), "{e}");
    assert!(matches!(&items[2], Ok(Change::Upsert(p)) if p.handle == "green-mug"));
    let e = items[3].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("new.csv:7: row has 3 fields"), "{e}");

    let unknown: Vec<_> = read_csv("Name,Price\nx,1\n".as_bytes(), "other.csv").collect();
    assert_eq!(unknown.len(), 1);
    let e = unknown[0].as_ref().unwrap_err().to_string();
    assert!(e.starts_with("other.csv:1: unknown header dialect"), "{e}");
}

#[test]
fn bulk_files_join_children_in_any_order() {
    let read = |rel: &str| {
        read_bulk(
            &std::fs::read_to_string(shopify(&format!("graphql_bulk_jsonl/{rel}"))).unwrap(),
            rel,
        )
    };
    let products_file = read("products.jsonl");
    assert_eq!(counts(&products_file), (1, 2));
    let p = products(&products_file)[0];
    assert_eq!(p.id, Some(123));
    assert_eq!(p.status.as_deref(), Some("active"));
    // The images file selects no titles: its two products are reported, not indexed blank.
    let images = read("product_images.jsonl");
    assert_eq!(images.len(), 2);
    assert!(
        images
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.to_string().contains("`title`")))
    );
    // Variants whose product is not in the file are reported with their line.
    let variants = read("product_variants.jsonl");
    let errors: Vec<String> = variants
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("product_variants.jsonl:1: ProductVariant"));
    assert!(errors[0].contains("gid://shopify/Product/111, which is not in the file"));
    let levels = read("inventory_levels.jsonl");
    assert_eq!(levels.len(), 2);
    match &levels[0] {
        Ok(Change::Inventory(u)) => {
            assert_eq!(u.inventory_item_id, 42185200631997);
            assert_eq!(u.location_id, Some(63590301885));
            assert_eq!(u.available, Some(15));
        }
        other => panic!("{other:?}"),
    }
    // Children before their parent, and a child whose parent is missing.
    let shuffled = "{\"__typename\":\"ProductVariant\",\"id\":\"gid://shopify/ProductVariant/2\",\"title\":\"M\",\"price\":\"9.50\",\"__parentId\":\"gid://shopify/Product/1\"}\n\
{\"__typename\":\"Product\",\"id\":\"gid://shopify/Product/1\",\"title\":\"Mug\",\"tags\":[\"a\"]}\n\
{\"__typename\":\"ProductVariant\",\"id\":\"gid://shopify/ProductVariant/3\",\"__parentId\":\"gid://shopify/Product/9\"}\n\
not json\n";
    let got = read_bulk(shuffled, "b.jsonl");
    assert_eq!(counts(&got), (1, 1));
    let errors: Vec<String> = got
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("b.jsonl:4: malformed JSON")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("b.jsonl:3: ProductVariant")),
        "{errors:?}"
    );
}

#[test]
fn webhook_payloads() {
    let read = |rel: &str| {
        let text = std::fs::read_to_string(shopify(&format!("webhooks/{rel}"))).unwrap();
        webhook(serde_json::from_str(&text).unwrap(), None, rel)
    };
    match read("products_update.metadata.2026-04.json").unwrap() {
        // The gid wins over the JSON number JavaScript rounded.
        Change::Upsert(p) => {
            assert_eq!(p.id, Some(788032119674292922));
            assert_eq!(p.variants.len(), 2);
            assert_eq!(p.variants[0].compare_at_price.unwrap().micros(), 24_990_000);
        }
        other => panic!("{other:?}"),
    }
    // The anonymised exemplar says "example string" for every price: refused, naming it.
    let e = read("products_webhook.anonymized_exemplar.2025-04.json").unwrap_err();
    assert!(e.to_string().contains("variant 1: field `price`"), "{e}");
    assert!(matches!(
        read("products_delete.metadata.2026-04.json").unwrap(),
        Change::Delete(788032119674292900)
    ));
    match read("inventory_levels_webhook.anonymized_exemplar.2025-04.json").unwrap() {
        Change::Inventory(u) => assert_eq!((u.inventory_item_id, u.available), (123, Some(123))),
        other => panic!("{other:?}"),
    }
    match read("inventory_levels_update.metadata.2024-01.json").unwrap() {
        Change::Inventory(u) => assert_eq!(u.available, None),
        other => panic!("{other:?}"),
    }
    match read("inventory_items_update.metadata.2026-04.json").unwrap() {
        Change::Inventory(u) => assert_eq!(u.tracked, Some(true)),
        other => panic!("{other:?}"),
    }
    let e = webhook(serde_json::json!({"x": 1}), None, "w.json").unwrap_err();
    assert!(
        e.to_string()
            .contains("w.json: cannot tell the webhook topic"),
        "{e}"
    );
    let e = webhook(
        serde_json::json!({"id": 1.5}),
        Some("products/delete"),
        "w.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("field `id`"), "{e}");
}

#[test]
fn malformed_json_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("products.json");
    std::fs::write(&p, "{\"products\": [\n{\"title\": \"a\",\n").unwrap();
    let items: Vec<_> = SourceReader::open(&[p], None).unwrap().collect();
    assert_eq!(items.len(), 1);
    let e = items[0].as_ref().unwrap_err().to_string();
    assert!(e.contains("products.json:3: malformed JSON"), "{e}");
}
