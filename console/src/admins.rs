//! `GET/POST /console/admins` (list, create with an initial password) and
//! `POST /console/admins/{id}/status` (disable, enable). An admin cannot disable themself.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::services::admins;
use vestibule_core::types::{Email, Password};
use vestibule_web::CsrfForm;

use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::form::{Errors, Fields, errors_for, validated};
use crate::html;

const PATH: &str = "/console/admins";

#[derive(Serialize)]
struct AdminRow {
    id: Uuid,
    email: String,
    disabled: bool,
    created_at: String,
    is_me: bool,
}

#[derive(Serialize)]
struct ListPage<'a> {
    admins: Vec<AdminRow>,
    email: &'a str,
    errors: Errors,
}

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
) -> Result<HttpResponse, ConsoleError> {
    page(&core, &signed_in, StatusCode::OK, "", Errors::new()).await
}

async fn page(
    core: &Core,
    signed_in: &SignedIn,
    status: StatusCode,
    email: &str,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    let admins = admins::list(&core.db)
        .await?
        .into_iter()
        .map(|a| AdminRow {
            is_me: a.id == signed_in.admin.id,
            id: a.id,
            email: a.email,
            disabled: a.disabled,
            created_at: crate::audit::timestamp(a.created_at),
        })
        .collect();
    html::console_page(
        status,
        "console/admins.html",
        &signed_in.chrome("admins")?,
        &ListPage {
            admins,
            email,
            errors,
        },
    )
}

pub async fn create(
    core: web::Data<Core>,
    signed_in: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let email = fields.text("email").trim();
    let parsed =
        Email::parse(email).and_then(|e| Ok((e, Password::parse(fields.text("password"))?)));
    let created = match parsed {
        Ok((email, password)) => {
            validated(admins::create(&core, &signed_in.actor(), &email, &password).await)?
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(admin) => signed_in.done(&format!("Admin {} created.", admin.email), PATH),
        Err(e) => {
            let errors = errors_for(&e, &["email", "password"]);
            page(&core, &signed_in, StatusCode::BAD_REQUEST, email, errors).await
        }
    }
}

pub async fn set_status(
    core: web::Data<Core>,
    signed_in: SignedIn,
    id: web::Path<Uuid>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let disabled = match fields.text("status") {
        "disabled" => true,
        "active" => false,
        other => return Err(ConsoleError::BadForm(format!("status {other:?}"))),
    };
    let changed = validated(
        admins::set_disabled(&core, &signed_in.actor(), signed_in.admin.id, *id, disabled).await,
    )?;
    match changed {
        Ok(admin) => {
            let what = if disabled { "disabled" } else { "enabled" };
            signed_in.done(&format!("Admin {} {what}.", admin.email), PATH)
        }
        Err(e) => {
            page(
                &core,
                &signed_in,
                StatusCode::BAD_REQUEST,
                "",
                Errors::from([("form", e.to_string())]),
            )
            .await
        }
    }
}
