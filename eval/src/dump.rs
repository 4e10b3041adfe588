//! Each branch's candidate lists written out for offline fusion research: per query, the BM25
//! and the vector documents (collapsed to one hit per document, as hybrid fuses them) with
//! their raw scores, as deep as a search may go (`MAX_K`).
//!
//! Layout under the directory given: `<dataset>/<model>/<split>.<branch>.tsv` with the header
//! `query-id  corpus-id  rank  score` (tab-separated, ranks from 1, scores as the engine gives
//! them: BM25 over whole documents, the vector branch's cosine of the document's best chunk),
//! and `<dataset>/<model>/manifest.json` naming the collection, its files and the settings.
//! With a reranker, also `<split>.rerank.tsv` for the reported split: the first N documents of
//! hybrid (the configured fusion and candidates) with their fused rank and score and the
//! reranker's score (`query-id corpus-id rank fused rerank`).

use std::io::Write;
use std::path::{Path, PathBuf};

use dartmouth_engine::embed::Reranker;
use dartmouth_engine::rerank_passage;
use dartmouth_engine::{Embedder, MAX_K, Mode, Shard};
use serde::Serialize;

use crate::Error;
use crate::beir::{Collection, load_collection, queries_file};
use crate::run::{RunConfig, embed_queries, search_query, understand_queries};

/// The depth of every dumped list.
pub const DUMP_DEPTH: usize = MAX_K;

#[derive(Debug, Clone, Serialize)]
pub struct DumpManifest {
    pub dataset: String,
    pub path: String,
    pub model: String,
    pub depth: usize,
    pub config: RunConfig,
    pub splits: Vec<DumpedSplit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DumpedSplit {
    pub split: String,
    pub queries_file: String,
    pub qrels_file: String,
    pub queries: usize,
    /// Branch name (`bm25`, `vector`) -> file, relative to the manifest.
    pub files: Vec<(String, String)>,
}

/// The splits dumped for a collection: the reported one, and every other split with judgments
/// (`qrels/<split>.tsv`) and queries of its own (`queries_<split>.jsonl`), such as SciFact's
/// `train`.
pub fn dump_splits(root: &Path, reported: &str) -> Vec<String> {
    let mut out = vec![reported.to_string()];
    let Ok(entries) = std::fs::read_dir(root.join("qrels")) else {
        return out;
    };
    let mut others: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let split = name.strip_suffix(".tsv")?.to_string();
            (split != reported && root.join(format!("queries_{split}.jsonl")).is_file())
                .then_some(split)
        })
        .collect();
    others.sort();
    out.extend(others);
    out
}

/// Writes both branches' lists of every split of the collection at `root` into
/// `dir/<dataset>/<model>/`; returns the manifest written there.
pub fn dump_runs(
    shard: &Shard,
    root: &Path,
    embedder: &dyn Embedder,
    config: &RunConfig,
    reported_split: &str,
    dir: &Path,
    rerank: Option<(&dyn Reranker, usize)>,
) -> Result<DumpManifest, Error> {
    let dataset = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let model = embedder.spec().id.clone();
    let out_dir = dir
        .join(&dataset)
        .join(crate::report::model_dir_name(&model));
    std::fs::create_dir_all(&out_dir).map_err(Error::io(&out_dir))?;
    let deep = RunConfig {
        depth: DUMP_DEPTH,
        candidates: DUMP_DEPTH,
        ..*config
    };
    let mut splits = Vec::new();
    for split in dump_splits(root, reported_split) {
        let qfile = queries_file(root, &split);
        let mut collection = load_collection(root, &qfile, &split)?;
        if config.parse {
            understand_queries(&mut collection, shard);
        }
        let vectors = embed_queries(&collection, embedder)?;
        let mut files = Vec::new();
        for (branch, mode) in [("bm25", Mode::Bm25), ("vector", Mode::Vector)] {
            let name = format!("{split}.{branch}.tsv");
            write_branch(
                shard,
                &collection,
                &vectors,
                mode,
                &deep,
                &out_dir.join(&name),
            )?;
            files.push((branch.to_string(), name));
        }
        if let (Some((reranker, top_n)), true) = (rerank, split == reported_split) {
            let name = format!("{split}.rerank.tsv");
            write_reranked(
                shard,
                &collection,
                &vectors,
                config,
                reranker,
                top_n,
                &out_dir.join(&name),
            )?;
            files.push(("rerank".to_string(), name));
        }
        splits.push(DumpedSplit {
            queries_file: root.join(&qfile).display().to_string(),
            qrels_file: root
                .join("qrels")
                .join(format!("{split}.tsv"))
                .display()
                .to_string(),
            queries: collection.queries.len(),
            split,
            files,
        });
    }
    let manifest = DumpManifest {
        dataset,
        path: root.display().to_string(),
        model,
        depth: DUMP_DEPTH,
        config: *config,
        splits,
    };
    let path = out_dir.join("manifest.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"),
    )
    .map_err(Error::io(&path))?;
    Ok(manifest)
}

