//! Request and trace ids: every HTTP request and gRPC call runs in a span carrying its request
//! id (`x-request-id`, or made) and its trace id — a W3C `traceparent`'s when the caller sent one,
//! so the service's log lines join the caller's trace; a new one otherwise. With
//! `DARTMOUTH_LOG_FORMAT=json` every log line is a JSON object with both ids.

use axum::http::HeaderMap;

/// The request id a caller gave (`x-request-id`, 1 to 128 visible ASCII characters, no space:
/// it cannot forge a field of a text log line), or a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| (b'!'..=b'~').contains(&b))
        })
        .map_or_else(new_request_id, str::to_string)
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), when it is
/// one; a new random trace id otherwise (a malformed header is ignored, as the
/// recommendation says).
pub fn trace_id(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

/// The trace id in a `traceparent` value, if it is well formed.
pub fn parse_traceparent(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let [version, trace, parent, flags, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let ok = hex(version, 2)
        && *version != "ff"
        // Version 00 has exactly four fields; later versions may add more.
        && (rest.is_empty() || *version != "00")
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    ok.then(|| (*trace).to_string())
}

/// The span of one gRPC call (tonic's `trace_fn`): its method, request id and trace id.
pub fn grpc_span(req: &axum::http::Request<()>) -> tracing::Span {
    tracing::info_span!(
        "grpc",
        method = %req.uri().path(),
        request_id = %request_id(req.headers()),
        trace_id = %trace_id(req.headers()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_read_as_the_recommendation_says() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            parse_traceparent(&format!("00-{t}-00f067aa0ba902b7-01")).as_deref(),
            Some(t)
        );
        assert_eq!(
            parse_traceparent(&format!("01-{t}-00f067aa0ba902b7-01-extra")).as_deref(),
            Some(t)
        );
        for bad in [
            format!("00-{t}-00f067aa0ba902b7-01-extra"),
            format!("ff-{t}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{t}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", t.to_uppercase()),
            format!("00-{t}-00f067aa0ba902b7"),
            "garbage".to_string(),
        ] {
            assert_eq!(parse_traceparent(&bad), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert("traceparent", "nonsense".parse().unwrap());
        assert_eq!(trace_id(&h).len(), 32);
        // A request id that would add a field to a text log line is replaced.
        h.insert("x-request-id", "a status=200".parse().unwrap());
        assert_ne!(request_id(&h), "a status=200");
        h.insert("x-request-id", "req-1".parse().unwrap());
        assert_eq!(request_id(&h), "req-1");
    }
}
