//! The embedded files under `/static/` (styles and images of every page).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use include_dir::{Dir, include_dir};

static STATIC_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../static");

/// Registers `GET /static/{file}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{file}", web::get().to(static_file));
}

/// Serves a file of `static/`. They change only with a new binary, so browsers may keep them
/// an hour and revalidate by `ETag` after that.
async fn static_file(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let Some(found) = STATIC_DIR.get_file(file.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let etag = format!("\"{:016x}\"", fnv1a(found.contents()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        return response.finish();
    }
    response
        .content_type(content_type(file.as_str()))
        .body(found.contents())
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A content fingerprint for `ETag`: stable across builds and processes, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use actix_web::http::StatusCode;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("vestibule.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[actix_web::test]
    async fn static_files_are_served_cached_and_revalidated() {
        let app = actix_web::test::init_service(actix_web::App::new().configure(configure)).await;
        let res = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get()
                .uri("/static/vestibule.css")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            res.headers().get(header::CACHE_CONTROL).unwrap(),
            "public, max-age=3600"
        );
        let etag = res.headers().get(header::ETAG).unwrap().clone();
        assert!(!to_bytes(res.into_body()).await.unwrap().is_empty());

        let again = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get()
                .uri("/static/vestibule.css")
                .insert_header((header::IF_NONE_MATCH, etag))
                .to_request(),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        for missing in ["/static/nope.css", "/static/..%2FCargo.toml"] {
            let res = actix_web::test::call_service(
                &app,
                actix_web::test::TestRequest::get()
                    .uri(missing)
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }
}
