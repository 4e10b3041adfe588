//! Search and context packs: limits, access, the result and query-embedding caches, the
//! embedding overlapped with the BM25 branch, snippets, explanations.

use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument as _;

use dartmouth_domains::{Caller, Pass, Role};
use std::collections::HashMap;

use dartmouth_engine::embed::RerankSettings;
use dartmouth_engine::{
    Embedding, FacetCount, Filter, Fusion, Hit, MAX_K, Mode, ModelSpec, SearchRequest,
};
use serde_json::Value;

use dartmouth_indexer::Sizer;
use dartmouth_views::Reader;

use super::{
    ContextInput, ContextOutput, FusionInput, HitOut, PassageOut, ReadMode, RerankOut, SearchInput,
    SearchOutput, Service, SimilarTo, Totals,
};
use crate::cache::Weigh;
use crate::error::{ApiError, ApiResult};

impl Service {
    fn check_search(&self, input: &SearchInput) -> ApiResult<()> {
        let l = &self.limits;
        if input.query.len() > l.max_query_bytes {
            return Err(ApiError::invalid(format!(
                "query: {} bytes; the limit is {}",
                input.query.len(),
                l.max_query_bytes
            )));
        }
        if let Some(k) = input.k
            && (k == 0 || k > l.max_k.min(MAX_K))
        {
            return Err(ApiError::invalid(format!(
                "k: must be 1 to {}, got {k}",
                l.max_k.min(MAX_K)
            )));
        }
        if let Some(f) = &input.filter
            && f.len() > l.max_filter_bytes
        {
            return Err(ApiError::invalid(format!(
                "filter: {} bytes; the limit is {}",
                f.len(),
                l.max_filter_bytes
            )));
        }
        if input.facets.len() > dartmouth_engine::MAX_FACETS {
            return Err(ApiError::invalid(format!(
                "facets: at most {} per request, got {}",
                dartmouth_engine::MAX_FACETS,
                input.facets.len()
            )));
        }
        let max_name = dartmouth_engine::validate::MAX_ATTR_NAME_BYTES;
        if let Some((i, f)) = input
            .facets
            .iter()
            .enumerate()
            .find(|(_, f)| f.len() > max_name)
        {
            return Err(ApiError::invalid(format!(
                "facets[{i}]: {} bytes; an attribute name is at most {max_name}",
                f.len()
            )));
        }
        if let Some(v) = &input.vector {
            if v.is_empty() || v.len() > 8192 {
                return Err(ApiError::invalid(format!(
                    "vector: 1 to 8192 numbers, got {}",
                    v.len()
                )));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(ApiError::invalid(format!(
                    "vector[{i}]: not a finite number"
                )));
            }
        }
        if input.vector.is_some() && input.similar_to.is_some() {
            return Err(ApiError::invalid(
                "vector and similar_to: give one query vector, not both",
            ));
        }
        if (input.vector.is_some() || input.similar_to.is_some()) && input.mode == Some(Mode::Bm25)
        {
            return Err(ApiError::invalid(
                "mode: bm25 uses no vector; use vector or hybrid with `vector` or `similar_to`",
            ));
        }
        if let Some(r) = &input.rerank
            && r.top_n != Some(0)
        {
            if input.sort.as_deref().is_some_and(|s| !s.trim().is_empty()) {
                return Err(ApiError::invalid(
                    "rerank: a search ordered by `sort` is not re-ordered by relevance; leave out one of them",
                ));
            }
            if input.query.trim().is_empty() {
                return Err(ApiError::invalid(
                    "rerank: needs the query text (a reranker compares it with each passage)",
                ));
            }
        }
        if input.min_seq.len() > l.max_domains {
            return Err(ApiError::invalid(format!(
                "min_seq: at most {} domains per request",
                l.max_domains
            )));
        }
        Ok(())
    }

