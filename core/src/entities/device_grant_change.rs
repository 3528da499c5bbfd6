//! `device_grant_changes`: one row per status change of a device grant, appended in the
//! transaction that makes it; other instances read it in id order.

use sea_orm::entity::prelude::*;

use super::device_grant::Status;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_grant_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub device_code_hash: String,
    /// The status the grant moved to.
    pub status: Status,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
