//! `GET /activate/done`: how the last code ended, and back to the device.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use vestibule_web::html;

use super::error::ActivateError;
use super::session::{ActivateSession, Outcome};

#[derive(Serialize)]
struct DonePage {
    approved: bool,
    /// The code's workspace, whose account page (where approvals are reviewed and revoked) the
    /// page links to.
    workspace_slug: Option<String>,
}

pub async fn show(session: ActivateSession) -> Result<HttpResponse, ActivateError> {
    let outcome = session.outcome().ok_or(ActivateError::NoCodeInProgress)?;
    let page = DonePage {
        approved: outcome == Outcome::Approved,
        workspace_slug: session.outcome_workspace(),
    };
    Ok(html::page(StatusCode::OK, "activate/done.html", &page)?)
}