    pub async fn search(
        self: &Arc<Self>,
        caller: &Caller,
        input: SearchInput,
    ) -> ApiResult<SearchOutput> {
        let started = Instant::now();
        self.check_search(&input)?;
        let pass = self.authorize(caller, &input.domains, Role::Read).await?;
        self.read_your_writes(&pass, &input.min_seq).await?;
        let rerank = rerank_settings(&pass, &input)?;
        let reader = self.reader(pass).await?;
        let mut input = input;
        // More like this: the document's own vectors, read with the caller's rights (a
        // document the caller may not read is as missing as one that does not exist).
        let like = match input.similar_to.take() {
            Some(like) => {
                input.vector = Some(self.document_vector(caller, &like, &reader).await?);
                if input.mode.is_none() {
                    input.mode = Some(if input.query.trim().is_empty() {
                        Mode::Vector
                    } else {
                        Mode::Hybrid
                    });
                }
                Some(like)
            }
            None => None,
        };
        if input.vector.is_some() && input.mode.is_none() && input.query.trim().is_empty() {
            input.mode = Some(Mode::Vector);
        }
        // Room for the document's own chunks, left out below.
        let k = input.k.unwrap_or(dartmouth_engine::K_DEFAULT);
        if like.is_some() {
            input.k = Some((k + 32).min(self.limits.max_k.min(MAX_K).max(k)));
        }
        // Understood over the domains the caller may read and searches: the vocabulary says
        // nothing of any other.
        let understood = input.parse.then(|| {
            let (u, filter) = dartmouth_catalog::understand::understand_with_filter(
                &input.query,
                input.filter.as_deref(),
                &reader.vocabulary(),
            );
            input.query = u.query.clone();
            input.filter = filter;
            u
        });
        let mut out = self.search_reader(reader, &input, rerank).await?;
        if let Some(like) = &like {
            out.hits
                .retain(|h| !(h.domain == like.domain && h.doc_id == like.doc_id));
            out.hits.truncate(k);
        }
        out.understood = understood;
        out.took_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    /// The shards a pass opens: as they are on a serving node (its applier tails the
    /// changelog), caught up first for a one-shot command (see `ReadMode`).
    async fn reader(self: &Arc<Self>, pass: Pass) -> ApiResult<Reader> {
        match self.read_mode {
            ReadMode::AsApplied => Ok(self.applier().reader_as_is(&pass)?),
            ReadMode::CaughtUp => self.blocking(move |s| Ok(s.applier().reader(&pass)?)).await,
        }
    }

    async fn search_reader(
        &self,
        reader: Reader,
        input: &SearchInput,
        rerank: Option<RerankSettings>,
    ) -> ApiResult<SearchOutput> {
        // Keyed by the domains' identities, never their names: a domain deleted and created
        // again under its name shares no cache entry with the old one.
        let scope: Vec<String> = reader.applied().map(|(id, _)| id.to_string()).collect();
        let cache_key = format!(
            "{:?}|{}",
            reader.applied().collect::<Vec<_>>(),
            serde_json::to_string(&(
                input.query.as_str(),
                &input.k,
                &input.mode,
                &input.fusion,
                &input.candidates,
                &input.filter,
                &input.facets,
                &input.facet_size,
                input.explain,
                input.collapse,
                &input.vector,
                &input.sort,
                &input.offset,
                &rerank,
            ))
            .map_err(ApiError::internal)?
        );
        if let Some(hit) = self.result_cache.get(&cache_key) {
            self.metrics.cache("result", true);
            return Ok((*hit).clone());
        }
        self.metrics.cache("result", false);
        let mode = input.mode.unwrap_or_default();
        let mut req = SearchRequest::new(input.query.clone());
        req.mode = mode;
        req.k = input.k.unwrap_or(req.k);
        req.candidates = input.candidates.unwrap_or(req.candidates);
        req.collapse = input.collapse;
        req.facets = input.facets.clone();
        req.facet_size = input.facet_size.unwrap_or(req.facet_size);
        req.fusion = fusion_of(input.fusion.as_ref())?;
        req.filter = input
            .filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| Filter::parse(f).map_err(|e| ApiError::invalid(format!("filter: {e}"))))
            .transpose()?;
        req.sort = input
            .sort
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .transpose()?;
        req.offset = input.offset.unwrap_or(req.offset);
        if req.sort.is_some() {
            // One hit per document, in the attribute's order: no query vector is needed.
            req.collapse = true;
        }
        req.validate_parameters()?;
        // A domain default does not apply where reranking makes no sense (a request asking
        // for it there was refused already).
        let rerank = rerank.filter(|_| req.sort.is_none() && !input.query.trim().is_empty());
        let (k, offset) = (req.k, req.offset);
        if let Some(r) = &rerank {
            // The candidates reranked come first; paging applies to the reranked order.
            req.k = (offset + k).max(r.top_n).min(MAX_K.max(offset + k));
            req.offset = 0;
        }
        let reranker = rerank
            .as_ref()
            .map(|r| self.reranker(&r.model))
            .transpose()?;
        let specs: Vec<ModelSpec> = reader.models().into_iter().cloned().collect();
        let models: HashMap<String, String> = reader
            .domains()
            .filter_map(|d| Some((d.to_string(), reader.model_of(d)?.id.clone())))
            .collect();
        // The query is embedded once per model of the domains searched. A hybrid query's
        // embeddings not in the cache are made inside the search, while its BM25 branch runs;
        // the vector branch alone has to wait for them.
        let mut embed_later: Vec<(Arc<dyn dartmouth_engine::Embedder>, String)> = Vec::new();
        if let Some(values) = &input.vector {
            let spec = reader.model()?.cloned();
            if let Some(spec) = spec {
                req.vectors = vec![Embedding {
                    model_id: spec.id.clone(),
                    values: values.clone(),
                }];
            }
        } else if mode != Mode::Bm25 && req.sort.is_none() {
            for spec in &specs {
                let key = embedding_key(&scope, spec, &input.query);
                match self.cached_embedding(&key, spec) {
                    Some(e) => req.vectors.push(e),
                    None if mode == Mode::Hybrid => embed_later.push((self.embedder(spec)?, key)),
                    None => req
                        .vectors
                        .push(self.embed_query(key, spec, &input.query).await?),
                }
            }
        }
        let embedded: Arc<Mutex<Vec<Embedding>>> = Arc::default();
        let explain = input.explain;
        let fusion = req.fusion;
        let query = input.query.clone();
        let spec_out = specs.first().cloned();
        let metrics = self.metrics.clone();
        let (slot, embed_metrics) = (Arc::clone(&embedded), self.metrics.clone());
        let embedders: Vec<_> = embed_later.iter().map(|(e, _)| Arc::clone(e)).collect();
        let rerank_done = rerank.clone();
        // The engine's stages are spans of the request's (`trace`).
        let request_span = tracing::Span::current();
        let out = tokio::task::spawn_blocking(move || -> ApiResult<SearchOutput> {
            let _request = request_span.enter();
            let mut response = if embedders.is_empty() {
                reader.search(&req)?
            } else {
                let text = query.clone();
                let parent = tracing::Span::current();
                reader.search_embedding(
                    &req,
                    Box::new(move || {
                        let _stage = tracing::info_span!(parent: &parent, "embed").entered();
                        let t = Instant::now();
                        let made = embedders
                            .iter()
                            .map(|e| e.embed_query(&text))
                            .collect::<dartmouth_engine::Result<Vec<_>>>()?;
                        embed_metrics.stage("embed", t.elapsed());
                        if let Ok(mut slot) = slot.lock() {
                            *slot = made.clone();
                        }
                        Ok(made)
                    }),
                )?
            };
            metrics.stages(&response.timings);
            let rerank_out = match (&rerank_done, &reranker) {
                (Some(r), Some(reranker)) => {
                    let _stage = tracing::info_span!("rerank", top_n = r.top_n).entered();
                    let t = Instant::now();
                    let deadline = t + std::time::Duration::from_millis(r.timeout_ms);
                    let applied = dartmouth_engine::rerank_hits(
                        reranker.as_ref(),
                        &query,
                        &mut response.hits,
                        r.top_n,
                        r.blend,
                        Some(deadline),
                    )?;
                    metrics.stage("rerank", t.elapsed());
                    Some(RerankOut {
                        model: r.model.clone(),
                        top_n: r.top_n,
                        blend: r.blend,
                        applied,
                        reason: (!applied).then(|| {
                            format!(
                                "the {} ms budget ran out: the hits are in the fused order",
                                r.timeout_ms
                            )
                        }),
                        took_ms: t.elapsed().as_secs_f64() * 1e3,
                    })
                }
                _ => None,
            };
            if rerank_out.is_some() {
                response.hits = response.hits.into_iter().skip(offset).take(k).collect();
            }
            let highlighter = dartmouth_engine::Highlighter::new(&query);
            let hits = response
                .hits
                .into_iter()
                .map(|h| HitOut {
                    snippet: highlighter.snippet_html(&h.text, 240),
                    explain: explain.then(|| explain_hit(&fusion, &h, rerank_done.as_ref())),
                    model: models.get(&h.domain).cloned().unwrap_or_default(),
                    domain: h.domain,
                    doc_id: h.doc_id,
                    chunk_id: h.chunk_id,
                    chunk_idx: h.chunk_idx,
                    title: h.title,
                    url: h.url,
                    heading: h.heading,
                    text: h.text,
                    char_start: h.char_start,
                    char_end: h.char_end,
                    score: h.score,
                    bm25: h.bm25,
                    vector: h.vector,
                    index_seq: h.index_seq,
                    attributes: h.attributes,
                    rerank: h.rerank,
                })
                .collect();
            Ok(SearchOutput {
                hits,
                total: Totals {
                    documents: response.filtered_documents,
                    chunks: response.filtered_chunks,
                },
                facets: response.facets,
                domains: reader.domains().map(str::to_string).collect(),
                understood: None,
                rerank: rerank_out,
                took_ms: 0.0,
                model_spec: spec_out,
            })
        })
        .await
        .map_err(ApiError::internal)??;
        let made = std::mem::take(&mut *embedded.lock().map_err(ApiError::internal)?);
        for ((_, key), e) in embed_later.into_iter().zip(made) {
            self.embed_cache.put(key, e.values);
        }
        // A degraded answer (the reranking budget ran out) is not kept.
        if out.rerank.as_ref().is_none_or(|r| r.applied) {
            self.result_cache.put(cache_key, out.clone());
        }
        Ok(out)
    }

