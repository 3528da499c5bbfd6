//! Console administrators.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, PaginatorTrait as _, QueryFilter as _, QueryOrder as _, Set,
};
use uuid::Uuid;

use crate::Core;
use crate::crypto::password;
use crate::entities::admin;
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::types::{Email, Password};

/// Creates an admin with an initial password, hashed before the transaction opens.
///
/// # Errors
/// `Conflict` when an admin with this email exists.
pub async fn create(
    core: &Core,
    actor: &Actor,
    email: &Email,
    password: &Password,
) -> Result<admin::Model, Error> {
    let hash = password::hash_blocking(password.expose().to_owned()).await?;
    let txn = crate::db::begin_write(&core.db).await?;
    let model = insert(&txn, actor, email, hash).await?;
    txn.commit().await?;
    Ok(model)
}

/// Inserts an admin and its audit event in the caller's transaction (bootstrap runs before a
/// [`Core`] exists).
///
/// # Errors
/// `Conflict` when an admin with this email exists.
pub(crate) async fn insert(
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
            action: Action::AdminCreated,
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

/// # Errors
/// On a database failure.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<admin::Model>, Error> {
    Ok(admin::Entity::find_by_id(id).one(db).await?)
}

/// Every admin, by email.
///
/// # Errors
/// On a database failure.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<admin::Model>, Error> {
    Ok(admin::Entity::find()
        .order_by_asc(admin::Column::Email)
        .all(db)
        .await?)
}

/// Checks an email and password. Unknown emails cost the same time as known ones (a dummy hash
/// is verified), and a disabled admin fails like a wrong password. Spends no budget: the console
/// signs in through [`super::attempts::admin_sign_in`].
///
/// # Errors
/// On a database failure.
pub(crate) async fn authenticate(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
) -> Result<Option<admin::Model>, Error> {
    let found = find_by_email(db, email.trim()).await?;
    let stored = found.as_ref().map(|a| a.password_hash.clone());
    let ok = crate::crypto::password::verify_blocking(password.to_owned(), stored).await;
    Ok(found.filter(|a| ok && !a.disabled))
}

/// Disables or enables an admin. An admin cannot disable themself: someone must always be able
/// to sign in and undo it.
///
/// # Errors
/// `NotFound` for an unknown admin; `Invalid` when `actor_id` disables themself.
pub async fn set_disabled(
    core: &Core,
    actor: &Actor,
    actor_id: Uuid,
    id: Uuid,
    disabled: bool,
) -> Result<admin::Model, Error> {
    if disabled && actor_id == id {
        return Err(Error::invalid(
            "disabled",
            "you cannot disable yourself: ask another admin",
        ));
    }
    let txn = crate::db::begin_write(&core.db).await?;
    let current = find(&txn, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no admin with id {id}")))?;
    let mut active = current.into_active_model();
    active.disabled = Set(disabled);
    let model = active.update(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: None,
            action: if disabled {
                Action::AdminDisabled
            } else {
                Action::AdminEnabled
            },
            target: Some(model.email.clone()),
            detail: serde_json::json!({ "admin_id": model.id }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}
