//! The rules a document must meet to be stored and indexed: one validator for every path.
//!
//! The shard checks them before it writes (`Shard::apply`), and the writers above the store
//! check the same functions before the store's transaction, so the store never acknowledges a
//! document a shard would refuse: such a write would stop the domain's changelog for good.
//! The rules are byte-based (what the index and the store hold), refuse NUL everywhere (a
//! PostgreSQL `text` cannot hold it), and refuse control characters where a value is a name.

use crate::attrs::{AttrValue, Attributes};
use crate::document::{Chunk, Document};

/// Longest document id, in bytes.
pub const MAX_DOC_ID_BYTES: usize = 512;
/// Longest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 4096;
/// Longest url, in bytes.
pub const MAX_URL_BYTES: usize = 4096;
/// Longest heading path of a chunk, in bytes.
pub const MAX_HEADING_BYTES: usize = 4096;
/// Longest attribute name, in bytes.
pub const MAX_ATTR_NAME_BYTES: usize = 128;
/// Longest string attribute value, in bytes.
pub const MAX_ATTR_VALUE_BYTES: usize = 1024;
/// Most attribute names on one document.
pub const MAX_ATTR_NAMES: usize = 512;
/// Most attribute values on one document, all names together.
pub const MAX_ATTR_VALUES: usize = 16_384;
/// Most chunks in one document.
pub const MAX_CHUNKS: usize = 100_000;

/// A field that breaks a rule: which field (`title`, `attributes["size"]`, `chunks[3].text`)
/// and why. Callers put the input's place (a file and line, `documents[2]`) in front.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

type Check = Result<(), Invalid>;

/// A value as shown in a message: at most 64 characters, escaped (`"a\tb"`).
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(64).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn no_nul(field: &str, value: &str) -> Check {
    if value.contains('\0') {
        return Err(Invalid::new(field, "contains a NUL character"));
    }
    Ok(())
}

