//! End users of a workspace.

use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, QueryOrder as _, Set,
};
use uuid::Uuid;

use crate::Core;
use crate::crypto::password;
use crate::entities::{user, workspace};
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::services::{Page, contains_pattern, fetch_page, grants};
use crate::types::{DisplayName, Email, Password, Username};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<Email>,
    pub name: Option<DisplayName>,
    pub password: Password,
}

/// Creates a user; the password is hashed before the transaction opens.
///
/// # Errors
/// `Conflict` when the username or email is taken in this workspace.
pub async fn create(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    new: NewUser,
) -> Result<user::Model, Error> {
    let password_hash = password::hash_blocking(new.password.expose().to_owned()).await?;
    let txn = crate::db::begin_write(&core.db).await?;
    let taken = || {
        Error::conflict(
            "username",
            format!(
                "username {} is already taken in workspace {}",
                new.username, workspace.slug
            ),
        )
    };
    if find_by_username(&txn, workspace.id, new.username.as_str())
        .await?
        .is_some()
    {
        return Err(taken());
    }
    if let Some(email) = &new.email {
        ensure_email_free(&txn, workspace, email, None).await?;
    }
    let now = crate::now();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace.id),
        username: Set(new.username.to_string()),
        email: Set(new.email.as_ref().map(ToString::to_string)),
        name: Set(new.name.as_ref().map(ToString::to_string)),
        password_hash: Set(password_hash),
        disabled: Set(false),
        session_generation: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| super::map_unique(e, "username", taken().to_string()))?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::UserCreated,
            target: Some(model.username.clone()),
            detail: serde_json::json!({ "user_id": model.id }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
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
/// ones (a dummy hash is verified), and disabled users fail like wrong passwords. Spends no
/// budget: `/activate` signs in through [`super::attempts::user_sign_in`].
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
pub async fn sign_in_throttled(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    username: &str,
    ip: Option<String>,
) -> Result<(), Error> {
    audit::record(
        db,
        audit::Event {
            actor: &Actor::System,
            workspace_id: Some(workspace_id),
            action: Action::UserSignInThrottled,
            target: Some(username.to_lowercase()),
            detail: serde_json::json!({}),
            ip,
        },
    )
    .await
}

/// # Errors
/// On a database failure.
pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, Error> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

/// Fails when another user of the workspace than `except` has this email.
async fn ensure_email_free(
    db: &impl ConnectionTrait,
    workspace: &workspace::Model,
    email: &Email,
    except: Option<Uuid>,
) -> Result<(), Error> {
    let mut query = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(workspace.id))
        .filter(user::Column::Email.eq(email.as_str()));
    if let Some(id) = except {
        query = query.filter(user::Column::Id.ne(id));
    }
    if query.one(db).await?.is_some() {
        return Err(Error::conflict(
            "email",
            format!(
                "email {email} already belongs to a user of workspace {}",
                workspace.slug
            ),
        ));
    }
    Ok(())
}

/// Users of a workspace by username, those whose username, email or name contains `search`
/// (case-insensitive) when it is not empty.
///
/// # Errors
/// On a database failure.
pub async fn search(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    search: &str,
    per_page: u64,
    page: u64,
) -> Result<Page<user::Model>, Error> {
    let mut query = user::Entity::find().filter(user::Column::WorkspaceId.eq(workspace_id));
    let search = search.trim();
    if !search.is_empty() {
        let matches = |column: user::Column| {
            Func::lower(Expr::col((user::Entity, column))).like(contains_pattern(search))
        };
        query = query.filter(
            Condition::any()
                .add(matches(user::Column::Username))
                .add(matches(user::Column::Email))
                .add(matches(user::Column::Name)),
        );
    }
    let query = query.order_by_asc(user::Column::Username);
    fetch_page(db, query, per_page, page).await
}

/// The user with this id, only if it belongs to `workspace_id`.
///
/// # Errors
/// `NotFound` when there is no such user in this workspace.
pub async fn get_in_workspace(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<user::Model, Error> {
    find_by_id(db, id)
        .await?
        .filter(|u| u.workspace_id == workspace_id)
        .ok_or_else(|| Error::NotFound(format!("no user {id} in this workspace")))
}

/// A change to one user, made by an admin.
#[derive(Debug, Clone)]
pub enum Change {
    /// New email and name (`None` clears them).
    Profile {
        email: Option<Email>,
        name: Option<DisplayName>,
    },
    Disabled(bool),
    Password(Password),
}

impl Change {
    fn action(&self) -> Action {
        match self {
            Self::Profile { .. } => Action::UserUpdated,
            Self::Disabled(true) => Action::UserDisabled,
            Self::Disabled(false) => Action::UserEnabled,
            Self::Password(_) => Action::UserPasswordSet,
        }
    }
}

/// Applies one change to a user of `workspace`, with its audit event. A new password is hashed
/// before the transaction opens. A new password or a disable ends the user's sign-ins (the
/// session generation moves on); a disable also revokes every grant of the user (SPEC §3), in
/// the same transaction, so enabling the user again brings no old token back.
///
/// # Errors
/// `NotFound` when the user is not in this workspace; `Conflict` when the email is taken.
pub async fn update(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    id: Uuid,
    change: Change,
) -> Result<user::Model, Error> {
    let password_hash = match &change {
        Change::Password(p) => Some(password::hash_blocking(p.expose().to_owned()).await?),
        Change::Profile { .. } | Change::Disabled(_) => None,
    };
    let txn = crate::db::begin_write(&core.db).await?;
    let current = get_in_workspace(&txn, workspace.id, id).await?;
    let action = change.action();
    let generation = current.session_generation;
    let mut active = current.into_active_model();
    let detail = match change {
        Change::Profile { email, name } => {
            if let Some(email) = &email {
                ensure_email_free(&txn, workspace, email, Some(id)).await?;
            }
            active.email = Set(email.as_ref().map(ToString::to_string));
            active.name = Set(name.as_ref().map(ToString::to_string));
            serde_json::json!({ "email": email.map(|e| e.to_string()), "name": name.map(|n| n.to_string()) })
        }
        Change::Disabled(disabled) => {
            active.disabled = Set(disabled);
            if disabled {
                active.session_generation = Set(generation + 1);
                let revoked = grants::revoke_all_of_user(
                    &txn,
                    workspace.id,
                    id,
                    grants::Reason::UserDisabled,
                    actor,
                    None,
                )
                .await?;
                serde_json::json!({ "grants_revoked": revoked })
            } else {
                serde_json::json!({})
            }
        }
        Change::Password(_) => {
            if let Some(hash) = password_hash {
                active.password_hash = Set(hash);
            }
            active.session_generation = Set(generation + 1);
            serde_json::json!({})
        }
    };
    active.updated_at = Set(crate::now());
    let model = active.update(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action,
            target: Some(model.username.clone()),
            detail,
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}
