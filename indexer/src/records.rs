//! JSON records: JSON Lines files read line by line (BEIR `corpus.jsonl` among them), JSON
//! files of records, the fields that hold id, title, text and url, and BEIR query files.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use dartmouth_engine::{AttrValue, Attributes};
use serde_json::Value;

use crate::doc::{Format, SourceDoc};
use crate::{Error, Result};

/// Longest accepted line of a JSONL file.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Which fields of a JSON record hold what.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFields {
    /// `None`: `_id`, else `id`.
    pub id: Option<String>,
    pub title: String,
    pub text: String,
    pub url: String,
}

impl Default for RecordFields {
    fn default() -> Self {
        RecordFields {
            id: None,
            title: "title".into(),
            text: "text".into(),
            url: "url".into(),
        }
    }
}

/// JSON Lines records, read line by line.
pub(crate) struct JsonlRecords {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    line: usize,
    fields: RecordFields,
}

impl JsonlRecords {
    /// `path` names the input in errors (`corpus.jsonl:3`).
    pub(crate) fn new(path: &Path, reader: Box<dyn BufRead + Send>, fields: RecordFields) -> Self {
        JsonlRecords {
            path: path.to_path_buf(),
            reader,
            line: 0,
            fields,
        }
    }
}

impl Iterator for JsonlRecords {
    type Item = Result<SourceDoc>;

    fn next(&mut self) -> Option<Result<SourceDoc>> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            self.line += 1;
            let place = format!("{}:{}", self.path.display(), self.line);
            let n = match (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(n) => n,
                Err(e) => return Some(Err(Error::io(&self.path)(e))),
            };
            if n == 0 {
                return None;
            }
            if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
                // Skip the rest of the line so the next record keeps its line number.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut self.reader)
                        .take(1 << 20)
                        .read_until(b'\n', &mut rest)
                    {
                        Ok(0) => break,
                        Ok(_) if rest.ends_with(b"\n") => break,
                        Ok(_) => {}
                        Err(e) => return Some(Err(Error::io(&self.path)(e))),
                    }
                }
                return Some(Err(Error::bad(
                    place,
                    format!("line is longer than {} MiB", MAX_LINE_BYTES / (1024 * 1024)),
                )));
            }
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Err(Error::bad(
                        place,
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                    )));
                }
            };
            if text.is_empty() {
                continue;
            }
            let record = serde_json::from_str::<Value>(text)
                .map_err(|e| Error::bad(&place, format!("malformed JSON: {e}")))
                .and_then(|v| record(&v, &place, &self.fields));
            return Some(record);
        }
    }
}

/// A JSON file of records: an array, or an object holding one array (`{"records": […]}`).
pub(crate) fn json_records(
    value: Value,
    file: &str,
    fields: &RecordFields,
) -> Vec<Result<SourceDoc>> {
    let records = match value {
        Value::Array(a) => a,
        Value::Object(o) => {
            let mut arrays = o.into_iter().filter(|(_, v)| v.is_array());
            match (arrays.next(), arrays.next()) {
                (Some((_, Value::Array(a))), None) => a,
                _ => {
                    return vec![Err(Error::bad(
                        file,
                        "expected an array of records (or an object holding one array)",
                    ))];
                }
            }
        }
        _ => return vec![Err(Error::bad(file, "expected an array of records"))],
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| record(r, &format!("{file}: record {}", i + 1), fields))
        .collect()
}

/// Longest keyword a record field may have to become an attribute.
const MAX_RECORD_ATTRIBUTE: usize = 256;

/// One record: id, title, text and url from the configured fields; other short scalar fields
/// (and arrays of them) become filterable attributes.
fn record(value: &Value, place: &str, fields: &RecordFields) -> Result<SourceDoc> {
    let obj = value
        .as_object()
        .ok_or_else(|| Error::bad(place, "expected a JSON object"))?;
    let id_names: Vec<&str> = match &fields.id {
        Some(f) => vec![f.as_str()],
        None => vec!["_id", "id"],
    };
    let (id_field, id) = id_names
        .iter()
        .find_map(|n| obj.get(*n).map(|v| (*n, v)))
        .ok_or_else(|| Error::bad(place, format!("missing field `{}`", id_names[0])))?;
    let id = match id {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(Error::bad(
                place,
                format!("field `{id_field}` must be a non-empty string or a number"),
            ));
        }
    };
    let field = |name: &str| -> Result<String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::bad(
                place,
                format!("field `{name}` must be a string"),
            )),
        }
    };
    let title = field(&fields.title)?;
    let text = field(&fields.text)?;
    let url = Some(field(&fields.url)?).filter(|u| !u.is_empty());
    let mut attributes = Attributes::new();
    for (name, v) in obj {
        if [id_field, &fields.title, &fields.text, &fields.url].contains(&name.as_str())
            || name.starts_with('_')
            || name.len() > 128
        {
            continue;
        }
        let scalars: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let values: Vec<AttrValue> = scalars
            .into_iter()
            .filter(|v| !matches!(v, Value::String(s) if s.len() > MAX_RECORD_ATTRIBUTE))
            .filter_map(|v| AttrValue::from_json(name, v).ok())
            .collect();
        if !values.is_empty() {
            attributes.insert(name.clone(), values);
        }
    }
    Ok(SourceDoc {
        attributes,
        id,
        title,
        text,
        url,
        format: Format::Text,
        place: place.to_string(),
        source: None,
        keys: Vec::new(),
    })
}

/// A BEIR query: `{"_id", "text"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BeirQuery {
    pub id: String,
    pub text: String,
    /// A filter the query is judged under (catalog collections: `size = "M" AND price < 50`).
    pub filter: Option<String>,
}

/// Reads a BEIR queries.jsonl; errors name the file and line; an empty file is an error.
pub fn read_beir_queries(path: &Path) -> Result<Vec<BeirQuery>> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let place = format!("{}:{}", path.display(), i + 1);
        let line = line.map_err(Error::io(path))?;
        let text = std::str::from_utf8(&line).map_err(|_| Error::bad(&place, "invalid UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::bad(&place, format!("malformed JSON: {e}")))?;
        let id = match &v["_id"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(Error::bad(&place, "missing or empty `_id`")),
        };
        let q = v["text"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| Error::bad(&place, "missing or empty `text`"))?;
        if !seen.insert(id.clone()) {
            return Err(Error::bad(&place, format!("duplicate query id `{id}`")));
        }
        let filter = match &v["filter"] {
            Value::Null => None,
            Value::String(f) if f.trim().is_empty() => None,
            Value::String(f) => {
                dartmouth_engine::Filter::parse(f)
                    .map_err(|e| Error::bad(&place, format!("query `{id}`: filter: {e}")))?;
                Some(f.clone())
            }
            other => {
                return Err(Error::bad(
                    &place,
                    format!("query `{id}`: `filter` must be a string, got {other}"),
                ));
            }
        };
        out.push(BeirQuery {
            id,
            text: q.to_string(),
            filter,
        });
    }
    if out.is_empty() {
        return Err(Error::Input(format!("{}: no queries", path.display())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn queries_file_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = write(tmp.path(), "q0.jsonl", b"\n");
        assert!(
            read_beir_queries(&empty)
                .unwrap_err()
                .to_string()
                .contains("no queries")
        );
        let dup = write(
            tmp.path(),
            "q1.jsonl",
            b"{\"_id\":\"1\",\"text\":\"a\"}\n{\"_id\":\"1\",\"text\":\"b\"}\n",
        );
        assert!(
            read_beir_queries(&dup)
                .unwrap_err()
                .to_string()
                .contains("q1.jsonl:2: duplicate")
        );
    }
}
