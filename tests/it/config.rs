//! Configuration as the binary sees it: where the file comes from, what overrides what, and a
//! bad value stopping start-up with exit status 2 and the key named.

use std::collections::HashMap;

use crate::helpers::{Cli, run_binary};

/// `server.data_dir` is observable from outside: the master key is created there.
fn data_dir_toml(dir: &std::path::Path) -> String {
    format!("[server]\ndata_dir = \"{}\"\n", dir.display())
}

#[tokio::test]
async fn file_sources_and_their_precedence() {
    let cli = Cli::new().await;
    let root = cli.dir.path();
    let mut env = cli.env.clone();
    env.remove("VESTIBULE__SERVER__DATA_DIR");

    let from_flag = root.join("flag-data");
    let from_var = root.join("var-data");
    let from_cwd = root.join("cwd-data");
    let from_env = root.join("env-data");
    std::fs::write(root.join("flag.toml"), data_dir_toml(&from_flag)).unwrap();
    std::fs::write(root.join("var.toml"), data_dir_toml(&from_var)).unwrap();
    std::fs::write(root.join("vestibule.toml"), data_dir_toml(&from_cwd)).unwrap();

    // ./vestibule.toml when nothing else names a file.
    assert_eq!(run_binary(root, &["migrate"], None, &env).code, 0);
    assert!(from_cwd.join("master.key").exists());

    // VESTIBULE_CONFIG beats ./vestibule.toml.
    let mut with_var = env.clone();
    with_var.insert(
        "VESTIBULE_CONFIG".into(),
        root.join("var.toml").display().to_string(),
    );
    assert_eq!(run_binary(root, &["migrate"], None, &with_var).code, 0);
    assert!(from_var.join("master.key").exists());

    // --config beats VESTIBULE_CONFIG.
    let flag = root.join("flag.toml").display().to_string();
    assert_eq!(
        run_binary(root, &["--config", &flag, "migrate"], None, &with_var).code,
        0
    );
    assert!(from_flag.join("master.key").exists());

    // The environment beats every file.
    let mut with_env = with_var.clone();
    with_env.insert(
        "VESTIBULE__SERVER__DATA_DIR".into(),
        from_env.display().to_string(),
    );
    assert_eq!(
        run_binary(root, &["--config", &flag, "migrate"], None, &with_env).code,
        0
    );
    assert!(from_env.join("master.key").exists());
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_key() {
    let cli = Cli::new().await;
    let root = cli.dir.path();
    std::fs::write(root.join("broken.toml"), "[server\nbind = ").unwrap();
    std::fs::write(
        root.join("range.toml"),
        "[security]\nuser_code_max_failures = 0\n",
    )
    .unwrap();
    let env_cases: &[(&str, &str, &str)] = &[
        (
            "VESTIBULE__DATABASE__URL",
            "mysql://localhost/v",
            "database.url",
        ),
        ("VESTIBULE__SERVER__BIND", "localhost:http", "server.bind"),
        (
            "VESTIBULE__SERVER__PUBLIC_URL",
            "example.com",
            "server.public_url",
        ),
        (
            "VESTIBULE__DATABASE__MAX_CONNECTIONS",
            "100000",
            "database.max_connections",
        ),
        (
            "VESTIBULE__SECURITY__MASTER_KEY",
            "dG9vIHNob3J0",
            "security.master_key",
        ),
        ("VESTIBULE__LOG__FORMAT", "yaml", "log.format"),
        (
            "VESTIBULE__BOOTSTRAP__ADMIN_PASSWORD",
            "short",
            "bootstrap.admin_password",
        ),
    ];
    for (key, value, named) in env_cases {
        let mut env = cli.env.clone();
        env.insert((*key).into(), (*value).into());
        for args in [&["migrate"][..], &["serve"][..]] {
            let run = run_binary(root, args, None, &env);
            assert_eq!(run.code, 2, "{key}={value} {args:?}: {}", run.stderr);
            let lines: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            assert_eq!(lines.len(), 1, "one line: {}", run.stderr);
            assert!(lines[0].contains(named), "{key}: {}", lines[0]);
        }
    }
    let file_cases: &[(&str, &str)] = &[
        ("missing.toml", "--config"),
        ("broken.toml", "--config"),
        ("range.toml", "security.user_code_max_failures"),
    ];
    for (file, named) in file_cases {
        let path = root.join(file).display().to_string();
        let run = run_binary(root, &["--config", &path, "migrate"], None, &cli.env);
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{file}: {}", run.stderr);
    }
    let mut env: HashMap<String, String> = cli.env.clone();
    env.insert(
        "VESTIBULE_CONFIG".into(),
        root.join("missing.toml").display().to_string(),
    );
    let run = run_binary(root, &["migrate"], None, &env);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("VESTIBULE_CONFIG"), "{}", run.stderr);
    // Nothing was created by a run that stopped on its configuration.
    assert!(!cli.data_dir().exists());
}
