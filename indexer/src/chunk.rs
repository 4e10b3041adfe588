//! Structure-aware chunking to a token budget with text-splitter.

use std::path::Path;

use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::source::Format;
use crate::{Error, Result};

/// How chunk size is measured: the embedding model's own tokenizer, or characters / 4 for
/// embedders whose tokenizer is not local.
pub enum Sizer {
    Tokens(Box<Tokenizer>),
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
        Ok(Sizer::Tokens(Box::new(tokenizer)))
    }

    pub fn count(&self, text: &str) -> usize {
        self.size(text)
    }
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Sizer::Tokens(t) => t
                .encode_fast(chunk, false)
                .map(|e| e.len())
                // A text the tokenizer cannot encode is sized by characters rather than panicking.
                .unwrap_or_else(|_| chunk.chars().count().div_ceil(4)),
            Sizer::ApproxChars => chunk.chars().count().div_ceil(4),
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
        let config = ChunkConfig::new(capacity)
            .with_sizer(&self.sizer)
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
