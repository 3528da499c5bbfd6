//! `GET/POST /activate/consent`: who asks for what (for a device: its code, when, from where
//! and on what), and the decision.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::services::interaction::{self, Decision, Requested};
use vestibule_core::types::ScopeSet;
use vestibule_web::html::{self, see_other};
use vestibule_web::{ClientAddress, CsrfForm, CsrfProtected};

use super::SIGN_IN_PATH;
use super::device;
use super::error::ActivateError;
use super::flow::{self, Current, PostedFrom, SignedUser};
use super::session::ActivateSession;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionForm {
    decision: Option<String>,
    /// The grant the page showed. A browser always sends it, so a decision made on an old tab
    /// cannot land on a code entered later in another tab.
    grant: Option<Uuid>,
    csrf_token: Option<String>,
}

impl CsrfProtected for DecisionForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

#[derive(Serialize)]
struct ConsentPage<'a> {
    csrf_token: String,
    grant: Uuid,
    client_name: &'a str,
    workspace_name: &'a str,
    signed_in_as: &'a str,
    scopes: Vec<String>,
    /// What a device request adds: the code to compare and the device's circumstances.
    device: Option<DeviceFacts>,
    /// The client requires the browser to be on the device's network and it is not (or either
    /// address is unknown): the page explains, and offers only Deny.
    approval_blocked: bool,
}

#[derive(Serialize)]
struct DeviceFacts {
    user_code: String,
    asked: String,
    device_kind: String,
    /// `same`, `different` or `unknown`; `None` when the client's `proximity` is `off`
    /// (nothing compared or shown).
    network: Option<&'static str>,
}

pub async fn show(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
) -> Result<HttpResponse, ActivateError> {
    let current = flow::current(&core, &session).await?;
    let Some(user) = flow::signed_in_user(&core, &session, current.request.workspace.id).await?
    else {
        return Ok(see_other(SIGN_IN_PATH));
    };
    let page = page(
        &current,
        &user,
        session.csrf_token()?,
        ClientAddress::of(&req),
    );
    let target = flow::form_target(&current.request);
    Ok(html::page_with_form_target(
        StatusCode::OK,
        "activate/consent.html",
        &page,
        target.as_deref(),
    )?)
}

pub async fn submit(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Result<HttpResponse, ActivateError> {
    let decision = match form.decision.as_deref() {
        Some("approve") => Decision::Approve,
        Some("deny") => Decision::Deny,
        _ => return Err(ActivateError::BadValue("decision")),
    };
    let current = flow::current(&core, &session).await?;
    if form
        .grant
        .is_some_and(|shown| shown != current.code.grant_id)
    {
        // The session moved on to another code since this page was shown: show that one.
        return Ok(see_other(super::CONSENT_PATH));
    }
    let Some(user) = flow::signed_in_user(&core, &session, current.request.workspace.id).await?
    else {
        return Ok(see_other(SIGN_IN_PATH));
    };
    flow::decide(
        &core,
        &session,
        &req,
        &current,
        &user,
        decision,
        PostedFrom::ClientPage,
    )
    .await
}

fn page<'a>(
    current: &'a Current,
    user: &'a SignedUser,
    csrf_token: String,
    browser: ClientAddress,
) -> ConsentPage<'a> {
    let request = &current.request;
    let near = interaction::nearness(request, browser.ip());
    let device = match &request.requested {
        Requested::Device(asked) => DeviceFacts {
            user_code: asked.user_code.display(),
            asked: device::ago(vestibule_core::now() - asked.grant.created_at),
            device_kind: device::kind(asked.grant.user_agent.as_deref()),
            network: near.network.map(|n| n.as_str()),
        },
    };
    ConsentPage {
        csrf_token,
        grant: current.code.grant_id,
        client_name: &request.client.name,
        workspace_name: &request.workspace.name,
        signed_in_as: user.user.name.as_deref().unwrap_or(&user.user.username),
        scopes: scope_words(&request.scopes),
        device: Some(device),
        approval_blocked: near.blocks_approval,
    }
}

/// Known scopes in plain words, most basic first; others as they are named.
const SCOPE_WORDS: [(&str, &str); 4] = [
    ("openid", "Confirm your identity"),
    ("profile", "Your name and username"),
    ("email", "Your email address"),
    (
        "offline_access",
        "Stay signed in on this device (until you revoke it)",
    ),
];

/// The scopes as the person reads them (the consent and account pages).
pub fn scope_words(scopes: &ScopeSet) -> Vec<String> {
    let known = SCOPE_WORDS
        .iter()
        .filter(|(scope, _)| scopes.contains(scope))
        .map(|(_, words)| (*words).to_owned());
    let others = scopes
        .iter()
        .filter(|s| !SCOPE_WORDS.iter().any(|(known, _)| known == s))
        .map(str::to_owned);
    known.chain(others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_as_plain_words_in_a_stable_order() {
        let words = scope_words(&ScopeSet::from_stored(
            "offline_access email openid profile calendar.read",
        ));
        assert_eq!(
            words,
            [
                "Confirm your identity",
                "Your name and username",
                "Your email address",
                "Stay signed in on this device (until you revoke it)",
                "calendar.read",
            ]
        );
        assert!(scope_words(&ScopeSet::default()).is_empty());
    }
}
