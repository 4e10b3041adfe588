use std::path::PathBuf;

pub use dartmouth_engine::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record in a source file is unusable; `place` names the file and line.
    #[error("{place}: {message}")]
    BadRecord { place: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Engine(#[from] dartmouth_engine::Error),
    /// A shop's Admin API refused or failed a request (the shop named, never its token).
    #[error("{message}")]
    Shop { kind: ErrorKind, message: String },
    /// Where the job's batches go failed (the store behind a sink), with the class of failure;
    /// `retry_soon` when the store could not be reached, so the caller may try again shortly.
    #[error("{message}")]
    Sink {
        kind: ErrorKind,
        message: String,
        retry_soon: bool,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The neutral class of the error (transports map it to their codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            // A file the caller named that cannot be read is the caller's to fix.
            Error::BadRecord { .. } | Error::Input(_) | Error::Io { .. } => ErrorKind::BadRequest,
            // The model's tokenizer files are missing or broken.
            Error::Tokenizer(_) => ErrorKind::Unavailable,
            Error::Engine(e) => e.kind(),
            Error::Sink { kind, .. } | Error::Shop { kind, .. } => *kind,
        }
    }

    pub(crate) fn bad(place: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadRecord {
            place: place.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
