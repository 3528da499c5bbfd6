//! `signing_keys`: per-workspace RS256 keys; the private half sealed with the master key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    #[sea_orm(unique)]
    pub kid: String,
    pub alg: String,
    /// base64 of AES-256-GCM(nonce ‖ PKCS#8 DER), additional data = the kid.
    #[sea_orm(column_type = "Text")]
    pub private_key_sealed: String,
    /// The public JWK as JSON.
    #[sea_orm(column_type = "Text")]
    pub public_jwk: String,
    pub created_at: i64,
    /// When a newer key replaced it; it stays published until its tokens have expired.
    pub retired_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
