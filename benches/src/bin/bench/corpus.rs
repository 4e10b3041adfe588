//! The benchmark corpus, written once to plain files so that this program and the comparison
//! script (`benches/compare/compare.py`) measure exactly the same chunks, vectors and queries.
//!
//! Layout of `<dir>/corpus-v2-<chunks>/`:
//! - `chunks.jsonl`: one `{"id","title","text"}` per chunk;
//! - `vectors.f32`: `chunks × dim` little-endian f32, row i belongs to line i of chunks.jsonl;
//! - `queries.jsonl`: one `{"id","text"}` per query;
//! - `query_vectors.f32`: `queries × dim`, embedded by the real model;
//! - `meta.json`: `{"chunks","queries","dim","model"}`, written last (its presence = complete).
//!
//! Chunks are SciFact documents, then copies of them: copy `k ≥ 1` of document `d` keeps 90% of
//! its words and borrows the first 20 words of another random document `j`; its vector is the
//! normalised blend `v_d + 0.35·v_j` of the two real-model vectors plus uniform noise (±0.01 per
//! component). Blending spreads the copies over the space the way distinct passages are spread;
//! noise alone made clusters of near-identical points that no graph index navigates well (ANN
//! recall@10 0.77 at 1M chunks with noise-only copies, against 0.96 at 100k).

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
    /// Opens `<dir>/corpus-v2-<n>`, generating it first when it is missing or incomplete.
    pub fn ensure(
        dir: &Path,
        collection: &Path,
        n: usize,
        embedder: &dyn Embedder,
    ) -> Result<Corpus> {
        let out = dir.join(format!("corpus-v2-{n}"));
        if !out.join("meta.json").exists() {
            generate(&out, dir, collection, n, embedder)
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
    collection: &Path,
    n: usize,
    embedder: &dyn Embedder,
) -> Result<()> {
    let docs: Vec<_> =
        SourceReader::open(&[collection.join("corpus.jsonl")], Some(Format::BeirJsonl))?
            .documents()
            .collect::<Result<_, _>>()?;
    // The documents' real-model vectors, embedded once for every corpus size.
    let cached = cache.join(format!("{}-doc-vectors.f32", collection_name(collection)));
    let dim = embedder.spec().dim;
    let base = if cached.exists() {
        read_f32_rows(&cached, dim)?
    } else {
        eprintln!(
            "embedding {} documents once (cached in {})",
            docs.len(),
            cached.display()
        );
        let inputs: Vec<String> = docs
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
    if base.len() != docs.len() {
        bail!("{} is stale: delete it", cached.display());
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
        let j = rng.random_range(0..docs.len());
        let mut words: Vec<&str> = d
            .text
            .split_whitespace()
            .filter(|_| rng.random::<f32>() > 0.1)
            .collect();
        words.extend(docs[j].text.split_whitespace().take(20));
        writeln!(
            chunks,
            "{}",
            json!({"id": id, "title": d.title, "text": words.join(" ")})
        )?;
        let mut mixed: Vec<f32> = v
            .iter()
            .zip(&base[j])
            .map(|(a, b)| a + 0.35 * b + 0.02 * (rng.random::<f32>() - 0.5))
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
    // Queries: the collection's training and test queries (SciFact: 809 + 300 claims).
    let mut queries = Vec::new();
    for name in ["queries_train.jsonl", "queries.jsonl"] {
        let path = collection.join(name);
        if path.exists() {
            queries.extend(read_beir_queries(&path)?);
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
