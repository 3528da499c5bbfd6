//! The log of device-grant status changes that other instances follow by id (a monotonic
//! cursor), so what they remember of pending grants never depends on clocks agreeing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_pk_auto, string};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceGrantChanges {
    Table,
    Id,
    DeviceCodeHash,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeviceGrantChanges::Table)
                    .col(big_pk_auto(DeviceGrantChanges::Id))
                    .col(string(DeviceGrantChanges::DeviceCodeHash))
                    .col(string(DeviceGrantChanges::Status))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeviceGrantChanges::Table).to_owned())
            .await
    }
}
