//! Files, tasks and deletes over gRPC's wire (the HTTP routes are tested in process in
//! `routes/files.rs`, `routes/tasks.rs` and `routes/documents.rs`): a real server on loopback
//! over a real store and shards.

use dartmouth_server::proto::{self as pb, ingest_client::IngestClient};
use serde_json::Value;

use crate::support::*;

#[test]
fn files_a_task_and_deletes_over_grpc() {
    let (dir, data, keys) = setup();
    cli(&data, &["grant", "writer", "scratch", "write"]);
    let s = start(dir, data, &["--rate-limit", "0", "--ip-rate-limit", "0"]);
    let w = keys.writer.as_str();

    // gRPC: the same upload, a task, deletes.
    let rt = runtime();
    rt.block_on(async {
        let mut ingest = IngestClient::new(channel(&s).await);
        let done = ingest
            .upload_files(with_key(
                pb::UploadFilesRequest {
                    domain: "scratch".into(),
                    files: vec![pb::UploadedFile {
                        name: "grpc.md".into(),
                        content: b"# Satellite\n\nSatellite dishes over gRPC.".to_vec(),
                        format: String::new(),
                    }],
                    ..Default::default()
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::upload_files_response::Outcome::SummaryJson(summary)) = done.outcome else {
            panic!("a summary: {done:?}")
        };
        let summary: Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(summary["added"], 1, "{summary}");
        let started = ingest
            .upload_files(with_key(
                pb::UploadFilesRequest {
                    domain: "scratch".into(),
                    files: vec![pb::UploadedFile {
                        name: "later".into(),
                        content: b"Telescope text.".to_vec(),
                        format: "text".into(),
                    }],
                    background: true,
                    ..Default::default()
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::upload_files_response::Outcome::Task(task)) = started.outcome else {
            panic!("a task: {started:?}")
        };
        let mut status = String::new();
        for _ in 0..600 {
            let t = ingest
                .get_task(with_key(
                    pb::TaskRequest {
                        id: task.id.clone(),
                    },
                    Some(w),
                ))
                .await
                .unwrap()
                .into_inner();
            status = t.status;
            if status == "succeeded" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, "succeeded");
        let deleted = ingest
            .delete_documents(with_key(
                pb::DeleteDocumentsRequest {
                    domain: "scratch".into(),
                    ids: vec!["grpc.md".into(), "later".into(), "never".into()],
                    filter: String::new(),
                },
                Some(w),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deleted.deleted, 2);
        let e = ingest
            .delete_documents(with_key(
                pb::DeleteDocumentsRequest {
                    domain: "scratch".into(),
                    ids: vec![],
                    filter: "price >".into(),
                },
                Some(w),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("filter:"), "{}", e.message());
    });
}
