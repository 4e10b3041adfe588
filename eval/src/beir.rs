//! BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use dartmouth_indexer::{BeirQuery, read_beir_queries};

use crate::Error;

/// query id -> (document id -> graded relevance > 0).
pub type Qrels = BTreeMap<String, HashMap<String, u32>>;

pub struct Collection {
    pub root: PathBuf,
    pub corpus: PathBuf,
    pub queries: Vec<BeirQuery>,
    pub qrels: Qrels,
}

/// The queries of `split`: `queries_<split>.jsonl` when the collection has one, else `queries.jsonl`.
pub fn queries_file(root: &Path, split: &str) -> String {
    let specific = format!("queries_{split}.jsonl");
    if root.join(&specific).is_file() {
        specific
    } else {
        "queries.jsonl".into()
    }
}

/// Loads queries and qrels of `split`, checking every judged query and document exists.
/// Queries without judgments are dropped (BEIR evaluates only judged queries).
pub fn load_collection(root: &Path, queries_file: &str, split: &str) -> Result<Collection, Error> {
    let corpus = corpus_of(root)?;
    let queries_path = root.join(queries_file);
    let qrels_path = root.join("qrels").join(format!("{split}.tsv"));
    for p in [&corpus, &queries_path, &qrels_path] {
        if !p.is_file() {
            return Err(Error::Layout(format!(
                "{} is not a BEIR collection: {} is missing",
                root.display(),
                p.display()
            )));
        }
    }
    let doc_ids = corpus_ids(&corpus)?;
    let queries = read_beir_queries(&queries_path)?;
    let query_ids: HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
    let qrels = load_qrels(&qrels_path)?;
    for (place, (q, docs)) in qrels.iter().enumerate() {
        if !query_ids.contains(q.as_str()) {
            return Err(Error::Bad {
                place: format!("{} (query {q}, entry {})", qrels_path.display(), place + 1),
                message: format!("query `{q}` is not in {}", queries_path.display()),
            });
        }
        if let Some(d) = docs.keys().find(|d| !doc_ids.contains(d.as_str())) {
            return Err(Error::Bad {
                place: format!("{} (query {q})", qrels_path.display()),
                message: format!("document `{d}` is not in {}", corpus.display()),
            });
        }
    }
    let queries = queries
        .into_iter()
        .filter(|q| qrels.contains_key(&q.id))
        .collect::<Vec<_>>();
    if queries.is_empty() {
        return Err(Error::Layout(format!(
            "{}: no judged queries",
            qrels_path.display()
        )));
    }
    Ok(Collection {
        root: root.to_path_buf(),
        corpus,
        queries,
        qrels,
    })
}

/// The corpus: `corpus.jsonl`, or the file `corpus.path` names (relative to the collection),
/// in any format `dartmouth index` reads: a catalog collection judges a shop's export in
/// place, read as a catalog upload reads it.
fn corpus_of(root: &Path) -> Result<PathBuf, Error> {
    let pointer = root.join("corpus.path");
    if !pointer.is_file() {
        return Ok(root.join("corpus.jsonl"));
    }
    let named = std::fs::read_to_string(&pointer).map_err(Error::io(&pointer))?;
    let named = named.trim();
    if named.is_empty() {
        return Err(Error::Bad {
            place: pointer.display().to_string(),
            message: "empty: name the corpus file, relative to the collection".into(),
        });
    }
    Ok(root.join(named))
}

fn corpus_ids(path: &Path) -> Result<HashSet<String>, Error> {
    if path.extension().is_none_or(|e| e != "jsonl") {
        let mut ids = HashSet::new();
        for item in dartmouth_indexer::SourceReader::open(&[path.to_path_buf()], None)? {
            if let dartmouth_indexer::Item::Doc(doc) = item? {
                ids.insert(doc.id);
            }
        }
        return Ok(ids);
    }
    let mut ids = HashSet::new();
    for item in numbered_lines(path)? {
        let (place, line) = item?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| Error::Bad {
            place: place.clone(),
            message: format!("malformed JSON: {e}"),
        })?;
        let id = match &v["_id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(Error::Bad {
                    place,
                    message: "missing `_id`".into(),
                });
            }
        };
        if !ids.insert(id.clone()) {
            return Err(Error::Bad {
                place,
                message: format!("duplicate document id `{id}`"),
            });
        }
    }
    Ok(ids)
}

