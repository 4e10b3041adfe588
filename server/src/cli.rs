//! Command-line interface.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use dartmouth_engine::{
    Catalog, DomainSettings, Filter, Fusion, Hit, Mode, SearchRequest, Shard, search,
};
use dartmouth_indexer::{Chunker, Format, IndexJob, Progress, SourceReader, read_beir_queries};
use serde_json::json;

use crate::models::{EmbedderKind, ModelArgs, spec_for};

#[derive(Parser)]
#[command(
    name = "dartmouth",
    version,
    about = "Dartmouth Knowledge: hybrid retrieval over access-controlled knowledge domains"
)]
struct Cli {
    /// Where domains and their indexes live.
    #[arg(
        long,
        env = "DARTMOUTH_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(flatten)]
    models: ModelArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, inspect and delete knowledge domains.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Index files into a domain: BEIR corpus.jsonl, Markdown or text (files or directories).
    Index {
        #[arg(long)]
        domain: String,
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// beir | markdown | text (detected from the file name by default).
        #[arg(long)]
        format: Option<String>,
        /// Documents per atomic write batch.
        #[arg(long, default_value_t = 256)]
        batch_docs: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Search one or more domains.
    Search(SearchArgs),
    /// Evaluate relevance on BEIR-layout collections (indexes each once into `eval-<name>`).
    Eval(EvalArgs),
}

#[derive(clap::Args)]
struct EvalArgs {
    /// BEIR-layout directories (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    #[arg(required = true)]
    datasets: Vec<PathBuf>,
    #[arg(long, default_value = "bm25,vector,hybrid", value_delimiter = ',')]
    modes: Vec<String>,
    /// Write report.json, report.md and chart.svg here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The split to report.
    #[arg(long, default_value = "test")]
    split: String,
    /// Tune fusion on this split over the --sweep grid; report the best on --split.
    #[arg(long)]
    tune_on: Option<String>,
    /// NAME=V1,V2,… for rrf_k, bm25_weight, vector_weight, fusion, candidates, title_boost.
    #[arg(long)]
    sweep: Vec<String>,
    /// A report.json to compare against: exit non-zero when a metric drops by more than --max-drop.
    #[arg(long)]
    baseline: Option<PathBuf>,
    #[arg(long, default_value_t = 0.005)]
    max_drop: f64,
    #[command(flatten)]
    fusion: FusionArgs,
    #[arg(long, default_value_t = 0.0)]
    title_boost: f32,
}

#[derive(Subcommand)]
enum DomainCommand {
    Create {
        name: String,
        /// The embedding model of the domain's vectors.
        #[arg(long, value_enum, default_value = "minilm")]
        embedder: EmbedderKind,
        /// Remote model name (with --embedder openai).
        #[arg(long)]
        openai_model: Option<String>,
        /// Vector dimension (with --embedder openai or fake).
        #[arg(long)]
        dim: Option<usize>,
        /// Token budget of a chunk.
        #[arg(long, default_value_t = 256)]
        chunk_tokens: usize,
        /// Tokens shared by consecutive chunks.
        #[arg(long, default_value_t = 32)]
        chunk_overlap: usize,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Stats {
        name: String,
        #[arg(long)]
        json: bool,
    },
    Delete {
        name: String,
    },
}

/// How the branches are fused; shared by `search` and `eval`.
#[derive(clap::Args)]
struct FusionArgs {
    /// Candidates per branch before fusion.
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// weighted (min-max normalised scores; tuned default) | rrf
    #[arg(long, default_value = "weighted")]
    fusion: String,
    #[arg(long, default_value_t = dartmouth_engine::RRF_K_DEFAULT)]
    rrf_k: f32,
    #[arg(long, default_value_t = 1.0)]
    bm25_weight: f32,
    #[arg(long, default_value_t = 1.0)]
    vector_weight: f32,
}

impl FusionArgs {
    fn fusion(&self) -> Result<Fusion> {
        Ok(match self.fusion.as_str() {
            "rrf" => Fusion::Rrf {
                k: self.rrf_k,
                bm25_weight: self.bm25_weight,
                vector_weight: self.vector_weight,
            },
            "weighted" => Fusion::Weighted {
                bm25_weight: self.bm25_weight,
                vector_weight: self.vector_weight,
            },
            other => bail!("--fusion `{other}` is not one of rrf, weighted"),
        })
    }
}

#[derive(clap::Args)]
struct SearchArgs {
    /// Domain to search; repeat for several.
    #[arg(long = "domain", required = true)]
    domains: Vec<String>,
    /// The query (or use --queries).
    query: Option<String>,
    /// A BEIR queries.jsonl: prints one JSON line per query, hits collapsed to documents.
    #[arg(long, conflicts_with = "query")]
    queries: Option<PathBuf>,
    #[arg(long, default_value = "hybrid")]
    mode: String,
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    #[command(flatten)]
    fusion: FusionArgs,
    /// Filter expression, e.g. 'in_stock = true AND price <= 50'.
    #[arg(long)]
    filter: Option<String>,
    /// Keep only the best chunk per document.
    #[arg(long)]
    collapse: bool,
    #[arg(long)]
    json: bool,
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let catalog = Catalog::open(&cli.data_dir)
        .with_context(|| format!("data directory {}", cli.data_dir.display()))?;
    match cli.command {
        Command::Domain { command } => domain(&catalog, command),
        Command::Index {
            domain,
            paths,
            format,
            batch_docs,
            json,
        } => index(
            &catalog,
            &cli.models,
            &domain,
            &paths,
            format.as_deref(),
            batch_docs,
            json,
        ),
        Command::Search(args) => search_cmd(&catalog, &cli.models, args),
        Command::Eval(args) => eval_cmd(&catalog, &cli.data_dir, &cli.models, args),
    }
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

fn domain(catalog: &Catalog, command: DomainCommand) -> Result<()> {
    match command {
        DomainCommand::Create {
            name,
            embedder,
            openai_model,
            dim,
            chunk_tokens,
            chunk_overlap,
        } => {
            let mut settings =
                DomainSettings::new(spec_for(embedder, openai_model.as_deref(), dim)?);
            settings.chunk_tokens = chunk_tokens;
            settings.chunk_overlap = chunk_overlap;
            catalog.create(&name, settings)?;
            writeln!(out(), "created domain {name}")?;
        }
        DomainCommand::List { json } => {
            let names = catalog.list()?;
            if json {
                writeln!(out(), "{}", json!({ "domains": names }))?;
            } else {
                for n in names {
                    writeln!(out(), "{n}")?;
                }
            }
        }
        DomainCommand::Stats { name, json } => {
            let stats = catalog.get(&name)?.stats();
            if json {
                writeln!(out(), "{}", serde_json::to_string(&stats)?)?;
            } else {
                writeln!(
                    out(),
                    "{}: {} documents, {} chunks, model {} ({} dims), applied sequence {}",
                    stats.domain,
                    stats.documents,
                    stats.chunks,
                    stats.model.id,
                    stats.model.dim,
                    stats.applied_seq
                )?;
            }
        }
        DomainCommand::Delete { name } => {
            catalog.delete(&name)?;
            writeln!(out(), "deleted domain {name}")?;
        }
    }
    Ok(())
}

fn index(
    catalog: &Catalog,
    models: &ModelArgs,
    domain: &str,
    paths: &[PathBuf],
    format: Option<&str>,
    batch_docs: usize,
    json: bool,
) -> Result<()> {
    let shard: Arc<Shard> = catalog.get(domain)?;
    let format: Option<Format> = format.map(str::parse).transpose()?;
    let source = SourceReader::open(paths, format)?;
    let total = count_documents(paths, format);
    let spec = shard.settings().model.clone();
    let embedder = models.embedder_for(&spec)?;
    let settings = shard.settings();
    let chunker = Chunker::new(
        models.sizer_for(&spec)?,
        settings.chunk_tokens,
        settings.chunk_overlap,
    );
    let progress = Progress::new(total, std::io::stderr().is_terminal());
    let summary = IndexJob {
        shard: Arc::clone(&shard),
        embedder: embedder.as_ref(),
        chunker,
        batch_docs,
    }
    .run(source, &progress)?;
    for skipped in summary.skipped.iter().take(10) {
        eprintln!("skipped {skipped}");
    }
    if summary.skipped.len() > 10 {
        eprintln!(
            "… and {} more documents without text",
            summary.skipped.len() - 10
        );
    }
    if json {
        writeln!(out(), "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out(),
            "indexed {} documents as {} chunks into {} in {:.1} s ({:.1} chunks/s; embedding {:.1} s)",
            summary.documents,
            summary.chunks,
            summary.domain,
            summary.seconds,
            summary.chunks_per_second,
            summary.embed_seconds
        )?;
    }
    Ok(())
}

/// Counts documents for the progress bar: lines of JSONL files, one per other file.
fn count_documents(paths: &[PathBuf], format: Option<Format>) -> Option<u64> {
    let mut total = 0u64;
    for p in paths {
        if p.is_file() {
            if format.or_else(|| Format::detect(p)) == Some(Format::BeirJsonl) {
                let bytes = std::fs::read(p).ok()?;
                total += bytecount_lines(&bytes);
            } else {
                total += 1;
            }
        } else {
            return None;
        }
    }
    Some(total)
}

fn bytecount_lines(bytes: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .count() as u64
}

fn search_cmd(catalog: &Catalog, models: &ModelArgs, args: SearchArgs) -> Result<()> {
    let shards: Vec<Arc<Shard>> = args
        .domains
        .iter()
        .map(|d| catalog.get(d))
        .collect::<Result<_, _>>()?;
    let shard_refs: Vec<&Shard> = shards.iter().map(Arc::as_ref).collect();
    let mode: Mode = args.mode.parse()?;
    let fusion = args.fusion.fusion()?;
    let filter = args
        .filter
        .as_deref()
        .map(Filter::parse)
        .transpose()
        .context("--filter")?;
    let spec = shards[0].settings().model.clone();
    if let Some(other) = shards.iter().find(|s| s.settings().model != spec) {
        bail!(
            "domains {} and {} use different embedding models; search them separately",
            shards[0].name(),
            other.name()
        );
    }
    let embedder = if mode == Mode::Bm25 {
        None
    } else {
        Some(models.embedder_for(&spec)?)
    };
    let base = |text: &str| {
        let mut r = SearchRequest::new(text);
        r.mode = mode;
        r.k = args.k;
        r.candidates = args.fusion.candidates;
        r.fusion = fusion;
        r.filter = filter.clone();
        r
    };

    if let Some(path) = &args.queries {
        let queries = read_beir_queries(path)?;
        let vectors = match &embedder {
            Some(e) => {
                let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
                Some(e.embed_batch(&texts)?)
            }
            None => None,
        };
        let mut out = std::io::BufWriter::new(out());
        for (i, q) in queries.iter().enumerate() {
            let mut req = base(&q.text);
            req.collapse = true;
            req.vector = vectors.as_ref().map(|v| dartmouth_engine::Embedding {
                model_id: spec.id.clone(),
                values: v[i].clone(),
            });
            let response = search(&shard_refs, &req).with_context(|| format!("query {}", q.id))?;
            let hits: Vec<_> = response.hits.iter().map(hit_json).collect();
            writeln!(out, "{}", json!({ "query_id": q.id, "hits": hits }))?;
        }
        return Ok(());
    }

    let query = args.query.context("give a query, or --queries FILE")?;
    let mut req = base(&query);
    req.collapse = args.collapse;
    if let Some(e) = &embedder {
        req.vector = Some(e.embed_query(&query)?);
    }
    let response = search(&shard_refs, &req)?;
    let mut out = out();
    if args.json {
        let hits: Vec<_> = response.hits.iter().map(hit_json).collect();
        writeln!(
            out,
            "{}",
            json!({ "hits": hits, "filtered_chunks": response.filtered_chunks })
        )?;
        return Ok(());
    }
    if response.hits.is_empty() {
        writeln!(out, "no hits")?;
    }
    for (i, h) in response.hits.iter().enumerate() {
        let ranks = [("bm25", h.bm25), ("vector", h.vector)]
            .iter()
            .filter_map(|(n, b)| b.map(|b| format!("{n} #{}", b.rank)))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            out,
            "{:>2}. {:.4}  {}  [{}/{}]  ({ranks})",
            i + 1,
            h.score,
            h.title,
            h.domain,
            h.chunk_id
        )?;
        let snippet: String = h.text.chars().take(240).collect();
        writeln!(out, "    {}", snippet.replace('\n', " "))?;
    }
    Ok(())
}

fn hit_json(h: &Hit) -> serde_json::Value {
    json!({
        "domain": h.domain,
        "doc_id": h.doc_id,
        "chunk_id": h.chunk_id,
        "score": h.score,
        "title": h.title,
        "text": h.text,
        "url": h.url,
        "heading": h.heading,
        "char_start": h.char_start,
        "char_end": h.char_end,
        "bm25_rank": h.bm25.map(|b| b.rank),
        "bm25_score": h.bm25.map(|b| b.score),
        "vector_rank": h.vector.map(|b| b.rank),
        "vector_score": h.vector.map(|b| b.score),
        "attributes": h.attributes,
        "index_seq": h.index_seq,
    })
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => match run(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{rev}-dirty"),
            _ => rev,
        },
        None => "unknown".into(),
    }
}

fn eval_cmd(
    catalog: &Catalog,
    data_dir: &std::path::Path,
    models: &ModelArgs,
    args: EvalArgs,
) -> Result<()> {
    use dartmouth_eval::{
        EvalOptions, Report, RunConfig, Sweep, evaluate_dataset, load_collection, prepare_domain,
        queries_file, regressions,
    };
    let modes: Vec<Mode> = args
        .modes
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let sweeps: Vec<Sweep> = args
        .sweep
        .iter()
        .map(|s| s.parse::<Sweep>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    if !sweeps.is_empty() && args.tune_on.is_none() {
        bail!("--sweep needs --tune-on SPLIT (tuning on the reported split would overfit it)");
    }
    let options = EvalOptions {
        modes,
        config: RunConfig {
            depth: 100,
            candidates: args.fusion.candidates,
            fusion: args.fusion.fusion()?,
            title_boost: args.title_boost,
        },
        split: args.split.clone(),
        tune_on: args.tune_on.clone(),
        sweeps,
    };
    // Check every dataset's layout before spending minutes on indexing.
    let mut collections = Vec::new();
    for root in &args.datasets {
        collections.push(load_collection(
            root,
            &queries_file(root, &args.split),
            &args.split,
        )?);
    }
    let spec = spec_for(EmbedderKind::Minilm, None, None)?;
    let embedder = models.embedder_for(&spec)?;
    let mut report = Report {
        git_revision: git_revision(),
        model_id: spec.id.clone(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        datasets: Vec::new(),
    };
    for (root, collection) in args.datasets.iter().zip(&collections) {
        let progress = Progress::new(None, std::io::stderr().is_terminal());
        let shard = prepare_domain(
            catalog,
            data_dir,
            collection,
            embedder.as_ref(),
            models.sizer_for(&spec)?,
            &progress,
        )?;
        report
            .datasets
            .push(evaluate_dataset(&shard, root, embedder.as_ref(), &options)?);
    }
    write!(out(), "{}", report.markdown())?;
    if let Some(dir) = &args.out {
        report.write(dir).map_err(anyhow::Error::msg)?;
        eprintln!("wrote {}/report.json, report.md, chart.svg", dir.display());
    }
    if let Some(path) = &args.baseline {
        let baseline =
            std::fs::read(path).with_context(|| format!("baseline {}", path.display()))?;
        let dropped = regressions(&report, &baseline, args.max_drop).map_err(anyhow::Error::msg)?;
        if !dropped.is_empty() {
            for d in &dropped {
                eprintln!("regression: {d}");
            }
            bail!(
                "{} metric(s) dropped more than {} below {}",
                dropped.len(),
                args.max_drop,
                path.display()
            );
        }
        eprintln!(
            "no metric dropped more than {} below {}",
            args.max_drop,
            path.display()
        );
    }
    Ok(())
}
