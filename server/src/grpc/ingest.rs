//! `dartmouth.v1.Ingest`: documents and Shopify catalogs.

use serde_json::Value;
use tonic::{Request, Response, Status};

use super::Grpc;
use crate::error::{ApiError, ApiResult};
use crate::proto as pb;
use crate::service::{CatalogUpload, IngestDocument, IngestInput};

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
