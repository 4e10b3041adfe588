//! Content sources, each behind one seam: JSON/JSONL records (BEIR `corpus.jsonl` among them),
//! Markdown, HTML, plain text and PDF files, and Shopify catalogs (REST and storefront JSON,
//! CSV exports, GraphQL bulk JSONL, webhook payloads). Files or directories; the format is
//! detected from the name and, for JSON, the content.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::doc::{FORMAT_NAMES, Format, SourceDoc};
use crate::records::{JsonlRecords, RecordFields, json_records};
use crate::shopify::{self, InventoryUpdate};
use crate::{Error, Result};

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
    files: Vec<(Input, Format, String)>,
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
                        files.push((Input::File(f), fmt, rel));
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
                files.push((Input::File(p.clone()), fmt, id));
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

    /// Inputs held in memory (files uploaded over the API), each named as its file would be:
    /// the name is the document id of a Markdown, HTML, text or PDF file, tells the format
    /// when `format` does not, and names the input in errors (`faq.md`, `corpus.jsonl:3`).
    pub fn from_memory(
        inputs: Vec<(String, Option<Format>, Vec<u8>)>,
        options: SourceOptions,
    ) -> Result<SourceReader> {
        let mut files = Vec::with_capacity(inputs.len());
        for (name, format, bytes) in inputs {
            let fmt = format
                .or(options.format)
                .or_else(|| Format::detect(Path::new(&name)))
                .ok_or_else(|| {
                    Error::Input(format!(
                        "{name}: cannot tell the format from the name; give a format ({FORMAT_NAMES})"
                    ))
                })?;
            files.push((
                Input::Memory {
                    name: name.clone(),
                    bytes: std::sync::Arc::new(bytes),
                },
                fmt,
                name,
            ));
        }
        if files.is_empty() {
            return Err(Error::Input("no files were given".into()));
        }
        Ok(SourceReader {
            files,
            options,
            current: None,
            next_file: 0,
        })
    }

    /// Total bytes of the inputs, for progress reporting.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|(input, _, _)| input.len()).sum()
    }

    /// Only documents: a delete or an inventory update is an error naming its place (for
    /// callers such as evaluation that read plain corpora).
    pub fn documents(self) -> impl Iterator<Item = Result<SourceDoc>> + Send {
        self.map(|item| match item? {
            Item::Doc(d) => Ok(d),
            other => Err(Error::bad(other.place(), "expected a document")),
        })
    }

    /// The files and their formats (JSON ones as detected so far; uploads by their names).
    pub fn files(&self) -> impl Iterator<Item = (&Path, Format)> {
        self.files.iter().map(|(input, f, _)| (input.path(), *f))
    }

    /// Opens one input as a stream of items.
    fn open_file(&self, input: &Input, format: Format, id: &str) -> Result<Items> {
        let path = input.path();
        let file = path.display().to_string();
        let opts = &self.options;
        match format {
            Format::BeirJsonl => {
                let mut reader = input.reader()?;
                // A bulk-operation file announces itself with `__typename` on its first record.
                let head = reader.fill_buf().map_err(Error::io(path))?;
                let first = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
                if opts.format.is_none() && contains(first, b"\"__typename\"") {
                    drop(reader);
                    return self.open_file(input, Format::ShopifyBulk, id);
                }
                Ok(Box::new(
                    JsonlRecords::new(path, reader, opts.fields.clone()).map(|r| r.map(Item::Doc)),
                ))
            }
            Format::ShopifyBulk => {
                let text = read_utf8(input)?;
                let base = opts.base_url.clone();
                Ok(Box::new(
                    shopify::read_bulk(&text, &file)
                        .into_iter()
                        .map(move |c| shopify_item(c, &file, base.as_deref())),
                ))
            }
            Format::ShopifyCsv => {
                let reader = input.reader()?;
                let base = opts.base_url.clone();
                let place = file.clone();
                Ok(Box::new(
                    shopify::read_csv(reader, &file)
                        .map(move |c| shopify_item(c, &place, base.as_deref())),
                ))
            }
            Format::Json | Format::ShopifyJson | Format::ShopifyWebhook => {
                let text = read_utf8(input)?;
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
                        json_records(value, &file, &opts.fields)
                            .into_iter()
                            .map(|r| r.map(Item::Doc)),
                    )),
                }
            }
            Format::Markdown | Format::Text | Format::Html | Format::Pdf => Ok(Box::new(
                std::iter::once(read_document_file(input, format, id).map(Item::Doc)),
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

/// What a source reads: a file, or bytes uploaded under a file's name.
#[derive(Clone)]
enum Input {
    File(PathBuf),
    Memory {
        name: String,
        bytes: std::sync::Arc<Vec<u8>>,
    },
}

impl Input {
    /// The path it is named by (an upload's name).
    fn path(&self) -> &Path {
        match self {
            Input::File(p) => p,
            Input::Memory { name, .. } => Path::new(name),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Input::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            Input::Memory { bytes, .. } => bytes.len() as u64,
        }
    }

    fn reader(&self) -> Result<Box<dyn BufRead + Send>> {
        Ok(match self {
            Input::File(p) => Box::new(BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(p).map_err(Error::io(p))?,
            )),
            Input::Memory { bytes, .. } => Box::new(std::io::Cursor::new(SharedBytes(
                std::sync::Arc::clone(bytes),
            ))),
        })
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Input::File(p) => std::fs::read(p).map_err(Error::io(p)),
            Input::Memory { bytes, .. } => Ok(bytes.as_ref().clone()),
        }
    }
}

