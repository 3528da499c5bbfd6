//! HTML pages over HTTP: rendering a template into a response with the headers every page
//! carries, the redirect after a handled form, and the last-resort error page. Shared by the
//! console and `/activate` (the server crate depends on this one and re-exports these).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;
use vestibule_core::templates;
pub use vestibule_core::templates::RenderError;

/// Pages show secrets, codes and forms: nothing may be cached, framed (clickjacking a consent
/// button) or leaked through the `Referer` header, and no script runs.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Renders `template` into a page with `status`.
///
/// # Errors
/// When rendering fails.
pub fn page(
    status: StatusCode,
    template: &str,
    context: &impl Serialize,
) -> Result<HttpResponse, RenderError> {
    Ok(page_from_body(
        status,
        templates::render(template, context)?,
    ))
}

/// A page from already rendered HTML, with the headers every page carries.
#[must_use]
pub fn page_from_body(status: StatusCode, body: String) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.content_type("text/html; charset=utf-8");
    for (name, value) in PAGE_HEADERS {
        response.insert_header((name, HeaderValue::from_static(value)));
    }
    response.body(body)
}

/// `303 See Other` to a path of this site, for after a form is handled.
#[must_use]
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The last-resort error page, for when the templates themselves fail.
#[must_use]
pub fn fallback_error_page() -> HttpResponse {
    page_from_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Something went wrong</title></head><body><h1>Something went wrong</h1>\
         <p>Please try again in a moment.</p></body></html>"
            .to_owned(),
    )
}

/// A signed-in page: the layout's parts under `chrome`, the page's own fields beside them.
#[derive(Serialize)]
struct WithChrome<'a, T> {
    chrome: &'a crate::auth::Chrome,
    #[serde(flatten)]
    page: &'a T,
}

/// Renders a signed-in page.
///
/// # Errors
/// When rendering fails.
pub fn console_page(
    status: StatusCode,
    template: &str,
    chrome: &crate::auth::Chrome,
    page: &impl Serialize,
) -> Result<HttpResponse, crate::error::ConsoleError> {
    Ok(self::page(status, template, &WithChrome { chrome, page })?)
}
