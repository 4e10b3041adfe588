//! Content sources, each behind one seam: JSON/JSONL records (BEIR `corpus.jsonl` among them),
//! Markdown, HTML, plain text and PDF files, and Shopify catalogs (REST and storefront JSON,
//! CSV exports, GraphQL bulk JSONL, webhook payloads). Files or directories; the format is
//! detected from the name and, for JSON, the content.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use dartmouth_engine::{AttrValue, Attributes};
use serde_json::Value;

use crate::shopify::{self, InventoryUpdate};

use crate::{Error, Result};

/// Longest accepted line of a JSONL file.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines records: `{"_id", "title", "text"}` per line (BEIR `corpus.jsonl`), field
    /// names configurable. A `.jsonl` whose first record has `__typename` is a Shopify bulk file.
    BeirJsonl,
    /// A JSON file: Shopify products or a webhook payload when it looks like one, else an
    /// array of records.
    Json,
    Markdown,
    Html,
    Text,
    Pdf,
    /// Admin REST or storefront products JSON.
    ShopifyJson,
    ShopifyCsv,
    ShopifyBulk,
    ShopifyWebhook,
}

const FORMAT_NAMES: &str = "jsonl (beir), json, markdown, html, text, pdf, shopify-json, \
                            shopify-csv, shopify-bulk, shopify-webhook";

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "beir" | "jsonl" | "records" => Format::BeirJsonl,
            "json" => Format::Json,
            "markdown" | "md" => Format::Markdown,
            "html" | "htm" => Format::Html,
            "text" | "txt" => Format::Text,
            "pdf" => Format::Pdf,
            "shopify-json" | "shopify-rest" | "shopify-storefront" => Format::ShopifyJson,
            "shopify-csv" | "csv" => Format::ShopifyCsv,
            "shopify-bulk" => Format::ShopifyBulk,
            "shopify-webhook" | "webhook" => Format::ShopifyWebhook,
            other => {
                return Err(Error::Input(format!(
                    "format `{other}` is not one of {FORMAT_NAMES}"
                )));
            }
        })
    }
}

impl Format {
    /// Detects the format from the file name (JSON content is sniffed when opened).
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e)?;
        Some(match ext {
            "jsonl" | "ndjson" => Format::BeirJsonl,
            "json" => Format::Json,
            "md" | "markdown" => Format::Markdown,
            "html" | "htm" | "xhtml" => Format::Html,
            "txt" | "text" => Format::Text,
            "pdf" => Format::Pdf,
            "csv" => Format::ShopifyCsv,
            _ => return None,
        })
    }
}

/// One source document before chunking.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDoc {
    pub id: String,
    pub title: String,
    pub text: String,
    pub url: Option<String>,
    /// How the text is chunked: Markdown by headings, anything else by paragraphs.
    pub format: Format,
    /// Where it came from, for error messages (`corpus.jsonl:12`).
    pub place: String,
    /// Filterable attributes (vendor, price, in_stock, …); the same on every chunk.
    pub attributes: Attributes,
    /// What the document was rendered from (a Shopify product as JSON), for partial updates.
    pub source: Option<String>,
    /// Secondary keys (`inventory_item:<id>`) partial updates find the document by.
    pub keys: Vec<String>,
}

impl SourceDoc {
    /// A plain document with no attributes.
    pub fn new(id: impl Into<String>, title: impl Into<String>, text: impl Into<String>) -> Self {
        SourceDoc {
            id: id.into(),
            title: title.into(),
            text: text.into(),
            url: None,
            format: Format::Text,
            place: String::new(),
            attributes: Attributes::new(),
            source: None,
            keys: Vec::new(),
        }
    }
}

/// What a source says should happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Doc(SourceDoc),
    Delete {
        id: String,
        place: String,
    },
    /// A stock change for the product holding the inventory item (the job re-renders it from
    /// its stored source, keeping its vectors).
    Inventory {
        update: InventoryUpdate,
        place: String,
    },
}

