//! Evaluation's error: what went wrong, named with its place, and its kind.

use std::path::PathBuf;

pub use dartmouth_engine::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a collection's file is unusable; `place` names the file and line or entry.
    #[error("{place}: {message}")]
    Bad { place: String, message: String },
    /// The directory is not a BEIR collection.
    #[error("{0}")]
    Layout(String),
    /// A parameter, sweep or option the caller gave is unusable.
    #[error("{0}")]
    Parameter(String),
    /// The baseline report given for a regression check is unusable.
    #[error("baseline report: {0}")]
    Baseline(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Drawing the chart failed.
    #[error("{path}: {message}")]
    Chart { path: PathBuf, message: String },
    #[error(transparent)]
    Indexer(#[from] dartmouth_indexer::Error),
    #[error(transparent)]
    Engine(#[from] dartmouth_engine::Error),
}

impl Error {
    /// The neutral class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bad { .. } | Error::Layout(_) | Error::Parameter(_) | Error::Baseline(_) => {
                ErrorKind::BadRequest
            }
            // A report directory that cannot be written, a corpus that cannot be read.
            Error::Io { .. } => ErrorKind::Unavailable,
            Error::Chart { .. } => ErrorKind::Internal,
            Error::Indexer(e) => e.kind(),
            Error::Engine(e) => e.kind(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Report, Sweep, checksum, regressions};

    #[test]
    fn every_failure_names_its_input_and_has_a_kind() {
        let e = "rrf_k".parse::<Sweep>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("--sweep `rrf_k`"), "{e}");
        let e = "nope=1".parse::<Sweep>().unwrap_err();
        assert!(e.to_string().contains("unknown parameter"), "{e}");

        let missing = std::path::Path::new("/nonexistent/corpus.jsonl");
        let e = checksum(&[missing]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            e.to_string().starts_with("/nonexistent/corpus.jsonl: "),
            "{e}"
        );

        let report = Report {
            git_revision: String::new(),
            model_id: String::new(),
            created_unix: 0,
            datasets: Vec::new(),
        };
        let e = regressions(&report, b"not json", 0.01).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().starts_with("baseline report: "), "{e}");
    }
}