    /// The mean of a document's chunk vectors (normalised), for "more like this"; its domain's
    /// model must be the searched domains'.
    async fn document_vector(
        &self,
        caller: &Caller,
        like: &SimilarTo,
        reader: &Reader,
    ) -> ApiResult<Vec<f32>> {
        let pass = self
            .authorize(caller, std::slice::from_ref(&like.domain), Role::Read)
            .await?;
        let missing = || {
            ApiError::new(
                crate::error::Code::NotFound,
                format!(
                    "similar_to: document `{}` does not exist in domain `{}`",
                    dartmouth_domains::names::shown(&like.doc_id),
                    like.domain
                ),
            )
        };
        let doc = self
            .store
            .document(&pass, &like.domain, &like.doc_id)
            .await?
            .ok_or_else(missing)?;
        let source_model = pass
            .domain(&like.domain)
            .map(dartmouth_views::domain_settings)
            .transpose()?
            .map(|s| s.model.id);
        if let (Some(source), Some(searched)) = (&source_model, reader.model()?)
            && source != &searched.id
        {
            return Err(ApiError::invalid(format!(
                "similar_to: `{}` is embedded with `{source}`, the domains searched with `{}`",
                like.domain, searched.id
            )));
        }
        let dim = doc.chunks.first().map_or(0, |c| c.embedding.len());
        let mut mean = vec![0f32; dim];
        for c in doc.chunks.iter().filter(|c| c.embedding.len() == dim) {
            for (m, x) in mean.iter_mut().zip(&c.embedding) {
                *m += x;
            }
        }
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        if dim == 0 || norm == 0.0 || !norm.is_finite() {
            return Err(missing());
        }
        mean.iter_mut().for_each(|x| *x /= norm);
        Ok(mean)
    }

