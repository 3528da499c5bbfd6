//! Remembered consent: which scopes a user has granted a client, so consent can be skipped
//! when the workspace allows it.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, Set,
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

/// Adds `scopes` to what the user has granted the client.
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
    match find(db, user_id, client_id).await? {
        Some(existing) => {
            let mut all = ScopeSet::from_stored(&existing.scopes);
            for s in scopes.iter() {
                all.insert(s);
            }
            let mut active = existing.into_active_model();
            active.scopes = Set(all.to_string());
            active.granted_at = Set(now);
            active.update(db).await?;
        }
        None => {
            consent::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(user_id),
                client_id: Set(client_id),
                scopes: Set(scopes.to_string()),
                granted_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
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
