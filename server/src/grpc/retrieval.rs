//! `dartmouth.v1.Retrieval`: search, context, documents and chunks.

use dartmouth_engine::Mode;
use tonic::{Request, Response, Status};

use super::Grpc;
use crate::error::{ApiError, ApiResult};
use crate::proto as pb;
use crate::service::{
    ChunkOut, ContextInput, FusionInput, HitOut, RerankInput, RerankOut, SearchInput, SimilarTo,
};

pub(super) fn mode(field: &str, s: &str) -> ApiResult<Option<Mode>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e: dartmouth_engine::Error| ApiError::invalid(format!("{field}: {e}")))
}

pub(super) fn nonzero(v: u32) -> Option<usize> {
    (v != 0).then_some(v as usize)
}

/// The service's search input from a gRPC request (public for the request-decoder fuzz target).
pub fn search_input(r: pb::SearchRequest) -> ApiResult<SearchInput> {
    Ok(SearchInput {
        mode: mode("mode", &r.mode)?,
        query: r.query,
        domains: r.domains,
        k: nonzero(r.k),
        fusion: r.fusion.map(|f| FusionInput {
            method: (!f.method.is_empty()).then_some(f.method),
            bm25_weight: f.bm25_weight,
            vector_weight: f.vector_weight,
            rrf_k: f.rrf_k,
        }),
        candidates: nonzero(r.candidates),
        filter: (!r.filter.is_empty()).then_some(r.filter),
        facets: r.facets,
        facet_size: nonzero(r.facet_size),
        explain: r.explain,
        min_seq: r.min_seq.into_iter().collect(),
        collapse: r.collapse,
        parse: r.parse,
        vector: (!r.vector.is_empty()).then_some(r.vector),
        similar_to: r.similar_to.map(|l| SimilarTo {
            domain: l.domain,
            doc_id: l.doc_id,
        }),
        sort: (!r.sort.is_empty()).then_some(r.sort),
        offset: nonzero(r.offset),
        rerank: r.rerank.map(rerank_input),
    })
}

pub(super) fn rerank_input(r: pb::Rerank) -> RerankInput {
    RerankInput {
        top_n: r.top_n.map(|n| n as usize),
        model: (!r.model.is_empty()).then_some(r.model),
        blend: r.blend,
        timeout_ms: (r.timeout_ms != 0).then_some(u64::from(r.timeout_ms)),
    }
}

pub(super) fn rerank_info(r: RerankOut) -> pb::RerankInfo {
    pb::RerankInfo {
        model: r.model,
        top_n: r.top_n as u32,
        blend: r.blend,
        applied: r.applied,
        reason: r.reason.unwrap_or_default(),
        took_ms: r.took_ms,
    }
}

/// The service's context input from a gRPC request.
pub fn context_input(r: pb::ContextRequest) -> ApiResult<ContextInput> {
    Ok(ContextInput {
        mode: mode("mode", &r.mode)?,
        query: r.query,
        domains: r.domains,
        max_tokens: nonzero(r.max_tokens),
        filter: (!r.filter.is_empty()).then_some(r.filter),
        min_seq: r.min_seq.into_iter().collect(),
        parse: r.parse,
        rerank: r.rerank.map(rerank_input),
    })
}

fn understood(u: dartmouth_catalog::understand::Understood) -> pb::Understood {
    pb::Understood {
        query: u.query,
        filter: u.filter.unwrap_or_default(),
        constraints: u
            .constraints
            .into_iter()
            .map(|c| pb::Constraint {
                text: c.text,
                filter: c.filter,
            })
            .collect(),
    }
}

fn chunk(c: ChunkOut) -> pb::DocumentChunk {
    pb::DocumentChunk {
        chunk_id: c.chunk_id,
        idx: c.idx as u64,
        text: c.text,
        char_start: c.char_start,
        char_end: c.char_end,
        heading: c.heading,
    }
}

