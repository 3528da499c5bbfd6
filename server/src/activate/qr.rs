//! `GET /activate/qr?user_code=BCDF-GHJK[&format=png]`: the QR code of a user code's
//! `verification_uri_complete`, for devices that can show an image but not make a QR code.
//!
//! It looks nothing up: any string shaped like a user code gets the QR code of its link, so
//! the endpoint is no oracle of live codes and needs no database. The image of a code never
//! changes, so it is cacheable; it sits outside the `/activate` session, so it sets no cookie.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use vestibule_core::Core;
use vestibule_core::services::device_grants;
use vestibule_core::types::UserCode;
use vestibule_web::qr::Qr;

/// The path of the QR codes.
pub const QR_PATH: &str = "/activate/qr";

/// An image of a code stays the same; an hour covers every device code lifetime's worth of
/// showing it.
const CACHE: &str = "public, max-age=3600, immutable";

/// `?user_code=…&format=svg|png`; other parameters are ignored.
#[derive(Deserialize)]
struct QrQuery {
    user_code: Option<String>,
    format: Option<String>,
}

/// The image formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Svg,
    Png,
}

pub async fn show(req: HttpRequest, core: actix_web::web::Data<Core>) -> HttpResponse {
    let Ok(query) = serde_urlencoded::from_str::<QrQuery>(req.query_string()) else {
        return bad_request("the query string cannot be read");
    };
    let format = match query.format.as_deref() {
        None | Some("" | "svg") => Format::Svg,
        Some("png") => Format::Png,
        Some(_) => return bad_request("format must be svg or png"),
    };
    let Some(code) = query.user_code.as_deref().and_then(UserCode::normalize) else {
        return bad_request("user_code must be a user code such as BCDF-GHJK");
    };
    let link = device_grants::verification_uri_complete(&core.settings.server.public_url, &code);
    let image = Qr::new(&link).and_then(|qr| match format {
        Format::Svg => Ok(qr
            .svg("QR code of the link to connect the device")
            .into_bytes()),
        Format::Png => qr.png(),
    });
    match image {
        Ok(body) => HttpResponse::Ok()
            .content_type(match format {
                Format::Svg => "image/svg+xml",
                Format::Png => "image/png",
            })
            .insert_header((header::CACHE_CONTROL, CACHE))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            // An SVG opened on its own is a document: nothing in it may run or load.
            .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a QR code");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("The QR code could not be made.\n")
        }
    }
}

fn bad_request(why: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!("{why}\n"))
}
