//! The fuzz targets on stable Rust, for a bounded time each (`DARTMOUTH_FUZZ_SECONDS`, 4 by
//! default): inputs mutated from real seeds (the shared Shopify and judged collections, the
//! sample pages, made PDFs, hand-written requests) with bit flips, interesting bytes, the
//! format's own tokens, insertions, deletions, duplications, splices and truncations. A target
//! fails on a panic or when one input makes it hold more than 256 MiB at once (a counting
//! allocator watches); the failing input is written under `target/fuzz-failures/` and named in
//! the message. Coverage-guided runs of the same targets: `scripts/fuzz.sh` (cargo-fuzz).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Live heap bytes, and the most seen since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

#[expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; it defers to System"
)]
// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most bytes one input may make a target hold at once.
const MAX_HELD: usize = 256 << 20;
/// Largest input tried.
const MAX_INPUT: usize = 64 << 10;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets")
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Up to `max` bytes of each file under `dir` whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(files(&p, exts, max));
        } else if exts.iter().any(|x| p.to_string_lossy().ends_with(x))
            && let Ok(mut bytes) = std::fs::read(&p)
        {
            bytes.truncate(max);
            out.push(bytes);
        }
    }
    out
}

/// The first `n` lines of a file.
fn lines(path: &Path, n: usize) -> Vec<u8> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .take(n)
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// Seeds and the format's own tokens, per target.
fn seeds(name: &str) -> (Vec<Vec<u8>>, Vec<&'static [u8]>) {
    let shopify = shared().join("shopify");
    let json: Vec<&'static [u8]> = vec![
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"-1e999",
        b"\"\\u0000\"",
        b"\"\\ud800\"",
        b"18446744073709551616",
    ];
    match name {
        "filter" => (
            [
                "in_stock = true AND price <= 50 AND option.size IN (\"M\", \"L\")",
                "NOT (vendor = 'Acme' OR tags = \"sale\") AND price > 10.5",
                "a = 1",
                "x != -0.000001 AND y >= 99999999999999",
            ]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
            vec![b"AND", b"OR", b"NOT", b"IN", b"(", b")", b"=", b"<=", b">", b"!=", b"\"", b"'", b",", b"1e9", b"-", b"."],
        ),
        "shopify_json" | "catalog_upload" => {
            let mut s = files(&shopify.join("admin_rest"), &[".json"], MAX_INPUT);
            s.extend(files(&shopify.join("storefront"), &[".json"], MAX_INPUT));
            if name == "catalog_upload" {
                s.extend(files(&shopify.join("csv"), &[".csv"], 8 << 10));
                s.extend(files(&shopify.join("graphql_bulk_jsonl"), &[".jsonl"], MAX_INPUT));
            }
            (s, json)
        }
        "shopify_webhook" => (files(&shopify.join("webhooks"), &[".json"], MAX_INPUT), json),
        "shopify_csv" => (
            files(&shopify.join("csv"), &[".csv"], 8 << 10),
            vec![b"\"", b",", b"\n", b"\r\n", b"\"\"", b"Handle", b"Variant Price", b"Option1 Name"],
        ),
        "shopify_bulk" => (
            files(&shopify.join("graphql_bulk_jsonl"), &[".jsonl"], MAX_INPUT),
            [json, vec![b"__parentId", b"__typename", b"gid://shopify/Product/1", b"\n"]].concat(),
        ),
        "html" => (
            files(&repo("sample"), &[".html", ".md"], MAX_INPUT),
            vec![b"<", b">", b"</", b"<h1>", b"<script>", b"<!--", b"-->", b"&amp;", b"&#x", b"<title>", b"<pre>", b"<table>"],
        ),
        "pdf" => (
            vec![
                dartmouth_indexer::pdf::make_pdf(&[&["Returns within 30 days", "Refunds to the card"]]),
                dartmouth_indexer::pdf::make_pdf(&[&["Page one"], &["Page two", "(parens) \\\\ back"]]),
            ],
            vec![b"obj", b"endobj", b"stream", b"endstream", b"/Length 999999999", b"xref", b"trailer", b"<<", b">>", b"(", b")", b"Tj", b"TJ", b"/Filter /FlateDecode", b"0 R", b"/Kids ["],
        ),
        "json_records" => (
            vec![
                lines(&shared().join("ir/cacm/corpus.jsonl"), 20)
                    .split(|b| *b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
                    .join(&b","[..]),
                br#"{"records":[{"id":"a","title":"T","text":"x","price":1.5,"tags":["a","b"]}]}"#.to_vec(),
            ]
            .into_iter()
            .map(|mut v| {
                if v.first() != Some(&b'{') {
                    v.insert(0, b'[');
                    v.push(b']');
                }
                v
            })
            .collect(),
            json,
        ),
        "jsonl_records" => (
            vec![
                lines(&shared().join("ir/scifact/corpus.jsonl"), 10),
                lines(&shared().join("ir/cranfield/corpus.jsonl"), 10),
            ],
            [json, vec![b"\n", b"_id", b"title", b"text"]].concat(),
        ),
        "markdown" => (
            files(&repo("sample"), &[".md"], MAX_INPUT),
            vec![b"#", b"## ", b"\n", b"```", b"* ", b"1. ", b"|", b"[x](y)", b"\r\n", b"\t"],
        ),
        "http_requests" => (
            [
                r#"{"query":"refund","domains":["kb"],"k":5,"mode":"hybrid","filter":"price <= 50","facets":["vendor"],"min_seq":{"kb":3},"fusion":{"method":"rrf","rrf_k":60}}"#,
                r#"{"query":"q","max_tokens":500,"mode":"bm25"}"#,
                r#"{"documents":[{"id":"a","title":"T","text":"x","url":"https://x","attributes":{"tier":"gold","price":19.99,"tags":["a"]}}]}"#,
                r#"{"name":"kb","description":"d","embedder":"fake"}"#,
                r#"{"principal":"bob","domains":["kb"],"expires_in":3600,"role":"read"}"#,
                r#"{"end_user":"alice","domains":["kb"],"ttl_seconds":300}"#,
            ]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
            json,
        ),
        "grpc_requests" => {
            use dartmouth_server::proto as pb;
            use prost::Message as _;
            (
                vec![
                    pb::SearchRequest {
                        query: "refund".into(),
                        domains: vec!["kb".into()],
                        k: 5,
                        mode: "hybrid".into(),
                        filter: "price <= 50".into(),
                        facets: vec!["vendor".into()],
                        min_seq: [("kb".to_string(), 3u64)].into(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                    pb::IndexDocumentsRequest {
                        domain: "kb".into(),
                        documents: vec![pb::IngestDocument {
                            id: "a".into(),
                            title: "T".into(),
                            text: "x".into(),
                            url: None,
                            attributes_json: r#"{"tier":"gold"}"#.into(),
                        }],
                    }
                    .encode_to_vec(),
                    pb::UploadCatalogRequest {
                        domain: "kb".into(),
                        body: br#"{"products":[{"id":1,"title":"Mug","variants":[{"id":2,"price":"9.00"}]}]}"#.to_vec(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ],
                vec![b"\x0a", b"\x12", b"\x1a", b"\xff\xff\xff\xff\x0f", b"\x08\x80\x80\x80\x80\x10"],
            )
        }
        other => panic!("no seeds for {other}"),
    }
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, seeds: &[Vec<u8>], tokens: &[&[u8]]) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] =
                    [0, 0xff, 0x7f, 0x80, b'"', b'\\', b'\n', b'0', b'9'][rng.random_range(0..9)];
            }
            2 if !tokens.is_empty() => {
                let t = tokens[rng.random_range(0..tokens.len())];
                let at = rng.random_range(0..=len);
                input.splice(at..at, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=16.min(len - a))).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                // Duplicate a range (grows nesting and repetition).
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=64.min(len - a))).min(len);
                let piece: Vec<u8> = input[a..b].to_vec();
                for _ in 0..rng.random_range(1..=8) {
                    input.splice(b..b, piece.iter().copied());
                }
            }
            5 if !seeds.is_empty() => {
                // Splice with another seed.
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = (a + rng.random_range(1..=256.min(other.len() - a))).min(other.len());
                    let at = rng.random_range(0..=len);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => input.truncate(rng.random_range(0..len)),
            7 => {
                let at = rng.random_range(0..=len);
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(at..at, bytes);
            }
            _ => {
                // A multi-byte character or a long run.
                let at = rng.random_range(0..=len);
                let s: &[u8] = [
                    "é".as_bytes(),
                    "😀".as_bytes(),
                    "\u{202e}".as_bytes(),
                    &[b'a'; 300],
                ][rng.random_range(0..4)];
                input.splice(at..at, s.iter().copied());
            }
        }
    }
    input.truncate(MAX_INPUT);
}

