//! Every server instance looks up the device grants decided during the last minute a few
//! times a second (to stop answering `authorization_pending` from memory for them).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceGrants {
    Table,
    DecidedAt,
}

const NAME: &str = "idx_device_grants_decided_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(DeviceGrants::Table)
                    .col(DeviceGrants::DecidedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NAME)
                    .table(DeviceGrants::Table)
                    .to_owned(),
            )
            .await
    }
}