    /// The query vector cached for this scope, model and text (counted as a hit or a miss).
    fn cached_embedding(&self, key: &str, spec: &ModelSpec) -> Option<Embedding> {
        let hit = self.embed_cache.get(key);
        self.metrics.cache("embedding", hit.is_some());
        hit.map(|v| Embedding {
            model_id: spec.id.clone(),
            values: (*v).clone(),
        })
    }

    /// Embeds a query on the blocking pool and caches it under `key`.
    async fn embed_query(
        &self,
        key: String,
        spec: &ModelSpec,
        query: &str,
    ) -> ApiResult<Embedding> {
        let embedder = self.embedder(spec)?;
        let text = query.to_string();
        let t = Instant::now();
        let e = tokio::task::spawn_blocking(move || embedder.embed_query(&text))
            .instrument(tracing::info_span!("embed"))
            .await
            .map_err(ApiError::internal)??;
        self.metrics.stage("embed", t.elapsed());
        self.embed_cache.put(key, e.values.clone());
        Ok(e)
    }

    pub async fn context(
        self: &Arc<Self>,
        caller: &Caller,
        input: ContextInput,
    ) -> ApiResult<ContextOutput> {
        let budget = input.max_tokens.unwrap_or(1000);
        if budget == 0 || budget > self.limits.max_context_tokens {
            return Err(ApiError::invalid(format!(
                "max_tokens: must be 1 to {}, got {budget}",
                self.limits.max_context_tokens
            )));
        }
        let search = SearchInput {
            query: input.query,
            domains: input.domains,
            k: Some(self.limits.max_k.min(50)),
            mode: input.mode,
            filter: input.filter,
            min_seq: input.min_seq,
            parse: input.parse,
            rerank: input.rerank,
            ..SearchInput::default()
        };
        let found = self.search(caller, search).await?;
        // Measured in the tokens of the domains' model (characters / 4 for a model without a
        // local tokenizer).
        let sizer = match &found.model_spec {
            Some(spec) => self.models.sizer_for(spec).map_err(ApiError::internal)?,
            None => Sizer::ApproxChars,
        };
        let mut out = pack_context(found.hits, budget, &sizer);
        out.understood = found.understood;
        out.rerank = found.rerank;
        Ok(out)
    }
}