impl From<SourceDoc> for Item {
    fn from(d: SourceDoc) -> Item {
        Item::Doc(d)
    }
}

impl Item {
    pub fn place(&self) -> &str {
        match self {
            Item::Doc(d) => &d.place,
            Item::Delete { place, .. } | Item::Inventory { place, .. } => place,
        }
    }
}

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

#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Overrides detection.
    pub format: Option<Format>,
    pub fields: RecordFields,
    /// A shop's address: product URLs become `<base_url>/products/<handle>`.
    pub base_url: Option<String>,
    /// A webhook's topic (`products/update`, …) when the payload does not say.
    pub topic: Option<String>,
}

type Items = Box<dyn Iterator<Item = Result<Item>> + Send>;

/// Streams items from files, one file at a time (JSONL and CSV line by line), so a source of
/// any size is read in bounded memory.
pub struct SourceReader {
    files: Vec<(PathBuf, Format, String)>,
    options: SourceOptions,
    current: Option<Items>,
    next_file: usize,
}

impl SourceReader {
    /// `paths` are files or directories (walked recursively, sorted, hidden entries skipped).
    /// `format` overrides detection.
    pub fn open(paths: &[PathBuf], format: Option<Format>) -> Result<SourceReader> {
        Self::open_with(
            paths,
            SourceOptions {
                format,
                ..Default::default()
            },
        )
    }

