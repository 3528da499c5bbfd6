//! The provisioning command line: every command, its validation, and that a failed command
//! writes nothing.

use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DbBackend, EntityTrait as _, PaginatorTrait as _,
    QueryOrder as _, Statement,
};
use vestibule_core::entities::{admin, audit_event, client, signing_key, user, workspace};
use vestibule_migrations::{Migrator, MigratorTrait as _};

use crate::helpers::{ADMIN_EMAIL, Cli};

async fn counts(cli: &Cli) -> [u64; 5] {
    let db = cli.connect().await;
    [
        admin::Entity::find().count(&db).await.unwrap(),
        workspace::Entity::find().count(&db).await.unwrap(),
        client::Entity::find().count(&db).await.unwrap(),
        user::Entity::find().count(&db).await.unwrap(),
        audit_event::Entity::find().count(&db).await.unwrap(),
    ]
}

/// What `migrate` may change: the schema, the applied migrations, the number of rows of every
/// table and the rows the bootstrap writes.
async fn database_state(db: &DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let (schema, tables) = match backend {
        DbBackend::Postgres => (
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' \
                 || is_nullable || ' ' || COALESCE(column_default, '') \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             UNION ALL SELECT 'index ' || indexname || ' ' || indexdef \
             FROM pg_indexes WHERE schemaname = current_schema() \
             ORDER BY 1",
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        ),
        _ => (
            "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
            "SELECT name FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        ),
    };
    let texts = async |sql: &str| -> Vec<String> {
        db.query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect()
    };
    let mut state = texts(schema).await;
    state.extend(
        texts(
            "SELECT version || ' at ' || CAST(applied_at AS TEXT) FROM seaql_migrations ORDER BY 1",
        )
        .await,
    );
    for table in texts(tables).await {
        let count: i64 = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) FROM \"{table}\""),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        state.push(format!("{table}: {count} rows"));
    }
    let admins = admin::Entity::find().all(db).await.unwrap();
    let workspaces = workspace::Entity::find().all(db).await.unwrap();
    let keys = signing_key::Entity::find().all(db).await.unwrap();
    state.push(format!("{admins:?} {workspaces:?} {keys:?}"));
    state
}

#[tokio::test]
async fn migrate_is_idempotent_and_bootstraps() {
    let cli = Cli::unmigrated().await;
    let first = cli.run(&["migrate"]).json();
    let every: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(first["migrations"], serde_json::json!(every), "{first}");
    let db = cli.connect().await;
    let state = database_state(&db).await;
    let master_key = std::fs::read(cli.data_dir().join("master.key")).unwrap();

    // Run again: nothing is applied, created or replaced.
    let second = cli.run(&["migrate"]);
    assert_eq!(second.json(), first);
    assert_eq!(database_state(&db).await, state);
    assert_eq!(
        std::fs::read(cli.data_dir().join("master.key")).unwrap(),
        master_key
    );

    // Bootstrap ran: the default workspace and the configured admin exist, once.
    let workspaces = workspace::Entity::find().all(&db).await.unwrap();
    assert_eq!(workspaces.len(), 1);
    assert_eq!(workspaces[0].slug, "default");
    assert_eq!(workspaces[0].user_code_length, 8);
    assert_eq!(workspaces[0].user_code_charset, "base20");
    assert_eq!(workspaces[0].device_code_ttl, 600);
    assert_eq!(workspaces[0].polling_interval, 5);
    let admins = admin::Entity::find().all(&db).await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].email, ADMIN_EMAIL);
    assert!(admins[0].password_hash.starts_with("$argon2id$"));
    assert!(vestibule_core::crypto::password::verify(
        crate::helpers::ADMIN_PASSWORD,
        &admins[0].password_hash
    ));
}

#[tokio::test]
async fn random_bootstrap_password_is_printed_once_and_master_key_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let cli = Cli::new().await;
    let mut env = cli.env.clone();
    env.remove("VESTIBULE__BOOTSTRAP__ADMIN_EMAIL");
    env.remove("VESTIBULE__BOOTSTRAP__ADMIN_PASSWORD");
    let first = cli.run_with(&["migrate"], None, &env);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let line = first
        .stderr
        .lines()
        .find(|l| l.contains("shown only this once"))
        .unwrap_or_else(|| panic!("password announced: {}", first.stderr));
    let password = line.rsplit(' ').next().unwrap().trim();
    assert!(first.stderr.contains("admin@localhost"));
    assert!(
        !first.stdout.contains(password),
        "the password stays off stdout"
    );

    let db = cli.connect().await;
    let admins = admin::Entity::find().all(&db).await.unwrap();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].email, "admin@localhost");
    assert!(vestibule_core::crypto::password::verify(
        password,
        &admins[0].password_hash
    ));

    let second = cli.run_with(&["migrate"], None, &env);
    assert_eq!(second.code, 0);
    assert!(
        !second.stderr.contains("shown only this once"),
        "printed once only"
    );

    let key = cli.data_dir().join("master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "master.key is private");
}

