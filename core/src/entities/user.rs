//! `users`: end users of a workspace, who approve devices at `/activate`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    /// Bumped by a password change or a disable: sign-ins made under an older one have ended.
    pub session_generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
