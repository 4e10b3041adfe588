//! Query-term highlighting for snippets: the text is analysed with the same English analyzer as
//! the index (lower-casing, stop words, stemming), so "Returns" in a chunk is marked for a query
//! that says "return".

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

use crate::schema::english_analyzer;

thread_local! {
    static ANALYZER: RefCell<TextAnalyzer> = RefCell::new(english_analyzer());
}

/// A word's or term's first two characters, lower-cased (the second absent for one-letter ones).
type Head = (char, Option<char>);

fn head(word: &str) -> Option<Head> {
    let mut chars = word.chars().flat_map(char::to_lowercase);
    Some((chars.next()?, chars.next()))
}

/// Marks a query's terms in texts: the query is analysed once, each text on demand.
pub struct Highlighter {
    terms: HashSet<String>,
    heads: Vec<Head>,
    /// Candidate words already analysed, and whether they matched (hits repeat their words).
    seen: RefCell<HashMap<Box<str>, bool>>,
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
        let mut heads: Vec<Head> = terms.iter().filter_map(|t| head(t)).collect();
        heads.sort_unstable();
        heads.dedup();
        Highlighter {
            terms,
            heads,
            seen: RefCell::new(HashMap::new()),
        }
    }

    /// Byte ranges of `text`'s tokens whose analysed form is one of the query's, in order.
    ///
    /// Stemming every word of every hit was the largest cost of a served search after the
    /// search itself, so words are only analysed when they could match: English Snowball
    /// stemming only rewrites endings, so a word's stem starts with the word's first two
    /// letters (one exception: `dying` → `die`, see `may_match`), and a word whose first two
    /// letters begin no query term cannot match one. Words
    /// are split as the index's tokenizer splits them (runs of alphanumeric characters) without
    /// allocating; only candidates are lower-cased and stemmed.
    pub fn term_ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        if self.terms.is_empty() {
            return out;
        }
        let mut word_start = None;
        for (at, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            match (c.is_alphanumeric(), word_start) {
                (true, None) => word_start = Some(at),
                (false, Some(from)) => {
                    word_start = None;
                    let word = &text[from..at];
                    if self.may_match(word) && self.matches(word) {
                        out.push((from, at));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Whether a word's first two letters agree with some query term's (the shorter of the two
    /// heads being a prefix of the other).
    fn may_match(&self, word: &str) -> bool {
        let Some((w0, w1)) = head(word) else {
            return false;
        };
        // Snowball turns a consonant + "ying" into consonant + "ie" ("dying" → "die"): a second
        // letter `y` may become `i`.
        self.heads.iter().any(|&(t0, t1)| {
            t0 == w0 && (w1.is_none() || t1.is_none() || w1 == t1 || w1 == Some('y'))
        })
    }

    /// The word analysed as the index analyses it is one of the query's terms.
    fn matches(&self, word: &str) -> bool {
        if let Some(&hit) = self.seen.borrow().get(word) {
            return hit;
        }
        let hit = ANALYZER.with_borrow_mut(|analyzer| {
            let mut one = analyzer.token_stream(word);
            let mut hit = false;
            while let Some(stem) = one.next() {
                hit |= self.terms.contains(&stem.text);
            }
            hit
        });
        self.seen.borrow_mut().insert(word.into(), hit);
        hit
    }

    /// The start of the window of `max_chars` characters that holds the most whole term ranges
    /// (the first such window; 0 without terms).
    fn window_start(text: &str, ranges: &[(usize, usize)], max_chars: usize) -> usize {
        // The window start: the term that begins the window holding the most terms. Starts and
        // window ends only move forward, so one pass over the text finds it.
        let mut best = (0usize, 0usize); // (count, start byte)
        let (mut window_end, mut window_chars, mut last) = (0usize, 0usize, 0usize);
        let mut inside = 0usize; // ranges[i..inside] end within the window
        for (i, &(start, _)) in ranges.iter().enumerate() {
            // Chars between the previous start and this one leave the window.
            if i > 0 {
                window_chars = window_chars.saturating_sub(text[last..start].chars().count());
            }
            last = start;
            if window_end < start {
                (window_end, window_chars) = (start, 0);
            }
            let mut rest = text[window_end..].chars();
            while window_chars < max_chars {
                match rest.next() {
                    Some(c) => {
                        window_end += c.len_utf8();
                        window_chars += 1;
                    }
                    None => break,
                }
            }
            inside = inside.max(i);
            while inside < ranges.len() && ranges[inside].1 <= window_end {
                inside += 1;
            }
            let count = inside - i;
            if count > best.0 {
                best = (count, start);
            }
        }
        best.1
    }

    /// A snippet of at most about `max_chars` characters around the densest run of query
    /// terms, each wrapped in `pre`/`post` (`…` marks cut ends). The text is returned as data:
    /// markers are the only additions.
    pub fn snippet(&self, text: &str, max_chars: usize, pre: &str, post: &str) -> String {
        self.snippet_with(text, max_chars, pre, post, |out, s| out.push_str(s))
    }

    /// [`Highlighter::snippet`] safe to render as HTML: the text is escaped (`&`, `<`, `>`,
    /// `"`, `'`) and the terms are wrapped in `<em>…</em>`, the only markup it holds.
    pub fn snippet_html(&self, text: &str, max_chars: usize) -> String {
        self.snippet_with(text, max_chars, "<em>", "</em>", push_escaped)
    }

    fn snippet_with(
        &self,
        text: &str,
        max_chars: usize,
        pre: &str,
        post: &str,
        push: impl Fn(&mut String, &str),
    ) -> String {
        let ranges = self.term_ranges(text);
        let start = Self::window_start(text, &ranges, max_chars);
        // Back up a little so the first term has some context, to a char boundary.
        let lead = max_chars / 6;
        let mut from = start;
        for (n, (b, _)) in text[..start].char_indices().rev().enumerate() {
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
            push(&mut out, &text[at..s]);
            out.push_str(pre);
            push(&mut out, &text[s..e]);
            out.push_str(post);
            at = e;
        }
        push(&mut out, &text[at..to]);
        if to < text.len() {
            out.push('…');
        }
        out
    }
}

/// Appends `s` with the characters HTML gives a meaning escaped.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
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
    fn html_snippets_escape_the_text_around_the_marks() {
        let text = "<script>alert('x')</script> & \"refund\" <b>policy</b>";
        let out = Highlighter::new("refund policy").snippet_html(text, 240);
        assert_eq!(
            out,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;<em>refund</em>&quot; \
             &lt;b&gt;<em>policy</em>&lt;/b&gt;"
        );
        // The only tags left are the marks.
        let stripped = out.replace("<em>", "").replace("</em>", "");
        assert!(!stripped.contains('<') && !stripped.contains('>'));
    }

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
            happily happier happiness, Ärger über Öl, yes yielding y x 7 A4, dying lying tying \
            vying dies lied.";
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
            "die",
            "lie tie",
            "dying vie",
        ] {
            assert_eq!(term_ranges(text, query), full(text, query), "{query}");
        }
    }

    /// The one-pass window search picks the window the quadratic one did.
    #[test]
    fn one_pass_window_equals_the_naive_search() {
        let naive = |h: &Highlighter, text: &str, max_chars: usize| {
            let ranges = h.term_ranges(text);
            let mut best = (0usize, 0usize);
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
            best.1
        };
        let words = [
            "blue", "hoodie", "é", "größe", "x", "blues", "red", "ü", "hoodies", "—",
        ];
        let h = Highlighter::new("blue hoodie größe");
        let mut seed = 7u64;
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..(seed % 60) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push_str(words[(seed >> 33) as usize % words.len()]);
                text.push(if seed & 1 == 0 { ' ' } else { ',' });
            }
            let ranges = h.term_ranges(&text);
            for max_chars in [3, 5, 12, 40, 400] {
                assert_eq!(
                    Highlighter::window_start(&text, &ranges, max_chars),
                    naive(&h, &text, max_chars),
                    "{text:?} {max_chars}"
                );
            }
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
