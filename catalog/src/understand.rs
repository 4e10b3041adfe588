//! Query understanding for catalogs: "light pink sweatshirt in size M under $50" becomes the
//! text `sweatshirt` and the filter `color IN ("Light Pink") AND size = "M" AND price < 50`.
//!
//! Deterministic and local: price bounds and stock wording by rules; sizes and colours only
//! when the searched domains hold them as values of their `size` and `color` fields (the
//! vocabulary), so a word becomes a filter only when some product could match it. Written-out
//! sizes are the letters shops use ([`canonical_size`]), and a basic colour word ("pink")
//! stands for every colour value that contains it ("Light Pink", "Hot Pink").

use std::collections::BTreeSet;

use serde::Serialize;

use crate::fields;

/// The values of the fields query understanding recognises, from the searched domains.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    pub sizes: BTreeSet<String>,
    pub colors: BTreeSet<String>,
}

impl Vocabulary {
    /// Adds the sizes and colours one domain holds; `values` lists a keyword field's values.
    pub fn add<I: IntoIterator<Item = String>>(&mut self, values: impl Fn(&str) -> I) {
        self.sizes.extend(values(fields::SIZE));
        self.colors.extend(values(fields::COLOR));
    }
}

/// What was understood in a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Understood {
    /// The text searched: the query without the recognised constraints (the whole query when
    /// nothing else is left).
    pub query: String,
    /// The filter the constraints make, `None` when there were none.
    pub filter: Option<String>,
    /// Each constraint: the words it came from and the condition it became.
    pub constraints: Vec<Constraint>,
}

/// One recognised constraint.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Constraint {
    /// The words of the query it came from (`under $50`).
    pub text: String,
    /// The condition it became (`price < 50`).
    pub filter: String,
}

/// Sizes written out as the letters shops use most: "Medium" → "M", "X-Large" → "XL",
/// "XXL" → "2XL"; other values unchanged.
pub fn canonical_size(value: &str) -> String {
    let v = value.trim();
    let key: String = v
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect();
    let letters = match key.as_str() {
        "xxsmall" | "extraextrasmall" | "2xsmall" | "xxs" => "2XS",
        "xsmall" | "extrasmall" => "XS",
        "small" => "S",
        "medium" | "med" => "M",
        "large" => "L",
        "xlarge" | "extralarge" => "XL",
        "xxlarge" | "extraextralarge" | "2xlarge" | "xxl" => "2XL",
        "xxxlarge" | "3xlarge" | "xxxl" => "3XL",
        "xxxxlarge" | "4xlarge" | "xxxxl" => "4XL",
        "5xlarge" | "xxxxxl" => "5XL",
        _ => return v.to_string(),
    };
    letters.to_string()
}

/// Colour words that stand for every colour value containing them.
const BASIC_COLORS: &[&str] = &[
    "black",
    "white",
    "grey",
    "gray",
    "red",
    "pink",
    "blue",
    "navy",
    "green",
    "yellow",
    "orange",
    "purple",
    "brown",
    "beige",
    "tan",
    "gold",
    "silver",
    "maroon",
    "lavender",
    "turquoise",
    "teal",
    "cream",
    "ivory",
    "olive",
    "mint",
    "coral",
    "burgundy",
    "charcoal",
    "khaki",
    "rose",
    "violet",
    "lilac",
    "peach",
    "mustard",
    "aqua",
    "indigo",
    "natural",
    "clear",
];

/// Words that only join a constraint to the rest ("in size M", "for under $20"): dropped when
/// they are left next to a recognised constraint.
const JOINERS: &[&str] = &[
    "in", "size", "sized", "for", "with", "at", "and", "a", "an", "of", "color", "colour", "only",
    "that", "is", "are", "which", "costs", "cost", "priced", "price",
];