    pub fn open_with(paths: &[PathBuf], options: SourceOptions) -> Result<SourceReader> {
        let format = options.format;
        let mut files = Vec::new();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(Error::io(p))?;
            if meta.is_dir() {
                let mut found = Vec::new();
                walk(p, &mut found)?;
                found.sort();
                for f in found {
                    if let Some(fmt) = format.or_else(|| Format::detect(&f)) {
                        let rel = f
                            .strip_prefix(p)
                            .unwrap_or(&f)
                            .to_string_lossy()
                            .replace('\\', "/");
                        files.push((f, fmt, rel));
                    }
                }
            } else {
                let fmt = format.or_else(|| Format::detect(p)).ok_or_else(|| {
                    Error::Input(format!(
                        "{}: cannot tell the format from the name; pass --format ({FORMAT_NAMES})",
                        p.display()
                    ))
                })?;
                let id = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((p.clone(), fmt, id));
            }
        }
        if files.is_empty() {
            return Err(Error::Input(format!(
                "no indexable files (.jsonl, .json, .md, .html, .txt, .pdf, .csv) under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(SourceReader {
            files,
            options,
            current: None,
            next_file: 0,
        })
    }

    /// Total bytes of the input files, for progress reporting.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(p, _, _)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Only documents: a delete or an inventory update is an error naming its place (for
    /// callers such as evaluation that read plain corpora).
    pub fn documents(self) -> impl Iterator<Item = Result<SourceDoc>> + Send {
        self.map(|item| match item? {
            Item::Doc(d) => Ok(d),
            other => Err(Error::bad(other.place(), "expected a document")),
        })
    }

    /// The files and their formats (JSON ones as detected so far).
    pub fn files(&self) -> impl Iterator<Item = (&Path, Format)> {
        self.files.iter().map(|(p, f, _)| (p.as_path(), *f))
    }

    /// Opens one file as a stream of items.
    fn open_file(&self, path: &Path, format: Format, id: &str) -> Result<Items> {
        let file = path.display().to_string();
        let opts = &self.options;
        match format {
            Format::BeirJsonl => {
                let mut reader = BufReader::with_capacity(
                    1 << 20,
                    std::fs::File::open(path).map_err(Error::io(path))?,
                );
                // A bulk-operation file announces itself with `__typename` on its first record.
                let head = reader.fill_buf().map_err(Error::io(path))?;
                let first = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
                if opts.format.is_none() && contains(first, b"\"__typename\"") {
                    drop(reader);
                    return self.open_file(path, Format::ShopifyBulk, id);
                }
                Ok(Box::new(JsonlRecords {
                    path: path.to_path_buf(),
                    reader,
                    line: 0,
                    fields: opts.fields.clone(),
                }))
            }
            Format::ShopifyBulk => {
                let text = read_utf8(path)?;
                let base = opts.base_url.clone();
                Ok(Box::new(
                    shopify::read_bulk(&text, &file)
                        .into_iter()
                        .map(move |c| shopify_item(c, &file, base.as_deref())),
                ))
            }
            Format::ShopifyCsv => {
                let f = std::fs::File::open(path).map_err(Error::io(path))?;
                let base = opts.base_url.clone();
                let place = file.clone();
                Ok(Box::new(
                    shopify::read_csv(BufReader::with_capacity(1 << 20, f), &file)
                        .map(move |c| shopify_item(c, &place, base.as_deref())),
                ))
            }
            Format::Json | Format::ShopifyJson | Format::ShopifyWebhook => {
                let text = read_utf8(path)?;
                let value: Value = serde_json::from_str(&text).map_err(|e| {
                    Error::bad(
                        format!("{file}:{}", e.line()),
                        format!("malformed JSON: {e}"),
                    )
                })?;
                let format = match format {
                    Format::Json => sniff_json(&value),
                    f => f,
                };
                let base = opts.base_url.clone();
                match format {
                    Format::ShopifyJson => Ok(Box::new(
                        shopify::read_json(value, &file)
                            .into_iter()
                            .map(move |c| shopify_item(c, &file, base.as_deref())),
                    )),
                    Format::ShopifyWebhook => {
                        let change = shopify::webhook(value, opts.topic.as_deref(), &file);
                        Ok(Box::new(std::iter::once(shopify_item(
                            change,
                            &file,
                            base.as_deref(),
                        ))))
                    }
                    _ => Ok(Box::new(
                        json_records(value, &file, &opts.fields).into_iter(),
                    )),
                }
            }
            Format::Markdown | Format::Text | Format::Html | Format::Pdf => Ok(Box::new(
                std::iter::once(read_document_file(path, format, id).map(Item::Doc)),
            )),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a `.json` file holds: Shopify products, a webhook payload, or records.
fn sniff_json(v: &Value) -> Format {
    let looks_like_product = |p: &Value| p.get("variants").is_some() || p.get("handle").is_some();
    match v {
        Value::Object(o) if o.contains_key("products") || o.contains_key("product") => {
            Format::ShopifyJson
        }
        Value::Object(o)
            if (o.contains_key("name") && o.contains_key("response"))
                || o.contains_key("inventory_item_id")
                || looks_like_product(v)
                || (o.len() == 1 && o.contains_key("id")) =>
        {
            Format::ShopifyWebhook
        }
        Value::Array(a) if a.first().is_some_and(looks_like_product) => Format::ShopifyJson,
        _ => Format::Json,
    }
}

/// A Shopify record as an indexing item (a product becomes its document).
pub fn shopify_item(
    change: Result<shopify::Change>,
    file: &str,
    base_url: Option<&str>,
) -> Result<Item> {
    Ok(match change? {
        shopify::Change::Upsert(p) => {
            let place = format!("{file}: product {}", p.doc_id());
            Item::Doc(p.to_source_doc(&place, base_url)?)
        }
        shopify::Change::Delete(id) => Item::Delete {
            id: id.to_string(),
            place: format!("{file}: delete product {id}"),
        },
        shopify::Change::Inventory(update) => Item::Inventory {
            place: format!("{file}: inventory item {}", update.inventory_item_id),
            update,
        },
    })
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        Error::bad(format!("{}:{line}", path.display()), "invalid UTF-8")
    })
}

/// JSON Lines records, read line by line.
struct JsonlRecords {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    line: usize,
    fields: RecordFields,
}

impl Iterator for JsonlRecords {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
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
            return Some(record.map(Item::Doc));
        }
    }
}

