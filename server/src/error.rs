//! One error type for both transports: a stable `code`, a message safe to show, and one table
//! mapping each code to its HTTP status and gRPC code. Internal details are logged with the
//! request id, never returned.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;

/// An error's stable code: `invalid_argument` (400), `unauthenticated` (401),
/// `permission_denied` (403), `not_found` (404; also a domain the caller may not read),
/// `conflict` (409), `payload_too_large` (413), `rate_limited` (429, with `Retry-After`),
/// `unavailable` (503, with `Retry-After` when it says when to come back), `internal` (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable code (`invalid_argument`, `not_found`, …) to act on.
    pub code: Code,
    /// What was wrong, naming the input and the place (`k: invalid type…`); safe to show.
    pub message: String,
}

impl Code {
    /// The one table, code → (HTTP status, gRPC code): an exhaustive `match`, so a new code
    /// does not compile until it has both.
    pub fn statuses(self) -> (StatusCode, tonic::Code) {
        match self {
            Code::InvalidArgument => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied),
            Code::NotFound => (StatusCode::NOT_FOUND, tonic::Code::NotFound),
            Code::Conflict => (StatusCode::CONFLICT, tonic::Code::AlreadyExists),
            Code::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::InvalidArgument),
            Code::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::ResourceExhausted,
            ),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable),
            Code::Internal => (StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Internal),
        }
    }

    pub fn http(self) -> StatusCode {
        self.statuses().0
    }

    pub fn grpc(self) -> tonic::Code {
        self.statuses().1
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::Unauthenticated => "unauthenticated",
            Code::PermissionDenied => "permission_denied",
            Code::NotFound => "not_found",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RateLimited => "rate_limited",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// For `RateLimited` and an unreachable store: when to try again.
    pub retry_after: Option<Duration>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// Tells the caller when to try again (`Retry-After`).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// An internal failure: the detail goes to the log, the caller gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(Code::Internal, "internal error (logged)")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// The one map from the neutral kinds of the crates below to codes. (The engine's and the
/// indexer's kinds are a subset of the store's, which the views share: `engine_kind`.)
impl From<dartmouth_views::ErrorKind> for Code {
    fn from(kind: dartmouth_views::ErrorKind) -> Self {
        use dartmouth_views::ErrorKind as K;
        match kind {
            K::BadRequest => Code::InvalidArgument,
            K::NotFound => Code::NotFound,
            K::Conflict => Code::Conflict,
            K::Unauthenticated => Code::Unauthenticated,
            K::Forbidden => Code::PermissionDenied,
            K::Unavailable => Code::Unavailable,
            K::Internal => Code::Internal,
        }
    }
}

impl ApiError {
    /// The store could not be reached (or did not answer in time): 503 with `Retry-After: 1`,
    /// the detail logged.
    fn store_unreachable(detail: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(error = %detail, "store unreachable");
        ApiError::new(
            Code::Unavailable,
            "the store is unreachable: retry shortly (searches still answer)",
        )
        .retry_after(Duration::from_secs(1))
    }

    /// An error of a crate below, by its kind: internal ones are logged and not shown; an
    /// unavailable dependency's detail is logged too (`shown` says whether its own message may
    /// be returned, as the store's "no delegation key is configured" may).
    fn of_kind(code: Code, message: String, unavailable_shown: bool) -> ApiError {
        match code {
            Code::Internal => ApiError::internal(message),
            Code::Unavailable if !unavailable_shown => {
                tracing::warn!(error = %message, "dependency unavailable");
                ApiError::new(Code::Unavailable, "a dependency is unavailable (logged)")
            }
            code => ApiError::new(code, message),
        }
    }
}

impl From<dartmouth_domains::Error> for ApiError {
    fn from(e: dartmouth_domains::Error) -> Self {
        if e.is_unreachable() {
            return ApiError::store_unreachable(&e);
        }
        ApiError::of_kind(e.kind().into(), e.to_string(), true)
    }
}

impl From<dartmouth_engine::Error> for ApiError {
    fn from(e: dartmouth_engine::Error) -> Self {
        let code = dartmouth_views::engine_kind(e.kind()).into();
        ApiError::of_kind(code, e.to_string(), false)
    }
}

impl From<dartmouth_indexer::Error> for ApiError {
    fn from(e: dartmouth_indexer::Error) -> Self {
        match e {
            dartmouth_indexer::Error::Engine(e) => e.into(),
            // A write through the indexing pipeline that met a store outage.
            dartmouth_indexer::Error::Sink {
                retry_soon: true,
                message,
                ..
            } => ApiError::store_unreachable(&message),
            e => {
                let code = dartmouth_views::engine_kind(e.kind()).into();
                ApiError::of_kind(code, e.to_string(), false)
            }
        }
    }
}

impl From<dartmouth_views::Error> for ApiError {
    fn from(e: dartmouth_views::Error) -> Self {
        match e {
            dartmouth_views::Error::Engine(e) => e.into(),
            dartmouth_views::Error::Store(e) => e.into(),
            dartmouth_views::Error::Index(e) => e.into(),
            e => ApiError::of_kind(e.kind().into(), e.to_string(), false),
        }
    }
}

impl ApiError {
    /// The `Retry-After` value (whole seconds, at least 1) of an error that says when to come
    /// back: the one place it is written, for HTTP, `/mcp` and gRPC alike.
    pub fn retry_after_header(&self) -> Option<String> {
        self.retry_after
            .map(|after| after.as_secs().max(1).to_string())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let retry_after = e.retry_after_header();
        let mut status = tonic::Status::new(e.code.grpc(), e.message);
        if let Some(v) = retry_after.and_then(|v| v.parse().ok()) {
            status.metadata_mut().insert("retry-after", v);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that met a store outage answers 503 with `Retry-After: 1`, whether the store's
    /// error came straight up or through the indexing pipeline's sink.
    #[test]
    fn an_unreachable_store_says_when_to_retry_on_every_path() {
        let direct = ApiError::from(dartmouth_domains::Error::StoreTimeout(2000));
        let through_sink = ApiError::from(dartmouth_indexer::Error::Sink {
            kind: dartmouth_engine::ErrorKind::Unavailable,
            message: "store: error communicating with database".into(),
            retry_soon: true,
        });
        for e in [&direct, &through_sink] {
            assert_eq!(e.code, Code::Unavailable, "{e}");
            assert_eq!(e.retry_after_header().as_deref(), Some("1"), "{e}");
        }
        let other = ApiError::from(dartmouth_indexer::Error::Sink {
            kind: dartmouth_engine::ErrorKind::Unavailable,
            message: "disk".into(),
            retry_soon: false,
        });
        assert_eq!(other.retry_after_header(), None);
    }

    /// Every code (the `match` does not compile when one is added without a place here) has
    /// its own HTTP status, and its name is its JSON form.
    #[test]
    fn every_code_has_its_own_status_and_name() {
        let place = |c: Code| match c {
            Code::InvalidArgument => 0,
            Code::Unauthenticated => 1,
            Code::PermissionDenied => 2,
            Code::NotFound => 3,
            Code::Conflict => 4,
            Code::PayloadTooLarge => 5,
            Code::RateLimited => 6,
            Code::Unavailable => 7,
            Code::Internal => 8,
        };
        let all = [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::Conflict,
            Code::PayloadTooLarge,
            Code::RateLimited,
            Code::Unavailable,
            Code::Internal,
        ];
        let mut statuses = std::collections::BTreeSet::new();
        for (i, code) in all.into_iter().enumerate() {
            assert_eq!(place(code), i);
            assert!(
                statuses.insert(code.http().as_u16()),
                "{code:?} shares a status"
            );
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        assert_eq!(Code::RateLimited.grpc(), tonic::Code::ResourceExhausted);
        assert_eq!(Code::NotFound.grpc(), tonic::Code::NotFound);
    }
}
