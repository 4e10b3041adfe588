//! Query-term highlighting for snippets: the text is analysed with the same English analyzer as
//! the index (lower-casing, stop words, stemming), so "Returns" in a chunk is marked for a query
//! that says "return".

use std::collections::HashSet;

use tantivy::tokenizer::{LowerCaser, SimpleTokenizer, TextAnalyzer, TokenStream};

use crate::schema::english_analyzer;

thread_local! {
    static ANALYZER: std::cell::RefCell<TextAnalyzer> =
        std::cell::RefCell::new(english_analyzer());
    /// The analyzer's first two steps (split, lower-case): cheap enough to run over every hit.
    static WORDS: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(
        TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).build(),
    );
}

/// Marks a query's terms in texts: the query is analysed once, each text on demand.
pub struct Highlighter {
    terms: HashSet<String>,
}

impl Highlighter {
    pub fn new(query: &str) -> Highlighter {
        let mut terms = HashSet::new();
        ANALYZER.with_borrow_mut(|analyzer| {
            let mut stream = analyzer.token_stream(query);
            while let Some(t) = stream.next() {
                terms.insert(t.text.clone());
            }
        });
        Highlighter { terms }
    }

    /// Byte ranges of `text`'s tokens whose analysed form is one of the query's, in order.
    ///
    /// Stemming every word of every hit was the largest cost of a served search after the
    /// search itself, so words are only stemmed when they could match: English Snowball
    /// stemming only rewrites endings, so a word's stem starts with the word's first two
    /// letters, and a word whose first two letters begin no query term cannot match one.
    pub fn term_ranges(&self, text: &str) -> Vec<(usize, usize)> {
        if self.terms.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        WORDS.with_borrow_mut(|words| {
            let mut stream = words.token_stream(text);
            while let Some(t) = stream.next() {
                if !self.may_match(&t.text) {
                    continue;
                }
                let matched = ANALYZER.with_borrow_mut(|analyzer| {
                    let mut one = analyzer.token_stream(&t.text);
                    let mut hit = false;
                    while let Some(stem) = one.next() {
                        hit |= self.terms.contains(&stem.text);
                    }
                    hit
                });
                if matched {
                    out.push((t.offset_from, t.offset_to));
                }
            }
        });
        out
    }

    fn may_match(&self, word: &str) -> bool {
        let head = |w: &str| w.char_indices().nth(2).map_or(w.len(), |(b, _)| b);
        let word_head = &word[..head(word)];
        self.terms
            .iter()
            .any(|t| t.starts_with(word_head) || word.starts_with(&t[..head(t)]))
    }

    /// A snippet of at most about `max_chars` characters around the densest run of query
    /// terms, each wrapped in `pre`/`post` (`…` marks cut ends). The text is returned as data:
    /// markers are the only additions.
    pub fn snippet(&self, text: &str, max_chars: usize, pre: &str, post: &str) -> String {
        let ranges = self.term_ranges(text);
        // Window start: the term that begins the window holding the most terms.
        let mut best = (0usize, 0usize); // (count, start byte)
        for (i, (start, _)) in ranges.iter().enumerate() {
            let window_end = text[*start..]
                .char_indices()
                .nth(max_chars)
                .map_or(text.len(), |(b, _)| start + b);
            let count = ranges[i..]
                .iter()
                .take_while(|(_, e)| *e <= window_end)
                .count();
            if count > best.0 {
                best = (count, *start);
            }
        }
        // Back up a little so the first term has some context, to a char boundary.
        let lead = max_chars / 6;
        let mut from = best.1;
        for (n, (b, _)) in text[..best.1].char_indices().rev().enumerate() {
            if n >= lead {
                break;
            }
            from = b;
        }
        let to = text[from..]
            .char_indices()
            .nth(max_chars)
            .map_or(text.len(), |(b, _)| from + b);
        let mut out = String::with_capacity(to - from + 16);
        if from > 0 {
            out.push('…');
        }
        let mut at = from;
        for &(s, e) in ranges.iter().filter(|(s, e)| *s >= from && *e <= to) {
            out.push_str(&text[at..s]);
            out.push_str(pre);
            out.push_str(&text[s..e]);
            out.push_str(post);
            at = e;
        }
        out.push_str(&text[at..to]);
        if to < text.len() {
            out.push('…');
        }
        out
    }
}

/// Byte ranges of `text`'s tokens whose analysed form is one of `query`'s, in order.
pub fn term_ranges(text: &str, query: &str) -> Vec<(usize, usize)> {
    Highlighter::new(query).term_ranges(text)
}

/// [`Highlighter::snippet`] for one text.
pub fn snippet(text: &str, query: &str, max_chars: usize, pre: &str, post: &str) -> String {
    Highlighter::new(query).snippet(text, max_chars, pre, post)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_stemmed_terms_and_keeps_the_text() {
        let text = "Returns are free. We accept returned items within 30 days; shipping is extra.";
        assert_eq!(
            snippet(text, "return policy", 200, "<em>", "</em>"),
            "<em>Returns</em> are free. We accept <em>returned</em> items within 30 days; shipping is extra."
        );
        assert_eq!(term_ranges(text, "the of"), Vec::new());
        assert_eq!(
            snippet(
                "Our policies on charging batteries",
                "policy charged battery",
                100,
                "[",
                "]"
            ),
            "Our [policies] on [charging] [batteries]"
        );
    }

    /// The two-letter prefilter marks exactly what analysing every word would.
    #[test]
    fn the_prefilter_changes_nothing() {
        let full = |text: &str, query: &str| {
            let mut a = english_analyzer();
            let mut terms = HashSet::new();
            {
                let mut q = a.token_stream(query);
                while let Some(t) = q.next() {
                    terms.insert(t.text.clone());
                }
            }
            let mut out = Vec::new();
            let mut st = a.token_stream(text);
            while let Some(t) = st.next() {
                if terms.contains(&t.text) {
                    out.push((t.offset_from, t.offset_to));
                }
            }
            out
        };
        let text = "Unworn, unwashed items with their tags attached can be returned within 30 days \
            of delivery. Refunds go to the original payment method; gift cards are never \
            refundable. Running, runners and ran: generously generalised generalities, \
            happily happier happiness, Ärger über Öl, yes yielding y x 7 A4.";
        for query in [
            "return refund",
            "run runner",
            "general generous",
            "happy happiness",
            "ärger öl",
            "yield y x",
            "7 a4",
            "gift card payment",
            "the of and",
        ] {
            assert_eq!(term_ranges(text, query), full(text, query), "{query}");
        }
    }

    #[test]
    fn windows_around_the_terms_on_char_boundaries() {
        let text = format!(
            "{} hoodie in blue, size M {}",
            "é".repeat(300),
            "ü".repeat(300)
        );
        let s = snippet(&text, "blue hoodie", 40, "[", "]");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[hoodie] in [blue]"), "{s}");
        // No terms: the start of the text.
        let s = snippet("plain text here", "zebra", 5, "[", "]");
        assert_eq!(s, "plain…");
    }
}
