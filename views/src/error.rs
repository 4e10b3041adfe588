use dartmouth_engine::ErrorKind as EngineKind;

/// What went wrong between the store and the shards. Every variant has a [`ErrorKind`]; the
/// server maps kinds, never messages, to transport codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] dartmouth_engine::Error),
    #[error(transparent)]
    Store(#[from] dartmouth_domains::Error),
    #[error(transparent)]
    Index(#[from] dartmouth_indexer::Error),
    /// A document refused before the store's transaction; `place` names where it came from.
    #[error("{place}: {message}")]
    BadDocument { place: String, message: String },
    /// The caller's request cannot be served as asked (two models in one search, say).
    #[error("{0}")]
    Input(String),
    /// A stored document or setting the code cannot read (the store was written around it).
    #[error("{0}")]
    Unreadable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The neutral classes of every error the views can meet: the store's, whose classes include
/// the engine's and add the access ones.
pub use dartmouth_domains::ErrorKind;

/// The engine's (and so the indexer's) class of an error, among the store's.
pub fn engine_kind(k: EngineKind) -> ErrorKind {
    match k {
        EngineKind::BadRequest => ErrorKind::BadRequest,
        EngineKind::NotFound => ErrorKind::NotFound,
        EngineKind::Conflict => ErrorKind::Conflict,
        EngineKind::Unavailable => ErrorKind::Unavailable,
        EngineKind::Internal => ErrorKind::Internal,
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => engine_kind(e.kind()),
            Error::Store(e) => e.kind(),
            Error::Index(e) => engine_kind(e.kind()),
            Error::BadDocument { .. } | Error::Input(_) => ErrorKind::BadRequest,
            Error::Unreadable(_) => ErrorKind::Internal,
        }
    }

    /// This error as an indexing sink's failure (the job reports it with its kind).
    pub(crate) fn into_sink(self) -> dartmouth_indexer::Error {
        match self {
            Error::Index(e) => e,
            Error::Engine(e) => e.into(),
            Error::BadDocument { place, message } => {
                dartmouth_indexer::Error::BadRecord { place, message }
            }
            other => {
                let kind = match other.kind() {
                    ErrorKind::BadRequest => EngineKind::BadRequest,
                    ErrorKind::NotFound => EngineKind::NotFound,
                    ErrorKind::Conflict => EngineKind::Conflict,
                    ErrorKind::Unavailable => EngineKind::Unavailable,
                    // A sink never authenticates: anything else is a fault of ours.
                    ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::Internal => {
                        EngineKind::Internal
                    }
                };
                dartmouth_indexer::Error::Sink {
                    kind,
                    message: other.to_string(),
                    retry_soon: matches!(&other, Error::Store(e) if e.is_unreachable()),
                }
            }
        }
    }
}
