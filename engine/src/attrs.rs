//! Filterable attributes and their roaring-bitmap index.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An exact decimal with six fractional digits (money, quantities): never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Decimal(i64);

impl Decimal {
    const SCALE: i64 = 1_000_000;
    const FRACTION_DIGITS: usize = 6;

    pub fn from_int(v: i64) -> Option<Self> {
        v.checked_mul(Self::SCALE).map(Decimal)
    }

    /// The value in millionths.
    pub fn micros(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for Decimal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("`{s}` is not a decimal number"));
        let t = s.trim();
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > Self::FRACTION_DIGITS {
            return Err(Error::invalid(format!(
                "`{s}` has more than {} decimal places",
                Self::FRACTION_DIGITS
            )));
        }
        let int_part: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_part: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().map_err(|_| bad())?
        };
        let v = int_part
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_part))
            .ok_or_else(|| Error::invalid(format!("`{s}` is out of range")))?;
        Ok(Decimal(if negative { -v } else { v }))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / Self::SCALE as u64;
        let frac = abs % Self::SCALE as u64;
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// One attribute value. Values of different kinds never compare equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttrValue {
    #[serde(rename = "b")]
    Bool(bool),
    #[serde(rename = "n")]
    Number(Decimal),
    #[serde(rename = "k")]
    Keyword(String),
    /// One element of a group (a product's variant): its own fields, one level deep. A filter's
    /// conditions on a group's fields must hold together on one element (see `crate::filter`).
    #[serde(rename = "g")]
    Group(Attributes),
}

impl AttrValue {
    /// Converts a JSON scalar; numbers keep their exact decimal text.
    pub fn from_json(field: &str, v: &serde_json::Value) -> Result<Self> {
        match v {
            serde_json::Value::Bool(b) => Ok(AttrValue::Bool(*b)),
            serde_json::Value::Number(n) => {
                Ok(AttrValue::Number(n.to_string().parse().map_err(|e| {
                    Error::invalid(format!("attribute `{field}`: {e}"))
                })?))
            }
            serde_json::Value::String(s) => Ok(AttrValue::Keyword(s.clone())),
            serde_json::Value::Object(fields) => {
                let mut group = Attributes::new();
                for (name, v) in fields {
                    let place = format!("{field}.{name}");
                    let values = match v {
                        serde_json::Value::Array(items) => items
                            .iter()
                            .map(|item| AttrValue::scalar_from_json(&place, item))
                            .collect::<Result<Vec<_>>>()?,
                        one => vec![AttrValue::scalar_from_json(&place, one)?],
                    };
                    group.insert(name.clone(), values);
                }
                Ok(AttrValue::Group(group))
            }
            other => Err(Error::invalid(format!(
                "attribute `{field}`: expected a string, number, boolean or object, got {other}"
            ))),
        }
    }

    /// A group's field: a scalar (groups hold no groups).
    fn scalar_from_json(field: &str, v: &serde_json::Value) -> Result<Self> {
        match v {
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                Err(Error::invalid(format!(
                    "attribute `{field}`: a group's fields are strings, numbers or booleans \
                     (groups nest one level), got {v}"
                )))
            }
            scalar => AttrValue::from_json(field, scalar),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::Bool(b) => serde_json::Value::Bool(*b),
            AttrValue::Number(d) => d.to_string().parse::<serde_json::Number>().map_or_else(
                |_| serde_json::Value::String(d.to_string()),
                serde_json::Value::Number,
            ),
            AttrValue::Keyword(s) => serde_json::Value::String(s.clone()),
            AttrValue::Group(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(name, values)| {
                        let v = match values.as_slice() {
                            [one] => one.to_json(),
                            many => many.iter().map(AttrValue::to_json).collect(),
                        };
                        (name.clone(), v)
                    })
                    .collect(),
            ),
        }
    }

    fn kind(&self) -> u8 {
        match self {
            AttrValue::Bool(_) => 0,
            AttrValue::Number(_) => 1,
            AttrValue::Keyword(_) => 2,
            AttrValue::Group(_) => 3,
        }
    }

    /// The form values are indexed and compared in: keywords case-folded (`"Light Pink"` and
    /// `"light pink"` are one value, as in Meilisearch's filters); other values as they are.
    pub(crate) fn folded(&self) -> std::borrow::Cow<'_, AttrValue> {
        match self {
            AttrValue::Keyword(s) if s.chars().any(char::is_uppercase) => {
                std::borrow::Cow::Owned(AttrValue::Keyword(s.to_lowercase()))
            }
            other => std::borrow::Cow::Borrowed(other),
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Number(d) => write!(f, "{d}"),
            AttrValue::Keyword(s) => write!(f, "{s:?}"),
            AttrValue::Group(fields) => write!(f, "{}", AttrValue::Group(fields.clone()).to_json()),
        }
    }
}

