//! `grants`: one approval (a device authorization redeemed, or later a code-flow consent); every
//! token issued from it carries its id, so revoking it ends them all.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    /// For a device authorization, the device grant's id. The `gid` claim of every access
    /// token and the `family_id` of every refresh token issued from this approval.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `clients.id`.
    pub client_id: Uuid,
    pub user_id: Option<Uuid>,
    pub device_grant_id: Option<Uuid>,
    /// The scopes approved; refresh tokens of the family carry exactly these.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub auth_time: i64,
    /// When the user approved (`device_grant_max_age` counts from here).
    pub created_at: i64,
    pub last_refresh_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
