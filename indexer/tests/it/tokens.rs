//! The word-piece fast path gives the model tokenizer's own tokens (ASCII segments by itself,
//! the rest through the tokenizer): checked on
//! every rendered product of the Shopify exports, the SciFact corpus and hand-picked edges.
//! Needs the model directory (`scripts/setup-model.sh`, which `scripts/test.sh` runs first).

use std::path::PathBuf;

use dartmouth_indexer::{Chunker, Format, Sizer, SourceReader};
use tokenizers::Tokenizer;

fn model_dir() -> PathBuf {
    std::env::var_os("DARTMOUTH_MODEL_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-minilm-l6-v2"),
        PathBuf::from,
    )
}

/// The model's tokenizer without truncation or padding (what the sizer compares with).
fn tokenizer(dir: &std::path::Path) -> Tokenizer {
    let mut t = Tokenizer::from_file(dir.join("tokenizer.json"))
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-model.sh)", dir.display()));
    t.with_padding(None);
    t.with_truncation(None).unwrap();
    t
}

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

#[test]
fn fast_word_pieces_equal_the_tokenizer() {
    let dir = model_dir();
    let tokenizer = tokenizer(&dir);
    let Sizer::Tokens(_, Some(fast)) = Sizer::from_model_dir(&dir).unwrap() else {
        panic!("MiniLM's tokenizer should take the word-piece fast path");
    };
    let mut texts: Vec<String> = vec![
        "Hello, World!! e-mail don't 3.65275E+11 $48.00 (was $60.00) [sold out]".into(),
        "tabs\tand\nnewlines\r\n  and   spaces; ALL CAPS; MiXeD; x__y; a~b`c|d^e".into(),
        "supercalifragilisticexpialidocious antidisestablishmentarianism qwxzptk".into(),
        "a".repeat(150),
        String::new(),
    ];
    let shopify = datasets().join("shopify");
    for f in [
        "csv/products_export_life_made_magic.csv",
        "admin_rest/products_united_by_blue_demo.json",
    ] {
        for item in SourceReader::open(&[shopify.join(f)], None).unwrap() {
            if let dartmouth_indexer::Item::Doc(d) = item.unwrap() {
                texts.push(d.text);
            }
        }
    }
    let corpus = datasets().join("ir/scifact/corpus.jsonl");
    for d in SourceReader::open(&[corpus], Some(Format::BeirJsonl))
        .unwrap()
        .documents()
        .take(500)
    {
        texts.push(d.unwrap().text);
    }
    texts.push("café naïve “quoted” — 日本語 tab\u{a0}nbsp control\u{7f}chars e\u{301}".into());
    let slow = |s: &str| {
        tokenizer
            .encode(s, false)
            .ok()
            .map(|e| e.get_offsets().to_vec())
    };
    let mut checked = 0;
    for text in &texts {
        let want = tokenizer.encode(text.as_str(), false).unwrap();
        let got = fast.spans_with(text, slow).unwrap();
        assert_eq!(
            got,
            want.get_offsets(),
            "tokens differ for {:?}",
            &text[..text.len().min(200)]
        );
        checked += 1;
    }
    assert!(checked > 800, "{checked}");
    assert!(fast.spans("café").is_none());
    assert!(fast.spans("control\u{7f}chars").is_none());
    assert!(fast.spans("plain ascii").is_some());
}

#[test]
fn chunks_fit_the_model_budget() {
    let dir = model_dir();
    let tokenizer = tokenizer(&dir);
    let chunker = Chunker::new(Sizer::from_model_dir(&dir).unwrap(), 128, 16);
    let corpus = datasets().join("ir/scifact/corpus.jsonl");
    for d in SourceReader::open(&[corpus], Some(Format::BeirJsonl))
        .unwrap()
        .documents()
        .take(200)
    {
        let d = d.unwrap();
        for c in chunker.chunk(&d.title, &d.text, d.format).unwrap() {
            let n = tokenizer.encode(c.text.as_str(), true).unwrap().len();
            let title = tokenizer.encode(d.title.as_str(), false).unwrap().len();
            assert!(n + title < 128 + 2, "{n} + {title} tokens: {:?}", c.text);
        }
    }
}