fn write_branch(
    shard: &Shard,
    collection: &Collection,
    vectors: &[dartmouth_engine::Embedding],
    mode: Mode,
    config: &RunConfig,
    path: &PathBuf,
) -> Result<(), Error> {
    let file = std::fs::File::create(path).map_err(Error::io(path))?;
    let mut w = std::io::BufWriter::new(file);
    let io = Error::io(path);
    let mut lines = String::from("query-id\tcorpus-id\trank\tscore\n");
    for (i, q) in collection.queries.iter().enumerate() {
        let hits = search_query(shard, collection, Some(vectors), i, mode, config, false)?;
        for (rank, h) in hits.iter().enumerate() {
            // The branch's own raw score (a single-branch search reports it as the hit's too).
            let score = match mode {
                Mode::Bm25 => h.bm25.map(|b| b.score),
                _ => h.vector.map(|b| b.score),
            }
            .unwrap_or(h.score);
            lines.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                q.id,
                h.doc_id,
                rank + 1,
                score
            ));
        }
    }
    w.write_all(lines.as_bytes())
        .and_then(|()| w.flush())
        .map_err(io)
}

fn write_reranked(
    shard: &Shard,
    collection: &Collection,
    vectors: &[dartmouth_engine::Embedding],
    config: &RunConfig,
    reranker: &dyn Reranker,
    top_n: usize,
    path: &PathBuf,
) -> Result<(), Error> {
    let mut lines = String::from("query-id\tcorpus-id\trank\tfused\trerank\n");
    for (i, q) in collection.queries.iter().enumerate() {
        let hits = search_query(
            shard,
            collection,
            Some(vectors),
            i,
            Mode::Hybrid,
            config,
            true,
        )?;
        let hits = &hits[..top_n.min(hits.len())];
        let passages: Vec<String> = hits.iter().map(rerank_passage).collect();
        let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
        let scores = reranker.score(&q.text, &refs, None)?.unwrap_or_default();
        for (rank, (h, s)) in hits.iter().zip(scores).enumerate() {
            lines.push_str(&format!(
                "{}\t{}\t{}\t{}\t{s}\n",
                q.id,
                h.doc_id,
                rank + 1,
                h.score
            ));
        }
    }
    std::fs::write(path, lines).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_the_reported_one_then_those_with_their_own_queries() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("qrels")).unwrap();
        for f in ["qrels/test.tsv", "qrels/train.tsv", "qrels/codes.tsv"] {
            std::fs::write(root.join(f), "query-id\tcorpus-id\tscore\n").unwrap();
        }
        std::fs::write(root.join("queries_train.jsonl"), "").unwrap();
        assert_eq!(dump_splits(root, "test"), ["test", "train"]);
        assert_eq!(dump_splits(root, "train"), ["train"]);
    }
}
