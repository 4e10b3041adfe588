//! `dartmouth search`: the service's search, its hits printed as text or as the same JSON the
//! HTTP API answers.

use std::io::Write;

use anyhow::{Context, Result};
use dartmouth_indexer::read_beir_queries;
use serde_json::json;

use dartmouth_server::service::{FusionInput, RerankInput, SearchInput, SimilarTo};

use super::{Ctx, SearchArgs, out};

pub(super) fn search_cmd(ctx: &Ctx, args: SearchArgs) -> Result<()> {
    // Checked here so a typo fails before any work, with the option's name.
    args.fusion.fusion().context("--fusion")?;
    let mode = if args.similar_to.is_some() && args.query.is_none() {
        dartmouth_engine::Mode::Vector
    } else {
        args.mode.parse().context("--mode")?
    };
    let input = |query: &str, collapse: bool| SearchInput {
        query: query.to_string(),
        domains: args.domains.clone(),
        k: Some(args.k),
        mode: Some(mode),
        fusion: Some(FusionInput {
            method: Some(args.fusion.fusion.clone()),
            bm25_weight: args.fusion.bm25_weight,
            vector_weight: args.fusion.vector_weight,
            rrf_k: args.fusion.rrf_k,
        }),
        candidates: Some(args.fusion.candidates),
        filter: args.filter.clone(),
        facets: args.facets.clone(),
        collapse,
        parse: args.parse,
        similar_to: args.similar_to.as_ref().map(|id| SimilarTo {
            domain: args.domains[0].clone(),
            doc_id: id.clone(),
        }),
        sort: args.sort.clone(),
        offset: Some(args.offset),
        rerank: (args.rerank.is_some()
            || args.rerank_model.is_some()
            || args.rerank_blend.is_some()
            || args.rerank_timeout_ms.is_some())
        .then(|| RerankInput {
            top_n: args.rerank,
            model: args.rerank_model.clone(),
            blend: args.rerank_blend,
            timeout_ms: args.rerank_timeout_ms,
        }),
        ..SearchInput::default()
    };

    if let Some(path) = &args.queries {
        let mut out = std::io::BufWriter::new(out());
        for q in read_beir_queries(path)? {
            let found = ctx
                .call(ctx.svc.search(&ctx.caller, input(&q.text, true)))
                .with_context(|| format!("query {}", q.id))?;
            writeln!(out, "{}", json!({ "query_id": q.id, "hits": found.hits }))?;
        }
        return Ok(());
    }

    let query = match (&args.query, &args.similar_to, &args.sort) {
        (Some(q), _, _) => q.clone(),
        (None, Some(_), _) | (None, None, Some(_)) => String::new(),
        (None, None, None) => {
            anyhow::bail!("give a query, --similar-to ID, --sort FIELD, or --queries FILE")
        }
    };
    let found = ctx.call(ctx.svc.search(&ctx.caller, input(&query, args.collapse)))?;
    let mut out = out();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&found)?)?;
        return Ok(());
    }
    if let Some(u) = &found.understood {
        writeln!(
            out,
            "understood: {:?}{}",
            u.query,
            u.filter
                .as_deref()
                .map(|f| format!(" where {f}"))
                .unwrap_or_default()
        )?;
    }
    for (field, counts) in &found.facets {
        let values: Vec<String> = counts
            .iter()
            .map(|c| format!("{} ({})", c.value, c.count))
            .collect();
        writeln!(out, "facet {field}: {}", values.join(", "))?;
    }
    if let Some(r) = &found.rerank {
        writeln!(
            out,
            "reranked the top {} by {} in {:.0} ms{}",
            r.top_n,
            r.model,
            r.took_ms,
            r.reason
                .as_deref()
                .map(|why| format!(" — not applied: {why}"))
                .unwrap_or_default()
        )?;
    }
    if found.hits.is_empty() {
        writeln!(out, "no hits")?;
    }
    for (i, h) in found.hits.iter().enumerate() {
        let ranks = [("bm25", h.bm25), ("vector", h.vector)]
            .iter()
            .filter_map(|(n, b)| b.map(|b| format!("{n} #{}", b.rank)))
            .chain(h.rerank.map(|r| format!("fused #{}", r.rank_before)))
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