/// Units after a number that make it something other than a price ("under 5 years").
const NOT_MONEY: &[&str] = &[
    "year", "years", "yr", "yrs", "month", "months", "oz", "ounce", "ounces", "inch", "inches",
    "in", "cm", "mm", "ft", "feet", "lb", "lbs", "kg", "g", "ml", "l", "pack", "pcs", "pieces",
    "items", "people", "kids", "day", "days", "hours", "minutes", "x",
];

#[derive(Debug, Clone)]
struct Word {
    /// Lowercase, punctuation around it removed.
    norm: String,
    start: usize,
    end: usize,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let part = c.is_alphanumeric() || matches!(c, '$' | '.' | '-' | '\'' | '€' | '£');
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push_word(&mut out, text, s, i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push_word(&mut out, text, s, text.len());
    }
    out
}

fn push_word(out: &mut Vec<Word>, text: &str, s: usize, e: usize) {
    let raw = &text[s..e];
    let trimmed = raw.trim_end_matches(['.', '-', '\'']);
    if trimmed.is_empty() {
        return;
    }
    out.push(Word {
        norm: trimmed.to_lowercase(),
        start: s,
        end: s + trimmed.len(),
    });
}

/// A money amount: `$50`, `50`, `19.99`, `50$`, `€20`; the currency sign is optional.
fn money(word: &str) -> Option<(String, bool)> {
    let currency = word.starts_with(['$', '€', '£']) || word.ends_with(['$', '€', '£']);
    let digits = word.trim_matches(['$', '€', '£']);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next()?;
    let frac = parts.next().unwrap_or("0");
    if int.is_empty()
        || int.len() > 9
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((digits.trim_end_matches(".00").to_string(), currency))
}

