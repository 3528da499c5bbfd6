//! A fresh database for the device-grant tests, on SQLite or on the PostgreSQL server the
//! suite runs against.

use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection};
use uuid::Uuid;

/// A fresh database: on the PostgreSQL server named by `VESTIBULE_TEST_DATABASE_URL` when
/// the suite runs there (dropped afterwards), else SQLite in a temporary directory. Grants
/// here belong to no real workspace or client, so foreign keys are left out.
pub(crate) struct TestDb {
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    /// The server's URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime: drop the database from another thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = Database::connect(server.as_str()).await.unwrap();
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = admin.execute_unprepared(&drop).await;
                let _ = admin.close().await;
            });
        })
        .join();
    }
}

pub(crate) async fn database() -> TestDb {
    let server = std::env::var("VESTIBULE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let Some(server) = server else {
        let dir = tempfile::tempdir().unwrap();
        let mut options =
            ConnectOptions::new(format!("sqlite://{}/t.db?mode=rwc", dir.path().display()));
        options.map_sqlx_sqlite_opts(|o| o.foreign_keys(false));
        let db = Database::connect(options).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        return TestDb {
            db,
            _dir: Some(dir),
            postgres: None,
        };
    };
    let name = format!("vestibule_store_{}", Uuid::new_v4().simple());
    let admin = Database::connect(server.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let _ = admin.close().await;
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let db = Database::connect(url.as_str()).await.unwrap();
    crate::db::migrate(&db).await.unwrap();
    db.execute_unprepared(
        "ALTER TABLE device_grants DROP CONSTRAINT fk_device_grants_workspace, \
         DROP CONSTRAINT fk_device_grants_client, DROP CONSTRAINT fk_device_grants_user",
    )
    .await
    .unwrap();
    TestDb {
        db,
        _dir: None,
        postgres: Some((server, name)),
    }
}
