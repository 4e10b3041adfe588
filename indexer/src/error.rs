use std::path::PathBuf;

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
    #[error(transparent)]
    Store(dartmouth_domains::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
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