/// Uploaded bytes shared between the reader and the input list.
struct SharedBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn read_utf8(input: &Input) -> Result<String> {
    let bytes = input.bytes()?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        Error::bad(
            format!("{}:{line}", input.path().display()),
            "invalid UTF-8",
        )
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

fn read_document_file(input: &Input, format: Format, id: &str) -> Result<SourceDoc> {
    let path = input.path();
    let place = path.display().to_string();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
        .unwrap_or_default();
    let (title, text, format) = match format {
        Format::Pdf => {
            let bytes = input.bytes()?;
            let text =
                crate::pdf::pdf_to_text(&bytes, &place).map_err(|e| Error::bad(&place, e))?;
            (stem, text, Format::Text)
        }
        Format::Html => {
            let html = crate::html::html_to_text(&read_utf8(input)?);
            (html.title.unwrap_or(stem), html.text, Format::Markdown)
        }
        Format::Markdown => {
            let text = read_utf8(input)?;
            let title = text
                .lines()
                .find_map(|l| l.strip_prefix("# "))
                .map(|t| t.trim().to_string())
                .unwrap_or(stem);
            (title, text, Format::Markdown)
        }
        _ => (stem, read_utf8(input)?, Format::Text),
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
            let (input, format, id) = self.files.get(self.next_file)?.clone();
            self.next_file += 1;
            match self.open_file(&input, format, &id) {
                Ok(items) => self.current = Some(items),
                Err(e) => return Some(Err(e)),
            }
        }
    }
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
    fn uploads_read_like_files_of_their_names() {
        let reader = SourceReader::from_memory(
            vec![
                ("faq.md".into(), None, b"# Questions\n\nAsk away.".to_vec()),
                (
                    "records.jsonl".into(),
                    None,
                    b"{\"_id\":\"r1\",\"text\":\"one\"}\n{\"text\":\"no id\"}\n".to_vec(),
                ),
                ("notes".into(), Some(Format::Text), b"plain".to_vec()),
            ],
            SourceOptions::default(),
        )
        .unwrap();
        let items: Vec<_> = reader.documents().collect();
        assert_eq!(items.len(), 4);
        let first = items[0].as_ref().unwrap();
        assert_eq!(
            (first.id.as_str(), first.title.as_str()),
            ("faq.md", "Questions")
        );
        assert_eq!(items[1].as_ref().unwrap().id, "r1");
        let err = items[2].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("records.jsonl:2: missing field"), "{err}");
        assert_eq!(items[3].as_ref().unwrap().id, "notes");
        let Err(e) = SourceReader::from_memory(
            vec![("blob.bin".into(), None, vec![0])],
            SourceOptions::default(),
        ) else {
            panic!("a name without a known extension needs a format")
        };
        assert!(
            e.to_string()
                .starts_with("blob.bin: cannot tell the format"),
            "{e}"
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
}