fn quoted(value: &str) -> Option<String> {
    if !value.contains('"') {
        Some(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Some(format!("'{value}'"))
    } else {
        None
    }
}

/// Records a constraint found at words `from..=to` and marks those words used.
fn claim(
    constraints: &mut Vec<(usize, Constraint)>,
    used: &mut [bool],
    (from, to): (usize, usize),
    text: String,
    filter: String,
) {
    constraints.push((from, Constraint { text, filter }));
    used[from..=to].iter_mut().for_each(|u| *u = true);
}

/// Understands `query` and joins what it recognised to the caller's `filter` (`(given) AND
/// made`; a blank given filter counts as none): the understanding and the filter to search
/// with. The one place `parse: true` on search and eval's `--parse` do this.
pub fn understand_with_filter(
    query: &str,
    filter: Option<&str>,
    vocab: &Vocabulary,
) -> (Understood, Option<String>) {
    let understood = understand(query, vocab);
    let given = filter.map(str::trim).filter(|f| !f.is_empty());
    let filter = match (given, &understood.filter) {
        (Some(given), Some(made)) => Some(format!("({given}) AND {made}")),
        (None, Some(made)) => Some(made.clone()),
        (given, None) => given.map(str::to_string),
    };
    (understood, filter)
}

/// Recognises price bounds, sizes, colours and stock wording in `query`.
pub fn understand(query: &str, vocab: &Vocabulary) -> Understood {
    let ws = words(query);
    let mut used = vec![false; ws.len()];
    let mut constraints: Vec<(usize, Constraint)> = Vec::new();
    let norm = |i: usize| ws.get(i).map(|w| w.norm.as_str()).unwrap_or("");
    let span = |a: usize, b: usize| query[ws[a].start..ws[b].end].to_string();

    // A number after a comparison, with an optional currency word after it.
    let amount = |i: usize| -> Option<(String, usize)> {
        let (value, currency) = money(norm(i))?;
        let next = norm(i + 1);
        if matches!(
            next,
            "dollars" | "dollar" | "usd" | "bucks" | "euros" | "eur" | "pounds"
        ) {
            return Some((value, i + 1));
        }
        if !currency && NOT_MONEY.contains(&next) {
            return None;
        }
        Some((value, i))
    };

    // Price.
    let mut i = 0;
    while i < ws.len() {
        let w = norm(i);
        let two = format!("{w} {}", norm(i + 1));
        let three = format!("{two} {}", norm(i + 2));
        let (op, skip) = if ["no more than", "not more than"].contains(&three.as_str()) {
            ("<=", 3)
        } else if ["less than", "cheaper than", "lower than"].contains(&two.as_str()) {
            ("<", 2)
        } else if ["at most", "up to"].contains(&two.as_str()) {
            ("<=", 2)
        } else if ["more than", "higher than", "greater than"].contains(&two.as_str()) {
            (">", 2)
        } else if two == "at least" {
            (">=", 2)
        } else if ["under", "below", "beneath"].contains(&w) {
            ("<", 1)
        } else if ["over", "above"].contains(&w) {
            (">", 1)
        } else if ["max", "maximum"].contains(&w) {
            ("<=", 1)
        } else if w == "between" || w == "from" {
            // "between 20 and 40 dollars", "from $20 to $40".
            if let Some((low, at)) = amount(i + 1)
                && matches!(norm(at + 1), "and" | "to" | "-")
                && let Some((high, end)) = amount(at + 2)
            {
                let f = format!("price >= {low} AND price <= {high}");
                claim(&mut constraints, &mut used, (i, end), span(i, end), f);
                i = end + 1;
                continue;
            }
            i += 1;
            continue;
        } else {
            i += 1;
            continue;
        };
        if let Some((value, end)) = amount(i + skip) {
            let f = format!("price {op} {value}");
            claim(&mut constraints, &mut used, (i, end), span(i, end), f);
            i = end + 1;
        } else {
            i += 1;
        }
    }

    // "$20-$40", "20-40 dollars".
    for i in 0..ws.len() {
        if used[i] {
            continue;
        }
        if let Some((a, b)) = ws[i].norm.split_once('-')
            && let (Some((low, c1)), Some((high, c2))) = (money(a), money(b))
            && (c1 || c2 || matches!(norm(i + 1), "dollars" | "usd" | "bucks"))
        {
            let end = if matches!(norm(i + 1), "dollars" | "usd" | "bucks") {
                i + 1
            } else {
                i
            };
            let f = format!("price >= {low} AND price <= {high}");
            claim(&mut constraints, &mut used, (i, end), span(i, end), f);
        }
    }

    // Stock.
    for i in 0..ws.len() {
        if used[i] {
            continue;
        }
        let two = format!("{} {}", norm(i), norm(i + 1));
        let three = format!("{two} {}", norm(i + 2));
        let n = if ["not sold out", "ready to ship"].contains(&three.as_str()) {
            3
        } else if ["in stock", "available now", "in-stock now"].contains(&two.as_str()) {
            2
        } else if ["in-stock", "available", "instock"].contains(&norm(i)) {
            1
        } else {
            0
        };
        if n > 0 && !used[i..i + n].iter().any(|u| *u) {
            let text = span(i, i + n - 1);
            claim(
                &mut constraints,
                &mut used,
                (i, i + n - 1),
                text,
                "in_stock = true".into(),
            );
        }
    }

    // Sizes: "size M", "M size", "in XL", "medium"; letters alone only when unmistakable.
    let sizes: std::collections::BTreeMap<String, &String> =
        vocab.sizes.iter().map(|s| (s.to_lowercase(), s)).collect();
    let size_value = |i: usize| -> Option<String> {
        let c = canonical_size(norm(i)).to_lowercase();
        sizes.get(&c).map(|s| (*s).clone())
    };
    let mut i = 0;
    while i < ws.len() {
        if used[i] {
            i += 1;
            continue;
        }
        let w = norm(i);
        let letters_alone = w.len() >= 2
            && w.ends_with("xl")
            && w.trim_end_matches("xl")
                .chars()
                .all(|c| c.is_ascii_digit() || c == 'x')
            || w == "xs"
            || w == "xxs";
        // "medium", "x-large", "xxl": spelled the way only a size is.
        let written_out = canonical_size(w).to_lowercase() != w;
        let after_size_word = i > 0 && matches!(norm(i - 1), "size" | "sized") && !used[i - 1];
        let before_size_word = norm(i + 1) == "size" && !used.get(i + 1).copied().unwrap_or(true);
        if let Some(value) = size_value(i)
            && (after_size_word || before_size_word || letters_alone || written_out)
        {
            let (from, to) = if after_size_word {
                (i - 1, i)
            } else if before_size_word {
                (i, i + 1)
            } else {
                (i, i)
            };
            if let Some(q) = quoted(&value) {
                let text = span(from, to);
                claim(
                    &mut constraints,
                    &mut used,
                    (from, to),
                    text,
                    format!("size = {q}"),
                );
            }
            i = to + 1;
            continue;
        }
        i += 1;
    }

    // Colours: a whole multi-word value ("light pink"), else a basic colour word.
    let colors: Vec<(String, Vec<String>)> = vocab
        .colors
        .iter()
        .map(|c| {
            (
                c.clone(),
                words(c).into_iter().map(|w| w.norm).collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut i = 0;
    while i < ws.len() {
        if used[i] {
            i += 1;
            continue;
        }
        // The longest whole value starting here (two words or more).
        let mut best: Option<(usize, Vec<&str>)> = None;
        for (value, parts) in &colors {
            let n = parts.len();
            if n < 2 || i + n > ws.len() || used[i..i + n].iter().any(|u| *u) {
                continue;
            }
            if (0..n).all(|k| ws[i + k].norm == parts[k]) {
                match &mut best {
                    Some((len, values)) if *len == n => values.push(value),
                    Some((len, _)) if *len > n => {}
                    _ => best = Some((n, vec![value.as_str()])),
                }
            }
        }
        let (n, values): (usize, Vec<&str>) = match best {
            Some(found) => found,
            None if BASIC_COLORS.contains(&norm(i)) => {
                let word = norm(i);
                let with: Vec<&str> = colors
                    .iter()
                    .filter(|(_, parts)| parts.iter().any(|p| p == word))
                    .map(|(v, _)| v.as_str())
                    .collect();
                (1, with)
            }
            None => (0, Vec::new()),
        };
        if n == 0 || values.is_empty() {
            i += 1;
            continue;
        }
        let listed: Option<Vec<String>> = values.iter().map(|v| quoted(v)).collect();
        if let Some(listed) = listed {
            let filter = format!("color IN ({})", listed.join(", "));
            claim(
                &mut constraints,
                &mut used,
                (i, i + n - 1),
                span(i, i + n - 1),
                filter,
            );
        }
        i += n;
    }

    // The rest of the text, without joiners left next to a constraint.
    let mut keep = vec![true; ws.len()];
    for (i, u) in used.iter().enumerate() {
        if *u {
            keep[i] = false;
        }
    }
    for i in 0..ws.len() {
        if !keep[i] || !JOINERS.contains(&ws[i].norm.as_str()) {
            continue;
        }
        // A run of joiners touching a constraint goes.
        let mut a = i;
        while a > 0 && keep[a - 1] && JOINERS.contains(&ws[a - 1].norm.as_str()) {
            a -= 1;
        }
        let mut b = i;
        while b + 1 < ws.len() && keep[b + 1] && JOINERS.contains(&ws[b + 1].norm.as_str()) {
            b += 1;
        }
        let touches = (a > 0 && used[a - 1]) || (b + 1 < ws.len() && used[b + 1]);
        if touches {
            keep[a..=b].iter_mut().for_each(|k| *k = false);
        }
    }
    constraints.sort_by_key(|(at, _)| *at);
    let constraints: Vec<Constraint> = constraints.into_iter().map(|(_, c)| c).collect();
    let rest: Vec<&str> = ws
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(w, _)| &query[w.start..w.end])
        .collect();
    let rest = rest.join(" ");
    let filter = (!constraints.is_empty()).then(|| {
        constraints
            .iter()
            .map(|c| {
                if c.filter.contains(" AND ") {
                    format!("({})", c.filter)
                } else {
                    c.filter.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    });
    Understood {
        query: if rest.trim().is_empty() {
            query.trim().to_string()
        } else {
            rest
        },
        filter,
        constraints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary {
            sizes: ["XS", "S", "M", "L", "XL", "2XL", "3XL", "11oz"]
                .map(String::from)
                .into(),
            colors: [
                "Black",
                "Pink",
                "Light Pink",
                "Hot Pink",
                "Heather Grey",
                "Royal",
                "Vintage Smoke",
            ]
            .map(String::from)
            .into(),
        }
    }

    /// The caller's filter and the understood one join with AND; a blank given filter is none
    /// (the service and eval once disagreed on it); nothing understood keeps the given one.
    #[test]
    fn the_understood_filter_joins_the_given_one() {
        let join =
            |given: Option<&str>| understand_with_filter("hoodie in size M", given, &vocab()).1;
        assert_eq!(join(None).as_deref(), Some("size = \"M\""));
        assert_eq!(join(Some("")).as_deref(), Some("size = \"M\""));
        assert_eq!(join(Some("  ")).as_deref(), Some("size = \"M\""));
        assert_eq!(
            join(Some("vendor = \"Acme\"")).as_deref(),
            Some("(vendor = \"Acme\") AND size = \"M\"")
        );
        let (u, filter) = understand_with_filter("hoodie", Some("price < 5"), &vocab());
        assert_eq!(
            (u.query.as_str(), filter.as_deref()),
            ("hoodie", Some("price < 5"))
        );
        assert_eq!(understand_with_filter("hoodie", None, &vocab()).1, None);
    }

    fn u(q: &str) -> (String, Option<String>) {
        let r = understand(q, &vocab());
        (r.query, r.filter)
    }

    #[test]
    fn prices_sizes_colours_and_stock() {
        assert_eq!(
            u("light pink sweatshirt in size M under $50"),
            (
                "sweatshirt".into(),
                Some(r#"color IN ("Light Pink") AND size = "M" AND price < 50"#.into())
            )
        );
        assert_eq!(
            u("mug between 20 and 40 dollars"),
            ("mug".into(), Some("(price >= 20 AND price <= 40)".into()))
        );
        assert_eq!(
            u("pink hoodie 3XL in stock"),
            (
                "hoodie".into(),
                Some(
                    r#"color IN ("Hot Pink", "Light Pink", "Pink") AND size = "3XL" AND in_stock = true"#
                        .into()
                )
            )
        );
        assert_eq!(
            u("sticker less than 5"),
            ("sticker".into(), Some("price < 5".into()))
        );
        assert_eq!(
            u("tee, medium, at most $19.99"),
            (
                "tee".into(),
                Some(r#"size = "M" AND price <= 19.99"#.into())
            )
        );
        assert_eq!(
            u("$20-$40 tote"),
            ("tote".into(), Some("(price >= 20 AND price <= 40)".into()))
        );
    }

    #[test]
    fn words_that_are_not_constraints_stay() {
        // Not a price: a unit follows.
        assert_eq!(
            u("onesie for babies under 6 months"),
            ("onesie for babies under 6 months".into(), None)
        );
        // Single letters need the word "size"; a one-word colour value that is no basic colour
        // ("Royal") is not taken from free text; unknown sizes are not filters.
        assert_eq!(u("a royal blue mug"), ("a royal blue mug".into(), None));
        assert_eq!(
            u("vintage smoke tee"),
            ("tee".into(), Some(r#"color IN ("Vintage Smoke")"#.into()))
        );
        assert_eq!(u("size 4XL shirt"), ("size 4XL shirt".into(), None));
        assert_eq!(u("sweatshirt"), ("sweatshirt".into(), None));
        assert_eq!(
            u("in stock"),
            ("in stock".into(), Some("in_stock = true".into()))
        );
    }
}
