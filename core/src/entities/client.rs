//! `clients`: service providers registered in a workspace.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    #[sea_orm(unique)]
    pub client_id: String,
    pub name: String,
    /// HMAC of the secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub public: bool,
    /// Space-separated grant names (`device_code refresh_token …`).
    #[sea_orm(column_type = "Text")]
    pub grants: String,
    /// Space-separated scopes the client may ask for.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// One redirect URI a line.
    #[sea_orm(column_type = "Text")]
    pub redirect_uris: String,
    pub dcr_template: bool,
    pub registered_from: Option<Uuid>,
    pub registration_token_hash: Option<String>,
    pub access: String,
    /// One CIDR a line; empty means anywhere.
    #[sea_orm(column_type = "Text")]
    pub device_networks: String,
    pub proximity: String,
    /// Where the browser goes after an approval (`https`, or `http` on loopback); `None`: the
    /// done page.
    #[sea_orm(column_type = "Text", nullable)]
    pub after_approval_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
