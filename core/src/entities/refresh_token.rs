//! `refresh_tokens`: stored as HMAC only; a family is every token descended from one approval.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub family_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub workspace_id: Uuid,
    /// `clients.id`.
    pub client_id: Uuid,
    pub user_id: Uuid,
    pub device_grant_id: Option<Uuid>,
    #[sea_orm(unique)]
    pub token_hash: String,
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
