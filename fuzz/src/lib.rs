//! Fuzz targets: every parser of outside input and every request decoder, each a function of
//! arbitrary bytes that must return without panicking (and, under the drivers, without an
//! unbounded allocation). Two drivers run them: `tests/fuzz.rs`, a time-bounded mutation
//! fuzzer on stable Rust that CI runs, and the cargo-fuzz harnesses in `fuzz/cargo-fuzz`
//! (coverage-guided libFuzzer; `scripts/fuzz.sh`).

use std::cell::RefCell;
use std::io::Write as _;
use std::path::PathBuf;

use dartmouth_indexer::{Chunker, Format, Item, Sizer, SourceReader};
use dartmouth_server::proto as pb;
use prost::Message as _;

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("filter", filter),
    ("shopify_json", shopify_json),
    ("shopify_webhook", shopify_webhook),
    ("shopify_csv", shopify_csv),
    ("shopify_bulk", shopify_bulk),
    ("catalog_upload", catalog_upload),
    ("html", html),
    ("pdf", pdf),
    ("json_records", json_records),
    ("jsonl_records", jsonl_records),
    ("markdown", markdown),
    ("http_requests", http_requests),
    ("grpc_requests", grpc_requests),
];

pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The filter language, then its evaluation-free uses: the display of what was parsed.
pub fn filter(data: &[u8]) {
    if let Some(t) = text(data)
        && let Ok(f) = dartmouth_engine::Filter::parse(t)
    {
        let _ = format!("{f:?}");
    }
}

/// Admin REST / storefront products JSON, each product rendered as the document it becomes.
pub fn shopify_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice(data) else {
        return;
    };
    render(dartmouth_indexer::shopify::read_json(value, "fuzz"));
}

pub fn shopify_webhook(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for topic in [
        None,
        Some("products/update"),
        Some("inventory_levels/update"),
    ] {
        render(vec![dartmouth_indexer::shopify::webhook(
            value.clone(),
            topic,
            "fuzz",
        )]);
    }
}

pub fn shopify_csv(data: &[u8]) {
    render(dartmouth_indexer::shopify::read_csv(data, "fuzz").collect());
}

pub fn shopify_bulk(data: &[u8]) {
    if let Some(t) = text(data) {
        render(dartmouth_indexer::shopify::read_bulk(t, "fuzz"));
    }
}

/// The server's catalog upload: format sniffed from the bytes, then read.
pub fn catalog_upload(data: &[u8]) {
    use dartmouth_server::shopify::{CatalogFormat, read_catalog, utf8_body};
    let Ok(t) = utf8_body(data) else {
        return;
    };
    let format = CatalogFormat::sniff(t, None);
    if let Ok(items) = read_catalog(t, format, Some("https://shop.test"), false) {
        for item in items.into_iter().flatten() {
            if let Item::Doc(d) = item {
                validate(&d);
            }
        }
    }
}

/// A source document through the one validator (its verdict is not the point: no panic is).
fn validate(d: &dartmouth_indexer::SourceDoc) {
    let _ = dartmouth_engine::validate::check_fields(
        &d.id,
        &d.title,
        d.url.as_deref(),
        &d.text,
        &d.attributes,
    );
}

/// Products to documents, as the indexer makes them, and through the validator.
fn render(changes: Vec<dartmouth_indexer::Result<dartmouth_indexer::shopify::Change>>) {
    for c in changes.into_iter().flatten() {
        if let dartmouth_indexer::shopify::Change::Upsert(p) = c
            && let Ok(doc) = p.to_source_doc("fuzz", Some("https://shop.test"))
        {
            validate(&doc);
        }
    }
}

pub fn html(data: &[u8]) {
    if let Some(t) = text(data) {
        let page = dartmouth_indexer::html::html_to_text(t);
        chunk(
            page.title.as_deref().unwrap_or(""),
            &page.text,
            Format::Markdown,
        );
        let _ = dartmouth_indexer::html::html_fragment_to_text(t);
    }
}

pub fn pdf(data: &[u8]) {
    if let Ok(t) = dartmouth_indexer::pdf::pdf_to_text(data, "fuzz") {
        chunk("", &t, Format::Text);
    }
}

pub fn json_records(data: &[u8]) {
    read_file("fuzz.json", data, Format::Json);
}

pub fn jsonl_records(data: &[u8]) {
    read_file("fuzz.jsonl", data, Format::BeirJsonl);
}

pub fn markdown(data: &[u8]) {
    read_file("fuzz.md", data, Format::Markdown);
}

