//! `GET/POST /activate`: entering a user code, typed or through `verification_uri_complete`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::services::attempts::{self, UserCodeEntry};
use vestibule_core::services::device_grants::Lookup;
use vestibule_core::types::UserCode;
use vestibule_web::html::{self, see_other};
use vestibule_web::{ClientAddress, CsrfForm, CsrfProtected};

use super::error::{ActivateError, Throttled};
use super::flow::{self, Current, PostedFrom};
use super::session::{ActivateSession, CodeInProgress};
use super::{CONSENT_PATH, SIGN_IN_PATH};

/// `?user_code=`; other parameters (campaign tags and the like) are ignored.
#[derive(Deserialize)]
pub struct EntryQuery {
    user_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryForm {
    #[serde(default)]
    user_code: String,
    /// `link` on the form pre-filled from `verification_uri_complete`. A forged value cannot
    /// weaken anything: the form is only accepted with the session's CSRF token, so no other
    /// site can post it for the user, and the user who edits it can only add `link`, which
    /// makes the flow stricter (consent is always asked), or drop it, which they could as well
    /// by typing the code into the plain form.
    #[serde(default)]
    arrival: Option<String>,
    csrf_token: Option<String>,
}

impl CsrfProtected for EntryForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

#[derive(Serialize)]
struct EntryPage<'a> {
    csrf_token: String,
    user_code: &'a str,
    message: Option<&'a str>,
    /// The code came through `verification_uri_complete`: the form says so when posted.
    by_link: bool,
    /// The field holds a code of digits only, so phones may offer their number pad
    /// (`inputmode="numeric"`). The page cannot know the workspace before a code is entered,
    /// and letters cannot be typed on a number pad, so an empty field offers the full keyboard.
    numeric: bool,
}

/// The value of the entry form's `arrival` field for a code that came through a link.
const BY_LINK: &str = "link";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Typed,
    /// Through `verification_uri_complete`: a link or QR code someone else may have made.
    CompleteUri,
}

/// The entry form, pre-filled from `?user_code=`. A GET looks nothing up and counts nothing:
/// any web page can make a browser fetch this URL (an `<img>` will do), and it must not spend
/// the network's budget of wrong codes or reveal whether a code exists. The user confirms the
/// code with the form's POST (SPEC §2: pre-filled, the user only confirms).
pub async fn show(
    session: ActivateSession,
    query: web::Query<EntryQuery>,
) -> Result<HttpResponse, ActivateError> {
    match query
        .user_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        Some(code) => form(&session, StatusCode::OK, code, None, Arrival::CompleteUri),
        None => form(&session, StatusCode::OK, "", None, Arrival::Typed),
    }
}

pub async fn submit(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    CsrfForm(entered): CsrfForm<EntryForm>,
) -> Result<HttpResponse, ActivateError> {
    let arrival = if entered.arrival.as_deref() == Some(BY_LINK) {
        Arrival::CompleteUri
    } else {
        Arrival::Typed
    };
    if entered.user_code.trim().is_empty() {
        return form(
            &session,
            StatusCode::BAD_REQUEST,
            "",
            Some("Enter the code shown on your device."),
            arrival,
        );
    }
    look_up(&core, &session, &req, &entered.user_code, arrival).await
}

fn form(
    session: &ActivateSession,
    status: StatusCode,
    user_code: &str,
    message: Option<&str>,
    arrival: Arrival,
) -> Result<HttpResponse, ActivateError> {
    let page = EntryPage {
        csrf_token: session.csrf_token()?,
        user_code,
        message,
        by_link: arrival == Arrival::CompleteUri,
        numeric: UserCode::normalize(user_code)
            .is_some_and(|c| c.as_str().bytes().all(|b| b.is_ascii_digit())),
    };
    Ok(html::page(status, "activate/entry.html", &page)?)
}

async fn look_up(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    typed: &str,
    arrival: Arrival,
) -> Result<HttpResponse, ActivateError> {
    let address = ClientAddress::of(req).text();
    let lookup = match attempts::enter_user_code(core, typed, address).await? {
        UserCodeEntry::Entered(lookup) => lookup,
        UserCodeEntry::Throttled { retry_after } => {
            return Err(ActivateError::Throttled {
                what: Throttled::UserCodes,
                retry_after,
            });
        }
    };
    let pending = match lookup {
        Lookup::Pending(pending) => *pending,
        Lookup::Unknown => {
            return form(
                session,
                StatusCode::BAD_REQUEST,
                typed,
                Some(
                    "We don't know that code — check the code shown on your device and try again.",
                ),
                arrival,
            );
        }
        Lookup::Expired => {
            return form(
                session,
                StatusCode::GONE,
                "",
                Some("This code has expired — start again on your device."),
                arrival,
            );
        }
        Lookup::AlreadyUsed => {
            return form(
                session,
                StatusCode::CONFLICT,
                "",
                Some(
                    "This code was already used. Each code works once — start again on your device if you need to.",
                ),
                arrival,
            );
        }
        Lookup::Denied => {
            return form(
                session,
                StatusCode::CONFLICT,
                "",
                Some(
                    "This code was denied, so it no longer works — start again on your device if you do want to connect it.",
                ),
                arrival,
            );
        }
    };
    // Once a grant came through a link, typing its code afterwards does not launder it.
    let came_by_link = session
        .code()
        .is_some_and(|c| c.grant_id == pending.grant.id && c.via_complete_uri);
    let code = CodeInProgress {
        grant_id: pending.grant.id,
        user_code: pending.user_code.as_str().to_owned(),
        via_complete_uri: arrival == Arrival::CompleteUri || came_by_link,
    };
    session.set_code(&code)?;
    let current = Current::of(pending, code);
    match flow::signed_in_user(core, session, current.request.workspace.id).await? {
        None => Ok(see_other(SIGN_IN_PATH)),
        // A code that came by link always gets the consent page (RFC 8628 §5.4).
        Some(_) if arrival == Arrival::CompleteUri => Ok(see_other(CONSENT_PATH)),
        Some(user) => {
            flow::after_sign_in(core, session, req, &current, &user, PostedFrom::CodeEntry).await
        }
    }
}
