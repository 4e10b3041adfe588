//! Bad input that needs a process: a body refused from its announced length before it is
//! read, invalid UTF-8 and bad fields over gRPC's wire; and the server keeps serving. The JSON
//! routes' bad input is tested in process in `routes/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use dartmouth_server::proto::retrieval_client::RetrievalClient;
use dartmouth_server::proto::{self as pb};
use tonic::transport::Channel;

use crate::support::*;

/// Raw bytes over TCP: a request that announces 100 MB is refused without being read.
fn raw_http(addr: &str, head: &str, body_prefix: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body_prefix);
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    (
        String::from_utf8_lossy(&buf[..n]).to_string(),
        started.elapsed(),
    )
}

#[test]
fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let (dir, data, keys) = setup();
    let s = start(dir, data, &["--rate-limit", "0"]);
    let k = Some(keys.reader.as_str());
    // A 100 MB body: refused from its announced length, before it is read.
    let addr = s.http.clone();
    let head = format!(
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        keys.reader,
        100 * 1024 * 1024
    );
    let (reply, took) = raw_http(&addr, &head, &vec![b' '; 64 * 1024]);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"), "{reply}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Invalid UTF-8 in a gRPC string field: INVALID_ARGUMENT, not INTERNAL.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RawSearch {
        #[prost(bytes = "vec", tag = "1")]
        query: Vec<u8>,
    }
    let rt = runtime();
    let status = rt.block_on(async {
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/dartmouth.v1.Retrieval/Search");
        let codec: tonic_prost::ProstCodec<RawSearch, pb::SearchResponse> =
            tonic_prost::ProstCodec::default();
        grpc.unary(
            with_key(
                RawSearch {
                    query: vec![b'a', 0xff, 0xfe],
                },
                k,
            ),
            path,
            codec,
        )
        .await
        .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Bad input to the ingest and admin services: INVALID_ARGUMENT naming the field.
    let (w, a) = (Some(keys.writer.as_str()), Some(keys.admin.as_str()));
    let refusals = rt.block_on(async {
        use dartmouth_server::proto::admin_client::AdminClient;
        use dartmouth_server::proto::ingest_client::IngestClient;
        let channel = Channel::from_shared(s.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut ingest = IngestClient::new(channel.clone());
        let mut admin = AdminClient::new(channel.clone());
        let mut retrieval = RetrievalClient::new(channel);
        let doc = |attributes_json: &str| pb::IngestDocument {
            id: "d".into(),
            title: "D".into(),
            text: "text".into(),
            url: None,
            attributes_json: attributes_json.into(),
        };
        let index = |docs: Vec<pb::IngestDocument>| {
            with_key(
                pb::IndexDocumentsRequest {
                    domain: "help".into(),
                    documents: docs,
                },
                w,
            )
        };
        vec![
            ingest
                .index_documents(index(vec![doc("{"), doc("")]))
                .await
                .map(drop),
            ingest
                .index_documents(index(vec![doc("{}"), doc("[1]")]))
                .await
                .map(drop),
            ingest.index_documents(index(vec![])).await.map(drop),
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: vec![b'{', 0xff],
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: b"{}".to_vec(),
                        format: "xml".into(),
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
            admin
                .grant(with_key(
                    pb::GrantInfo {
                        principal: "reader".into(),
                        domain: "help".into(),
                        role: "owner".into(),
                    },
                    a,
                ))
                .await
                .map(drop),
            admin
                .create_principal(with_key(
                    pb::CreatePrincipalRequest {
                        name: "p".into(),
                        kind: "robot".into(),
                    },
                    a,
                ))
                .await
                .map(drop),
            retrieval
                .get_chunk(with_key(
                    pb::GetChunkRequest {
                        domain: "help".into(),
                        doc_id: "returns.md".into(),
                        idx: 10_000,
                    },
                    k,
                ))
                .await
                .map(drop),
            // Over the 8 MiB limit: tonic refuses it while decoding, before the service.
            ingest
                .upload_catalog(with_key(
                    pb::UploadCatalogRequest {
                        domain: "help".into(),
                        body: vec![b' '; 9 << 20],
                        ..Default::default()
                    },
                    w,
                ))
                .await
                .map(drop),
        ]
    });
    let expected = [
        (tonic::Code::InvalidArgument, "documents[0].attributes_json"),
        (
            tonic::Code::InvalidArgument,
            "documents[1].attributes_json: expected a JSON object",
        ),
        (tonic::Code::InvalidArgument, "documents: send 1 to"),
        (tonic::Code::InvalidArgument, "UTF-8"),
        (tonic::Code::InvalidArgument, "format"),
        (tonic::Code::InvalidArgument, "role: `owner` is not"),
        (tonic::Code::InvalidArgument, "kind: `robot` is not"),
        (tonic::Code::NotFound, "chunk 10000 does not exist"),
        (tonic::Code::OutOfRange, "message length too large"),
    ];
    for (got, (code, names)) in refusals.into_iter().zip(expected) {
        let e = got.unwrap_err();
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(names), "{names}: {}", e.message());
        assert!(
            !e.message().contains("kind: kind") && !e.message().contains("role: role"),
            "{}",
            e.message()
        );
    }

    // Still serving.
    let (status, reply) = call(&s, "POST", "/v1/search", k, Some(r#"{"query":"refund"}"#));
    assert_eq!(status, 200, "{reply}");
}