fn fusion_of(input: Option<&FusionInput>) -> ApiResult<Fusion> {
    let Some(f) = input else {
        return Ok(Fusion::default());
    };
    let method = f.method.as_deref().unwrap_or(Fusion::default().method());
    Fusion::parse(method, f.rrf_k, f.bm25_weight, f.vector_weight)
        .map_err(|e| ApiError::invalid(format!("fusion.method: {e}")))
}

fn explain_hit(fusion: &Fusion, hit: &Hit, rerank: Option<&RerankSettings>) -> Value {
    let formula = match fusion {
        Fusion::Rrf {
            k,
            bm25_weight,
            vector_weight,
        } => format!(
            "rrf: {bm25_weight} / ({k} + bm25.rank) + {vector_weight} / ({k} + vector.rank); a branch that missed adds 0"
        ),
        Fusion::Weighted {
            bm25_weight,
            vector_weight,
        } => format!(
            "weighted: {bm25_weight} × minmax(bm25.score) + {vector_weight} × minmax(vector.score) over each branch's candidates; a branch that missed adds 0"
        ),
        Fusion::Zscore {
            bm25_weight,
            vector_weight,
        } => format!(
            "zscore: {bm25_weight} × z(bm25.score) + {vector_weight} × z(vector.score), z = (score − mean) / std over each branch's candidates; a branch that missed adds its lowest z"
        ),
    };
    let mut out = serde_json::json!({
        "fusion": fusion,
        "formula": formula,
        "bm25": hit.bm25,
        "vector": hit.vector,
        "score": hit.score,
    });
    if let (Some(r), Some(s)) = (rerank, &hit.rerank) {
        out["fused_score"] = serde_json::json!(s.score_before);
        out["rerank"] = serde_json::json!({
            "model": r.model,
            "score": s.score,
            "rank_before": s.rank_before,
            "score_before": s.score_before,
            "formula": if r.blend >= 1.0 {
                format!("the top {} of the fused order re-ordered by {}'s score of (query, title + passage)", r.top_n, r.model)
            } else {
                format!(
                    "the top {} re-ordered by {} × minmax({} score) + {} × minmax(fused score) over them",
                    r.top_n, r.blend, r.model, 1.0 - r.blend
                )
            },
        });
    }
    out
}

