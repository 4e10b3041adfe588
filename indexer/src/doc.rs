//! What sources yield before chunking: a [`SourceDoc`], and the [`Format`] that says how it is
//! read and chunked.

use std::path::Path;

use dartmouth_engine::Attributes;

use crate::{Error, Result};

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

pub(crate) const FORMAT_NAMES: &str = "jsonl (beir), json, markdown, html, text, pdf, shopify-json, \
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
