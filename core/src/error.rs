//! The one error type of the domain. Each surface (CLI, OAuth JSON, HTML pages, console forms)
//! maps it to its own form in one place.

use std::fmt;
use std::time::Duration;

/// Any error a failure can be traced back to.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A domain error. `Invalid` and `Conflict` are the caller's to fix and name the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input does not have the right shape or is out of range.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The input clashes with what exists (a duplicate slug, username, email…).
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    /// Something named by the caller does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A protocol request the server declines (the client's to fix or to live with).
    #[error(transparent)]
    Refused(#[from] crate::oauth::Refusal),
    /// The database cannot serve right now (see [`crate::db::is_unavailable`]): the same
    /// request may succeed later, so surfaces answer 503 with `Retry-After`.
    #[error("database unavailable")]
    Unavailable(#[source] sea_orm::DbErr),
    #[error("database error")]
    Database(#[source] sea_orm::DbErr),
    /// A failure the caller cannot fix: what was being done, and why it failed when a lower
    /// layer said so (read the whole chain with [`Error::report`]).
    #[error("{context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Source>,
    },
}

/// How long a client is asked to wait before retrying while the database is unavailable.
pub const RETRY_UNAVAILABLE_AFTER: Duration = Duration::from_secs(5);

/// Every database error is classified here, once: unavailable, or a failure of ours.
impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Database(e)
        }
    }
}

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            field,
            message: message.into(),
        }
    }

    /// A broken invariant, with nothing underneath to blame.
    pub fn internal(context: impl Into<String>) -> Self {
        Self::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// `context` failed because of `source`.
    pub fn internal_from(context: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The form field this error is about, if it is the caller's to fix.
    #[must_use]
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } | Self::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the caller can fix this by changing the input.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Invalid { .. } | Self::Conflict { .. } | Self::NotFound(_)
        )
    }

    /// When the caller should try again, if this failure is temporary (the database is
    /// unavailable).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        matches!(self, Self::Unavailable(_)).then_some(RETRY_UNAVAILABLE_AFTER)
    }

    /// This error with every cause under it, for logs and the terminal.
    #[must_use]
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// An error and its chain of sources, written `outer: inner: innermost`.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = Error::internal_from("cannot write master.key", io);
        assert_eq!(e.to_string(), "cannot write master.key");
        assert_eq!(e.report().to_string(), "cannot write master.key: disk full");
        let db = Error::from(sea_orm::DbErr::Custom("gone".into()));
        assert_eq!(
            db.report().to_string(),
            "database error: Custom Error: gone"
        );
        assert_eq!(Error::internal("no key").report().to_string(), "no key");
    }
}
