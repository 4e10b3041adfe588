//! Option names onto one vocabulary, so that an agent filters `size = "M"` in every shop:
//! "Sizes", "Size", "Sizes (garments)" and "Mug size" are all `size`; "Colors" and "Base
//! color" are `color`. The names are the attributes of Shopify's standard product taxonomy
//! that shops use as variant options; a domain's settings can map more names, or map a name
//! elsewhere (`catalog.option_names`). The shop's own name stays as well (`option.sizes`).

use std::collections::BTreeMap;

use crate::fields;

/// The canonical names and the option names (as `option_field` writes them, a trailing
/// plural `s` and a parenthesised part removed) that mean each.
const VOCABULARY: &[(&str, &[&str])] = &[
    (fields::SIZE, &["size"]),
    (
        fields::COLOR,
        &[
            "color",
            "colour",
            "base_color",
            "base_colour",
            "main_color",
            "main_colour",
            "primary_color",
            "primary_colour",
            "body_color",
            "body_colour",
        ],
    ),
    ("material", &["material", "fabric"]),
    ("style", &["style", "design"]),
    ("pattern", &["pattern", "print"]),
    ("finish", &["finish", "surface"]),
    ("flavor", &["flavor", "flavour"]),
    ("scent", &["scent", "fragrance"]),
    ("length", &["length"]),
    ("width", &["width"]),
    ("capacity", &["capacity", "volume"]),
    ("age_group", &["age_group", "age"]),
    ("gender", &["gender", "target_gender"]),
];

/// The canonical names an option may be mapped to (overrides name one of these, or their own).
pub fn vocabulary() -> impl Iterator<Item = &'static str> {
    VOCABULARY.iter().map(|(name, _)| *name)
}

/// The canonical name of a shop's option, if it has one. `overrides` maps option fields
/// (`option_field` form: `case_size`) to a canonical name, or to `""` for none.
pub fn canonical_option(name: &str, overrides: &BTreeMap<String, String>) -> Option<String> {
    let field = option_field(name);
    if let Some(to) = overrides.get(&field) {
        return (!to.is_empty()).then(|| to.clone());
    }
    // "Sizes (garments)" → "sizes" → "size"; "Mug size" → "mug_size": a size.
    let base = match name.split_once('(') {
        Some((before, _)) => option_field(before),
        None => field,
    };
    let singular = base
        .strip_suffix('s')
        .filter(|s| !s.ends_with('s'))
        .unwrap_or(&base);
    for (canonical, names) in VOCABULARY {
        if names.contains(&singular) || names.contains(&base.as_str()) {
            return Some((*canonical).to_string());
        }
    }
    // A product noun before "size" names what is sized: "Mug size", "Shoes size".
    if singular.ends_with("_size") {
        return Some(fields::SIZE.into());
    }
    None
}

/// `Size` → `size`, `Fabric Weight` → `fabric_weight`: an option name as a filter field
/// (the indexer cuts a name longer than an attribute name may be).
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

/// A value as the canonical field holds it: sizes written out are the letters shops use
/// most ("Medium" → "M", see [`crate::understand::canonical_size`]); everything else as
/// written (comparisons ignore case).
pub fn canonical_value(canonical: &str, value: &str) -> String {
    if canonical == fields::SIZE {
        crate::understand::canonical_size(value)
    } else {
        value.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_names_map_onto_the_vocabulary() {
        let none = BTreeMap::new();
        let c = |n: &str| canonical_option(n, &none);
        for size in [
            "Size",
            "Sizes",
            "Sizes (garments)",
            "Mug size",
            "Shoes size",
            "Sizes (canvas, posters, decals)",
            "Face mask size",
        ] {
            assert_eq!(c(size).as_deref(), Some("size"), "{size}");
        }
        for color in ["Color", "Colors", "Colour", "Base color"] {
            assert_eq!(c(color).as_deref(), Some("color"), "{color}");
        }
        assert_eq!(c("Zipper color"), None);
        assert_eq!(c("Material").as_deref(), Some("material"));
        assert_eq!(c("Surface").as_deref(), Some("finish"));
        assert_eq!(c("Bundle Theme"), None);
        assert_eq!(c("Title"), None);
        let overrides = BTreeMap::from([
            ("case_size".to_string(), "device".to_string()),
            ("bundle_theme".to_string(), "style".to_string()),
            ("mug_size".to_string(), String::new()),
        ]);
        assert_eq!(
            canonical_option("Case size", &overrides).as_deref(),
            Some("device")
        );
        assert_eq!(
            canonical_option("Bundle Theme", &overrides).as_deref(),
            Some("style")
        );
        assert_eq!(canonical_option("Mug size", &overrides), None);
        assert_eq!(
            canonical_option("Sizes", &overrides).as_deref(),
            Some("size")
        );
    }

    #[test]
    fn written_out_sizes_become_letters() {
        assert_eq!(canonical_value("size", "Medium"), "M");
        assert_eq!(canonical_value("size", "X-Large"), "XL");
        assert_eq!(canonical_value("size", "XXL"), "2XL");
        assert_eq!(canonical_value("size", "3XL"), "3XL");
        assert_eq!(canonical_value("size", "11oz"), "11oz");
        assert_eq!(canonical_value("color", "Medium Blue"), "Medium Blue");
    }
}
