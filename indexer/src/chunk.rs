//! Structure-aware chunking to a token budget with text-splitter.

use std::path::Path;
use std::sync::Arc;

use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::doc::Format;
use crate::{Error, Result};

/// How chunk size is measured: the embedding model's own tokenizer, or characters / 4 for
/// embedders whose tokenizer is not local.
/// Cloning shares the loaded tokenizer (loading `tokenizer.json` takes tens of milliseconds).
#[derive(Clone)]
pub enum Sizer {
    Tokens(Arc<Tokenizer>, Option<Arc<WordPieceCounter>>),
    ApproxChars,
}

impl Sizer {
    /// Loads `tokenizer.json` from a model directory, without padding or truncation (so sizes
    /// are true sizes).
    pub fn from_model_dir(dir: &Path) -> Result<Sizer> {
        let path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let fast = std::fs::read(&path)
            .ok()
            .and_then(|bytes| WordPieceCounter::from_tokenizer_json(&bytes))
            .map(Arc::new);
        Ok(Sizer::Tokens(Arc::new(tokenizer), fast))
    }

    pub fn count(&self, text: &str) -> usize {
        self.size(text)
    }

    /// Byte ranges of `text`'s tokens (`None` when sized by characters).
    fn spans(&self, text: &str) -> Option<Vec<(usize, usize)>> {
        match self {
            Sizer::Tokens(t, fast) => {
                let slow = |s: &str| t.encode(s, false).ok().map(|e| e.get_offsets().to_vec());
                match fast {
                    Some(f) => f.spans_with(text, slow),
                    None => slow(text),
                }
            }
            Sizer::ApproxChars => None,
        }
    }
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Tokens(t, fast) => fast
                .as_ref()
                .and_then(|f| {
                    f.spans_with(chunk, |s| {
                        t.encode(s, false).ok().map(|e| e.get_offsets().to_vec())
                    })
                })
                .map(|s| s.len())
                .or_else(|| t.encode_fast(chunk, false).ok().map(|e| e.len()))
                // A text the tokenizer cannot encode is sized by characters rather than panicking.
                .unwrap_or_else(|| chunk.chars().count().div_ceil(4)),
            Sizer::ApproxChars => chunk.chars().count().div_ceil(4),
        }
    }
}

/// The uncased BERT word-piece tokenization (MiniLM's), for ASCII text only: lower-casing,
/// splitting at whitespace and ASCII punctuation, control characters dropped, greedy
/// longest-match word pieces. It gives the same tokens as the `tokenizers` crate on ASCII text
/// (a test checks) at a fraction of the cost; other text goes to the real tokenizer.
pub struct WordPieceCounter {
    vocab: std::collections::HashSet<String>,
    prefix: String,
    max_word_chars: usize,
}

