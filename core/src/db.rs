//! Database connection (SQLite or PostgreSQL) and migrations.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait as _,
};
use vestibule_migrations::{Migrator, MigratorTrait as _};

use crate::config::{Backend, DatabaseSettings};
use crate::error::Error;

/// Opens the pool. For SQLite the file's directory is created, and every connection gets WAL,
/// foreign keys and a busy timeout, so concurrent writers wait instead of failing.
///
/// # Errors
/// When the directory cannot be created or the database cannot be reached.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, Error> {
    let sqlite_dir = (settings.backend == Backend::Sqlite)
        .then(|| sqlite_file(&settings.url))
        .flatten()
        .and_then(|f| std::path::Path::new(f).parent())
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = sqlite_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal_from(
                format!("cannot create database directory {}", dir.display()),
                e,
            )
        })?;
    }
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(15))
        });
    Database::connect(options)
        .await
        .map_err(|e| Error::internal_from("cannot open the database", e))
}

/// Opens the transaction of a unit of work that writes. On SQLite it takes the write lock at
/// once (`BEGIN IMMEDIATE`), so a concurrent writer waits for it under the busy timeout: a
/// deferred transaction that reads and then writes fails at once with `SQLITE_BUSY` when another
/// connection committed in between, and the busy timeout does not cover that upgrade.
/// PostgreSQL ignores the mode.
///
/// # Errors
/// When the database cannot start a transaction.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Applies every pending migration; running it again changes nothing.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), Error> {
    Migrator::up(db, None)
        .await
        .map_err(|e| Error::internal_from("database migration failed", e))
}

/// The names of the applied migrations, oldest first.
///
/// # Errors
/// When the migrations table cannot be read.
pub async fn applied_migrations(db: &DatabaseConnection) -> Result<Vec<String>, Error> {
    let applied = Migrator::get_applied_migrations(db).await?;
    Ok(applied.iter().map(|m| m.name().to_owned()).collect())
}

/// The file path inside a `sqlite:` URL, if it names a file.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// A migrated SQLite database in a temporary directory, for unit tests; it lives as long as
/// the directory.
#[cfg(test)]
pub(crate) async fn temporary() -> (tempfile::TempDir, DatabaseConnection) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let db = Database::connect(format!("sqlite://{}/t.db?mode=rwc", dir.path().display()))
        .await
        .unwrap_or_else(|e| panic!("temporary database: {e}"));
    migrate(&db)
        .await
        .unwrap_or_else(|e| panic!("migrations: {e}"));
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait as _;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_file("sqlite://data/v.db?mode=rwc"),
            Some("data/v.db")
        );
        assert_eq!(sqlite_file("sqlite:///tmp/v.db"), Some("/tmp/v.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }

    /// A unit of work holds SQLite's write lock from its first statement, so a write on another
    /// connection waits for it rather than slipping in between its read and its write.
    #[tokio::test]
    async fn a_write_transaction_takes_the_sqlite_write_lock_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(2)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_millis(50))
            });
        let db = Database::connect(options).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (n INTEGER)")
            .await
            .unwrap();
        let txn = begin_write(&db).await.unwrap();
        let other = db.execute_unprepared("INSERT INTO t VALUES (1)").await;
        assert!(
            other.is_err(),
            "another connection wrote while a unit of work was open"
        );
        txn.commit().await.unwrap();
        db.execute_unprepared("INSERT INTO t VALUES (2)")
            .await
            .unwrap();
    }
}
