//! Database connection (SQLite or PostgreSQL) and migrations.

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait as _, sqlx,
};
use vestibule_migrations::{Migrator, MigratorTrait as _};

use crate::config::{Backend, DatabaseSettings};
use crate::error::Error;

/// Opens the pool. For SQLite the file's directory is created, and every connection gets WAL,
/// foreign keys and a busy timeout, so concurrent writers wait instead of failing.
///
/// A request waits for the database at most `database.acquire_timeout`: for a free connection
/// of the pool (opening one included: a PostgreSQL that refuses connections is retried until
/// then, not longer), and on SQLite for another writer's lock (the busy timeout). Past it the
/// request fails with [`Error::Unavailable`], which every surface answers 503 with
/// `Retry-After`, instead of hanging while the database is away. The pool reconnects by itself
/// once the database is back.
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
    let wait = settings.acquire_timeout;
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        // sqlx bounds a connection attempt by the acquire deadline; both say the same.
        .connect_timeout(wait)
        .acquire_timeout(wait)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(wait)
        });
    Database::connect(options)
        .await
        .map_err(|e| Error::internal_from("cannot open the database", e))
}

/// Whether `err` says the database cannot serve right now, rather than that a statement or the
/// data is wrong: no connection could be had (refused, closed, or none free within the acquire
/// timeout), the connection broke, the server is shutting down or starting up
/// (SQLSTATE class 08, 57P01–57P03, 53300), or SQLite stayed locked past its busy timeout or
/// cannot open or read its file. The one classification behind [`Error::Unavailable`].
#[must_use]
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            driver_unavailable(e)
        }
        _ => false,
    }
}

fn driver_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            if let Some(pg) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
            } else if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                e.code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| {
                        matches!(code & 0xff, SQLITE_BUSY | SQLITE_IOERR | SQLITE_CANTOPEN)
                    })
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite's primary result codes of a database that is locked or whose file cannot be used
/// (sqlx reports extended codes; their low byte is the primary one).
const SQLITE_BUSY: i32 = 5;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CANTOPEN: i32 = 14;

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
    use std::time::Duration;

    use super::*;
    use sea_orm::ConnectionTrait as _;

    /// A SQLite database in `dir` with a table `t`, behind a pool of two connections whose
    /// writers give up on a lock after 50 ms.
    async fn two_connections_to_a_table(dir: &std::path::Path) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
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
        db
    }

    /// A database locked past the busy timeout, or a pool that is gone, is unavailable; a
    /// statement the database rejects is not.
    #[tokio::test]
    async fn an_unavailable_database_is_told_apart_from_a_failed_statement() {
        let dir = tempfile::tempdir().unwrap();
        let db = two_connections_to_a_table(dir.path()).await;
        let wrong = db
            .execute_unprepared("INSERT INTO nowhere VALUES (1)")
            .await;
        assert!(matches!(
            Error::from(wrong.unwrap_err()),
            Error::Database(_)
        ));

        let lock = begin_write(&db).await.unwrap();
        let locked = db.execute_unprepared("INSERT INTO t VALUES (1)").await;
        assert!(matches!(
            Error::from(locked.unwrap_err()),
            Error::Unavailable(_)
        ));
        lock.rollback().await.unwrap();

        db.clone().close().await.unwrap();
        let closed = db.execute_unprepared("SELECT 1").await;
        let closed = Error::from(closed.unwrap_err());
        assert!(matches!(closed, Error::Unavailable(_)), "{closed:?}");
        assert!(closed.retry_after().is_some());
    }

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
        let db = two_connections_to_a_table(dir.path()).await;
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