impl WordPieceCounter {
    /// Built only for a lower-casing `BertNormalizer` + `BertPreTokenizer` + `WordPiece`.
    fn from_tokenizer_json(bytes: &[u8]) -> Option<WordPieceCounter> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let n = &v["normalizer"];
        let bert = n["type"] == "BertNormalizer"
            && n["lowercase"] == true
            && n["clean_text"] == true
            && v["pre_tokenizer"]["type"] == "BertPreTokenizer"
            && v["model"]["type"] == "WordPiece";
        if !bert {
            return None;
        }
        let model = &v["model"];
        Some(WordPieceCounter {
            vocab: model["vocab"].as_object()?.keys().cloned().collect(),
            prefix: model["continuing_subword_prefix"].as_str()?.to_string(),
            max_word_chars: usize::try_from(model["max_input_chars_per_word"].as_u64()?).ok()?,
        })
    }

    /// Token byte ranges of `text`. The BERT pre-tokenizer splits at whitespace first, so
    /// each whitespace-separated segment tokenizes on its own: ASCII segments here, any other
    /// (accents, curly quotes, control characters, which the normalizer deletes) with `slow`.
    pub fn spans_with(
        &self,
        text: &str,
        slow: impl Fn(&str) -> Option<Vec<(usize, usize)>>,
    ) -> Option<Vec<(usize, usize)>> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(text.len() / 4);
        let mut buf = String::with_capacity(64);
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let segment = &text[start..i];
            let plain = segment
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control());
            if plain {
                self.segment(segment, start, &mut buf, &mut out);
            } else {
                out.extend(
                    slow(segment)?
                        .into_iter()
                        .map(|(a, b)| (a + start, b + start)),
                );
            }
        }
        Some(out)
    }

    /// Token byte ranges of an ASCII text; `None` for any other text.
    pub fn spans(&self, text: &str) -> Option<Vec<(usize, usize)>> {
        self.spans_with(text, |_| None)
    }

    /// One whitespace-free ASCII segment: punctuation marks are tokens, runs of letters and
    /// digits are words.
    fn segment(&self, seg: &str, at: usize, buf: &mut String, out: &mut Vec<(usize, usize)>) {
        let bytes = seg.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_punctuation() {
                out.push((at + i, at + i + 1));
                i += 1;
            } else {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                self.word(&seg[start..i], at + start, buf, out);
            }
        }
    }

    fn word(&self, word: &str, at: usize, buf: &mut String, out: &mut Vec<(usize, usize)>) {
        if word.len() > self.max_word_chars {
            out.push((at, at + word.len()));
            return;
        }
        let lower = word.to_ascii_lowercase();
        let mut start = 0;
        let mark = out.len();
        while start < lower.len() {
            let mut end = lower.len();
            let found = loop {
                buf.clear();
                if start > 0 {
                    buf.push_str(&self.prefix);
                }
                buf.push_str(&lower[start..end]);
                if self.vocab.contains(buf.as_str()) {
                    break true;
                }
                end -= 1;
                if end == start {
                    break false;
                }
            };
            if !found {
                // The whole word is one [UNK].
                out.truncate(mark);
                out.push((at, at + word.len()));
                return;
            }
            out.push((at + start, at + end));
            start = end;
        }
    }
}

/// Sizes slices of one text from a single tokenization of the whole: the splitter asks for
/// the size of many candidate slices, and re-tokenizing each made chunking ~20× slower than
/// parsing. A slice counts every token that overlaps it, so a word split at its edge counts
/// whole: the size is never below what the slice tokenizes to on its own (word-piece
/// pre-tokenization splits at whitespace and punctuation, so tokens inside a slice are the
/// same either way). Slices of other strings fall back to the tokenizer.
struct SpanSizer<'a> {
    sizer: &'a Sizer,
    base: usize,
    len: usize,
    /// Byte ranges of the text's tokens, in order.
    spans: Option<Vec<(usize, usize)>>,
}

impl<'a> SpanSizer<'a> {
    fn new(sizer: &'a Sizer, text: &str) -> Self {
        let spans = sizer.spans(text);
        SpanSizer {
            sizer,
            base: text.as_ptr() as usize,
            len: text.len(),
            spans,
        }
    }
}