fn at_most(field: &str, value: &str, max: usize) -> Check {
    if value.len() > max {
        return Err(Invalid::new(
            field,
            format!("{} bytes; the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

/// Control characters other than tab, line feed and carriage return.
fn no_controls_but_whitespace(field: &str, value: &str) -> Check {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Invalid::new(
            field,
            format!("contains the control character {:?}", c),
        ));
    }
    Ok(())
}

/// A document id: 1 to 512 bytes, no control characters (tab and NUL included).
pub fn check_id(id: &str) -> Check {
    if id.is_empty() {
        return Err(Invalid::new("id", "must not be empty"));
    }
    if id.len() > MAX_DOC_ID_BYTES {
        return Err(Invalid::new(
            "id",
            format!(
                "{} bytes; the limit is {MAX_DOC_ID_BYTES} ({} …)",
                id.len(),
                shown(id)
            ),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Invalid::new(
            "id",
            format!("{} contains a control character", shown(id)),
        ));
    }
    Ok(())
}

pub fn check_title(title: &str) -> Check {
    at_most("title", title, MAX_TITLE_BYTES)?;
    no_nul("title", title)?;
    no_controls_but_whitespace("title", title)
}

/// A url: at most 4096 bytes, no whitespace or control characters (a url is a citation).
pub fn check_url(url: &str) -> Check {
    at_most("url", url, MAX_URL_BYTES)?;
    if let Some(c) = url.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid::new(
            "url",
            format!("contains {c:?}; encode whitespace and control characters"),
        ));
    }
    Ok(())
}

/// Text (a document's body, a chunk): any length, no NUL.
pub fn check_text(field: &str, text: &str) -> Check {
    no_nul(field, text)
}

pub fn check_attribute_name(name: &str) -> Check {
    let field = || format!("attributes[{}]", shown(name));
    if name.is_empty() || name.len() > MAX_ATTR_NAME_BYTES {
        return Err(Invalid::new(
            field(),
            format!(
                "attribute names must be 1 to {MAX_ATTR_NAME_BYTES} bytes, got {}",
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(
            field(),
            "attribute names must not contain control characters",
        ));
    }
    Ok(())
}

pub fn check_attributes(attrs: &Attributes) -> Check {
    if attrs.len() > MAX_ATTR_NAMES {
        return Err(Invalid::new(
            "attributes",
            format!(
                "{} names; the limit is {MAX_ATTR_NAMES} per document",
                attrs.len()
            ),
        ));
    }
    let mut values = 0usize;
    for (name, vs) in attrs {
        check_attribute_name(name)?;
        for v in vs {
            values += 1;
            match v {
                AttrValue::Keyword(s) => check_keyword(name, s)?,
                AttrValue::Group(fields) => {
                    for (inner, ivs) in fields {
                        let path = format!("{name}.{inner}");
                        check_attribute_name(inner).map_err(|e| {
                            Invalid::new(format!("attributes[{}]", shown(&path)), e.reason)
                        })?;
                        for iv in ivs {
                            values += 1;
                            match iv {
                                AttrValue::Keyword(s) => check_keyword(&path, s)?,
                                AttrValue::Group(_) => {
                                    return Err(Invalid::new(
                                        format!("attributes[{}]", shown(&path)),
                                        "groups nest one level: a group's fields are strings, numbers or booleans",
                                    ));
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if values > MAX_ATTR_VALUES {
        return Err(Invalid::new(
            "attributes",
            format!("{values} values; the limit is {MAX_ATTR_VALUES} per document"),
        ));
    }
    Ok(())
}

fn check_keyword(name: &str, s: &str) -> Check {
    let field = format!("attributes[{}]", shown(name));
    if s.len() > MAX_ATTR_VALUE_BYTES {
        return Err(Invalid::new(
            field,
            format!(
                "a value of {} bytes; the limit is {MAX_ATTR_VALUE_BYTES}",
                s.len()
            ),
        ));
    }
    no_nul(&field, s)
}

/// The fields a document has before it is chunked: id, title, url, text and attributes.
pub fn check_fields(
    id: &str,
    title: &str,
    url: Option<&str>,
    text: &str,
    attributes: &Attributes,
) -> Check {
    check_id(id)?;
    check_title(title)?;
    if let Some(u) = url {
        check_url(u)?;
    }
    check_text("text", text)?;
    check_attributes(attributes)
}

fn check_chunk(i: usize, chunk: &Chunk) -> Check {
    check_text(&format!("chunks[{i}].text"), &chunk.text)?;
    if let Some(h) = &chunk.heading {
        let field = format!("chunks[{i}].heading");
        at_most(&field, h, MAX_HEADING_BYTES)?;
        no_nul(&field, h)?;
    }
    if chunk.char_end < chunk.char_start {
        return Err(Invalid::new(
            format!("chunks[{i}]"),
            format!(
                "the char range ends ({}) before it starts ({})",
                chunk.char_end, chunk.char_start
            ),
        ));
    }
    Ok(())
}

/// Every rule but the vectors' (which depend on the domain's model: `Shard::apply` checks
/// those): the one check run before a document is stored or indexed.
pub fn check_document(doc: &Document) -> Check {
    check_fields(&doc.id, &doc.title, doc.url.as_deref(), "", &doc.attributes)?;
    if doc.chunks.is_empty() {
        return Err(Invalid::new(
            "chunks",
            "a document needs at least one chunk",
        ));
    }
    if doc.chunks.len() > MAX_CHUNKS {
        return Err(Invalid::new(
            "chunks",
            format!(
                "{} chunks; the limit is {MAX_CHUNKS} per document",
                doc.chunks.len()
            ),
        ));
    }
    doc.chunks
        .iter()
        .enumerate()
        .try_for_each(|(i, c)| check_chunk(i, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str) -> Document {
        Document {
            id: id.into(),
            title: "t".into(),
            url: None,
            attributes: Attributes::new(),
            chunks: vec![Chunk {
                text: "x".into(),
                char_start: 0,
                char_end: 1,
                heading: None,
                embedding: vec![1.0],
            }],
        }
    }

    #[test]
    fn the_defects_of_the_hardening_issue_are_refused() {
        assert!(check_document(&doc("p1")).is_ok());
        // An id with a tab, and one of 300 × `é` (600 bytes: the engine counts bytes).
        assert!(check_document(&doc("a\tb")).is_err());
        let long = "é".repeat(300);
        let e = check_document(&doc(&long)).unwrap_err();
        assert_eq!(e.field, "id");
        assert!(e.reason.contains("600 bytes"), "{e}");
        // An empty attribute name, a 1,100-byte value, a 130-byte name.
        let mut d = doc("p1");
        d.attributes
            .insert(String::new(), vec![AttrValue::Keyword("x".into())]);
        assert_eq!(check_document(&d).unwrap_err().field, "attributes[\"\"]");
        let mut d = doc("p1");
        d.attributes
            .insert("k".into(), vec![AttrValue::Keyword("v".repeat(1100))]);
        assert!(
            check_document(&d)
                .unwrap_err()
                .reason
                .contains("1100 bytes")
        );
        let mut d = doc("p1");
        d.attributes.insert(
            format!("option.{}", "n".repeat(125)),
            vec![AttrValue::Keyword("x".into())],
        );
        assert!(check_document(&d).is_err());
    }

    #[test]
    fn nul_is_refused_in_every_text_field() {
        let mut d = doc("p1");
        d.title = "a\0b".into();
        assert_eq!(check_document(&d).unwrap_err().field, "title");
        let mut d = doc("p1");
        d.chunks[0].text = "a\0".into();
        assert_eq!(check_document(&d).unwrap_err().field, "chunks[0].text");
        let mut d = doc("p1");
        d.chunks[0].heading = Some("h\0".into());
        assert_eq!(check_document(&d).unwrap_err().field, "chunks[0].heading");
        let mut d = doc("p1");
        d.url = Some("https://x/\0".into());
        assert_eq!(check_document(&d).unwrap_err().field, "url");
        let mut d = doc("p1");
        d.attributes
            .insert("k".into(), vec![AttrValue::Keyword("\0".into())]);
        assert_eq!(check_document(&d).unwrap_err().field, "attributes[\"k\"]");
        assert!(check_fields("p1", "t", None, "a\0b", &Attributes::new()).is_err());
    }

    #[test]
    fn text_keeps_its_whitespace_and_urls_refuse_it() {
        let mut d = doc("p1");
        d.title = "Line one\nline two\ttab".into();
        d.chunks[0].text = "form\u{c}feed and bell\u{7} are text".into();
        assert!(check_document(&d).is_ok());
        d.url = Some("https://example.com/a b".into());
        assert_eq!(check_document(&d).unwrap_err().field, "url");
        d.url = Some("https://example.com/a%20b".into());
        assert!(check_document(&d).is_ok());
    }
}