/// The lines of a file with their `path:line` place; an unreadable file is a layout error.
fn numbered_lines(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(String, String), Error>>, Error> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::Layout(format!("{}: {e}", path.display())))?;
    let shown = path.display().to_string();
    Ok(BufReader::new(file)
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            let place = format!("{shown}:{}", i + 1);
            match line {
                Ok(l) => Ok((place, l)),
                Err(e) => Err(Error::Bad {
                    place,
                    message: e.to_string(),
                }),
            }
        }))
}

/// Reads a qrels TSV (`query-id  corpus-id  score`, optional header); keeps score > 0.
pub fn load_qrels(path: &Path) -> Result<Qrels, Error> {
    let mut qrels = Qrels::new();
    for (i, item) in numbered_lines(path)?.enumerate() {
        let (place, line) = item?;
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        if line.trim().is_empty() || (i == 0 && cols.first() == Some(&"query-id")) {
            continue;
        }
        if cols.len() != 3 {
            return Err(Error::Bad {
                place,
                message: format!("expected 3 tab-separated columns, got {}", cols.len()),
            });
        }
        let score: i64 = cols[2].parse().map_err(|_| Error::Bad {
            place: place.clone(),
            message: format!("score `{}` is not an integer", cols[2]),
        })?;
        let entry = qrels.entry(cols[0].to_string()).or_default();
        if entry.contains_key(cols[1]) {
            return Err(Error::Bad {
                place,
                message: format!("duplicate judgment for ({}, {})", cols[0], cols[1]),
            });
        }
        if score > 0 {
            entry.insert(cols[1].to_string(), score as u32);
        }
    }
    qrels.retain(|_, docs| !docs.is_empty());
    Ok(qrels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(dir: &Path, corpus: &str, queries: &str, qrels: &str) {
        std::fs::create_dir_all(dir.join("qrels")).unwrap();
        std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
        std::fs::write(dir.join("queries.jsonl"), queries).unwrap();
        std::fs::write(dir.join("qrels/test.tsv"), qrels).unwrap();
    }

    const CORPUS: &str = "{\"_id\":\"d1\",\"text\":\"a\"}\n{\"_id\":\"d2\",\"text\":\"b\"}\n";
    const QUERIES: &str = "{\"_id\":\"q1\",\"text\":\"x\"}\n{\"_id\":\"q2\",\"text\":\"y\"}\n";

    #[test]
    fn loads_and_keeps_only_judged_queries() {
        let tmp = tempfile::tempdir().unwrap();
        collection(
            tmp.path(),
            CORPUS,
            QUERIES,
            "query-id\tcorpus-id\tscore\nq1\td2\t2\nq2\td1\t0\n",
        );
        let c = load_collection(tmp.path(), "queries.jsonl", "test").unwrap();
        assert_eq!(c.queries.len(), 1);
        assert_eq!(c.qrels["q1"]["d2"], 2);
    }

    #[test]
    fn bad_collections_name_the_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let err = |corpus: &str, queries: &str, qrels: &str| {
            collection(tmp.path(), corpus, queries, qrels);
            load_collection(tmp.path(), "queries.jsonl", "test")
                .err()
                .unwrap()
                .to_string()
        };
        let e = err(CORPUS, QUERIES, "q1\td9\t1\n");
        assert!(e.contains("test.tsv") && e.contains("document `d9`"), "{e}");
        let e = err(CORPUS, QUERIES, "q7\td1\t1\n");
        assert!(e.contains("query `q7`"), "{e}");
        let e = err(CORPUS, QUERIES, "q1\td1\t1\nq1\td1\t1\n");
        assert!(e.contains("test.tsv:2") && e.contains("duplicate"), "{e}");
        let e = err(CORPUS, QUERIES, "q1\td1\n");
        assert!(
            e.contains("test.tsv:1") && e.contains("3 tab-separated"),
            "{e}"
        );
        let e = err(
            "{\"_id\":\"d1\"}\n{\"_id\":\"d1\"}\n",
            QUERIES,
            "q1\td1\t1\n",
        );
        assert!(
            e.contains("corpus.jsonl:2") && e.contains("duplicate document"),
            "{e}"
        );
        let e = err(CORPUS, "\n", "q1\td1\t1\n");
        assert!(e.contains("no queries"), "{e}");
        let e = load_collection(&tmp.path().join("nope"), "queries.jsonl", "test")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not a BEIR collection"), "{e}");
    }
}