/// A JSON file of records: an array, or an object holding one array (`{"records": […]}`).
fn json_records(value: Value, file: &str, fields: &RecordFields) -> Vec<Result<Item>> {
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
        .map(|(i, r)| record(r, &format!("{file}: record {}", i + 1), fields).map(Item::Doc))
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io(&path))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn read_document_file(path: &Path, format: Format, id: &str) -> Result<SourceDoc> {
    let place = path.display().to_string();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
        .unwrap_or_default();
    let (title, text, format) = match format {
        Format::Pdf => {
            let bytes = std::fs::read(path).map_err(Error::io(path))?;
            let text =
                crate::pdf::pdf_to_text(&bytes, &place).map_err(|e| Error::bad(&place, e))?;
            (stem, text, Format::Text)
        }
        Format::Html => {
            let html = crate::html::html_to_text(&read_utf8(path)?);
            (html.title.unwrap_or(stem), html.text, Format::Markdown)
        }
        Format::Markdown => {
            let text = read_utf8(path)?;
            let title = text
                .lines()
                .find_map(|l| l.strip_prefix("# "))
                .map(|t| t.trim().to_string())
                .unwrap_or(stem);
            (title, text, Format::Markdown)
        }
        _ => (stem, read_utf8(path)?, Format::Text),
    };
    if text.trim().is_empty() {
        return Err(Error::bad(place, "the file has no text"));
    }
    Ok(SourceDoc {
        attributes: Default::default(),
        id: id.to_string(),
        title,
        text,
        url: None,
        format,
        place,
        source: None,
        keys: Vec::new(),
    })
}

impl Iterator for SourceReader {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(items) = &mut self.current {
                match items.next() {
                    Some(item) => return Some(item),
                    None => self.current = None,
                }
            }
            let (path, format, id) = self.files.get(self.next_file)?.clone();
            self.next_file += 1;
            match self.open_file(&path, format, &id) {
                Ok(items) => self.current = Some(items),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A BEIR query: `{"_id", "text"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BeirQuery {
    pub id: String,
    pub text: String,
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
        out.push(BeirQuery {
            id,
            text: q.to_string(),
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
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn errors(path: &Path) -> Vec<String> {
        SourceReader::open(&[path.to_path_buf()], None)
            .unwrap()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn beir_lines_and_their_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(
            tmp.path(),
            "c.jsonl",
            b"{\"_id\":\"1\",\"title\":\"T\",\"text\":\"body\"}\n\n{\"title\":\"no id\"}\n{bad json\n{\"_id\":\"3\",\"text\":\"\xff\"}\n",
        );
        let docs: Vec<_> = SourceReader::open(std::slice::from_ref(&p), None)
            .unwrap()
            .documents()
            .collect();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].as_ref().unwrap().id, "1");
        let errs = errors(&p);
        assert!(
            errs[0].ends_with("c.jsonl:3: missing field `_id`"),
            "{errs:?}"
        );
        assert!(errs[1].contains("c.jsonl:4: malformed JSON"), "{errs:?}");
        assert!(errs[2].contains("c.jsonl:5: invalid UTF-8"), "{errs:?}");
    }

    #[test]
    fn a_huge_line_is_refused_with_its_number() {
        let tmp = tempfile::tempdir().unwrap();
        let mut body = b"{\"_id\":\"1\",\"text\":\"ok\"}\n{\"_id\":\"2\",\"text\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
        body.extend(b"\"}\n");
        let p = write(tmp.path(), "big.jsonl", &body);
        let errs = errors(&p);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("big.jsonl:2: line is longer than 8 MiB"),
            "{errs:?}"
        );
    }

    #[test]
    fn directories_are_walked_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        write(tmp.path(), "b.md", b"# Bee\n\nbuzz");
        write(&tmp.path().join("sub"), "a.txt", b"plain text");
        write(tmp.path(), "skip.bin", b"\x00");
        write(tmp.path(), ".hidden.md", b"# no");
        let docs: Vec<SourceDoc> = SourceReader::open(&[tmp.path().to_path_buf()], None)
            .unwrap()
            .documents()
            .map(|d| d.unwrap())
            .collect();
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["b.md", "sub/a.txt"]);
        assert_eq!(docs[0].title, "Bee");
        assert_eq!(docs[1].title, "a");
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
