#![allow(clippy::disallowed_methods, reason = "checks the shard the job wrote")]

use super::*;
use crate::chunk::Sizer;
use crate::source::SourceReader;
use dartmouth_engine::embed::FakeEmbedder;
use dartmouth_engine::{DomainSettings, Mode, SearchRequest, Shard, search};

#[test]
fn empty_records_are_skipped_and_title_only_records_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    std::fs::write(
        &corpus,
        "{\"_id\":\"1\",\"title\":\"Compilers for parallel machines\",\"text\":\"\"}\n\
         {\"_id\":\"2\",\"title\":\"\",\"text\":\"  \"}\n\
         {\"_id\":\"3\",\"title\":\"Sorting\",\"text\":\"Quicksort partitions an array.\"}\n",
    )
    .unwrap();
    let embedder = FakeEmbedder::new(32);
    let settings = DomainSettings::new(embedder.spec().clone());
    let shard = Arc::new(Shard::create(&tmp.path().join("s"), "s", settings).unwrap());
    let summary = IndexJob {
        sink: shard.clone(),
        embedder: &embedder,
        chunker: Chunker::new(Sizer::ApproxChars, 256, 32),
        batch_docs: 2,
        stop_on_error: true,
        full_sync: false,
    }
    .run(
        SourceReader::open(&[corpus], None).unwrap(),
        &Progress::hidden(),
    )
    .unwrap();
    assert_eq!(summary.documents, 2);
    assert_eq!(summary.skipped.len(), 1);
    assert!(
        summary.skipped[0].contains("c.jsonl:2"),
        "{:?}",
        summary.skipped
    );
    let mut req = SearchRequest::new("parallel compilers");
    req.mode = Mode::Bm25;
    let hits = search(&[&shard], &req).unwrap().hits;
    assert_eq!(hits[0].doc_id, "1");
}

#[test]
fn a_stopped_job_writes_nothing_more() {
    let tmp = tempfile::tempdir().unwrap();
    let embedder = FakeEmbedder::new(32);
    let settings = DomainSettings::new(embedder.spec().clone());
    let shard = Arc::new(Shard::create(&tmp.path().join("s"), "s", settings).unwrap());
    let job = || IndexJob {
        sink: shard.clone(),
        embedder: &embedder,
        chunker: Chunker::new(Sizer::ApproxChars, 256, 32),
        batch_docs: 1,
        stop_on_error: false,
        full_sync: false,
    };
    let docs = |ids: &[&str]| -> Vec<Result<SourceDoc>> {
        ids.iter()
            .map(|id| Ok(SourceDoc::new(*id, *id, format!("text of {id}"))))
            .collect()
    };
    job().run(docs(&["a", "b"]), &Progress::hidden()).unwrap();
    // Stopped before it starts: nothing written, and the summary says so. (That a stopped
    // full sync deletes nothing is checked through the store: server/tests/it/files.rs.)
    let summary = job()
        .run_until(
            docs(&["c", "d"]),
            &Progress::hidden(),
            &AtomicBool::new(true),
        )
        .unwrap();
    assert!(summary.cancelled);
    assert_eq!(summary.documents, 0);
    assert_eq!(shard.stats().documents, 2);
    let summary = job()
        .run_until(docs(&["c"]), &Progress::hidden(), &AtomicBool::new(false))
        .unwrap();
    assert!(!summary.cancelled);
    assert_eq!(shard.stats().documents, 3);
}
