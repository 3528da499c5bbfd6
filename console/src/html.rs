//! Signed-in console pages: the layout's parts beside each page's own fields, rendered as
//! every page is ([`vestibule_web::html`]).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

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
    Ok(vestibule_web::html::page(
        status,
        template,
        &WithChrome { chrome, page },
    )?)
}
