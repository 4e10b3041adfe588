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
