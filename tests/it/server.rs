//! The running server: health, readiness, metrics, request ids and graceful shutdown.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{Cli, TestApp};

#[tokio::test]
async fn health_ready_and_request_id() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let id = health
        .headers()
        .get("x-request-id")
        .expect("request id header");
    assert_eq!(id.to_str().unwrap().len(), 36);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);

    // Without a database the server is alive but not ready.
    app.core.db.close_by_ref().await.unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/page").await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            r#"vestibule_http_requests_total{endpoint="/healthz",method="GET",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains("vestibule_http_requests_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(
        text.contains(r#"endpoint="UNMATCHED""#),
        "unknown paths are not labels of their own"
    );
    assert!(!text.contains("/no/such/page"));
}

#[tokio::test]
async fn bootstrap_makes_a_working_default_install() {
    let app = TestApp::spawn().await;
    let ws = vestibule_core::services::workspaces::get(&app.core.db, "default")
        .await
        .unwrap();
    assert!(ws.device_flow_enabled);
    assert_eq!(ws.user_code_length, 8);
}

/// The binary serves, logs its port, and stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_stops_gracefully_on_sigterm() {
    let cli = Cli::new().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .current_dir(cli.dir.path())
        .arg("serve")
        .envs(&cli.env)
        .env("VESTIBULE__LOG__FORMAT", "json")
        .env("VESTIBULE__LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Read the log on a thread of its own, to the end, so the server never writes to a closed pipe.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
            {
                let _ = port_tx.send(v["port"].as_u64().unwrap_or_default());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let port = tokio::task::spawn_blocking(move || port_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("a JSON log line with the port");
    // The port is bound when logged; workers may take a moment longer to accept.
    let mut healthy = false;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            healthy = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the served binary answers /healthz");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("stops within 15 s")
    .unwrap()
    .unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "exit status {status:?}: {log}");
    assert!(log.contains("stopped"), "{log}");
}
