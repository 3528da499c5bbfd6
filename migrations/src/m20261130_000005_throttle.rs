//! Failure counters shared by every instance (wrong user codes and failed sign-ins per client
//! address and per account): one row per key and fixed window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Throttle {
    Table,
    Key,
    WindowStart,
    Failures,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Throttle::Table)
                    .col(string(Throttle::Key).primary_key())
                    .col(big_integer(Throttle::WindowStart))
                    .col(big_integer(Throttle::Failures))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_throttle_window_start")
                    .table(Throttle::Table)
                    .col(Throttle::WindowStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Throttle::Table).to_owned())
            .await
    }
}
