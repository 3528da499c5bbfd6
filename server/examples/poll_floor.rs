//! Benchmark floor for `bench/poll.sh`: the least actix-web can do to answer a pending poll.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(serde_json::json!({ "error": error, "error_description": description }))
}

/// `POST /token`: Vestibule's form checks (content type, owned pairs, repeats refused, empty
/// values absent, `grant_type`, `client_id` and `device_code` required), then its exact
/// pending-poll answer. No database, no middleware.
async fn token(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return oauth_error("invalid_request", "not a form");
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if v.is_empty() {
            continue;
        }
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return oauth_error("invalid_request", "repeated parameter");
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
    if !(has("grant_type") && has("client_id") && has("device_code")) {
        return oauth_error("invalid_request", "missing parameter");
    }
    oauth_error("authorization_pending", "the user has not decided yet")
}

/// The same allocator as the `vestibule` binary, so that the floor stays a floor.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `poll_floor [ADDR]` (default `127.0.0.1:8181`); one worker per core, actix-web's default,
/// as in Vestibule.
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8181".to_owned());
    HttpServer::new(|| App::new().route("/token", web::post().to(token)))
        .bind(addr)?
        .run()
        .await
}
