//! Turns off the workspace flags no code has ever acted on (`dynamic_registration`,
//! `new_device_email`): the server now refuses them until their capability is built, and a
//! stored `on` would block every later change of the workspace's settings. Nothing behaves
//! differently: neither flag was read.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    DynamicRegistration,
    NewDeviceEmail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::update()
                    .table(Workspaces::Table)
                    .value(Workspaces::DynamicRegistration, false)
                    .value(Workspaces::NewDeviceEmail, false)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Which workspaces had a flag on is not kept; off is what they did.
        Ok(())
    }
}
