//! `throttle`: failures counted per key (e.g. `activate:address:198.51.100.7`, stored as its
//! SHA-256 in hex) in a fixed window, shared by every instance.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "throttle")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Unix seconds when the current window began (at the first failure after the last one).
    pub window_start: i64,
    pub failures: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