/// The reranking a search gets: the request's, over the searched domains' shared default, over
/// the built-in one; `None` when neither the request nor a shared default asks for it (or the
/// request says `top_n: 0`).
fn rerank_settings(pass: &Pass, input: &SearchInput) -> ApiResult<Option<RerankSettings>> {
    let defaults: Vec<Option<RerankSettings>> = pass
        .domains()
        .iter()
        .map(|d| dartmouth_views::domain_settings(d).map(|s| s.rerank))
        .collect::<Result<_, _>>()?;
    let shared = match defaults.split_first() {
        Some((first, rest)) if rest.iter().all(|d| d == first) => first.clone(),
        _ => None,
    };
    let Some(asked) = &input.rerank else {
        return Ok(shared);
    };
    if asked.top_n == Some(0) {
        return Ok(None);
    }
    let base = shared.unwrap_or_else(default_rerank);
    let settings = RerankSettings {
        model: asked.model.clone().unwrap_or(base.model),
        top_n: asked.top_n.unwrap_or(base.top_n),
        blend: asked.blend.unwrap_or(base.blend),
        timeout_ms: asked.timeout_ms.unwrap_or(base.timeout_ms),
    };
    settings
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string().trim_start_matches("invalid input: ")))?;
    Ok(Some(settings))
}

/// A domain's default reranking from what an admin gave (`top_n: 0`: none), what is left out
/// taken from the built-in one; checked, the reranker among them.
pub(crate) fn rerank_default(
    svc: &Service,
    given: &super::RerankInput,
) -> ApiResult<Option<RerankSettings>> {
    if given.top_n == Some(0) {
        return Ok(None);
    }
    let base = default_rerank();
    let settings = RerankSettings {
        model: given.model.clone().unwrap_or(base.model),
        top_n: given.top_n.unwrap_or(base.top_n),
        blend: given.blend.unwrap_or(base.blend),
        timeout_ms: given.timeout_ms.unwrap_or(base.timeout_ms),
    };
    settings
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string().trim_start_matches("invalid input: ")))?;
    // The reranker must be one this node can run (it is loaded now, as searches will need it).
    svc.reranker(&settings.model)?;
    Ok(Some(settings))
}

/// The built-in reranking: the catalogue's cross-encoder on the top 10, its score blended half
/// and half with the fused score (better than its score alone on every collection measured:
/// README, Measured figures), within a second.
pub(crate) fn default_rerank() -> RerankSettings {
    RerankSettings {
        model: crate::models::DEFAULT_RERANKER.to_string(),
        top_n: 10,
        blend: 0.5,
        timeout_ms: 1000,
    }
}

