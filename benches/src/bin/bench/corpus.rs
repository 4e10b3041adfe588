//! The benchmark corpus, written once to plain files so that this program and the comparison
//! script (`benches/compare/compare.py`) measure exactly the same chunks, vectors and queries.
//!
//! Layout of `<dir>/corpus-v3-<chunks>/`:
//! - `chunks.jsonl`: one `{"id","title","text"}` per chunk;
//! - `vectors.f32`: `chunks × dim` little-endian f32, row i belongs to line i of chunks.jsonl;
//! - `queries.jsonl`: one `{"id","text"}` per query;
//! - `query_vectors.f32`: `queries × dim`, embedded by the real model;
//! - `meta.json`: `{"chunks","queries","dim","model"}`, written last (its presence = complete).
//!
//! Chunks are the documents of every judged collection given (SciFact, Cranfield and CACM by
//! default: 9 787 documents of biomedicine, aerodynamics and computing), then variants of them:
//! variant `k ≥ 1` of document `d` keeps 70% of its words and borrows 20 words from each of two
//! other random documents `a` and `b`, from any collection; its vector is the normalised blend
//! `v_d + wa·v_a + wb·v_b` of the three real-model vectors, `wa` and `wb` drawn from 0.15–0.6,
//! plus uniform noise (±0.01 per component). Variants of one document differ in direction by
//! what they borrow, so a million of them spread over the space between the collections' topics
//! instead of forming a few thousand tight clusters (which v2's SciFact-only, one-partner copies
//! did at 1M: recall@10 0.81 at ef 128). Queries are every collection's queries.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dartmouth_engine::Embedder;
use dartmouth_indexer::{Format, SourceReader, embedding_input, read_beir_queries};
use rand::{Rng, SeedableRng};
use serde_json::json;

pub struct Corpus {
    pub dir: PathBuf,
    pub chunks: usize,
    pub dim: usize,
    pub model: String,
    pub queries: Vec<String>,
    pub query_vectors: Vec<Vec<f32>>,
}

pub struct ChunkRecord {
    pub id: String,
    pub title: String,
    pub text: String,
}

impl Corpus {
    /// Opens `<dir>/corpus-v3-<n>`, generating it first when it is missing or incomplete.
    pub fn ensure(
        dir: &Path,
        collections: &[PathBuf],
        n: usize,
        embedder: &dyn Embedder,
    ) -> Result<Corpus> {
        let out = dir.join(format!("corpus-v3-{n}"));
        if !out.join("meta.json").exists() {
            generate(&out, dir, collections, n, embedder)
                .with_context(|| format!("generating {}", out.display()))?;
        }
        Corpus::open(&out)
    }

    pub fn open(dir: &Path) -> Result<Corpus> {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?;
        let field = |k: &str| {
            meta[k]
                .as_u64()
                .with_context(|| format!("{}: field {k}", dir.join("meta.json").display()))
        };
        let (chunks, dim) = (field("chunks")? as usize, field("dim")? as usize);
        let mut queries = Vec::new();
        for line in BufReader::new(std::fs::File::open(dir.join("queries.jsonl"))?).lines() {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            queries.push(v["text"].as_str().unwrap_or_default().to_string());
        }
        let query_vectors = read_f32_rows(&dir.join("query_vectors.f32"), dim)?;
        if query_vectors.len() != queries.len() {
            bail!("{}: query vectors do not match queries", dir.display());
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            chunks,
            dim,
            model: meta["model"].as_str().unwrap_or_default().to_string(),
            queries,
            query_vectors,
        })
    }

    /// Streams the chunks with their vectors, in file order.
    pub fn for_each_chunk(
        &self,
        mut f: impl FnMut(ChunkRecord, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        let lines = BufReader::new(std::fs::File::open(self.dir.join("chunks.jsonl"))?).lines();
        let mut vectors = BufReader::new(std::fs::File::open(self.dir.join("vectors.f32"))?);
        let mut buf = vec![0u8; self.dim * 4];
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            std::io::Read::read_exact(&mut vectors, &mut buf)?;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            f(
                ChunkRecord {
                    id: s("id"),
                    title: s("title"),
                    text: s("text"),
                },
                buf.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )?;
        }
        Ok(())
    }

    /// All chunk vectors, row-major (for brute-force ground truth).
    pub fn vectors(&self) -> Result<Vec<Vec<f32>>> {
        read_f32_rows(&self.dir.join("vectors.f32"), self.dim)
    }
}

