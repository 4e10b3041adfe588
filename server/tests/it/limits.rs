//! One rate-limit budget per principal across HTTP and gRPC.

use dartmouth_server::proto::{self as pb};

use crate::support::*;

#[test]
fn one_rate_limit_budget_across_http_and_grpc() {
    let (dir, data, keys) = setup();
    let s = start(dir, data, &["--rate-limit", "1", "--rate-burst", "2"]);
    let body = r#"{"query":"refund","domains":["help"],"mode":"bm25"}"#;
    let k = Some(keys.reader.as_str());
    assert_eq!(call(&s, "POST", "/v1/search", k, Some(body)).0, 200);
    assert_eq!(call(&s, "POST", "/v1/search", k, Some(body)).0, 200);
    // The budget is spent: gRPC is refused too.
    let rt = runtime();
    let status = rt.block_on(async {
        grpc_client(&s)
            .await
            .search(with_key(
                pb::SearchRequest {
                    query: "refund".into(),
                    ..Default::default()
                },
                k,
            ))
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let (status, reply, retry) = call_full(&s, "POST", "/v1/search", k, Some(body));
    assert_eq!(status, 429, "{reply}");
    assert_eq!(reply["error"]["code"], "rate_limited");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Another principal has its own budget.
    assert_eq!(
        call(&s, "POST", "/v1/search", Some(&keys.writer), Some(body)).0,
        200
    );
}
