//! `POST /v1/domains/{d}/files`: documents in every format the CLI reads, as multipart, JSON
//! and raw bodies, with the same idempotent sync; bad uploads named and nothing written.

use base64::Engine as _;
use serde_json::json;

use crate::inproc::{InProcess, Keys, help_centre_with_scratch_writer, message};

const FILES: &str = "/v1/domains/scratch/files";

/// The ids a BM25 search of scratch finds for `query`, as the writer.
pub fn ids_found(p: &InProcess, key: &str, query: &str) -> Vec<String> {
    let body =
        json!({"query": query, "domains": ["scratch"], "mode": "bm25", "k": 20, "collapse": true});
    let (status, found) = p.call("POST", "/v1/search", Some(key), Some(&body.to_string()));
    assert_eq!(status, 200, "{found}");
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

/// The scratch domain's last sequence.
pub fn last_seq(p: &InProcess, keys: &Keys) -> u64 {
    let (_, d) = p.call("GET", "/v1/domains/scratch", Some(&keys.admin), None);
    d["last_seq"].as_u64().unwrap()
}

fn pdf() -> Vec<u8> {
    dartmouth_indexer::pdf::make_pdf(&[&["Quasar warranty terms", "Two years."]])
}

fn every_format(pdf: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "guide.md",
            b"# Nebula guide\n\nThe nebula lamp needs a USB-C cable.".to_vec(),
        ),
        (
            "page.html",
            b"<html><head><title>Pulsar page</title></head><body><p>Pulsar clocks tick.</p></body></html>".to_vec(),
        ),
        ("notes.txt", b"Comet notes: the comet vacuum is loud.".to_vec()),
        ("terms.pdf", pdf.to_vec()),
        (
            "records.json",
            br#"[{"id":"r1","title":"Meteor mug","text":"A meteor mug holds tea."}]"#.to_vec(),
        ),
        (
            "more.jsonl",
            b"{\"_id\":\"r2\",\"title\":\"Galaxy kite\",\"text\":\"The galaxy kite flies.\"}\n"
                .to_vec(),
        ),
    ]
}

fn refs<'a>(files: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    files.iter().map(|(n, b)| (*n, b.as_slice())).collect()
}

#[test]
fn every_format_in_one_multipart_upload_is_found_by_its_words() {
    let (p, keys) = help_centre_with_scratch_writer();
    let w = keys.writer.as_str();
    let files = every_format(&pdf());
    let (status, summary) = p.upload(FILES, w, &refs(&files));
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (&summary["added"], &summary["failed_count"]),
        (&json!(6), &json!(0)),
        "{summary}"
    );
    // Ids are the file names; records carry their own.
    for (word, id) in [
        ("nebula", "guide.md"),
        ("pulsar", "page.html"),
        ("comet", "notes.txt"),
        ("quasar", "terms.pdf"),
        ("meteor", "r1"),
        ("galaxy", "r2"),
    ] {
        assert_eq!(ids_found(&p, w, word), vec![id.to_string()], "{word}");
    }
    let (_, page) = p.call(
        "GET",
        "/v1/domains/scratch/documents/page.html",
        Some(w),
        None,
    );
    assert_eq!(page["title"], "Pulsar page", "{page}");
}

#[test]
fn the_same_files_again_write_nothing() {
    let (p, keys) = help_centre_with_scratch_writer();
    let files = every_format(&pdf());
    p.upload(FILES, &keys.writer, &refs(&files));
    let seq = last_seq(&p, &keys);
    let (status, again) = p.upload(FILES, &keys.writer, &refs(&files));
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["unchanged"], &again["added"]),
        (&json!(6), &json!(0))
    );
    assert_eq!(last_seq(&p, &keys), seq, "nothing written");
}

