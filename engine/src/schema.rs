//! The tantivy schema of a shard: one tantivy document per chunk.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};

/// The English analyzer: split on non-alphanumerics, drop tokens over 40 bytes, lowercase,
/// drop English stop words, Snowball stemming (as Lucene's EnglishAnalyzer does, minus possessives).
pub const ANALYZER: &str = "dk_english";

pub(crate) fn english_analyzer() -> TextAnalyzer {
    let stop_words = StopWordFilter::new(Language::English)
        .unwrap_or_else(|| StopWordFilter::remove(Vec::<String>::new()));
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(stop_words)
        .filter(Stemmer::new(Language::English))
        .build()
}

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    /// Shard-local chunk number; also the HNSW data id and the row in the vector file.
    pub ordinal: Field,
    pub doc_id: Field,
    pub chunk_idx: Field,
    /// Title and text, analysed together: the field BM25 searches.
    pub content: Field,
    /// Title and whole text of the document, on its first chunk only: the field document-level
    /// BM25 searches (chunk scores pooled by max favour short tail chunks; see `search/branches.rs`).
    pub document: Field,
    /// The title alone, indexed for optional title boosting, and stored.
    pub title: Field,
    /// The chunk text, stored for hydration.
    pub text: Field,
    pub url: Field,
    pub heading: Field,
    pub char_start: Field,
    pub char_end: Field,
    /// The document's attributes as JSON, for rebuilding filter bitmaps on open and for hits.
    pub attrs: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        ordinal: b.add_u64_field("ordinal", INDEXED | FAST | STORED),
        doc_id: b.add_text_field("doc_id", STRING | STORED | FAST),
        chunk_idx: b.add_u64_field("chunk_idx", STORED | FAST),
        content: b.add_text_field("content", text_options.clone()),
        document: b.add_text_field(
            "document",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(ANALYZER)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
        title: b.add_text_field("title", text_options.set_stored()),
        text: b.add_text_field("text", STORED),
        url: b.add_text_field("url", STORED),
        heading: b.add_text_field("heading", STORED),
        char_start: b.add_u64_field("char_start", STORED),
        char_end: b.add_u64_field("char_end", STORED),
        attrs: b.add_bytes_field("attrs", STORED | FAST),
    };
    (b.build(), fields)
}

pub(crate) fn fields_of(schema: &Schema) -> tantivy::Result<Fields> {
    let f = |name: &str| schema.get_field(name);
    Ok(Fields {
        ordinal: f("ordinal")?,
        doc_id: f("doc_id")?,
        chunk_idx: f("chunk_idx")?,
        content: f("content")?,
        document: f("document")?,
        title: f("title")?,
        text: f("text")?,
        url: f("url")?,
        heading: f("heading")?,
        char_start: f("char_start")?,
        char_end: f("char_end")?,
        attrs: f("attrs")?,
    })
}
