//! The gRPC transport (tonic): decode, call the service, encode — the same service layer and the
//! same error table as HTTP. Three services: `Retrieval` (search, context, documents and chunks),
//! `Ingest` (documents and Shopify catalogs) and `Admin` (domains, principals, grants, keys).

use std::sync::Arc;
use std::time::Instant;

use dartmouth_domains::{Caller, Domain, Grant, KeyInfo, Principal, PrincipalKind, Role};
use dartmouth_engine::Mode;
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::error::{ApiError, ApiResult};
use crate::proto as pb;
use crate::service::{
    CatalogUpload, ChunkOut, ContextInput, DelegateInput, DomainInput, FusionInput, GrantInput,
    HitOut, IngestDocument, IngestInput, KeyInput, PrincipalInput, SearchInput, Service,
};

pub struct Grpc {
    pub svc: Arc<Service>,
}

impl Grpc {
    /// The client address's budget first, then the credential.
    async fn caller<T>(&self, request: &Request<T>) -> ApiResult<Caller> {
        self.svc
            .throttle_address(request.remote_addr().map(|a| a.ip()))?;
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::new(
                        crate::error::Code::Unauthenticated,
                        "authorization: not printable ASCII",
                    )
                })
            })
            .transpose()?;
        self.svc.authenticate(header).await
    }

    /// Runs one call with its latency recorded under the method's name.
    async fn observe<T>(
        &self,
        method: &str,
        call: impl Future<Output = ApiResult<T>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let outcome = call.await;
        let code = match &outcome {
            Ok(_) => "OK".to_string(),
            Err(e) => format!("{:?}", e.code.grpc()),
        };
        self.svc
            .metrics
            .request("grpc", method, &code, started.elapsed());
        outcome.map(Response::new).map_err(Status::from)
    }
}

fn mode(field: &str, s: &str) -> ApiResult<Option<Mode>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e: dartmouth_engine::Error| ApiError::invalid(format!("{field}: {e}")))
}

fn nonzero(v: u32) -> Option<usize> {
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
    })
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
    })
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

// ---- ingest ----------------------------------------------------------------------------------

/// One document of a gRPC ingest request, as the service takes it.
pub fn ingest_document(i: usize, d: pb::IngestDocument) -> ApiResult<IngestDocument> {
    let attributes = if d.attributes_json.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<Value>(&d.attributes_json) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::invalid(format!(
                    "documents[{i}].attributes_json: expected a JSON object"
                )));
            }
            Err(e) => {
                return Err(ApiError::invalid(format!(
                    "documents[{i}].attributes_json: {e}"
                )));
            }
        }
    };
    Ok(IngestDocument {
        id: d.id,
        title: d.title,
        text: d.text,
        url: d.url,
        attributes,
    })
}

fn count(n: usize) -> u64 {
    n as u64
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Grpc {
    async fn index_documents(
        &self,
        request: Request<pb::IndexDocumentsRequest>,
    ) -> Result<Response<pb::IndexDocumentsResponse>, Status> {
        self.observe("IndexDocuments", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let documents = r
                .documents
                .into_iter()
                .enumerate()
                .map(|(i, d)| ingest_document(i, d))
                .collect::<ApiResult<Vec<_>>>()?;
            let out = self
                .svc
                .ingest(&caller, &r.domain, IngestInput { documents })
                .await?;
            Ok(pb::IndexDocumentsResponse {
                domain: out.domain,
                documents: count(out.documents),
                chunks: count(out.chunks),
                seq: out.seq,
            })
        })
        .await
    }

    async fn upload_catalog(
        &self,
        request: Request<pb::UploadCatalogRequest>,
    ) -> Result<Response<pb::CatalogSummary>, Status> {
        self.observe("UploadCatalog", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let upload = CatalogUpload {
                format: (!r.format.is_empty()).then_some(r.format),
                full_sync: r.full_sync,
                base_url: (!r.base_url.is_empty()).then_some(r.base_url),
                content_type: None,
            };
            let out = self
                .svc
                .upload_catalog(&caller, &r.domain, upload, r.body)
                .await?;
            Ok(pb::CatalogSummary {
                domain: out.domain,
                format: out
                    .format
                    .map(|f| f.as_str().to_string())
                    .unwrap_or_default(),
                seq: out.seq,
                added: count(out.added),
                updated: count(out.updated),
                unchanged: count(out.unchanged),
                deleted: count(out.deleted),
                failed_count: count(out.failed_count),
                failed: out.failed,
                skipped: out.skipped,
                notes: out.notes,
                chunks: count(out.chunks),
                embedded_chunks: count(out.embedded_chunks),
                stale: count(out.stale),
            })
        })
        .await
    }
}

// ---- administration ----------------------------------------------------------------------------

fn domain_info(d: Domain) -> pb::DomainInfo {
    pb::DomainInfo {
        id: d.id,
        name: d.name,
        description: d.description,
        settings_json: d.settings.to_string(),
        created_at: d.created_at,
    }
}

