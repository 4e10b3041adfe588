//! `dartmouth.v1.Ingest`: documents and Shopify catalogs.

use serde_json::Value;
use tonic::{Request, Response, Status};

use super::Grpc;
use crate::error::{ApiError, ApiResult};
use crate::proto as pb;
use crate::service::{
    CatalogUpload, DeleteInput, DeleteOutput, IngestDocument, IngestInput, SyncInput, TaskOut,
    UploadOptions, UploadOutcome, UploadedFile,
};

fn task(t: TaskOut) -> pb::Task {
    pb::Task {
        id: t.id,
        domain: t.domain,
        status: t.status.as_str().to_string(),
        files: t.files,
        created_at: t.created_at,
        started_at: t.started_at.unwrap_or_default(),
        finished_at: t.finished_at.unwrap_or_default(),
        batches: t.batches,
        seq: t.seq,
        summary_json: t
            .summary
            .map(|s| serde_json::to_string(&s).unwrap_or_default())
            .unwrap_or_default(),
        error: t.error.unwrap_or_default(),
    }
}

fn deleted(d: DeleteOutput) -> pb::DeleteDocumentsResponse {
    pb::DeleteDocumentsResponse {
        domain: d.domain,
        deleted: d.deleted as u64,
        seq: d.seq,
    }
}

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

    async fn upload_files(
        &self,
        request: Request<pb::UploadFilesRequest>,
    ) -> Result<Response<pb::UploadFilesResponse>, Status> {
        self.observe("UploadFiles", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let files = r
                .files
                .into_iter()
                .map(|f| UploadedFile {
                    name: f.name,
                    format: (!f.format.is_empty()).then_some(f.format),
                    bytes: f.content,
                })
                .collect();
            let options = UploadOptions {
                format: (!r.format.is_empty()).then_some(r.format),
                full_sync: r.full_sync,
                background: r.background,
                ..UploadOptions::default()
            };
            let outcome = match self
                .svc
                .upload_files(&caller, &r.domain, files, options)
                .await?
            {
                UploadOutcome::Done(summary) => pb::upload_files_response::Outcome::SummaryJson(
                    serde_json::to_string(&summary)
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ),
                UploadOutcome::Started(t) => pb::upload_files_response::Outcome::Task(task(*t)),
            };
            Ok(pb::UploadFilesResponse {
                outcome: Some(outcome),
            })
        })
        .await
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentsResponse>, Status> {
        self.observe("DeleteDocument", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            Ok(deleted(
                self.svc
                    .delete_document(&caller, &r.domain, &r.doc_id)
                    .await?,
            ))
        })
        .await
    }

    async fn delete_documents(
        &self,
        request: Request<pb::DeleteDocumentsRequest>,
    ) -> Result<Response<pb::DeleteDocumentsResponse>, Status> {
        self.observe("DeleteDocuments", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = DeleteInput {
                ids: r.ids,
                filter: (!r.filter.is_empty()).then_some(r.filter),
            };
            Ok(deleted(
                self.svc.delete_documents(&caller, &r.domain, input).await?,
            ))
        })
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::TaskList>, Status> {
        self.observe("ListTasks", async {
            let caller = self.caller(&request).await?;
            Ok(pb::TaskList {
                tasks: self
                    .svc
                    .list_tasks(&caller)
                    .await?
                    .into_iter()
                    .map(task)
                    .collect(),
            })
        })
        .await
    }

    async fn get_task(
        &self,
        request: Request<pb::TaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        self.observe("GetTask", async {
            let caller = self.caller(&request).await?;
            Ok(task(
                self.svc.task(&caller, &request.into_inner().id).await?,
            ))
        })
        .await
    }

    async fn sync_shop(
        &self,
        request: Request<pb::SyncShopRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        self.observe("SyncShop", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            Ok(task(
                self.svc
                    .sync_shop(&caller, &r.domain, SyncInput { full: r.full })
                    .await?,
            ))
        })
        .await
    }

    async fn cancel_task(
        &self,
        request: Request<pb::TaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        self.observe("CancelTask", async {
            let caller = self.caller(&request).await?;
            Ok(task(
                self.svc
                    .cancel_task(&caller, &request.into_inner().id)
                    .await?,
            ))
        })
        .await
    }
}