#[tokio::test]
async fn admin_create_and_its_errors() {
    let cli = Cli::new().await;
    let out = cli
        .run_stdin(
            &[
                "admin",
                "create",
                "--email",
                "Ops@Example.test",
                "--password-stdin",
            ],
            "a long password\n",
        )
        .json();
    assert_eq!(out["email"], "ops@example.test");
    let before = counts(&cli).await;

    cli.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "ops@example.test",
            "--password-stdin",
        ],
        "a long password\n",
    )
    .fails(1, "already exists");
    cli.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "new@example.test",
            "--password-stdin",
        ],
        "",
    )
    .fails(1, "password must not be empty");
    cli.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "new@example.test",
            "--password-stdin",
        ],
        "short\n",
    )
    .fails(1, "at least 8");
    cli.run_stdin(
        &[
            "admin",
            "create",
            "--email",
            "not-an-email",
            "--password-stdin",
        ],
        "a long password\n",
    )
    .fails(1, "not an email address");
    let missing_flag = cli.run(&["admin", "create", "--email", "x@example.test"]);
    assert_eq!(
        missing_flag.code, 2,
        "clap usage error: {}",
        missing_flag.stderr
    );
    assert!(missing_flag.stderr.contains("--password-stdin"));
    assert_eq!(counts(&cli).await, before, "failed commands wrote nothing");
}

#[tokio::test]
async fn workspace_create_update_and_validation() {
    let cli = Cli::new().await;
    let ws = cli
        .run(&[
            "workspace",
            "create",
            "tv",
            "--name",
            "Living room",
            "--user-code-length",
            "6",
            "--user-code-charset",
            "digits",
            "--device-code-ttl",
            "120",
            "--polling-interval",
            "2",
            "--dynamic-registration",
            "off",
            "--new-device-email",
            "off",
        ])
        .json();
    assert_eq!(ws["slug"], "tv");
    assert_eq!(ws["name"], "Living room");
    assert_eq!(ws["user_code_length"], 6);
    assert_eq!(ws["user_code_charset"], "digits");
    assert_eq!(ws["device_code_ttl"], 120);
    assert_eq!(ws["polling_interval"], 2);
    assert_eq!(ws["dynamic_registration"], false);
    assert_eq!(ws["new_device_email"], false);
    assert_eq!(ws["consent_skip"], true);
    assert_eq!(ws["refresh_token_ttl"], 30 * 86_400);

    let before = counts(&cli).await;
    let cases: &[(&[&str], &str)] = &[
        (&["workspace", "create", "Bad Slug"], "slug"),
        (&["workspace", "create", "x-"], "slug"),
        (
            &["workspace", "create", "ok", "--user-code-length", "5"],
            "from 6 to 12",
        ),
        (
            &["workspace", "create", "ok", "--user-code-length", "13"],
            "from 6 to 12",
        ),
        (
            &["workspace", "create", "ok", "--user-code-charset", "hex"],
            "base20 or digits",
        ),
        (
            &["workspace", "create", "ok", "--device-code-ttl", "0"],
            "device code ttl",
        ),
        (
            &["workspace", "create", "ok", "--polling-interval", "-1"],
            "polling interval",
        ),
        (&["workspace", "create", "tv"], "already exists"),
        (
            &["workspace", "update", "nope", "--user-code-length", "9"],
            "no workspace",
        ),
        (
            &["workspace", "update", "tv", "--user-code-length", "99"],
            "from 6 to 12",
        ),
    ];
    for (args, needle) in cases {
        cli.run(args).fails(1, needle);
    }
    assert_eq!(counts(&cli).await, before, "failed commands wrote nothing");

    let updated = cli
        .run(&[
            "workspace",
            "update",
            "tv",
            "--user-code-length",
            "12",
            "--user-code-charset",
            "base20",
            "--audience",
            "https://api.example",
        ])
        .json();
    assert_eq!(updated["user_code_length"], 12);
    assert_eq!(updated["user_code_charset"], "base20");
    assert_eq!(updated["audience"], "https://api.example");
    assert_eq!(
        updated["device_code_ttl"], 120,
        "untouched settings keep their value"
    );
}

