//! `bench embed` and `bench rerank`: a catalogue model through our runner beside a bare ONNX
//! Runtime session on the same tokenized inputs (only tensors in, the output read), so the
//! runner's own cost shows as a ratio; then, for embeddings, the whole index pipeline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use dartmouth_engine::embed::{
    CrossEncoder, ModelCard, ModelKind, OnnxEmbedder, OnnxOptions, Reranker, model_card,
    ort_environment,
};
use dartmouth_engine::{DomainSettings, Embedder, Shard};
use dartmouth_indexer::{
    Chunker, Format, IndexJob, Progress, Sizer, SourceReader, embedding_input,
};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::Encoding;

/// Where the models are.
pub struct Place {
    pub models_dir: PathBuf,
    pub ort_library: PathBuf,
}

impl Place {
    pub fn card(&self, id: &str, kind: ModelKind) -> Result<&'static ModelCard> {
        model_card(id)
            .filter(|c| c.kind == kind)
            .with_context(|| format!("`{id}` is not a {kind:?} model of engine/models.toml"))
    }

    pub fn options(&self, card: &ModelCard) -> OnnxOptions {
        OnnxOptions::new(card, self.models_dir.join(&card.id), &self.ort_library)
    }

    pub fn embedder(&self, id: &str) -> Result<OnnxEmbedder> {
        let card = self.card(id, ModelKind::Embedding)?;
        Ok(OnnxEmbedder::load(&self.options(card))?)
    }
}

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// The embedding model (an id of engine/models.toml).
    #[arg(long, default_value = "all-minilm-l6-v2")]
    model: String,
    #[arg(long, default_value = "../shared/datasets/ir/scifact/corpus.jsonl")]
    corpus: PathBuf,
    /// Documents to use.
    #[arg(long, default_value_t = 500)]
    docs: usize,
    /// Sessions, threads per session, inputs per pass (default: the runner's own choice).
    #[arg(long)]
    sessions: Option<usize>,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    /// Skip the index pipeline.
    #[arg(long)]
    no_pipeline: bool,
}

#[derive(clap::Args)]
pub struct RerankArgs {
    /// The reranker (an id of engine/models.toml).
    #[arg(long, default_value = "ms-marco-minilm-l-12-v2")]
    model: String,
    #[arg(long, default_value = "../shared/datasets/ir/scifact")]
    collection: PathBuf,
    /// Candidates reranked per query (comma-separated).
    #[arg(long, default_value = "10,20,50", value_delimiter = ',')]
    top: Vec<usize>,
    /// Queries timed per `top`.
    #[arg(long, default_value_t = 30)]
    queries: usize,
    /// Tokens a (query, passage) pair is cut to (the server's is 320).
    #[arg(long, default_value_t = 320)]
    max_tokens: usize,
}

/// Bare sessions, one per worker: the inputs as tensors, run, the output read.
struct Bare {
    sessions: Vec<Session>,
    token_types: bool,
}

impl Bare {
    fn load(place: &Place, card: &ModelCard, sessions: usize, threads: usize) -> Result<Bare> {
        let env = ort_environment(&place.ort_library)?;
        let onnx = std::fs::read(place.models_dir.join(&card.id).join("model.onnx"))?;
        let mut made = Vec::new();
        for _ in 0..sessions.max(1) {
            made.push(
                Session::builder(&env)?
                    .with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .with_intra_threads(threads.max(1))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .commit_from_memory(&onnx)?,
            );
        }
        let token_types = made[0]
            .inputs()
            .iter()
            .any(|i| i.name() == "token_type_ids");
        Ok(Bare {
            sessions: made,
            token_types,
        })
    }