/// Runs one input; the failure, if any, as a message.
fn run_one(name: &str, target: dartmouth_fuzz::Target, input: &[u8]) -> Result<(), String> {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(|| target(input));
    let held = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    match outcome {
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("{name} panicked: {msg}"))
        }
        Ok(()) if held > MAX_HELD => Err(format!("{name} held {held} bytes for one input")),
        Ok(()) => Ok(()),
    }
}

fn save(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let hash = input.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    });
    let path = dir.join(format!("{name}-{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    path
}

/// Found failures stay found: inputs under `fuzz/regressions/<target>/` run every time.
fn regressions(name: &str) -> Vec<Vec<u8>> {
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("regressions")
            .join(name),
        &[""],
        usize::MAX,
    )
}

#[test]
fn every_parser_and_decoder_takes_any_bytes() {
    let seconds: f64 = std::env::var("DARTMOUTH_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    let seed: u64 = std::env::var("DARTMOUTH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, target) in dartmouth_fuzz::TARGETS {
        let (seeds, tokens) = seeds(name);
        assert!(
            !seeds.is_empty(),
            "{name}: no seeds (is ../shared/datasets there?)"
        );
        let mut rng = StdRng::seed_from_u64(seed ^ name.len() as u64);
        let mut runs = 0u64;
        let mut fail = None;
        for input in seeds.iter().chain(&regressions(name)) {
            runs += 1;
            if let Err(e) = run_one(name, *target, input) {
                fail = Some((e, input.clone()));
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while fail.is_none() && Instant::now() < deadline {
            let mut input = seeds[rng.random_range(0..seeds.len())].clone();
            // Mutants of mutants: a few rounds per input.
            for _ in 0..rng.random_range(1..=8) {
                mutate(&mut rng, &mut input, &seeds, &tokens);
                runs += 1;
                if let Err(e) = run_one(name, *target, &input) {
                    fail = Some((e, input.clone()));
                    break;
                }
            }
        }
        report.push(format!("{name}: {runs} inputs"));
        if let Some((e, input)) = fail {
            let path = save(name, &input);
            failures.push(format!("{e} (input: {})", path.display()));
        }
    }
    eprintln!("fuzz: {}", report.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
