//! The one error type of the domain. Each surface (CLI, OAuth JSON, HTML pages, console forms)
//! maps it to its own form in one place.

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
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Internal(String),
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