impl ChunkSizer for SpanSizer<'_> {
    fn size(&self, chunk: &str) -> usize {
        let at = chunk.as_ptr() as usize;
        match &self.spans {
            Some(spans) if at >= self.base && at + chunk.len() <= self.base + self.len => {
                let (start, end) = (at - self.base, at - self.base + chunk.len());
                let first = spans.partition_point(|t| t.1 <= start);
                let last = spans.partition_point(|t| t.0 < end);
                last.saturating_sub(first)
            }
            _ => self.sizer.size(chunk),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextChunk {
    pub text: String,
    /// Character range in the source text.
    pub char_start: u64,
    pub char_end: u64,
    /// Markdown heading path at the chunk's start (`Returns > Sale items`).
    pub heading: Option<String>,
}

pub struct Chunker {
    sizer: Sizer,
    max_tokens: usize,
    overlap: usize,
}

/// Tokens the model adds around every text ([CLS] and [SEP]).
const SPECIAL_TOKENS: usize = 2;
const MIN_CAPACITY: usize = 32;

impl Chunker {
    pub fn new(sizer: Sizer, max_tokens: usize, overlap: usize) -> Self {
        Chunker {
            sizer,
            max_tokens,
            overlap,
        }
    }

    pub fn sizer(&self) -> &Sizer {
        &self.sizer
    }

    /// Splits `text` so that `title` + each chunk fits the token budget.
    pub fn chunk(&self, title: &str, text: &str, format: Format) -> Result<Vec<TextChunk>> {
        let title_tokens = if title.is_empty() {
            0
        } else {
            self.sizer.count(title) + 1
        };
        let capacity = self
            .max_tokens
            .saturating_sub(title_tokens + SPECIAL_TOKENS)
            .max(MIN_CAPACITY);
        let overlap = self.overlap.min(capacity / 2);
        let sizer = SpanSizer::new(&self.sizer, text);
        let config = ChunkConfig::new(capacity)
            .with_sizer(&sizer)
            .with_overlap(overlap)
            .map_err(|e| Error::Input(format!("chunking settings: {e}")))?;
        let pieces: Vec<(usize, usize, &str)> = match format {
            Format::Markdown => MarkdownSplitter::new(config)
                .chunk_char_indices(text)
                .map(|c| (c.byte_offset, c.char_offset, c.chunk))
                .collect(),
            _ => TextSplitter::new(config)
                .chunk_char_indices(text)
                .map(|c| (c.byte_offset, c.char_offset, c.chunk))
                .collect(),
        };
        let headings = if format == Format::Markdown {
            markdown_headings(text)
        } else {
            Vec::new()
        };
        Ok(pieces
            .into_iter()
            .map(|(byte, chars, chunk)| TextChunk {
                text: chunk.to_string(),
                char_start: chars as u64,
                char_end: (chars + chunk.chars().count()) as u64,
                heading: heading_path(&headings, byte),
            })
            .collect())
    }
}

/// (byte offset, level, text) of ATX headings outside fenced code.
fn markdown_headings(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
        } else if !in_fence {
            let level = trimmed.bytes().take_while(|b| *b == b'#').count();
            if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') {
                let title = trimmed[level..].trim().trim_end_matches('#').trim();
                if !title.is_empty() {
                    out.push((offset, level, title.to_string()));
                }
            }
        }
        offset += line.len();
    }
    out
}

fn heading_path(headings: &[(usize, usize, String)], byte: usize) -> Option<String> {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (at, level, title) in headings {
        if *at > byte {
            break;
        }
        while stack.last().is_some_and(|(l, _)| l >= level) {
            stack.pop();
        }
        stack.push((*level, title));
    }
    (!stack.is_empty()).then(|| {
        stack
            .iter()
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join(" > ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_budget_and_keep_ranges() {
        let chunker = Chunker::new(Sizer::ApproxChars, 64, 8);
        let text = "Sentence number one is here. ".repeat(60);
        let chunks = chunker.chunk("Title", &text, Format::Text).unwrap();
        assert!(chunks.len() > 3);
        let chars: Vec<char> = text.chars().collect();
        for c in &chunks {
            assert!(Sizer::ApproxChars.count(&c.text) <= 64);
            let slice: String = chars[c.char_start as usize..c.char_end as usize]
                .iter()
                .collect();
            assert_eq!(slice, c.text);
        }
    }

    #[test]
    fn markdown_chunks_carry_their_heading_path() {
        let chunker = Chunker::new(Sizer::ApproxChars, 40, 0);
        let text = "# Help\n\nIntro text.\n\n## Returns\n\nYou can return items within thirty days of delivery for a refund.\n\n### Sale items\n\nSale items are final sale and cannot be returned or exchanged at all.\n\n```\n# not a heading\n```\n";
        let chunks = chunker.chunk("", text, Format::Markdown).unwrap();
        let sale = chunks
            .iter()
            .find(|c| c.text.contains("final sale"))
            .unwrap();
        assert_eq!(sale.heading.as_deref(), Some("Help > Returns > Sale items"));
        let intro = chunks.iter().find(|c| c.text.contains("Intro")).unwrap();
        assert_eq!(intro.heading.as_deref(), Some("Help"));
    }
}
