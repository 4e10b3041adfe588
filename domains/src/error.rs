use thiserror::Error;

/// Errors of the domains crate. `NotFound` is also what a caller gets for a domain it may not
/// read: the two are indistinguishable by design.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{what} `{name}` does not exist")]
    NotFound { what: Missing, name: String },
    #[error("{what} `{name}` already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// Something the deployment has not set up (a key to sign delegated tokens).
    #[error("{0}")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// The store did not answer within the store timeout.
    #[error("the store did not answer within {0} ms")]
    StoreTimeout(u128),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// What the domain is doing now forbids this (a model switch running, an earlier
    /// generation kept): the message says what to do.
    #[error("{0}")]
    Busy(String),
    /// The domain serves another embedding model than the one a write was embedded with (it
    /// was switched meanwhile): embed again with `model` (the engine's `ModelSpec` as JSON).
    #[error("domain `{domain}` now embeds with {model}; the write was embedded with `{got}`")]
    ModelChanged {
        domain: String,
        model: serde_json::Value,
        got: String,
    },
    /// A snapshot file that cannot be written or read back (its path, with the line).
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// What was not found. A typed discriminator, not a word: a domain the caller may not read is
/// answered as a missing one, and that choice is made on [`Missing::Domain`] (see
/// [`Error::is_missing_domain`]), where a misspelt string would silently change an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Domain,
    Principal,
    Key,
    ShopConnection,
    Snapshot,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Missing::Domain => "domain",
            Missing::Principal => "principal",
            Missing::Key => "key",
            Missing::ShopConnection => "shop connection",
            Missing::Snapshot => "snapshot",
        })
    }
}

/// The neutral class of an error; transports map it to their codes in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotFound,
    Conflict,
    Unauthenticated,
    Forbidden,
    Unavailable,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } | Error::Busy(_) | Error::ModelChanged { .. } => {
                ErrorKind::Conflict
            }
            Error::Invalid { .. } => ErrorKind::BadRequest,
            Error::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Store(_) | Error::StoreTimeout(_) if self.is_unreachable() => {
                ErrorKind::Unavailable
            }
            Error::Store(_) | Error::StoreTimeout(_) | Error::Migrate(_) => ErrorKind::Internal,
            Error::File { .. } => ErrorKind::BadRequest,
        }
    }

    /// A domain the caller asked for does not exist, or it may not use it (the same thing to
    /// the caller).
    pub fn is_missing_domain(&self) -> bool {
        matches!(
            self,
            Error::NotFound {
                what: Missing::Domain,
                ..
            }
        )
    }

    /// The store could not be reached, or did not answer in time: the call may succeed when
    /// retried (a connection refused, reset or timed out; PostgreSQL shutting down or starting
    /// up). A query the store refused is not this.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::StoreTimeout(_) => true,
            Error::Store(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // Connection exceptions (08…) and operator intervention (57P01–57P05:
                // shutdown, crash, starting up).
                sqlx::Error::Database(d) => d
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            },
            _ => false,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(what: Missing, name: &str) -> Self {
        Error::NotFound {
            what,
            name: crate::names::shown(name),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