/// A passage being built: a document's hits, merged in text order when rendered.
struct Building {
    score: f32,
    first: HitOut,
    chunks: Vec<HitOut>,
}

/// The context text and its passages, as `pack_context` returns them.
fn render(docs: &[Building], sizer: &Sizer) -> (String, Vec<PassageOut>) {
    let mut passages = Vec::with_capacity(docs.len());
    let mut context = String::new();
    for (i, b) in docs.iter().enumerate() {
        let mut chunks: Vec<&HitOut> = b.chunks.iter().collect();
        chunks.sort_by_key(|c| (c.char_start, c.char_end));
        let mut text = String::new();
        let mut end = 0u64;
        for c in &chunks {
            if !text.is_empty() {
                if c.char_start > end {
                    text.push_str(" … ");
                } else {
                    // Overlapping neighbours: keep only the part after what is already there.
                    let skip = (end - c.char_start) as usize;
                    text.extend(c.text.chars().skip(skip));
                    end = end.max(c.char_end);
                    continue;
                }
            }
            text.push_str(&c.text);
            end = end.max(c.char_end);
        }
        let marker = i + 1;
        let first = &b.first;
        let mut header = format!(
            "[{marker}] {} — {}/{}",
            first.title, first.domain, first.doc_id
        );
        if let Some(url) = &first.url {
            header.push_str(&format!(" <{url}>"));
        }
        context.push_str(&header);
        context.push('\n');
        context.push_str(&text);
        context.push_str("\n\n");
        passages.push(PassageOut {
            marker,
            domain: first.domain.clone(),
            doc_id: first.doc_id.clone(),
            chunk_ids: chunks.iter().map(|c| c.chunk_id.clone()).collect(),
            title: first.title.clone(),
            url: first.url.clone(),
            tokens: sizer.count(&text),
            char_start: chunks.first().map_or(0, |c| c.char_start),
            char_end: end,
            score: b.score,
            text,
        });
    }
    (context, passages)
}

