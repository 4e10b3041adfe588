//! The filter language: `in_stock = true AND price <= 50 AND option.size IN ("M", "L")`.
//!
//! Operators `= != < <= > >= IN`, combinators `AND OR NOT` and parentheses; keywords are
//! case-insensitive; strings are double- or single-quoted. A recursive-descent parser with a
//! depth limit, so a hostile filter cannot exhaust the stack.

use std::ops::Bound;

use roaring::RoaringBitmap;

use crate::attrs::{AttrIndex, AttrValue};
use crate::{Error, Result};

/// Deepest nesting of parentheses and `NOT` accepted.
pub const MAX_FILTER_DEPTH: usize = 32;
const MAX_FILTER_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        field: String,
        op: CompareOp,
        value: AttrValue,
    },
    In {
        field: String,
        values: Vec<AttrValue>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Parses the filter language; errors name the column where parsing failed.
    pub fn parse(input: &str) -> Result<Filter> {
        if input.len() > MAX_FILTER_LEN {
            return Err(Error::invalid(format!(
                "filter is {} bytes long; the limit is {MAX_FILTER_LEN}",
                input.len()
            )));
        }
        let tokens = lex(input)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let filter = parser.or()?;
        if let Some(t) = parser.tokens.get(parser.pos) {
            return Err(Error::invalid(format!(
                "filter: unexpected `{}` at column {}",
                t.text, t.column
            )));
        }
        Ok(filter)
    }

    /// The ordinals among `live` that match.
    ///
    /// Conditions on the fields of a group (a product's variants) are checked on each element:
    /// a part of the filter (without `NOT`) whose every field belongs to one group matches a
    /// chunk when one of its elements satisfies that whole part; an `AND` gathers its parts on
    /// one group into one such part. So `size = "M" AND price < 50` needs one variant that is
    /// both, `vendor = "Acme" AND size = "M"` checks the vendor on the product, and `NOT`
    /// negates what the product matches. Chunks without the group are matched on their own
    /// fields.
    pub(crate) fn eval(&self, index: &AttrIndex, live: &RoaringBitmap) -> RoaringBitmap {
        if let Some(group) = self.group(index) {
            return self.eval_in_group(index, group, live);
        }
        match self {
            Filter::And(parts) => {
                let mut grouped: Vec<(&str, Vec<Filter>)> = Vec::new();
                let mut acc = live.clone();
                for p in parts {
                    if let Some(g) = p.group(index) {
                        match grouped.iter_mut().find(|(name, _)| *name == g) {
                            Some((_, together)) => together.push(p.clone()),
                            None => grouped.push((g, vec![p.clone()])),
                        }
                        continue;
                    }
                    if acc.is_empty() {
                        return acc;
                    }
                    acc &= p.eval(index, &acc);
                }
                for (g, together) in grouped {
                    if acc.is_empty() {
                        break;
                    }
                    acc &= Filter::And(together).eval_in_group(index, g, &acc);
                }
                acc
            }
            Filter::Or(parts) => parts
                .iter()
                .fold(RoaringBitmap::new(), |acc, p| acc | p.eval(index, live)),
            Filter::Not(inner) => live - inner.eval(index, live),
            leaf => leaf.eval_flat(index, live),
        }
    }

    /// The group every field of this filter belongs to, if they all belong to one and no
    /// `NOT` is among them (a `NOT` is about the product: `NOT in_stock = true` is a product
    /// with no variant in stock).
    fn group<'i>(&self, index: &'i AttrIndex) -> Option<&'i str> {
        let mut group = None;
        let mut fields = Vec::new();
        if !self.fields(&mut fields) {
            return None;
        }
        for f in fields {
            let g = index.group_of(f)?;
            if group.is_some_and(|seen| seen != g) {
                return None;
            }
            group = Some(g);
        }
        group
    }

    /// Gathers the fields; false when a `NOT` is among them.
    fn fields<'a>(&'a self, out: &mut Vec<&'a str>) -> bool {
        match self {
            Filter::Compare { field, .. } | Filter::In { field, .. } => {
                out.push(field);
                true
            }
            Filter::And(parts) | Filter::Or(parts) => parts.iter().all(|p| p.fields(out)),
            Filter::Not(_) => false,
        }
    }

    /// This filter, all of whose fields belong to `group`: on each element of the group for
    /// chunks that carry it, on the chunk's own fields for the others.
    fn eval_in_group(&self, index: &AttrIndex, group: &str, live: &RoaringBitmap) -> RoaringBitmap {
        let Some(elements) = index.group(group) else {
            return self.eval_flat(index, live);
        };
        let without = live - &elements.with;
        let mut rows = if without.is_empty() {
            RoaringBitmap::new()
        } else {
            self.eval_flat(index, &without)
        };
        let matched = self.eval_flat(&elements.index, &elements.elements());
        rows |= elements.rows_of(&matched) & live & &elements.with;
        rows
    }

    /// Evaluation over one index's own fields, with no grouping.
    fn eval_flat(&self, index: &AttrIndex, live: &RoaringBitmap) -> RoaringBitmap {
        match self {
            Filter::Compare { field, op, value } => {
                let rows = match op {
                    CompareOp::Eq => index.eq(field, value),
                    CompareOp::Ne => return live - index.eq(field, value),
                    CompareOp::Lt => index.range(field, Bound::Unbounded, Bound::Excluded(value)),
                    CompareOp::Le => index.range(field, Bound::Unbounded, Bound::Included(value)),
                    CompareOp::Gt => index.range(field, Bound::Excluded(value), Bound::Unbounded),
                    CompareOp::Ge => index.range(field, Bound::Included(value), Bound::Unbounded),
                };
                rows & live
            }
            Filter::In { field, values } => {
                values
                    .iter()
                    .fold(RoaringBitmap::new(), |acc, v| acc | index.eq(field, v))
                    & live
            }
            Filter::And(parts) => {
                let mut acc = live.clone();
                for p in parts {
                    if acc.is_empty() {
                        break;
                    }
                    acc &= p.eval_flat(index, &acc);
                }
                acc
            }
            Filter::Or(parts) => parts.iter().fold(RoaringBitmap::new(), |acc, p| {
                acc | p.eval_flat(index, live)
            }),
            Filter::Not(inner) => live - inner.eval_flat(index, live),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(CompareOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    text: String,
    column: usize,
}

fn lex(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let column = |i: usize| {
        input[..chars.get(i).map_or(input.len(), |c| c.0)]
            .chars()
            .count()
            + 1
    };
    while i < chars.len() {
        let (start, c) = chars[i];
        let col = column(i);
        let single = |tok: Tok| Token {
            tok,
            text: c.to_string(),
            column: col,
        };
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(single(Tok::LParen));
                i += 1;
            }
            ')' => {
                tokens.push(single(Tok::RParen));
                i += 1;
            }
            '[' => {
                tokens.push(single(Tok::LBracket));
                i += 1;
            }
            ']' => {
                tokens.push(single(Tok::RBracket));
                i += 1;
            }
            ',' => {
                tokens.push(single(Tok::Comma));
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).map(|c| c.1);
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CompareOp::Eq, 2),
                    ('=', _) => (CompareOp::Eq, 1),
                    ('!', Some('=')) => (CompareOp::Ne, 2),
                    ('<', Some('=')) => (CompareOp::Le, 2),
                    ('<', Some('>')) => (CompareOp::Ne, 2),
                    ('<', _) => (CompareOp::Lt, 1),
                    ('>', Some('=')) => (CompareOp::Ge, 2),
                    ('>', _) => (CompareOp::Gt, 1),
                    _ => {
                        return Err(Error::invalid(format!(
                            "filter: unexpected `!` at column {col}; did you mean `!=` or NOT?"
                        )));
                    }
                };
                let end = chars.get(i + len).map_or(input.len(), |c| c.0);
                tokens.push(Token {
                    tok: Tok::Op(op),
                    text: input[start..end].to_string(),
                    column: col,
                });
                i += len;
            }
            '"' | '\'' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "filter: string opened at column {col} is not closed"
                            )));
                        }
                        Some((_, '\\')) => {
                            if let Some((_, escaped)) = chars.get(i + 1) {
                                value.push(*escaped);
                            }
                            i += 2;
                        }
                        Some((_, ch)) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token {
                    text: value.clone(),
                    tok: Tok::Str(value),
                    column: col,
                });
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].1.is_ascii_digit() || chars[j].1 == '.') {
                    j += 1;
                }
                let end = chars.get(j).map_or(input.len(), |c| c.0);
                let text = input[start..end].to_string();
                tokens.push(Token {
                    tok: Tok::Num(text.clone()),
                    text,
                    column: col,
                });
                i = j;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].1.is_alphanumeric() || matches!(chars[j].1, '_' | '.' | '-'))
                {
                    j += 1;
                }
                let end = chars.get(j).map_or(input.len(), |c| c.0);
                let text = input[start..end].to_string();
                tokens.push(Token {
                    tok: Tok::Ident(text.clone()),
                    text,
                    column: col,
                });
                i = j;
            }
            other => {
                return Err(Error::invalid(format!(
                    "filter: unexpected character `{other}` at column {col}"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token { tok: Tok::Ident(s), .. }) if s.eq_ignore_ascii_case(kw))
    }

    fn error_here(&self, expected: &str) -> Error {
        match self.tokens.get(self.pos) {
            Some(t) => Error::invalid(format!(
                "filter: expected {expected} at column {}, found `{}`",
                t.column, t.text
            )),
            None => Error::invalid(format!(
                "filter: expected {expected} at the end of the filter"
            )),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            let column = self.tokens.get(self.pos).map_or(0, |t| t.column);
            return Err(Error::invalid(format!(
                "filter: nested deeper than {MAX_FILTER_DEPTH} levels at column {column}"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter> {
        let mut parts = vec![self.and()?];
        while self.peek_keyword("OR") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter> {
        let mut parts = vec![self.not()?];
        while self.peek_keyword("AND") {
            self.pos += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn not(&mut self) -> Result<Filter> {
        if self.peek_keyword("NOT") {
            self.pos += 1;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter> {
        match self.tokens.get(self.pos).map(|t| &t.tok) {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.enter()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.tokens.get(self.pos).map(|t| &t.tok) {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error_here("`)`")),
                }
            }
            Some(Tok::Ident(name)) => {
                let field = name.clone();
                self.pos += 1;
                if self.peek_keyword("IN") {
                    self.pos += 1;
                    let close = match self.tokens.get(self.pos).map(|t| &t.tok) {
                        Some(Tok::LParen) => Tok::RParen,
                        Some(Tok::LBracket) => Tok::RBracket,
                        _ => return Err(self.error_here("`(` or `[` after IN")),
                    };
                    self.pos += 1;
                    let mut values = vec![self.value()?];
                    loop {
                        match self.tokens.get(self.pos).map(|t| &t.tok) {
                            Some(Tok::Comma) => {
                                self.pos += 1;
                                values.push(self.value()?);
                            }
                            Some(t) if *t == close => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.error_here("`,` or the end of the IN list")),
                        }
                    }
                    return Ok(Filter::In { field, values });
                }
                let op = match self.tokens.get(self.pos).map(|t| &t.tok) {
                    Some(Tok::Op(op)) => *op,
                    _ => return Err(self.error_here(&format!("an operator after `{field}`"))),
                };
                self.pos += 1;
                let value = self.value()?;
                Ok(Filter::Compare { field, op, value })
            }
            _ => Err(self.error_here("a field name, NOT or `(`")),
        }
    }

    fn value(&mut self) -> Result<AttrValue> {
        let value = match self.tokens.get(self.pos) {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => AttrValue::Keyword(s.clone()),
            Some(Token {
                tok: Tok::Num(n),
                column,
                ..
            }) => AttrValue::Number(
                n.parse()
                    .map_err(|e| Error::invalid(format!("filter: column {column}: {e}")))?,
            ),
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if s.eq_ignore_ascii_case("true") => AttrValue::Bool(true),
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if s.eq_ignore_ascii_case("false") => AttrValue::Bool(false),
            _ => return Err(self.error_here("a value (a quoted string, a number, true or false)")),
        };
        self.pos += 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Attributes;

    fn kw(s: &str) -> AttrValue {
        AttrValue::Keyword(s.into())
    }

    #[test]
    fn parses_precedence_and_in() {
        let f =
            Filter::parse(r#"in_stock = true AND price <= 50 OR NOT (option.size IN ("M", 'L'))"#)
                .unwrap();
        let Filter::Or(parts) = f else {
            panic!("{f:?}")
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[0], Filter::And(a) if a.len() == 2));
        assert!(
            matches!(&parts[1], Filter::Not(inner) if matches!(**inner, Filter::In { ref values, .. } if values == &vec![kw("M"), kw("L")]))
        );
    }

    #[test]
    fn errors_name_the_column() {
        let err = Filter::parse("price <= ").unwrap_err().to_string();
        assert!(err.contains("end of the filter"), "{err}");
        let err = Filter::parse("price ~ 3").unwrap_err().to_string();
        assert!(err.contains("column 7"), "{err}");
        let err = Filter::parse("a = 1 b = 2").unwrap_err().to_string();
        assert!(err.contains("column 7"), "{err}");
        let err = Filter::parse("a = \"open").unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000));
        let err = Filter::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("limit") || err.contains("nested"), "{err}");
        let nots = format!("{}a = 1", "NOT ".repeat(1000));
        assert!(
            Filter::parse(&nots)
                .unwrap_err()
                .to_string()
                .contains("nested")
        );
    }

    #[test]
    fn evaluates_against_bitmaps() {
        let mut idx = AttrIndex::default();
        let n = |s: &str| AttrValue::Number(s.parse().unwrap());
        idx.add(
            0,
            &Attributes::from([
                ("size".into(), vec![kw("M")]),
                ("price".into(), vec![n("40")]),
            ]),
        );
        idx.add(
            1,
            &Attributes::from([
                ("size".into(), vec![kw("L")]),
                ("price".into(), vec![n("60")]),
            ]),
        );
        idx.add(
            2,
            &Attributes::from([("size".into(), vec![kw("M"), kw("L")])]),
        );
        let live: RoaringBitmap = [0, 1, 2, 3].into_iter().collect();
        let ids = |f: &str| {
            Filter::parse(f)
                .unwrap()
                .eval(&idx, &live)
                .iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(r#"size = "M""#), vec![0, 2]);
        assert_eq!(ids(r#"size != "M""#), vec![1, 3]);
        assert_eq!(ids("price < 50.5"), vec![0]);
        assert_eq!(ids(r#"size = "L" AND NOT price > 50"#), vec![2]);
        assert_eq!(ids(r#"size IN ["M"] OR price >= 60"#), vec![0, 1, 2]);
        let dead: RoaringBitmap = [1, 2, 3].into_iter().collect();
        assert_eq!(
            Filter::parse(r#"size = "M""#)
                .unwrap()
                .eval(&idx, &dead)
                .iter()
                .collect::<Vec<_>>(),
            vec![2]
        );
    }

    /// Two products: one with an M at 60 and an S at 45, one with an M at 40 that is sold out
    /// and an L at 30; a plain document with flat fields.
    fn products() -> (AttrIndex, RoaringBitmap) {
        let n = |s: &str| AttrValue::Number(s.parse().unwrap());
        let variant = |size: &str, price: &str, stock: bool| {
            AttrValue::Group(Attributes::from([
                ("size".into(), vec![kw(size)]),
                ("price".into(), vec![n(price)]),
                ("in_stock".into(), vec![AttrValue::Bool(stock)]),
            ]))
        };
        let mut idx = AttrIndex::default();
        idx.add(
            0,
            &Attributes::from([
                ("vendor".into(), vec![kw("Acme")]),
                (
                    "variants".into(),
                    vec![variant("M", "60", true), variant("S", "45", true)],
                ),
            ]),
        );
        idx.add(
            1,
            &Attributes::from([
                ("vendor".into(), vec![kw("Bolt")]),
                (
                    "variants".into(),
                    vec![variant("m", "40", false), variant("L", "30", true)],
                ),
            ]),
        );
        idx.add(
            2,
            &Attributes::from([
                ("size".into(), vec![kw("M")]),
                ("price".into(), vec![n("20")]),
            ]),
        );
        (idx, [0, 1, 2].into_iter().collect())
    }

    #[test]
    fn conditions_on_a_group_hold_on_one_element() {
        let (idx, live) = products();
        let ids = |f: &str| {
            Filter::parse(f)
                .unwrap()
                .eval(&idx, &live)
                .iter()
                .collect::<Vec<_>>()
        };
        // Product 0 has an M and a variant under 50, but no M under 50.
        assert_eq!(ids(r#"size = "M" AND price < 50"#), vec![1, 2]);
        // Product 1's M under 50 is sold out; the plain document says nothing of stock.
        assert_eq!(
            ids(r#"price < 50 AND size = "M" AND in_stock = true"#),
            Vec::<u32>::new()
        );
        assert_eq!(
            ids(r#"price < 50 AND size = "M" AND in_stock = false"#),
            vec![1]
        );
        assert_eq!(
            ids(r#"(size = "M" AND price < 50) OR size = "L""#),
            vec![1, 2]
        );
        assert_eq!(ids(r#"size IN ("M", "S") AND price <= 45"#), vec![0, 1, 2]);
        // Product-level fields beside variant fields.
        assert_eq!(
            ids(r#"vendor = "Acme" AND size = "S" AND price < 50"#),
            vec![0]
        );
        assert_eq!(
            ids(r#"vendor = "Acme" AND size = "M" AND price < 50"#),
            Vec::<u32>::new()
        );
        // NOT is about the product: no variant in stock.
        assert_eq!(ids("NOT in_stock = true"), vec![2]);
        assert_eq!(ids("in_stock = false"), vec![1]);
        assert_eq!(ids(r#"size = "M" AND NOT price > 50"#), vec![1, 2]);
        // Keywords compare without case; facets show a value as first written.
        assert_eq!(ids(r#"size = "m""#), vec![0, 1, 2]);
        let all: RoaringBitmap = [0, 1, 2].into_iter().collect();
        let sizes: Vec<(AttrValue, u64)> = idx.value_counts("size", &all).collect();
        assert_eq!(
            sizes,
            vec![(kw("L"), 1), (kw("M"), 3), (kw("S"), 1)],
            "facets count products, not variants"
        );
        // Deleted chunks never match through their elements.
        let after_delete: RoaringBitmap = [0, 2].into_iter().collect();
        assert_eq!(
            Filter::parse(r#"size = "L""#)
                .unwrap()
                .eval(&idx, &after_delete)
                .iter()
                .collect::<Vec<_>>(),
            Vec::<u32>::new()
        );
    }
}
