use std::path::PathBuf;

/// The neutral class of an error; transports map it to their own codes in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something unusable.
    BadRequest,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    Conflict,
    /// A dependency (model runtime, disk) is not usable right now.
    Unavailable,
    /// A bug or a corrupted file: logged, never shown in detail.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("domain `{0}` not found")]
    DomainNotFound(String),
    #[error("domain `{0}` already exists")]
    DomainExists(String),
    #[error(
        "embedding model mismatch: the domain uses `{expected}`, the vector comes from `{got}`"
    )]
    ModelMismatch { expected: String, got: String },
    #[error("vector dimension mismatch in {place}: expected {expected}, got {got}")]
    DimensionMismatch {
        place: String,
        expected: usize,
        got: usize,
    },
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error("embedding model unavailable: {0}")]
    ModelUnavailable(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt shard file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_)
            | Error::ModelMismatch { .. }
            | Error::DimensionMismatch { .. } => ErrorKind::BadRequest,
            Error::DomainNotFound(_) => ErrorKind::NotFound,
            Error::DomainExists(_) => ErrorKind::Conflict,
            Error::ModelUnavailable(_) => ErrorKind::Unavailable,
            Error::Embedding(_) | Error::Io { .. } | Error::Corrupt { .. } | Error::Index(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
