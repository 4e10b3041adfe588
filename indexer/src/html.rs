//! HTML to Markdown-like text, on html5ever's tokenizer (no DOM).
//!
//! Headings become `#` lines so the Markdown chunker splits by them; list items become `- item`
//! lines, table rows `a | b` lines, and paragraphs are separated by a blank line. Only visible
//! text is kept; markup that a browser would repair is repaired the same simple way here.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlText {
    /// `<title>`, else the first `<h1>`.
    pub title: Option<String>,
    pub text: String,
}

/// Converts a whole page.
pub fn html_to_text(html: &str) -> HtmlText {
    let render = render(html, true);
    HtmlText {
        title: render.title.or(render.first_h1),
        text: render.out.trim_end().to_string(),
    }
}

/// Converts a fragment (a product's `body_html`): no title.
pub fn html_fragment_to_text(fragment: &str) -> String {
    render(fragment, false).out.trim_end().to_string()
}

/// Bytes per tokenizer buffer (a tendril holds at most 4 GiB).
const FEED_BYTES: usize = 1 << 20;

fn render(html: &str, keep_title: bool) -> Render {
    let input = BufferQueue::default();
    let mut rest = html;
    while !rest.is_empty() {
        let mut end = rest.len().min(FEED_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        input.push_back(StrTendril::from_slice(&rest[..end]));
        rest = &rest[end..];
    }
    let sink = Sink(RefCell::new(Render {
        keep_title,
        ..Render::default()
    }));
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    // The sink never asks for a script to run, so one feed consumes everything.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.take()
}

struct Sink(RefCell<Render>);

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut render = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => return render.start(&tag),
            Token::TagToken(tag) => render.end(&tag.name),
            Token::CharacterTokens(text) => render.text(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// What the characters of a raw-text element (`<script>`, `<title>`…) are for.
#[derive(Default, Clone, Copy, PartialEq)]
enum Raw {
    #[default]
    None,
    Hidden,
    Title,
}

#[derive(Default)]
struct Render {
    keep_title: bool,
    out: String,
    title: Option<String>,
    title_buf: Option<String>,
    first_h1: Option<String>,
    h1_buf: Option<String>,
    raw: Raw,
    /// An element whose whole subtree is hidden (`svg`, `template`), and its nesting depth.
    skip: Option<(&'static str, u32)>,
    /// Line breaks owed before the next word (2 = a blank line).
    breaks: u8,
    space: bool,
    cell_sep: bool,
    heading: Option<u8>,
    pre: u32,
    /// Drop a newline right after `<pre>`, as browsers do.
    pre_start: bool,
    lists: u32,
    item_marker: bool,
    tables: u32,
    in_cell: bool,
    row_cells: u32,
}

impl Render {
    fn start(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name = &*tag.name;
        if let Some((skipped, depth)) = &mut self.skip {
            if name == *skipped {
                *depth += u32::from(!tag.self_closing);
                return TokenSinkResult::Continue;
            }
            if *skipped == "svg" {
                if !breaks_out_of_svg(name) {
                    return TokenSinkResult::Continue;
                }
                self.skip = None;
            } else {
                // Template contents are HTML: raw-text elements must still end where they end.
                return raw_kind(name).map_or(TokenSinkResult::Continue, TokenSinkResult::RawData);
            }
        }
        match name {
            "script" | "style" | "noscript" | "iframe" | "noembed" | "noframes" => {
                self.raw = Raw::Hidden;
            }
            "title" => {
                self.raw = Raw::Title;
                if self.keep_title && self.title.is_none() && self.title_buf.is_none() {
                    self.title_buf = Some(String::new());
                }
            }
            "svg" | "template" if !tag.self_closing => {
                self.skip = Some((if name == "svg" { "svg" } else { "template" }, 1));
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.end_heading();
                self.block(2);
                let level = name.as_bytes()[1] - b'0';
                self.heading = Some(level);
                if level == 1 && self.first_h1.is_none() {
                    self.h1_buf = Some(String::new());
                }
            }
            "br" => {
                if self.inline_only() {
                    self.space = true;
                } else {
                    self.breaks = (self.breaks + 1).min(2);
                }
            }
            "pre" | "listing" | "xmp" | "plaintext" => {
                self.block(2);
                self.pre += 1;
                self.pre_start = true;
            }
            "ul" | "ol" | "menu" | "dir" => {
                self.block(if self.lists > 0 { 1 } else { 2 });
                self.lists += 1;
                self.item_marker = false;
            }
            "li" => {
                self.block(1);
                self.item_marker = true;
            }
            "table" => {
                self.in_cell = false;
                self.block(2);
                self.tables += 1;
                self.row_cells = 0;
            }
            "tr" => {
                self.in_cell = false;
                self.block(1);
                self.row_cells = 0;
            }
            "td" | "th" => {
                self.cell_sep = self.row_cells > 0;
                self.row_cells += 1;
                self.in_cell = true;
            }
            _ => self.block(block_breaks(name)),
        }
        if name == "plaintext" {
            return TokenSinkResult::Plaintext;
        }
        raw_kind(name).map_or(TokenSinkResult::Continue, TokenSinkResult::RawData)
    }

    fn end(&mut self, name: &str) {
        if let Some((skipped, depth)) = &mut self.skip {
            if name == *skipped {
                *depth -= 1;
                if *depth == 0 {
                    self.skip = None;
                }
            }
            return;
        }
        if self.raw != Raw::None {
            // In a raw-text state the tokenizer only ends on the element's own end tag.
            if let Some(buf) = self.title_buf.take() {
                let title = buf.split_whitespace().collect::<Vec<_>>().join(" ");
                self.title = Some(title).filter(|t| !t.is_empty());
            }
            self.raw = Raw::None;
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.end_heading(),
            "pre" | "listing" | "xmp" => {
                self.pre = self.pre.saturating_sub(1);
                self.block(2);
            }
            "ul" | "ol" | "menu" | "dir" => {
                self.lists = self.lists.saturating_sub(1);
                self.item_marker = false;
                self.block(if self.lists > 0 { 1 } else { 2 });
            }
            "li" => {
                self.item_marker = false;
                self.block(1);
            }
            "table" => {
                self.tables = self.tables.saturating_sub(1);
                self.in_cell = false;
                self.block(2);
            }
            "tr" => {
                self.in_cell = false;
                self.block(1);
            }
            "td" | "th" => self.in_cell = false,
            _ => self.block(block_breaks(name)),
        }
    }

    fn end_heading(&mut self) {
        if self.heading.take().is_some() {
            if let Some(h1) = self.h1_buf.take().filter(|h| !h.is_empty()) {
                self.first_h1 = Some(h1);
            }
            self.block(2);
        }
    }

    /// Inside a heading or a table cell, a line break would break its line: it is a space.
    fn inline_only(&self) -> bool {
        self.heading.is_some() || (self.in_cell && self.tables > 0)
    }

    fn block(&mut self, breaks: u8) {
        if breaks == 0 {
            return;
        }
        if self.inline_only() {
            self.space = true;
        } else {
            self.breaks = self.breaks.max(breaks);
        }
    }

    fn text(&mut self, text: &str) {
        match self.raw {
            Raw::Hidden => return,
            Raw::Title => {
                if let Some(buf) = &mut self.title_buf {
                    buf.push_str(text);
                }
                return;
            }
            Raw::None => {}
        }
        if self.skip.is_some() {
            return;
        }
        if self.pre > 0 {
            self.pre_text(text);
            return;
        }
        for (i, word) in text.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.space = true;
            }
            if !word.is_empty() {
                self.word(word);
            }
        }
    }

    fn pre_text(&mut self, mut text: &str) {
        if std::mem::take(&mut self.pre_start) {
            text = text.strip_prefix('\n').unwrap_or(text);
        }
        if text.is_empty() {
            return;
        }
        self.flush_breaks();
        if self.space && !self.at_line_start() {
            self.out.push(' ');
        }
        self.space = false;
        self.cell_sep = false;
        self.out
            .extend(text.chars().filter(|&c| c != '\r').map(|c| match c {
                '\u{a0}' => ' ',
                c => c,
            }));
    }

    fn word(&mut self, word: &str) {
        self.flush_breaks();
        if self.at_line_start() {
            self.line_prefix();
        } else if self.cell_sep {
            self.out.push_str(" | ");
        } else if self.space {
            self.out.push(' ');
        }
        if let Some(h1) = &mut self.h1_buf {
            if !h1.is_empty() && (self.space || self.cell_sep) {
                h1.push(' ');
            }
            h1.push_str(word);
        }
        self.space = false;
        self.cell_sep = false;
        self.out.push_str(word);
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn flush_breaks(&mut self) {
        let breaks = std::mem::take(&mut self.breaks) as usize;
        if breaks == 0 || self.out.is_empty() {
            return;
        }
        self.out.truncate(self.out.trim_end_matches(' ').len());
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..breaks {
            self.out.push('\n');
        }
    }

    fn line_prefix(&mut self) {
        if let Some(level) = self.heading {
            for _ in 0..level {
                self.out.push('#');
            }
            self.out.push(' ');
        } else if self.lists > 0 {
            for _ in 1..self.lists {
                self.out.push_str("  ");
            }
            self.out.push_str(if std::mem::take(&mut self.item_marker) {
                "- "
            } else {
                "  "
            });
        }
    }
}

/// The tokenizer state a start tag switches to (the tree builder's job, done here).
fn raw_kind(name: &str) -> Option<RawKind> {
    match name {
        "script" => Some(RawKind::ScriptData),
        "title" | "textarea" => Some(RawKind::Rcdata),
        "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => Some(RawKind::Rawtext),
        _ => None,
    }
}

/// Line breaks around a block element: 2 for a paragraph, 1 for a line, 0 for inline.
fn block_breaks(name: &str) -> u8 {
    match name {
        "p" | "blockquote" | "section" | "article" | "header" | "footer" | "nav" | "aside"
        | "main" | "figure" | "form" | "fieldset" | "address" | "details" | "dl" | "hr"
        | "hgroup" | "center" | "body" => 2,
        "div" | "dt" | "dd" | "summary" | "caption" | "figcaption" | "legend" | "option"
        | "tbody" | "thead" | "tfoot" => 1,
        _ => 0,
    }
}

/// HTML start tags that end an `<svg>` left open (the tree builder's breakout list).
fn breaks_out_of_svg(name: &str) -> bool {
    matches!(
        name,
        "b" | "big"
            | "blockquote"
            | "body"
            | "br"
            | "center"
            | "code"
            | "dd"
            | "div"
            | "dl"
            | "dt"
            | "em"
            | "embed"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "head"
            | "hr"
            | "i"
            | "img"
            | "li"
            | "listing"
            | "menu"
            | "meta"
            | "nobr"
            | "ol"
            | "p"
            | "pre"
            | "ruby"
            | "s"
            | "small"
            | "span"
            | "strong"
            | "strike"
            | "sub"
            | "sup"
            | "table"
            | "tt"
            | "u"
            | "ul"
            | "var"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        html_to_text(html).text
    }

    #[test]
    fn headings_become_hash_lines_of_their_level() {
        let html = "<h1>Returns</h1><p>Within 30 days.</p><h2>Sale  items</h2><p>Final.</p>\
                    <h3>Gift <em>cards</em></h3><h6>Fine print</h6>";
        assert_eq!(
            text(html),
            "# Returns\n\nWithin 30 days.\n\n## Sale items\n\nFinal.\n\n### Gift cards\n\n###### Fine print"
        );
        // A block or a line break inside a heading keeps it on one line.
        assert_eq!(
            text("<h2><div>Size</div><br>guide</h2>x"),
            "## Size guide\n\nx"
        );
    }

    #[test]
    fn hidden_elements_and_comments_are_dropped() {
        let html = r#"<html><head><meta charset="utf-8"><title>Shop</title>
            <style>body { color: red }</style><script>var a = "<p>not text</p>";</script>
            </head><body><!-- a comment --><p>Visible</p>
            <noscript>Enable JavaScript</noscript><template><p>later</p></template>
            <svg viewBox="0 0 10 10"><title>icon</title><text>svg text</text></svg>
            <iframe src="x">frame</iframe><p>After</p>
            <script>if (a < b && c > d) { document.write("</div>") }</script>End</body></html>"#;
        let page = html_to_text(html);
        assert_eq!(page.text, "Visible\n\nAfter\n\nEnd");
        assert_eq!(page.title.as_deref(), Some("Shop"));
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            text(
                "<p>Tom &amp; Jerry&nbsp;&nbsp;don&#8217;t &lt;3 &eacute;t&eacute; &#x1F600; &copy</p>"
            ),
            "Tom & Jerry don\u{2019}t <3 \u{e9}t\u{e9} \u{1F600} \u{a9}"
        );
        assert_eq!(
            html_to_text("<title>Q&amp;A</title>").title.as_deref(),
            Some("Q&A")
        );
    }

    #[test]
    fn whitespace_collapses_and_pre_keeps_it() {
        assert_eq!(
            text("<p>  one\n\t two   <b>three</b>four </p>\n\n<p>five</p>"),
            "one two threefour\n\nfive"
        );
        assert_eq!(
            text("<p>Code:</p><pre>\nfn main() {\n    run();\n}\n</pre><p>done</p>"),
            "Code:\n\nfn main() {\n    run();\n}\n\ndone"
        );
    }

    #[test]
    fn br_breaks_lines() {
        assert_eq!(
            text("one<br>two<br/>three<br><br>four"),
            "one\ntwo\nthree\n\nfour"
        );
    }

    #[test]
    fn nested_lists() {
        let html = "<p>Features:</p><ul><li>Light<ul><li>400 g</li><li>folds</li></ul></li>\
                    <li>Warm</li></ul><ol><li>Wash</li><li>Dry</li></ol>";
        assert_eq!(
            text(html),
            "Features:\n\n- Light\n  - 400 g\n  - folds\n- Warm\n\n- Wash\n- Dry"
        );
        // Unclosed items, as in old HTML.
        assert_eq!(text("<ul><li>a<li>b</ul>c"), "- a\n- b\n\nc");
    }

    #[test]
    fn table_rows_are_lines_of_cells() {
        let html = "<table><thead><tr><th>Size</th><th>Chest</th></tr></thead>\
                    <tbody><tr><td>S</td><td><p>86 cm</p></td></tr>\
                    <tr><td>M<br>(most)</td><td>94 cm</td></tr></tbody></table><p>Next</p>";
        assert_eq!(
            text(html),
            "Size | Chest\nS | 86 cm\nM (most) | 94 cm\n\nNext"
        );
    }

    #[test]
    fn malformed_markup_keeps_its_text() {
        let cases = [
            ("<p>a < b and c<d</p>", "a < b and c"),
            (
                "<div class=x id=y>unquoted <b>bold <i>both</b> tail",
                "unquoted bold both tail",
            ),
            ("<p>open <span title=\"never closed>text", "open"),
            (
                "</p></div>stray end tags<h2>Head",
                "stray end tags\n\n## Head",
            ),
            ("<h1>One<h2>Two</h1>three", "# One\n\n## Two\n\nthree"),
            (
                "<svg><path d=M0>text after an unclosed svg<p>para</p>",
                "para",
            ),
            ("<script>unclosed", ""),
            ("<!-- unclosed comment", ""),
            ("", ""),
            ("<", "<"),
            ("&", "&"),
            ("<<>>&&;;", "<<>>&&;;"),
        ];
        for (html, want) in cases {
            assert_eq!(text(html), want, "{html:?}");
        }
        // Arbitrary bytes-as-text never panic.
        let mut junk = String::new();
        for i in 0..2000u32 {
            junk.push(char::from_u32((i * 7919) % 0x250).unwrap_or('?'));
            junk.push_str(
                [
                    "<", ">", "</", "&#", "=\"", "<li>", "<td>", "<pre>", "</h1>",
                ][i as usize % 9],
            );
        }
        let _ = html_to_text(&junk);
    }

    #[test]
    fn title_from_title_else_first_h1() {
        let page = html_to_text("<title>\n  Snow   boots | Shop </title><h1>Boots</h1>");
        assert_eq!(page.title.as_deref(), Some("Snow boots | Shop"));
        assert_eq!(page.text, "# Boots");
        let page = html_to_text("<h2>Intro</h2><h1></h1><h1>Snow <b>boots</b></h1><h1>Other</h1>");
        assert_eq!(page.title.as_deref(), Some("Snow boots"));
        assert_eq!(html_to_text("<p>no heading</p>").title, None);
    }

    #[test]
    fn fragment_has_no_title_and_is_trimmed() {
        let body = "\n<p><strong>Warm</strong> &amp; light.</p>\n<ul>\n<li>Wool</li>\n<li>Size&nbsp;M</li>\n</ul>\n";
        assert_eq!(
            html_fragment_to_text(body),
            "Warm & light.\n\n- Wool\n- Size M"
        );
        assert_eq!(html_fragment_to_text("<title>x</title>Body"), "Body");
    }
}
