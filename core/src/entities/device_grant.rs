//! `device_grants`: one device authorization request, from creation to redemption.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `clients.id` (not the public client_id).
    pub client_id: Uuid,
    #[sea_orm(unique)]
    pub device_code_hash: String,
    /// HMAC of the normalized user code; cleared once its lifetime has passed.
    #[sea_orm(unique)]
    pub user_code_hash: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// `pending | approved | denied | consumed` (expiry is `expires_at`, not a status write).
    pub status: String,
    /// Seconds between polls; grows by 5 with every `slow_down`.
    pub interval: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_id: Option<Uuid>,
    pub auth_time: Option<i64>,
    pub decided_at: Option<i64>,
    pub consumed_at: Option<i64>,
    pub created_ip: Option<String>,
    pub user_agent: Option<String>,
    pub approved_ip: Option<String>,
    pub poll_count: i64,
    pub slow_downs: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