thread_local! {
    /// One scratch directory per thread for the readers that take files.
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// Writes `data` to a file and reads it as `format` the way `dartmouth index` does: every
/// document read, chunked and checked.
fn read_file(name: &str, data: &[u8], format: Format) {
    let path: PathBuf = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| tempfile::tempdir().expect("scratch directory"));
        dir.path().join(name)
    });
    let Ok(mut file) = std::fs::File::create(&path) else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    let Ok(reader) = SourceReader::open(&[path], Some(format)) else {
        return;
    };
    for doc in reader.documents().flatten() {
        chunk(&doc.title, &doc.text, doc.format);
        validate(&doc);
    }
}

thread_local! {
    /// The model's own tokenizer when the model is set up (`DARTMOUTH_MODEL_DIR`), as
    /// indexing sizes chunks; characters otherwise.
    static CHUNKER: Chunker = Chunker::new(
        std::env::var_os("DARTMOUTH_MODEL_DIR")
            .and_then(|d| Sizer::from_model_dir(std::path::Path::new(&d)).ok())
            .unwrap_or(Sizer::ApproxChars),
        64,
        8,
    );
}

/// Chunks `text` as indexing does; every chunk must be exactly the text of its char range
/// (what citations rely on).
fn chunk(title: &str, text: &str, format: Format) {
    CHUNKER.with(|c| {
        if let Ok(chunks) = c.chunk(title, text, format) {
            let starts: Vec<usize> = text
                .char_indices()
                .map(|(b, _)| b)
                .chain([text.len()])
                .collect();
            for ch in chunks {
                let (s, e) = (ch.char_start as usize, ch.char_end as usize);
                assert!(
                    s <= e && e < starts.len(),
                    "chunk {s}..{e} of {} characters",
                    starts.len() - 1
                );
                assert_eq!(&text[starts[s]..starts[e]], ch.text, "chunk {s}..{e}");
            }
        }
    });
}

/// Every JSON body the HTTP API takes, decoded as the server decodes it; what decodes is
/// checked further where the check is pure (a filter is parsed, documents validated).
pub fn http_requests(data: &[u8]) {
    use dartmouth_server::http::decode_json;
    use dartmouth_server::service::{
        ContextInput, DelegateInput, DomainInput, GrantInput, IngestInput, KeyInput,
        PrincipalInput, SearchInput,
    };
    if let Ok(s) = decode_json::<SearchInput>(data)
        && let Some(f) = &s.filter
    {
        filter(f.as_bytes());
    }
    let _ = decode_json::<ContextInput>(data);
    if let Ok(i) = decode_json::<IngestInput>(data) {
        for d in &i.documents {
            let mut attributes = dartmouth_engine::Attributes::new();
            for (name, value) in &d.attributes {
                if let Ok(v) = dartmouth_engine::AttrValue::from_json(name, value) {
                    attributes.insert(name.clone(), vec![v]);
                }
            }
            let _ = dartmouth_engine::validate::check_fields(
                &d.id,
                &d.title,
                d.url.as_deref(),
                &d.text,
                &attributes,
            );
        }
    }
    let _ = decode_json::<DomainInput>(data);
    let _ = decode_json::<PrincipalInput>(data);
    let _ = decode_json::<GrantInput>(data);
    let _ = decode_json::<KeyInput>(data);
    let _ = decode_json::<DelegateInput>(data);
}

/// Every gRPC request message, decoded from the wire as tonic's codec does, then turned into
/// the service's input.
pub fn grpc_requests(data: &[u8]) {
    use dartmouth_server::grpc::{context_input, ingest_document, search_input};
    if let Ok(r) = pb::SearchRequest::decode(data)
        && let Ok(s) = search_input(r)
        && let Some(f) = &s.filter
    {
        filter(f.as_bytes());
    }
    if let Ok(r) = pb::ContextRequest::decode(data) {
        let _ = context_input(r);
    }
    if let Ok(r) = pb::IndexDocumentsRequest::decode(data) {
        for (i, d) in r.documents.into_iter().enumerate() {
            let _ = ingest_document(i, d);
        }
    }
    if let Ok(r) = pb::UploadCatalogRequest::decode(data) {
        catalog_upload(&r.body);
    }
    let _ = pb::GetDocumentRequest::decode(data);
    let _ = pb::GetChunkRequest::decode(data);
    let _ = pb::CreateKeyRequest::decode(data);
    let _ = pb::DelegateRequest::decode(data);
    let _ = pb::GrantInfo::decode(data);
}
