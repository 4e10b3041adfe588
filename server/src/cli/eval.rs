//! `dartmouth eval`: judged collections indexed into evaluation shards of the data directory (no
//! store: they are rebuilt from the collections), run and reported.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dartmouth_engine::{Fusion, Mode, Shards};
use dartmouth_indexer::Progress;

use dartmouth_server::models::{EmbedderKind, Loaded, ModelArgs};

use super::{EvalArgs, out};

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

pub(super) fn eval_cmd(
    shards: &Shards,
    data_dir: &std::path::Path,
    models: &ModelArgs,
    args: EvalArgs,
) -> Result<()> {
    use dartmouth_eval::{
        CachedReranker, EvalOptions, Report, RerankMode, RunConfig, Sweep, evaluate_dataset,
        load_collection, prepare_domain, queries_file, regressions,
    };
    let modes: Vec<Mode> = args
        .modes
        .iter()
        .map(|m| m.parse())
        .collect::<Result<_, _>>()?;
    let sweeps: Vec<Sweep> = args
        .sweep
        .iter()
        .map(|s| s.parse::<Sweep>().map_err(anyhow::Error::from))
        .collect::<Result<_>>()?;
    if !sweeps.is_empty() && args.tune_on.is_none() {
        bail!("--sweep needs --tune-on SPLIT (tuning on the reported split would overfit it)");
    }
    let fusion = args.fusion.fusion().context("--fusion")?;
    let fusions = args
        .compare_fusions
        .iter()
        .map(|spec| compare_fusion(spec, args.fusion.candidates))
        .collect::<Result<Vec<_>>>()?;
    let blends = if args.rerank_blends.is_empty() {
        vec![1.0]
    } else {
        args.rerank_blends.clone()
    };
    let reranks = args
        .reranks
        .iter()
        .flat_map(|&n| blends.iter().map(move |&b| RerankMode::new(n, b)))
        .collect::<Result<Vec<_>, _>>()?;
    let loaded = Loaded::default();
    let reranker = if reranks.is_empty() {
        None
    } else {
        let r = models
            .reranker(&loaded, &args.rerank_model)
            .map_err(|e| anyhow::anyhow!("--rerank-model {}: {e}", args.rerank_model))?;
        let cached = CachedReranker::new(r);
        if let Some(path) = &args.rerank_cache {
            let n = cached.load(path)?;
            eprintln!("reranker memo: {n} scores from {}", path.display());
        }
        Some(Arc::new(cached))
    };
    let mut options = EvalOptions::new(
        modes,
        RunConfig {
            depth: 100,
            candidates: args.fusion.candidates,
            fusion,
            title_boost: args.title_boost,
            parse: args.parse,
        },
        args.split.clone(),
    );
    options.tune_on = args.tune_on.clone();
    options.sweeps = sweeps;
    options.fusions = fusions;
    options.reranks = reranks;
    options.reranker = reranker
        .clone()
        .map(|r| r as Arc<dyn dartmouth_engine::embed::Reranker>);
    options.dump_runs = args.dump_runs.clone();
    // Check every dataset's layout before spending minutes on indexing.
    let mut collections = Vec::new();
    for root in &args.datasets {
        collections.push(load_collection(
            root,
            &queries_file(root, &args.split),
            &args.split,
        )?);
    }
    let mut report = Report {
        git_revision: git_revision(),
        model_id: args.models.join(", "),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        datasets: Vec::new(),
    };
    for model in &args.models {
        let spec = models.spec_for(EmbedderKind::Local, Some(model), None, None)?;
        let embedder = models.embedder_for(&loaded, &spec)?;
        for (root, collection) in args.datasets.iter().zip(&collections) {
            let progress = Progress::new(None, std::io::stderr().is_terminal());
            let t = Instant::now();
            let shard = prepare_domain(
                shards,
                data_dir,
                collection,
                embedder.as_ref(),
                models.sizer_for(&spec)?,
                &progress,
            )?;
            let indexed = t.elapsed().as_secs_f64();
            let before = reranker.as_ref().map(|r| r.counts());
            let mut dataset = evaluate_dataset(&shard, root, embedder.as_ref(), &options)?;
            dataset
                .seconds
                .insert("index (or reuse) the shard".into(), indexed);
            if let (Some(r), Some(before)) = (&reranker, before) {
                let after = r.counts();
                dataset.seconds.insert(
                    "reranker (its pairs, in the rerank rows and dump)".into(),
                    after.seconds - before.seconds,
                );
                if let Some(path) = &args.rerank_cache {
                    r.save(path)?;
                }
                eprintln!(
                    "{} · {model}: reranker scored {} pairs in {:.1} s ({} more from its memo)",
                    dataset.name,
                    after.scored - before.scored,
                    after.seconds - before.seconds,
                    after.reused - before.reused
                );
            }
            eprintln!(
                "{} · {model}: {:.1} s",
                dataset.name,
                t.elapsed().as_secs_f64()
            );
            report.datasets.push(dataset);
        }
    }
    write!(out(), "{}", report.markdown())?;
    if let Some(dir) = &args.out {
        report.write(dir)?;
        eprintln!("wrote {}/report.json, report.md, chart.svg", dir.display());
    }
    if let Some(dir) = &args.dump_runs {
        eprintln!(
            "wrote the candidate lists under {} (<dataset>/<model>/manifest.json)",
            dir.display()
        );
    }
    if let Some(path) = &args.baseline {
        let baseline =
            std::fs::read(path).with_context(|| format!("baseline {}", path.display()))?;
        let dropped = regressions(&report, &baseline, args.max_drop)?;
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

/// `--compare-fusion METHOD[:CANDIDATES]`: the row's variant and its fusion and candidates.
fn compare_fusion(spec: &str, candidates: usize) -> Result<(String, Fusion, usize)> {
    let (method, depth) = match spec.split_once(':') {
        Some((m, c)) => (
            m,
            c.parse::<usize>()
                .ok()
                .filter(|c| (1..=dartmouth_engine::MAX_K).contains(c))
                .with_context(|| {
                    format!(
                        "--compare-fusion `{spec}`: candidates 1 to {}",
                        dartmouth_engine::MAX_K
                    )
                })?,
        ),
        None => (spec, candidates),
    };
    let fusion = Fusion::parse(method, None, None, None)
        .map_err(|e| anyhow::anyhow!("--compare-fusion {e}"))?;
    let variant = if depth == candidates {
        format!("({method})")
    } else {
        format!("({method}, {depth} candidates)")
    };
    Ok((variant, fusion, depth))
}