    /// Runs every batch, spread over the sessions; returns seconds.
    fn run(&mut self, batches: &[Vec<&Encoding>]) -> Result<f64> {
        let token_types = self.token_types;
        let next = AtomicUsize::new(0);
        let t = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = self
                .sessions
                .iter_mut()
                .map(|session| {
                    let next = &next;
                    s.spawn(move || -> Result<()> {
                        while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let cols = batch.iter().map(|e| e.len()).max().unwrap_or(1);
                            let mut ids = vec![0i64; batch.len() * cols];
                            let mut mask = vec![0i64; batch.len() * cols];
                            let mut types = vec![0i64; batch.len() * cols];
                            for (r, e) in batch.iter().enumerate() {
                                for (j, id) in e.get_ids().iter().enumerate() {
                                    ids[r * cols + j] = i64::from(*id);
                                    mask[r * cols + j] = 1;
                                    types[r * cols + j] = i64::from(e.get_type_ids()[j]);
                                }
                            }
                            let shape = [batch.len() as i64, cols as i64];
                            let mut inputs = ort::inputs![
                                "input_ids" => Tensor::from_array((shape, ids))?,
                                "attention_mask" => Tensor::from_array((shape, mask))?,
                            ];
                            if token_types {
                                inputs.push((
                                    "token_type_ids".into(),
                                    Tensor::from_array((shape, types))?.into(),
                                ));
                            }
                            let out = session.run(inputs)?;
                            let (_, data) = out[0].try_extract_tensor::<f32>()?;
                            std::hint::black_box(data.first());
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a bare session panicked"))??;
            }
            Ok(())
        })?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// The encodings grouped as the runner groups them: longest first, `batch` at a time.
fn batches_of(encodings: &[Encoding], batch: usize) -> Vec<Vec<&Encoding>> {
    let mut sorted: Vec<&Encoding> = encodings.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.len()));
    sorted.chunks(batch.max(1)).map(<[_]>::to_vec).collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub fn embed(place: &Place, args: &EmbedArgs) -> Result<()> {
    let card = place.card(&args.model, ModelKind::Embedding)?;
    let mut options = place.options(card);
    options.sessions = args.sessions.unwrap_or(options.sessions);
    options.intra_threads = args.threads.unwrap_or(options.intra_threads);
    options.batch_size = args.batch.unwrap_or(options.batch_size);
    let effective_batch = if card.quantized {
        1
    } else {
        options.batch_size
    };
    let embedder = OnnxEmbedder::load(&options)?;
    let model_dir = place.models_dir.join(&card.id);
    let settings = DomainSettings::new(embedder.spec().clone());
    let chunker = || -> Result<Chunker> {
        Ok(Chunker::new(
            Sizer::from_model_dir(&model_dir)?,
            settings.chunk_tokens,
            settings.chunk_overlap,
        ))
    };
    let c = chunker()?;
    let source: Vec<_> =
        SourceReader::open(std::slice::from_ref(&args.corpus), Some(Format::BeirJsonl))?
            .documents()
            .take(args.docs)
            .collect::<Result<_, _>>()?;
    let mut inputs = Vec::new();
    for d in &source {
        for ch in c.chunk(&d.title, &d.text, d.format)? {
            inputs.push(embedding_input(&d.title, &ch.text));
        }
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let encodings = embedder.encode_passages(&refs)?;
    let tokens: usize = encodings.iter().map(Encoding::len).sum();
    println!(
        "{}: {} chunks, {:.0} tokens each on average (sessions {}, threads {}, {} per pass)",
        card.id,
        refs.len(),
        tokens as f64 / refs.len() as f64,
        options.sessions,
        options.intra_threads,
        effective_batch
    );
    let groups = batches_of(&encodings, effective_batch);
    let mut bare = Bare::load(place, card, options.sessions, options.intra_threads)?;
    // Three rounds, alternating, each reported by its median.
    let (mut bare_rates, mut ours_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let secs = bare.run(&groups)?;
        bare_rates.push(refs.len() as f64 / secs);
        let t = Instant::now();
        for batch in refs.chunks(256) {
            embedder.embed_batch(batch)?;
        }
        ours_rates.push(refs.len() as f64 / t.elapsed().as_secs_f64());
    }
    let (bare_rate, ours) = (median(bare_rates), median(ours_rates));
    println!("bare ONNX Runtime session: {bare_rate:.1} chunks/s (median of 3)");
    println!(
        "our embedder (tokenize, run, pool, normalise): {ours:.1} chunks/s = {:.3} of bare",
        ours / bare_rate
    );
    let queries = dartmouth_indexer::read_beir_queries(
        &args
            .corpus
            .parent()
            .unwrap_or(Path::new("."))
            .join("queries.jsonl"),
    )
    .unwrap_or_default();
    if !queries.is_empty() {
        let mut times = Vec::new();
        for q in queries.iter().take(200) {
            let t = Instant::now();
            embedder.embed_query(&q.text)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "query embedding: p50 {:.2} ms, p99 {:.2} ms over {} queries",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.len()
        );
    }
    if args.no_pipeline {
        return Ok(());
    }
    let tmp = std::env::temp_dir().join(format!("dk-bench-{}", std::process::id()));
    let shard = Arc::new(Shard::create(&tmp, "bench", settings.clone())?);
    let subset = tmp.with_extension("jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&args.corpus)?
        .lines()
        .take(args.docs)
        .map(str::to_string)
        .collect();
    std::fs::write(&subset, lines.join("\n"))?;
    let summary = IndexJob {
        sink: shard,
        embedder: &embedder,
        chunker: chunker()?,
        batch_docs: 256,
        stop_on_error: true,
        full_sync: false,
    }
    .run(
        SourceReader::open(std::slice::from_ref(&subset), None)?,
        &Progress::hidden(),
    )?;
    println!(
        "index pipeline: {} chunks in {:.1} s = {:.1} chunks/s; ratio to our embedder {:.3}",
        summary.chunks,
        summary.seconds,
        summary.chunks_per_second,
        summary.chunks_per_second / ours
    );
    std::fs::remove_dir_all(&tmp).ok();
    std::fs::remove_file(&subset).ok();
    Ok(())
}

pub fn rerank(place: &Place, args: &RerankArgs) -> Result<()> {
    let mut card = place.card(&args.model, ModelKind::Reranker)?.clone();
    card.max_tokens = args.max_tokens;
    let options = place.options(&card);
    let encoder = CrossEncoder::load(&options)?;
    let queries = dartmouth_indexer::read_beir_queries(&args.collection.join("queries.jsonl"))?;
    let passages: Vec<String> = SourceReader::open(
        &[args.collection.join("corpus.jsonl")],
        Some(Format::BeirJsonl),
    )?
    .documents()
    .take(2000)
    .map(|d| d.map(|d| embedding_input(&d.title, &d.text)))
    .collect::<Result<_, _>>()?;
    println!(
        "{}: pairs cut to {} tokens, {} sessions of {} thread(s), one pair per pass",
        card.id, args.max_tokens, options.sessions, options.intra_threads
    );
    let mut bare = Bare::load(place, &card, options.sessions, options.intra_threads)?;
    for &top in &args.top {
        let (mut ours, mut bare_ms) = (Vec::new(), Vec::new());
        for (i, q) in queries.iter().take(args.queries).enumerate() {
            let refs: Vec<&str> = (0..top)
                .map(|j| passages[(i * 37 + j * 11) % passages.len()].as_str())
                .collect();
            let t = Instant::now();
            encoder.score(&q.text, &refs, None)?;
            ours.push(t.elapsed().as_secs_f64() * 1e3);
            let encodings = encoder.encode_pairs(&q.text, &refs)?;
            let groups = batches_of(&encodings, 1);
            bare_ms.push(bare.run(&groups)? * 1e3);
        }
        let (p50, b50) = (percentile(&ours, 0.5), percentile(&bare_ms, 0.5));
        println!(
            "top {top:>3}: p50 {p50:.0} ms, p99 {:.0} ms; bare session p50 {b50:.0} ms (ours = {:.3} of bare's throughput)",
            percentile(&ours, 0.99),
            b50 / p50
        );
    }
    Ok(())
}
