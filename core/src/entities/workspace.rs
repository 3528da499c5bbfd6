//! `workspaces`: one issuer each, with its device-flow settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspaces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    pub device_flow_enabled: bool,
    pub user_code_length: i32,
    pub user_code_charset: String,
    pub device_code_ttl: i64,
    pub polling_interval: i64,
    pub consent_skip: bool,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    pub refresh_token_ttl: i64,
    pub device_grant_max_age: i64,
    pub audience: Option<String>,
    pub dynamic_registration: bool,
    pub new_device_email: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