#[test]
fn json_bodies_carry_text_or_base64_and_a_full_sync_deletes_the_rest() {
    let (p, keys) = help_centre_with_scratch_writer();
    let w = keys.writer.as_str();
    let pdf = pdf();
    let files = every_format(&pdf);
    p.upload(FILES, w, &refs(&files));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let body = json!({"files": [
        {"name": "guide.md", "content": "# Nebula guide\n\nThe nebula lamp needs a USB-C cable."},
        {"name": "terms.pdf", "content_base64": b64}
    ]});
    let (status, synced) = p.call(
        "POST",
        &format!("{FILES}?full_sync=true"),
        Some(w),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{synced}");
    assert_eq!(
        (&synced["unchanged"], &synced["deleted"]),
        (&json!(2), &json!(4)),
        "{synced}"
    );
    assert!(ids_found(&p, w, "comet").is_empty());
    assert_eq!(ids_found(&p, w, "quasar"), vec!["terms.pdf".to_string()]);
}

#[test]
fn a_raw_body_is_named_by_its_query() {
    let (p, keys) = help_centre_with_scratch_writer();
    let auth = format!("Bearer {}", keys.writer);
    let (status, raw) = p.raw(
        "POST",
        &format!("{FILES}?name=faq.md"),
        &[("Authorization", &auth), ("Content-Type", "text/markdown")],
        b"# Orbit FAQ\n\nOrbit returns take 30 days.".to_vec(),
    );
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        ids_found(&p, &keys.writer, "orbit"),
        vec!["faq.md".to_string()]
    );
    let (status, unnamed) = p.raw(
        "POST",
        FILES,
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        b"no name".to_vec(),
    );
    assert_eq!(status, 400, "{unnamed}");
    assert!(message(&unnamed).contains("?name="), "{unnamed}");
}

#[test]
fn bad_uploads_name_the_input_and_write_nothing() {
    let (p, keys) = help_centre_with_scratch_writer();
    let before = last_seq(&p, &keys);
    for (body, query, want) in [
        (
            r#"{"files":[{"name":"x.md","content_base64":"%%%"}]}"#,
            "",
            "files[0].content_base64:",
        ),
        (
            r#"{"files":[{"name":"x.md"}]}"#,
            "",
            "files[0]: give one of `content`",
        ),
        (
            r#"{"files":[{"name":"blob.bin","content":"x"}]}"#,
            "",
            "blob.bin: cannot tell the format",
        ),
        (
            r#"{"files":[{"name":"x.md","format":"docx","content":"x"}]}"#,
            "",
            "files[0].format: format `docx` is not one of",
        ),
        (
            r#"{"files":[{"name":"a\tb.md","content":"x"}]}"#,
            "",
            "files[0].name:",
        ),
        (r#"{"files":[]}"#, "", "files: send 1 to"),
        (
            r#"{"files":[{"name":"x.md","content":"x"}]}"#,
            "?async=maybe",
            "query:",
        ),
    ] {
        let (status, reply) = p.call(
            "POST",
            &format!("{FILES}{query}"),
            Some(&keys.writer),
            Some(body),
        );
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(message(&reply).contains(want), "{body}: {reply}");
    }
    assert_eq!(last_seq(&p, &keys), before, "nothing written");
}

#[test]
fn a_malformed_record_is_named_by_file_and_line_and_the_rest_written() {
    let (p, keys) = help_centre_with_scratch_writer();
    let before = last_seq(&p, &keys);
    let (status, partial) = p.upload(
        FILES,
        &keys.writer,
        &[(
            "lines.jsonl",
            b"{\"_id\":\"ok1\",\"text\":\"fine line\"}\n{\"text\":\"no id\"}\n",
        )],
    );
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["failed_count"], 1, "{partial}");
    let failed = partial["failed"][0].as_str().unwrap();
    assert!(
        failed.starts_with("lines.jsonl:2: missing field"),
        "{partial}"
    );
    assert_eq!(last_seq(&p, &keys), before + 1, "only ok1 was written");
}

#[test]
fn a_reader_may_not_upload_to_a_domain_it_cannot_see() {
    let (p, keys) = help_centre_with_scratch_writer();
    let before = last_seq(&p, &keys);
    let (status, reply) = p.upload(FILES, &keys.reader, &[("a.md", b"# A\n\ntext")]);
    assert_eq!(status, 404, "{reply}");
    // Nor to one it reads.
    let (status, reply) = p.upload(
        "/v1/domains/help/files",
        &keys.reader,
        &[("a.md", b"# A\n\ntext")],
    );
    assert_eq!(status, 403, "{reply}");
    assert_eq!(last_seq(&p, &keys), before);
}
