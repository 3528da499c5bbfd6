//! Business rules. Each module owns the reads and writes of one part of the domain; handlers
//! and the CLI call these and never build queries themselves.

pub mod admins;
pub mod audit;
pub mod bootstrap;
pub mod clients;
pub mod consents;
pub mod device_grants;
pub mod keys;
pub mod tokens;
pub mod users;
pub mod workspaces;

use sea_orm::{DbErr, SqlErr};

use crate::error::Error;

/// Turns a unique-constraint violation (a lost race against a concurrent insert) into the
/// same conflict the pre-check reports.
pub(crate) fn map_unique(err: DbErr, field: &'static str, message: impl Into<String>) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::conflict(field, message),
        _ => Error::Database(err),
    }
}
