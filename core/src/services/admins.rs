//! Console administrators.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    PaginatorTrait as _, QueryFilter as _, Set,
};
use uuid::Uuid;

use crate::entities::admin;
use crate::error::Error;
use crate::services::audit::{self, Actor};
use crate::types::Email;

/// # Errors
/// `Conflict` when an admin with this email exists.
pub async fn create(
    db: &impl ConnectionTrait,
    actor: &Actor,
    email: &Email,
    password_hash: String,
) -> Result<admin::Model, Error> {
    let email = email.lowercase();
    let duplicate = || {
        Error::conflict(
            "email",
            format!("an admin with email {email} already exists"),
        )
    };
    if find_by_email(db, &email).await?.is_some() {
        return Err(duplicate());
    }
    let model = admin::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.clone()),
        password_hash: Set(password_hash),
        disabled: Set(false),
        created_at: Set(crate::now()),
    }
    .insert(db)
    .await
    .map_err(|e| super::map_unique(e, "email", duplicate().to_string()))?;
    audit::record(
        db,
        audit::Event {
            actor,
            workspace_id: None,
            action: "admin.created",
            target: Some(email.clone()),
            detail: serde_json::json!({ "admin_id": model.id }),
            ip: None,
        },
    )
    .await?;
    Ok(model)
}

/// # Errors
/// On a database failure.
pub async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<admin::Model>, Error> {
    Ok(admin::Entity::find()
        .filter(admin::Column::Email.eq(email.to_lowercase()))
        .one(db)
        .await?)
}

/// # Errors
/// On a database failure.
pub async fn count(db: &impl ConnectionTrait) -> Result<u64, Error> {
    Ok(admin::Entity::find().count(db).await?)
}
