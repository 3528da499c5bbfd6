//! HTML pages over HTTP: a template rendered into a response with the headers every page
//! carries, the redirect after a handled form, and problem pages — a surface's error as its
//! problem template with its status, or a last-resort page when the templates themselves fail.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;
use vestibule_core::templates;

use crate::WebError;

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

/// Renders `template` into a page whose forms may also lead the browser to `form_target`
/// (an origin such as `https://app.example`): browsers hold the whole navigation a form
/// starts, redirects included, to the page's CSP `form-action`, so a form whose answer is a
/// redirect to another site must name that site. `None` is [`page`].
///
/// # Errors
/// When rendering fails.
pub fn page_with_form_target(
    status: StatusCode,
    template: &str,
    context: &impl Serialize,
    form_target: Option<&str>,
) -> Result<HttpResponse, WebError> {
    let mut response = page(status, template, context)?;
    if let Some(policy) =
        form_target.and_then(|origin| HeaderValue::from_str(&policy_with_form_target(origin)).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

/// The pages' CSP with `origin` added to `form-action`.
fn policy_with_form_target(origin: &str) -> String {
    PAGE_HEADERS[1].1.replacen(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
        1,
    )
}

/// Renders `template` into a page with `status`.
///
/// # Errors
/// When rendering fails.
pub fn page(
    status: StatusCode,
    template: &str,
    context: &impl Serialize,
) -> Result<HttpResponse, WebError> {
    Ok(page_from_body(
        status,
        templates::render(template, context)?,
    ))
}

fn page_from_body(status: StatusCode, body: String) -> HttpResponse {
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

/// What a surface's problem template shows.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub title: &'static str,
    pub message: Cow<'static, str>,
    pub next: Option<Link>,
}

/// A way on from a problem: where to go and what the link says.
#[derive(Debug, Serialize)]
pub struct Link {
    /// A path of this site.
    pub href: Cow<'static, str>,
    pub text: &'static str,
}

/// A surface's error as a page: its problem `template` with `status`, or the last-resort page
/// when the templates themselves fail.
#[must_use]
pub fn problem_page(status: StatusCode, template: &str, problem: &Problem) -> HttpResponse {
    page(status, template, problem).unwrap_or_else(|e| {
        tracing::error!(error = %e, template, "cannot render an error page");
        fallback_error_page()
    })
}

/// Says when a throttled request may come back (whole seconds, at least one).
pub fn retry_after(response: &mut HttpResponse, wait: Duration) {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
}

/// Unix seconds as `2026-11-29 14:03:07 UTC`, as every page writes a moment.
#[must_use]
pub fn timestamp(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn fallback_error_page() -> HttpResponse {
    page_from_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Something went wrong</title></head><body><h1>Something went wrong</h1>\
         <p>Please try again in a moment.</p></body></html>"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_the_security_headers() {
        let response = page_from_body(StatusCode::OK, String::new());
        for (name, value) in PAGE_HEADERS {
            assert_eq!(response.headers().get(&name).unwrap(), value, "{name}");
        }
    }

    #[test]
    fn a_page_may_let_its_forms_lead_to_one_more_origin() {
        let policy = policy_with_form_target("https://app.example");
        assert_eq!(
            policy,
            PAGE_HEADERS[1].1.replace(
                "form-action 'self';",
                "form-action 'self' https://app.example;"
            )
        );
        assert_ne!(policy, PAGE_HEADERS[1].1);
    }

    #[test]
    fn a_missing_problem_template_falls_back_to_the_last_resort_page() {
        let problem = Problem {
            title: "Page not found",
            message: Cow::Borrowed("nothing here"),
            next: None,
        };
        let response = problem_page(StatusCode::NOT_FOUND, "no/such.html", &problem);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        let mut response = HttpResponse::TooManyRequests().finish();
        retry_after(&mut response, Duration::from_millis(300));
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        retry_after(&mut response, Duration::from_secs(90));
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "90");
    }
}