fn read_f32_rows(path: &Path, dim: usize) -> Result<Vec<Vec<f32>>> {
    let raw = std::fs::read(path).with_context(|| path.display().to_string())?;
    Ok(raw
        .chunks_exact(dim * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

fn write_f32_rows(w: &mut impl Write, rows: &[Vec<f32>]) -> Result<()> {
    for row in rows {
        for x in row {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

fn generate(
    out: &Path,
    cache: &Path,
    collections: &[PathBuf],
    n: usize,
    embedder: &dyn Embedder,
) -> Result<()> {
    let dim = embedder.spec().dim;
    let mut docs = Vec::new();
    let mut base = Vec::new();
    for collection in collections {
        let these: Vec<_> =
            SourceReader::open(&[collection.join("corpus.jsonl")], Some(Format::BeirJsonl))?
                .documents()
                .collect::<Result<_, _>>()?;
        // The documents' real-model vectors, embedded once for every corpus size.
        let cached = cache.join(format!("{}-doc-vectors.f32", collection_name(collection)));
        let vectors = if cached.exists() {
            read_f32_rows(&cached, dim)?
        } else {
            eprintln!(
                "embedding {} documents of {} once (cached in {})",
                these.len(),
                collection.display(),
                cached.display()
            );
            let inputs: Vec<String> = these
                .iter()
                .map(|d| embedding_input(&d.title, &d.text))
                .collect();
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let v = embedder.embed_batch(&refs)?;
            std::fs::create_dir_all(cache)?;
            let tmp = cached.with_extension("tmp");
            write_f32_rows(&mut BufWriter::new(std::fs::File::create(&tmp)?), &v)?;
            std::fs::rename(&tmp, &cached)?;
            v
        };
        if vectors.len() != these.len() {
            bail!("{} is stale: delete it", cached.display());
        }
        // Ids are unique across collections.
        let name = collection_name(collection);
        docs.extend(these.into_iter().map(|mut d| {
            d.id = format!("{name}:{}", d.id);
            d
        }));
        base.extend(vectors);
    }
    std::fs::create_dir_all(out)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut chunks = BufWriter::new(std::fs::File::create(out.join("chunks.jsonl"))?);
    let mut vectors = BufWriter::new(std::fs::File::create(out.join("vectors.f32"))?);
    for i in 0..n {
        let (d, v) = (&docs[i % docs.len()], &base[i % docs.len()]);
        let copy = i / docs.len();
        let id = format!("{}-{copy}", d.id);
        if copy == 0 {
            // The collection itself, unchanged.
            writeln!(
                chunks,
                "{}",
                json!({"id": id, "title": d.title, "text": d.text})
            )?;
            write_f32_rows(&mut vectors, std::slice::from_ref(v))?;
            continue;
        }
        let (a, b) = (
            rng.random_range(0..docs.len()),
            rng.random_range(0..docs.len()),
        );
        let (wa, wb) = (rng.random_range(0.15..0.6), rng.random_range(0.15..0.6));
        let mut words: Vec<&str> = d
            .text
            .split_whitespace()
            .filter(|_| rng.random::<f32>() > 0.3)
            .collect();
        words.extend(docs[a].text.split_whitespace().take(20));
        words.extend(docs[b].text.split_whitespace().take(20));
        writeln!(
            chunks,
            "{}",
            json!({"id": id, "title": d.title, "text": words.join(" ")})
        )?;
        let mut mixed: Vec<f32> = v
            .iter()
            .zip(&base[a])
            .zip(&base[b])
            .map(|((x, y), z)| x + wa * y + wb * z + 0.02 * (rng.random::<f32>() - 0.5))
            .collect();
        let norm = mixed
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        mixed.iter_mut().for_each(|x| *x /= norm);
        write_f32_rows(&mut vectors, &[mixed])?;
        if i % 10_000 == 0 {
            eprint!("\rwriting corpus {i}/{n}");
        }
    }
    chunks.flush()?;
    vectors.flush()?;
    // Queries: every collection's queries (SciFact: 809 training + 300 test claims).
    let mut queries = Vec::new();
    for collection in collections {
        for name in ["queries_train.jsonl", "queries.jsonl"] {
            let path = collection.join(name);
            if path.exists() {
                let name = collection_name(collection);
                queries.extend(read_beir_queries(&path)?.into_iter().map(|mut q| {
                    q.id = format!("{name}:{}", q.id);
                    q
                }));
            }
        }
    }
    let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    let qv = embedder.embed_batch(&texts)?;
    let mut qf = BufWriter::new(std::fs::File::create(out.join("queries.jsonl"))?);
    for q in &queries {
        writeln!(qf, "{}", json!({"id": q.id, "text": q.text}))?;
    }
    qf.flush()?;
    write_f32_rows(
        &mut BufWriter::new(std::fs::File::create(out.join("query_vectors.f32"))?),
        &qv,
    )?;
    std::fs::write(
        out.join("meta.json"),
        json!({"chunks": n, "queries": queries.len(), "dim": dim, "model": embedder.spec().id})
            .to_string(),
    )?;
    eprintln!(
        "\rwrote {n} chunks and {} queries to {}",
        queries.len(),
        out.display()
    );
    Ok(())
}

fn collection_name(collection: &Path) -> String {
    collection
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "collection".into())
}
