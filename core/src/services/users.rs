//! End users of a workspace.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    Set,
};
use uuid::Uuid;

use crate::entities::{user, workspace};
use crate::error::Error;
use crate::services::audit::{self, Actor};
use crate::types::{DisplayName, Email, Username};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<Email>,
    pub name: Option<DisplayName>,
    /// argon2id hash, computed before the transaction opens.
    pub password_hash: String,
}

/// # Errors
/// `Conflict` when the username or email is taken in this workspace.
pub async fn create(
    db: &impl ConnectionTrait,
    actor: &Actor,
    workspace: &workspace::Model,
    new: NewUser,
) -> Result<user::Model, Error> {
    let taken = || {
        Error::conflict(
            "username",
            format!(
                "username {} is already taken in workspace {}",
                new.username, workspace.slug
            ),
        )
    };
    if find_by_username(db, workspace.id, new.username.as_str())
        .await?
        .is_some()
    {
        return Err(taken());
    }
    if let Some(email) = &new.email {
        let existing = user::Entity::find()
            .filter(user::Column::WorkspaceId.eq(workspace.id))
            .filter(user::Column::Email.eq(email.as_str()))
            .one(db)
            .await?;
        if existing.is_some() {
            return Err(Error::conflict(
                "email",
                format!(
                    "email {email} already belongs to a user of workspace {}",
                    workspace.slug
                ),
            ));
        }
    }
    let now = crate::now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace.id),
        username: Set(new.username.to_string()),
        email: Set(new.email.as_ref().map(ToString::to_string)),
        name: Set(new.name.as_ref().map(ToString::to_string)),
        password_hash: Set(new.password_hash),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| super::map_unique(e, "username", taken().to_string()))?;
    audit::record(
        db,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: "user.created",
            target: Some(model.username.clone()),
            detail: serde_json::json!({ "user_id": model.id }),
            ip: None,
        },
    )
    .await?;
    Ok(model)
}

/// # Errors
/// On a database failure.
pub async fn find_by_username(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    username: &str,
) -> Result<Option<user::Model>, Error> {
    Ok(user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(workspace_id))
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?)
}

/// The public view of a user (CLI output): never the password hash.
#[must_use]
pub fn to_json(m: &user::Model, workspace_slug: &str) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "workspace": workspace_slug,
        "username": m.username,
        "email": m.email,
        "name": m.name,
        "disabled": m.disabled,
    })
}

/// Checks a username and password in a workspace. Unknown users cost the same time as known
/// ones (a dummy hash is verified), and disabled users fail like wrong passwords.
///
/// # Errors
/// On a database failure.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    username: &str,
    password: &str,
) -> Result<Option<user::Model>, Error> {
    let found = find_by_username(db, workspace_id, username).await?;
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    let ok = crate::crypto::password::verify_blocking(password.to_owned(), stored).await;
    Ok(found.filter(|u| ok && !u.disabled))
}

/// # Errors
/// On a database failure.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, Error> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}
