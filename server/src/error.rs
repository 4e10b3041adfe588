//! One error type for both transports: a stable `code`, a message safe to show, and one table
//! mapping each code to its HTTP status and gRPC code. Internal details are logged with the
//! request id, never returned.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// The one table: code → (HTTP status, gRPC code).
const TABLE: [(Code, StatusCode, tonic::Code); 9] = [
    (
        Code::InvalidArgument,
        StatusCode::BAD_REQUEST,
        tonic::Code::InvalidArgument,
    ),
    (
        Code::Unauthenticated,
        StatusCode::UNAUTHORIZED,
        tonic::Code::Unauthenticated,
    ),
    (
        Code::PermissionDenied,
        StatusCode::FORBIDDEN,
        tonic::Code::PermissionDenied,
    ),
    (Code::NotFound, StatusCode::NOT_FOUND, tonic::Code::NotFound),
    (
        Code::Conflict,
        StatusCode::CONFLICT,
        tonic::Code::AlreadyExists,
    ),
    (
        Code::PayloadTooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        tonic::Code::InvalidArgument,
    ),
    (
        Code::RateLimited,
        StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::ResourceExhausted,
    ),
    (
        Code::Unavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        tonic::Code::Unavailable,
    ),
    (
        Code::Internal,
        StatusCode::INTERNAL_SERVER_ERROR,
        tonic::Code::Internal,
    ),
];

impl Code {
    pub fn http(self) -> StatusCode {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, s, _)| *s)
    }

    pub fn grpc(self) -> tonic::Code {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or(tonic::Code::Internal, |(_, _, g)| *g)
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
    /// For `RateLimited`: when to try again.
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

impl From<dartmouth_domains::Error> for ApiError {
    fn from(e: dartmouth_domains::Error) -> Self {
        use dartmouth_domains::Error as E;
        let code = match &e {
            E::NotFound { .. } => Code::NotFound,
            E::Conflict { .. } => Code::Conflict,
            E::Invalid { .. } => Code::InvalidArgument,
            E::Unauthenticated(_) => Code::Unauthenticated,
            E::Forbidden(_) => Code::PermissionDenied,
            E::Unavailable(_) => Code::Unavailable,
            E::Store(_) | E::Migrate(_) => return ApiError::internal(e),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<dartmouth_engine::Error> for ApiError {
    fn from(e: dartmouth_engine::Error) -> Self {
        use dartmouth_engine::ErrorKind as K;
        let code = match e.kind() {
            K::BadRequest => Code::InvalidArgument,
            K::NotFound => Code::NotFound,
            K::Conflict => Code::Conflict,
            K::Unavailable => {
                tracing::warn!(error = %e, "dependency unavailable");
                return ApiError::new(Code::Unavailable, "a dependency is unavailable (logged)");
            }
            K::Internal => return ApiError::internal(e),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<dartmouth_indexer::Error> for ApiError {
    fn from(e: dartmouth_indexer::Error) -> Self {
        use dartmouth_indexer::Error as E;
        match e {
            E::Engine(e) => e.into(),
            E::Store(e) => e.into(),
            E::Input(m) => ApiError::invalid(m),
            E::BadRecord { place, message } => ApiError::invalid(format!("{place}: {message}")),
            other => ApiError::internal(other),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let mut status = tonic::Status::new(e.code.grpc(), e.message);
        if let Some(after) = e.retry_after
            && let Ok(v) = after.as_secs().max(1).to_string().parse()
        {
            status.metadata_mut().insert("retry-after", v);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_table_once() {
        for (code, _, _) in TABLE {
            assert_eq!(TABLE.iter().filter(|(c, _, _)| *c == code).count(), 1);
        }
        assert_eq!(Code::RateLimited.http(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(Code::RateLimited.grpc(), tonic::Code::ResourceExhausted);
        assert_eq!(Code::NotFound.grpc(), tonic::Code::NotFound);
    }
}