fn principal_info(p: Principal) -> pb::PrincipalInfo {
    pb::PrincipalInfo {
        id: p.id,
        name: p.name,
        kind: p.kind.as_str().to_string(),
        superuser: p.superuser,
        created_at: p.created_at,
    }
}

fn grant_info(g: Grant) -> pb::GrantInfo {
    pb::GrantInfo {
        principal: g.principal,
        domain: g.domain,
        role: g.role.as_str().to_string(),
    }
}

fn key_info(k: KeyInfo) -> pb::KeyInfo {
    pb::KeyInfo {
        id: k.id,
        principal: k.principal,
        domains: k.domains.map(|names| pb::DomainNames { names }),
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        role: k.role.map(|r| r.as_str().to_string()),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for Grpc {
    async fn list_domains(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::DomainList>, Status> {
        self.observe("ListDomains", async {
            let caller = self.caller(&request).await?;
            let domains = self.svc.list_domains(&caller).await?;
            Ok(pb::DomainList {
                domains: domains.into_iter().map(domain_info).collect(),
            })
        })
        .await
    }

    async fn create_domain(
        &self,
        request: Request<pb::CreateDomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("CreateDomain", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = DomainInput {
                name: r.name,
                description: r.description,
                embedder: (!r.embedder.is_empty()).then_some(r.embedder),
            };
            Ok(domain_info(self.svc.create_domain(&caller, input).await?))
        })
        .await
    }

    async fn delete_domain(
        &self,
        request: Request<pb::DeleteDomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("DeleteDomain", async {
            let caller = self.caller(&request).await?;
            let name = request.into_inner().name;
            Ok(domain_info(self.svc.delete_domain(&caller, &name).await?))
        })
        .await
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::PrincipalList>, Status> {
        self.observe("ListPrincipals", async {
            let caller = self.caller(&request).await?;
            let principals = self.svc.list_principals(&caller).await?;
            Ok(pb::PrincipalList {
                principals: principals.into_iter().map(principal_info).collect(),
            })
        })
        .await
    }

    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::PrincipalInfo>, Status> {
        self.observe("CreatePrincipal", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = PrincipalInput {
                kind: PrincipalKind::parse(&r.kind)?,
                name: r.name,
            };
            Ok(principal_info(
                self.svc.create_principal(&caller, input).await?,
            ))
        })
        .await
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::GrantList>, Status> {
        self.observe("ListGrants", async {
            let caller = self.caller(&request).await?;
            let grants = self.svc.list_grants(&caller).await?;
            Ok(pb::GrantList {
                grants: grants.into_iter().map(grant_info).collect(),
            })
        })
        .await
    }

    async fn grant(
        &self,
        request: Request<pb::GrantInfo>,
    ) -> Result<Response<pb::GrantInfo>, Status> {
        self.observe("Grant", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = GrantInput {
                role: Role::parse(&r.role)?,
                principal: r.principal,
                domain: r.domain,
            };
            Ok(grant_info(self.svc.grant(&caller, input).await?))
        })
        .await
    }

    async fn revoke_grant(
        &self,
        request: Request<pb::RevokeGrantRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("RevokeGrant", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            self.svc
                .revoke_grant(&caller, &r.principal, &r.domain)
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::KeyList>, Status> {
        self.observe("ListKeys", async {
            let caller = self.caller(&request).await?;
            let keys = self.svc.list_keys(&caller).await?;
            Ok(pb::KeyList {
                keys: keys.into_iter().map(key_info).collect(),
            })
        })
        .await
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::NewKey>, Status> {
        self.observe("CreateKey", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = KeyInput {
                principal: r.principal,
                domains: r.domains.map(|d| d.names),
                expires_in: r.expires_in,
                role: (!r.role.is_empty())
                    .then(|| Role::parse(&r.role))
                    .transpose()?,
            };
            let out = self.svc.create_key(&caller, input).await?;
            Ok(pb::NewKey {
                key: Some(key_info(out.key)),
                secret: out.secret,
            })
        })
        .await
    }

    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("RevokeKey", async {
            let caller = self.caller(&request).await?;
            let id = request.into_inner().id;
            self.svc.revoke_key(&caller, &id).await?;
            Ok(pb::Empty {})
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Grpc {
    async fn delegate(
        &self,
        request: Request<pb::DelegateRequest>,
    ) -> Result<Response<pb::DelegatedToken>, Status> {
        self.observe("Delegate", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = DelegateInput {
                end_user: r.end_user,
                domains: r.domains,
                ttl_seconds: r.ttl_seconds,
            };
            let d = self.svc.delegate(&caller, input).await?;
            Ok(pb::DelegatedToken {
                token: d.token,
                expires_at: d.expires_at,
                end_user: d.end_user,
                domains: d.domains,
            })
        })
        .await
    }
}