/// A document's attributes: field name to one or more values (a product's sizes, say).
pub type Attributes = BTreeMap<String, Vec<AttrValue>>;

/// Attributes as callers read them (hits, documents): a field with one value is that value,
/// with several an array of them; a group is always an array of objects.
pub fn attributes_to_json(attrs: &Attributes) -> serde_json::Value {
    serde_json::Value::Object(
        attrs
            .iter()
            .map(|(k, vs)| {
                let v = match vs.as_slice() {
                    [one] if !matches!(one, AttrValue::Group(_)) => one.to_json(),
                    many => serde_json::Value::Array(many.iter().map(AttrValue::to_json).collect()),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// Bitmaps of chunk ordinals per (field, value). Ordinals of deleted chunks may linger here;
/// every evaluation intersects with the live set, so they never match.
///
/// Keywords are indexed case-folded; facets show each value as first written. A group (a
/// product's variants) gets its own index over its elements, with each element's chunk, and
/// its fields are also indexed on the chunk (the union over elements), which facets count.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttrIndex {
    fields: BTreeMap<String, FieldIndex>,
    groups: BTreeMap<String, GroupIndex>,
    /// Field name → the group it occurs in (the first group seen with it).
    group_of: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct FieldIndex {
    values: BTreeMap<AttrValue, RoaringBitmap>,
    /// Folded keyword → the value as first written, for facets.
    shown: BTreeMap<String, String>,
}

/// The elements of one group: an index over element numbers and each element's chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupIndex {
    pub index: AttrIndex,
    /// Element number → chunk ordinal.
    rows: Vec<u32>,
    /// Chunks that carry this group.
    pub with: RoaringBitmap,
}

impl GroupIndex {
    /// Every element number.
    pub fn elements(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.rows.len() as u32);
        all
    }

    /// The chunks of the given elements.
    pub fn rows_of(&self, elements: &RoaringBitmap) -> RoaringBitmap {
        elements
            .iter()
            .filter_map(|e| self.rows.get(e as usize).copied())
            .collect()
    }
}

impl AttrIndex {
    pub fn add(&mut self, ordinal: u32, attrs: &Attributes) {
        for (name, values) in attrs {
            for v in values {
                if let AttrValue::Group(fields) = v {
                    let group = self.groups.entry(name.clone()).or_default();
                    let element = group.rows.len() as u32;
                    group.rows.push(ordinal);
                    group.with.insert(ordinal);
                    group.index.add(element, fields);
                    for (field, values) in fields {
                        self.group_of
                            .entry(field.clone())
                            .or_insert_with(|| name.clone());
                        for v in values {
                            self.add_value(field, v, ordinal);
                        }
                    }
                } else {
                    self.add_value(name, v, ordinal);
                }
            }
        }
    }

    fn add_value(&mut self, name: &str, v: &AttrValue, ordinal: u32) {
        let field = match self.fields.get_mut(name) {
            Some(f) => f,
            None => self.fields.entry(name.to_string()).or_default(),
        };
        let key = v.folded();
        if let (AttrValue::Keyword(written), AttrValue::Keyword(folded)) = (v, key.as_ref())
            && !field.shown.contains_key(folded)
        {
            field.shown.insert(folded.clone(), written.clone());
        }
        match field.values.get_mut(key.as_ref()) {
            Some(b) => {
                b.insert(ordinal);
            }
            None => {
                field
                    .values
                    .insert(key.into_owned(), RoaringBitmap::from_iter([ordinal]));
            }
        }
    }

    /// The group `field` belongs to, if any.
    pub fn group_of(&self, field: &str) -> Option<&str> {
        self.group_of.get(field).map(String::as_str)
    }

    pub fn group(&self, name: &str) -> Option<&GroupIndex> {
        self.groups.get(name)
    }

    pub fn eq(&self, field: &str, value: &AttrValue) -> RoaringBitmap {
        self.fields
            .get(field)
            .and_then(|f| f.values.get(value.folded().as_ref()))
            .cloned()
            .unwrap_or_default()
    }

    /// Each value of `field` (as first written) with the number of `within`'s ordinals that
    /// carry it.
    pub fn value_counts<'a>(
        &'a self,
        field: &str,
        within: &'a RoaringBitmap,
    ) -> impl Iterator<Item = (AttrValue, u64)> + 'a {
        self.fields.get(field).into_iter().flat_map(move |f| {
            f.values
                .iter()
                .map(move |(v, b)| (v, b.intersection_len(within)))
                .filter(|(_, n)| *n > 0)
                .map(move |(v, n)| match v {
                    AttrValue::Keyword(folded) => (
                        AttrValue::Keyword(f.shown.get(folded).unwrap_or(folded).clone()),
                        n,
                    ),
                    other => (other.clone(), n),
                })
        })
    }

    /// Up to `limit` of `within`'s ordinals in the order of their values of `field`, each at its
    /// first value (its lowest ascending, its highest descending), with that value; ordinals
    /// without a value are not listed. Ties in ordinal order.
    pub fn ordered(
        &self,
        field: &str,
        within: &RoaringBitmap,
        descending: bool,
        limit: usize,
    ) -> Vec<(AttrValue, u32)> {
        let Some(f) = self.fields.get(field) else {
            return Vec::new();
        };
        let mut seen = RoaringBitmap::new();
        let mut out = Vec::new();
        let values: Box<dyn Iterator<Item = (&AttrValue, &RoaringBitmap)>> = if descending {
            Box::new(f.values.iter().rev())
        } else {
            Box::new(f.values.iter())
        };
        for (v, rows) in values {
            let fresh = (rows & within) - &seen;
            for row in &fresh {
                if out.len() == limit {
                    return out;
                }
                let shown = match v {
                    AttrValue::Keyword(folded) => {
                        AttrValue::Keyword(f.shown.get(folded).unwrap_or(folded).clone())
                    }
                    other => other.clone(),
                };
                out.push((shown, row));
            }
            seen |= fresh;
        }
        out
    }

    /// Union of the bitmaps of values of the same kind within the bounds.
    pub fn range(
        &self,
        field: &str,
        lower: Bound<&AttrValue>,
        upper: Bound<&AttrValue>,
    ) -> RoaringBitmap {
        let Some(values) = self.fields.get(field).map(|f| &f.values) else {
            return RoaringBitmap::new();
        };
        let lower = lower.map(|v| v.folded().into_owned());
        let upper = upper.map(|v| v.folded().into_owned());
        let kind = match (&lower, &upper) {
            (Bound::Included(v) | Bound::Excluded(v), _)
            | (_, Bound::Included(v) | Bound::Excluded(v)) => v.kind(),
            _ => return values.values().fold(RoaringBitmap::new(), |acc, b| acc | b),
        };
        if matches!((&lower, &upper), (Bound::Excluded(a), Bound::Excluded(b)) if a == b)
            || matches!((&lower, &upper), (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b)
        {
            return RoaringBitmap::new();
        }
        values
            .range::<AttrValue, _>((lower.as_ref(), upper.as_ref()))
            .filter(|(v, _)| v.kind() == kind)
            .fold(RoaringBitmap::new(), |acc, (_, b)| acc | b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        let d: Decimal = "19.99".parse().unwrap();
        assert_eq!(d.micros(), 19_990_000);
        assert_eq!(d.to_string(), "19.99");
        assert_eq!("-0.5".parse::<Decimal>().unwrap().to_string(), "-0.5");
        assert_eq!(
            "50".parse::<Decimal>().unwrap(),
            Decimal::from_int(50).unwrap()
        );
        assert_eq!("50.000".parse::<Decimal>().unwrap().to_string(), "50");
        assert!("1.2345678".parse::<Decimal>().is_err());
        assert!("abc".parse::<Decimal>().is_err());
        assert!(".".parse::<Decimal>().is_err());
        assert!("99999999999999999999".parse::<Decimal>().is_err());
    }

    #[test]
    fn ranges_stay_within_a_kind() {
        let mut idx = AttrIndex::default();
        let n = |s: &str| AttrValue::Number(s.parse().unwrap());
        idx.add(1, &Attributes::from([("price".into(), vec![n("10")])]));
        idx.add(2, &Attributes::from([("price".into(), vec![n("49.99")])]));
        idx.add(3, &Attributes::from([("price".into(), vec![n("50.01")])]));
        idx.add(
            4,
            &Attributes::from([("price".into(), vec![AttrValue::Keyword("cheap".into())])]),
        );
        let le50 = idx.range("price", Bound::Unbounded, Bound::Included(&n("50")));
        assert_eq!(le50.iter().collect::<Vec<_>>(), vec![1, 2]);
        let gt10 = idx.range("price", Bound::Excluded(&n("10")), Bound::Unbounded);
        assert_eq!(gt10.iter().collect::<Vec<_>>(), vec![2, 3]);
    }
}
