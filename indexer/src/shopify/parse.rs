//! Shopify's scalars: ids (a `gid://` wins over a rounded JSON number), money (exact decimals),
//! timestamps and tags.

use dartmouth_engine::Decimal;
use serde_json::Value;

use crate::{Error, Result};

/// Parses Shopify's timestamps (`2021-12-31T19:00:00-05:00`, `2019-01-01 00:00:00.000Z`,
/// RFC 3339 in general) into milliseconds since the epoch; `None` when it is not one.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse::<i64>().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = digits[2..].parse().ok()?;
            sign * (h * 60 + m)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Parses a Shopify id: a `gid://shopify/Type/123` (query suffix ignored), an integer, or
/// an integer string. Floats are refused: they have already lost digits.
pub fn parse_id(v: &Value, place: &str, field: &str) -> Result<Option<u64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
            Error::bad(
                place,
                format!("field `{field}`: `{n}` is not a whole positive id"),
            )
        }),
        Value::String(s) => parse_id_str(s)
            .map(Some)
            .ok_or_else(|| Error::bad(place, format!("field `{field}`: `{s}` is not an id"))),
        other => Err(Error::bad(
            place,
            format!("field `{field}`: expected an id, got {other}"),
        )),
    }
}

pub(crate) fn parse_id_str(s: &str) -> Option<u64> {
    let s = s.trim();
    let tail = match s.strip_prefix("gid://shopify/") {
        Some(rest) => rest.rsplit_once('/')?.1,
        None => s,
    };
    let tail = tail.split('?').next().unwrap_or(tail);
    tail.parse().ok()
}

/// A `gid://shopify/…` id when `v` is one (payloads made from templates put URLs there).
pub(crate) fn gid_id(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_str)
        .filter(|s| s.starts_with("gid://shopify/"))
        .and_then(parse_id_str)
}

/// A price: a decimal string or number; errors name the field.
pub fn parse_money(v: &Value, place: &str, field: &str) -> Result<Option<Decimal>> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // GraphQL MoneyV2: {"amount": "59.0", "currencyCode": "USD"}.
        Value::Object(o) if o.contains_key("amount") => {
            return parse_money(&o["amount"], place, field);
        }
        other => {
            return Err(Error::bad(
                place,
                format!("field `{field}`: expected a price, got {other}"),
            ));
        }
    };
    parse_money_str(&text, place, field)
}

pub(crate) fn parse_money_str(text: &str, place: &str, field: &str) -> Result<Option<Decimal>> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<Decimal>()
        .map(Some)
        .map_err(|e| Error::bad(place, format!("field `{field}`: {e}")))
}

/// Tags: REST sends one comma-separated string, storefront and GraphQL an array.
pub(crate) fn parse_tags(v: Option<&Value>) -> Vec<String> {
    let mut tags: Vec<String> = match v {
        Some(Value::String(s)) => split_tags(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    tags.dedup();
    tags
}

pub(crate) fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}
