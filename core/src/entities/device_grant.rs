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
    /// Expiry is `expires_at`, not a status write.
    pub status: Status,
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

/// Where a request stands, stored as `pending | approved | denied | consumed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Status {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "approved")]
    Approved,
    #[sea_orm(string_value = "denied")]
    Denied,
    #[sea_orm(string_value = "consumed")]
    Consumed,
}

impl Status {
    /// The stored word, for audit details and pages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