/// Fills `budget` tokens of the model's own tokenizer (`sizer`) with the best passages: hits in
/// score order, one passage per document (chunks of the same document merged in text order,
/// overlaps removed), each headed by its marker and provenance. Every addition is measured on
/// the rendered context, headers and separators included, so the context never exceeds the
/// budget; when not even the best passage fits, its beginning is cut to fit.
pub fn pack_context(hits: Vec<HitOut>, budget: usize, sizer: &Sizer) -> ContextOutput {
    let fits = |docs: &[Building]| sizer.count(&render(docs, sizer).0) <= budget;
    let best = hits.first().cloned();
    let mut docs: Vec<Building> = Vec::new();
    for hit in hits {
        match docs
            .iter()
            .position(|b| b.first.domain == hit.domain && b.first.doc_id == hit.doc_id)
        {
            Some(at) => {
                // A chunk whose range the passage already covers adds nothing.
                if docs[at]
                    .chunks
                    .iter()
                    .any(|c| c.char_start <= hit.char_start && hit.char_end <= c.char_end)
                {
                    continue;
                }
                docs[at].chunks.push(hit);
                if !fits(&docs) {
                    docs[at].chunks.pop();
                }
            }
            None => {
                docs.push(Building {
                    score: hit.score,
                    first: hit.clone(),
                    chunks: vec![hit],
                });
                if !fits(&docs) {
                    docs.pop();
                }
            }
        }
    }
    if docs.is_empty()
        && let Some(best) = best
    {
        // The longest beginning of the best passage that fits (by characters, then measured).
        let chars: Vec<char> = best.text.chars().collect();
        let cut = |n: usize| {
            let mut hit = best.clone();
            hit.text = chars[..n].iter().collect::<String>() + "…";
            hit.char_end = hit.char_start + n as u64;
            vec![Building {
                score: best.score,
                first: best.clone(),
                chunks: vec![hit],
            }]
        };
        let (mut lo, mut hi) = (0usize, chars.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&cut(mid)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo > 0 {
            docs = cut(lo);
        }
    }
    let (context, passages) = render(&docs, sizer);
    let tokens = sizer.count(&context);
    ContextOutput {
        context,
        passages,
        tokens,
        understood: None,
        rerank: None,
    }
}

/// The query-embedding cache's key: the caller's scope (never shared across scopes), the model
/// and the text.
fn embedding_key(scope: &[String], spec: &ModelSpec, query: &str) -> String {
    format!("{scope:?}|{}|{query}", spec.id)
}

impl Weigh for HitOut {
    fn weight(&self) -> usize {
        size_of::<HitOut>()
            + [
                &self.domain,
                &self.doc_id,
                &self.chunk_id,
                &self.title,
                &self.text,
                &self.snippet,
                &self.model,
            ]
            .iter()
            .map(|s| s.capacity())
            .sum::<usize>()
            + self.url.weight()
            + self.heading.weight()
            + self.attributes.weight()
            + self.explain.as_ref().map_or(0, Weigh::weight)
    }
}

impl Weigh for SearchOutput {
    fn weight(&self) -> usize {
        size_of::<SearchOutput>()
            + self.hits.iter().map(Weigh::weight).sum::<usize>()
            + self
                .facets
                .iter()
                .map(|(name, counts)| {
                    name.capacity()
                        + counts.len() * size_of::<FacetCount>()
                        + counts.iter().map(|c| c.value.weight()).sum::<usize>()
                })
                .sum::<usize>()
            + self.domains.iter().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, idx: u64, text: &str, start: u64, score: f32) -> HitOut {
        HitOut {
            domain: "kb".into(),
            doc_id: doc.into(),
            chunk_id: format!("{doc}#{idx}"),
            chunk_idx: idx,
            title: format!("Title of {doc}"),
            url: Some(format!("https://example.com/{doc}")),
            heading: None,
            text: text.into(),
            snippet: String::new(),
            explain: None,
            char_start: start,
            char_end: start + text.chars().count() as u64,
            score,
            bm25: None,
            vector: None,
            model: String::new(),
            index_seq: 1,
            attributes: Value::Null,
            rerank: None,
        }
    }

    /// At every budget the rendered context — headers, separators and all — stays within it,
    /// `tokens` is its measured size, and a bigger budget never holds less.
    #[test]
    fn a_context_pack_never_exceeds_its_budget() {
        let long = "word ".repeat(60);
        let hits = vec![
            hit("a", 0, &long, 0, 0.9),
            hit("b", 0, "short answer about returns", 0, 0.8),
            hit("a", 2, "a later part of a", 600, 0.7),
            hit("a", 1, &long, 300, 0.6),
            hit("c", 0, &"ünïcödé ".repeat(30), 0, 0.5),
        ];
        let sizer = Sizer::ApproxChars;
        for budget in 1..400 {
            let out = pack_context(hits.clone(), budget, &sizer);
            assert!(out.tokens <= budget, "{budget}: {}", out.tokens);
            assert_eq!(out.tokens, sizer.count(&out.context));
            if budget >= 20 {
                // Something is always there: when no passage fits whole, the best one is cut.
                assert!(!out.passages.is_empty(), "{budget}");
            }
        }
        // Only the long best passage, at a budget below its size: its beginning, cut to fit.
        let cut = pack_context(hits[..1].to_vec(), 30, &sizer);
        assert_eq!(cut.passages.len(), 1);
        assert!(
            cut.passages[0].text.ends_with('…') && cut.tokens <= 30,
            "{cut:?}"
        );
        let all = pack_context(hits, 10_000, &sizer);
        assert_eq!(all.passages.len(), 3);
        assert_eq!(all.passages[0].chunk_ids, ["a#0", "a#1", "a#2"]);
    }
}
