//! `GET /activate/done`: how the last code ended, and back to the device (or on to the
//! client's `after_approval_url`).

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
    /// The client's `after_approval_url`, when the page that approved could not send the
    /// browser there itself: this page forwards it (a refresh, which no form's CSP governs,
    /// and a link).
    forward: Option<String>,
}

pub async fn show(session: ActivateSession) -> Result<HttpResponse, ActivateError> {
    let outcome = session.outcome().ok_or(ActivateError::NoCodeInProgress)?;
    let approved = outcome == Outcome::Approved;
    let page = DonePage {
        approved,
        workspace_slug: session.outcome_workspace(),
        forward: session.forward().filter(|_| approved),
    };
    Ok(html::page(StatusCode::OK, "activate/done.html", &page)?)
}