fn hit(h: HitOut) -> pb::Hit {
    let branch = |b: Option<dartmouth_engine::BranchHit>| {
        b.map(|b| pb::BranchHit {
            rank: b.rank as u32,
            score: b.score,
        })
    };
    pb::Hit {
        domain: h.domain,
        doc_id: h.doc_id,
        chunk_id: h.chunk_id,
        chunk_idx: h.chunk_idx,
        title: h.title,
        url: h.url,
        heading: h.heading,
        text: h.text,
        snippet: h.snippet,
        char_start: h.char_start,
        char_end: h.char_end,
        score: h.score,
        bm25: branch(h.bm25),
        vector: branch(h.vector),
        model: h.model,
        index_seq: h.index_seq,
        attributes_json: h.attributes.to_string(),
        explain_json: h.explain.map(|e| e.to_string()).unwrap_or_default(),
        rerank: h.rerank.map(|r| pb::RerankScore {
            score: r.score,
            rank_before: r.rank_before as u32,
            score_before: r.score_before,
        }),
    }
}

#[tonic::async_trait]
impl pb::retrieval_server::Retrieval for Grpc {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        self.observe("Search", async {
            let caller = self.caller(&request).await?;
            let input = search_input(request.into_inner())?;
            let out = self.svc.search(&caller, input).await?;
            Ok(pb::SearchResponse {
                hits: out.hits.into_iter().map(hit).collect(),
                total_documents: out.total.documents,
                total_chunks: out.total.chunks,
                facets: out
                    .facets
                    .into_iter()
                    .map(|(field, values)| pb::Facet {
                        field,
                        values: values
                            .into_iter()
                            .map(|v| pb::FacetValue {
                                value_json: v.value.to_string(),
                                count: v.count,
                            })
                            .collect(),
                    })
                    .collect(),
                domains: out.domains,
                took_ms: out.took_ms,
                understood: out.understood.map(understood),
                rerank: out.rerank.map(rerank_info),
            })
        })
        .await
    }

    async fn context(
        &self,
        request: Request<pb::ContextRequest>,
    ) -> Result<Response<pb::ContextResponse>, Status> {
        self.observe("Context", async {
            let caller = self.caller(&request).await?;
            let input = context_input(request.into_inner())?;
            let out = self.svc.context(&caller, input).await?;
            Ok(pb::ContextResponse {
                context: out.context,
                tokens: out.tokens as u32,
                understood: out.understood.map(understood),
                rerank: out.rerank.map(rerank_info),
                passages: out
                    .passages
                    .into_iter()
                    .map(|p| pb::Passage {
                        marker: p.marker as u32,
                        domain: p.domain,
                        doc_id: p.doc_id,
                        chunk_ids: p.chunk_ids,
                        title: p.title,
                        url: p.url,
                        text: p.text,
                        char_start: p.char_start,
                        char_end: p.char_end,
                        score: p.score,
                        tokens: p.tokens as u32,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        self.observe("GetDocument", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let doc = self.svc.document(&caller, &r.domain, &r.doc_id).await?;
            Ok(pb::Document {
                domain: doc.domain,
                doc_id: doc.doc_id,
                title: doc.title,
                url: doc.url,
                attributes_json: doc.attributes.to_string(),
                chunks: doc.chunks.into_iter().map(chunk).collect(),
            })
        })
        .await
    }

    async fn get_chunk(
        &self,
        request: Request<pb::GetChunkRequest>,
    ) -> Result<Response<pb::ChunkResponse>, Status> {
        self.observe("GetChunk", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let idx = usize::try_from(r.idx)
                .map_err(|_| ApiError::invalid(format!("idx: {} is not a chunk number", r.idx)))?;
            let out = self.svc.chunk(&caller, &r.domain, &r.doc_id, idx).await?;
            Ok(pb::ChunkResponse {
                domain: out.domain,
                doc_id: out.doc_id,
                title: out.title,
                url: out.url,
                chunk: Some(chunk(out.chunk)),
            })
        })
        .await
    }
}
