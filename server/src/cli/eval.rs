//! `dartmouth eval`: judged collections indexed into evaluation shards of the catalog (no
//! store: they are rebuilt from the collections), run and reported.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use dartmouth_engine::{Catalog, Mode};
use dartmouth_indexer::Progress;

use dartmouth_server::models::{EmbedderKind, ModelArgs, spec_for};

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
        .map(|s| s.parse::<Sweep>().map_err(anyhow::Error::from))
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
            parse: args.parse,
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
        report.write(dir)?;
        eprintln!("wrote {}/report.json, report.md, chart.svg", dir.display());
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
