//! Schema history of Vestibule. Each migration is frozen once released: never import entities
//! here, never edit an applied migration; add a new one instead.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_initial;
mod m20261129_000002_device_flow;
mod m20261129_000003_token_lifecycle;
mod m20261130_000004_decided_at_index;
mod m20261130_000005_throttle;
mod m20261203_000006_device_grant_changes;
mod m20261203_000007_unbuilt_workspace_flags_off;
mod m20261203_150000_user_session_generation;
mod m20261204_120000_client_after_approval_url;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_initial::Migration),
            Box::new(m20261129_000002_device_flow::Migration),
            Box::new(m20261129_000003_token_lifecycle::Migration),
            Box::new(m20261130_000004_decided_at_index::Migration),
            Box::new(m20261130_000005_throttle::Migration),
            Box::new(m20261203_000006_device_grant_changes::Migration),
            Box::new(m20261203_000007_unbuilt_workspace_flags_off::Migration),
            Box::new(m20261203_150000_user_session_generation::Migration),
            Box::new(m20261204_120000_client_after_approval_url::Migration),
        ]
    }
}