#[tokio::test]
async fn client_create_public_and_confidential() {
    let cli = Cli::new().await;
    let public = cli
        .run(&[
            "client",
            "create",
            "--workspace",
            "default",
            "--name",
            "TV app",
            "--public",
        ])
        .json();
    assert!(public["client_secret"].is_null());
    assert_eq!(public["public"], true);
    assert_eq!(public["grants"], serde_json::json!(["device_code"]));
    assert_eq!(public["scopes"], "email offline_access openid profile");

    let confidential = cli
        .run(&[
            "client",
            "create",
            "--workspace",
            "default",
            "--name",
            "Backend",
            "--client-id",
            "backend-1",
            "--grant",
            "device_code",
            "--grant",
            "refresh_token",
            "--grant",
            "client_credentials",
            "--scope",
            "openid profile",
        ])
        .json();
    assert_eq!(confidential["client_id"], "backend-1");
    let secret = confidential["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "at least 256 bits: {secret}");

    let db = cli.connect().await;
    let stored = client::Entity::find().all(&db).await.unwrap();
    let backend = stored.iter().find(|c| c.client_id == "backend-1").unwrap();
    let hash = backend.secret_hash.as_deref().unwrap();
    assert_ne!(hash, secret, "the secret is not stored in clear");
    assert!(!hash.contains(secret));
    assert!(
        stored
            .iter()
            .find(|c| c.public)
            .unwrap()
            .secret_hash
            .is_none()
    );

    let before = counts(&cli).await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["client", "create", "--workspace", "nope", "--name", "X"],
            "no workspace",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--grant",
                "password",
            ],
            "grant",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--grant",
                "authorization_code",
            ],
            "redirect URI",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                "http://evil.example/cb",
            ],
            "https",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--public",
                "--grant",
                "client_credentials",
            ],
            "public client",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--client-id",
                "backend-1",
            ],
            "already taken",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--client-id",
                "bad id",
            ],
            "client_id",
        ),
        (
            &["client", "create", "--workspace", "default", "--name", "  "],
            "name must not be empty",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--access",
                "some",
            ],
            "everyone or assigned",
        ),
        (
            &[
                "client",
                "create",
                "--workspace",
                "default",
                "--name",
                "X",
                "--scope",
                "a\"b",
            ],
            "scope",
        ),
    ];
    for (args, needle) in cases {
        cli.run(args).fails(1, needle);
    }
    assert_eq!(counts(&cli).await, before, "failed commands wrote nothing");
}

#[tokio::test]
async fn user_create_and_its_errors() {
    let cli = Cli::new().await;
    cli.run(&["workspace", "create", "other"]).json();
    let u = cli
        .run_stdin(
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "alice",
                "--email",
                "alice@example.test",
                "--name",
                "Alice",
                "--password-stdin",
            ],
            "alice's password\n",
        )
        .json();
    assert_eq!(u["username"], "alice");
    assert_eq!(u["email"], "alice@example.test");
    assert!(u.get("password_hash").is_none());
    // The same username in another workspace is another person.
    cli.run_stdin(
        &[
            "user",
            "create",
            "--workspace",
            "other",
            "--username",
            "alice",
            "--password-stdin",
        ],
        "password two\n",
    )
    .json();

    let db = cli.connect().await;
    let users = user::Entity::find().all(&db).await.unwrap();
    assert!(users.iter().all(
        |u| u.password_hash.starts_with("$argon2id$") && !u.password_hash.contains("password")
    ));

    let before = counts(&cli).await;
    let pw = "a fine password\n";
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "alice",
                "--password-stdin",
            ],
            pw,
            "already taken",
        ),
        (
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "bob",
                "--email",
                "alice@example.test",
                "--password-stdin",
            ],
            pw,
            "already belongs",
        ),
        (
            &[
                "user",
                "create",
                "--workspace",
                "nope",
                "--username",
                "bob",
                "--password-stdin",
            ],
            pw,
            "no workspace",
        ),
        (
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "bob",
                "--password-stdin",
            ],
            "",
            "password must not be empty",
        ),
        (
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "b o b",
                "--password-stdin",
            ],
            pw,
            "username",
        ),
        (
            &[
                "user",
                "create",
                "--workspace",
                "default",
                "--username",
                "bob",
                "--email",
                "bob",
                "--password-stdin",
            ],
            pw,
            "email",
        ),
    ];
    for (args, stdin, needle) in cases {
        cli.run_stdin(args, stdin).fails(1, needle);
    }
    assert_eq!(counts(&cli).await, before, "failed commands wrote nothing");
}

#[tokio::test]
async fn every_command_writes_an_audit_event() {
    let cli = Cli::new().await;
    cli.run(&["workspace", "create", "audited"]).json();
    cli.run(&[
        "client",
        "create",
        "--workspace",
        "audited",
        "--name",
        "C",
        "--public",
    ])
    .json();
    let db = cli.connect().await;
    let events = audit_event::Entity::find()
        .order_by_asc(audit_event::Column::Id)
        .all(&db)
        .await
        .unwrap();
    let cli_actions: Vec<&str> = events
        .iter()
        .filter(|e| e.actor == "cli")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(cli_actions, ["workspace.created", "client.created"]);
}
