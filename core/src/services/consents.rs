//! Remembered consent: which scopes a user has granted a client, so consent can be skipped
//! when the workspace allows it.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, QuerySelect as _, Set,
};
use uuid::Uuid;

use crate::entities::consent;
use crate::error::Error;
use crate::types::ScopeSet;

/// Whether the user already granted the client every scope in `scopes` (or more).
///
/// # Errors
/// On a database failure.
pub async fn covers(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
    scopes: &ScopeSet,
) -> Result<bool, Error> {
    Ok(find(db, user_id, client_id)
        .await?
        .is_some_and(|c| scopes.is_subset(&ScopeSet::from_stored(&c.scopes))))
}

/// Adds `scopes` to what the user has granted the client. Race-free: concurrent first
/// approvals meet at the unique (user, client) index, where all but one insert do nothing and
/// wait for the winner; each then unions its scopes into the row while holding its lock
/// (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already holds the database).
///
/// # Errors
/// On a database failure.
pub async fn record(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
    scopes: &ScopeSet,
) -> Result<(), Error> {
    let now = crate::now();
    let inserted = consent::Entity::insert(consent::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        client_id: Set(client_id),
        scopes: Set(scopes.to_string()),
        granted_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([consent::Column::UserId, consent::Column::ClientId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 1 {
        return Ok(());
    }
    let existing = consent::Entity::find()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| Error::internal("a consent vanished while it was being recorded"))?;
    let mut all = ScopeSet::from_stored(&existing.scopes);
    for s in scopes.iter() {
        all.insert(s);
    }
    let mut active = existing.into_active_model();
    active.scopes = Set(all.to_string());
    active.granted_at = Set(now);
    active.update(db).await?;
    Ok(())
}

/// Forgets what the user granted the client, so the next request of it asks again. Call in
/// the unit of work that revokes their grant.
///
/// # Errors
/// On a database failure.
pub async fn forget(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
) -> Result<(), Error> {
    consent::Entity::delete_many()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    client_id: Uuid,
) -> Result<Option<consent::Model>, Error> {
    Ok(consent::Entity::find()
        .filter(consent::Column::UserId.eq(user_id))
        .filter(consent::Column::ClientId.eq(client_id))
        .one(db)
        .await?)
}
