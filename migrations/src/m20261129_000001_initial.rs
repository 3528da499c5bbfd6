//! Initial schema: admins, workspaces (with every device-flow setting), clients, users and the
//! audit log. Timestamps are Unix seconds (`BIGINT`) so both backends compare them the same way.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, boolean, integer, string, string_null, text, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Admins {
    Table,
    Id,
    Email,
    PasswordHash,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
    Slug,
    Name,
    DeviceFlowEnabled,
    UserCodeLength,
    UserCodeCharset,
    DeviceCodeTtl,
    PollingInterval,
    ConsentSkip,
    AccessTokenTtl,
    IdTokenTtl,
    RefreshTokenTtl,
    DeviceGrantMaxAge,
    Audience,
    DynamicRegistration,
    NewDeviceEmail,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    WorkspaceId,
    ClientId,
    Name,
    SecretHash,
    Public,
    Grants,
    Scopes,
    RedirectUris,
    DcrTemplate,
    RegisteredFrom,
    RegistrationTokenHash,
    Access,
    DeviceNetworks,
    Proximity,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    WorkspaceId,
    Username,
    Email,
    Name,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Actor,
    WorkspaceId,
    Action,
    Target,
    Detail,
    Ip,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Admins::Table)
                    .col(uuid(Admins::Id).primary_key())
                    .col(string(Admins::Email).unique_key())
                    .col(string(Admins::PasswordHash))
                    .col(boolean(Admins::Disabled))
                    .col(big_integer(Admins::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Workspaces::Table)
                    .col(uuid(Workspaces::Id).primary_key())
                    .col(string(Workspaces::Slug).unique_key())
                    .col(string(Workspaces::Name))
                    .col(boolean(Workspaces::DeviceFlowEnabled))
                    .col(integer(Workspaces::UserCodeLength))
                    .col(string(Workspaces::UserCodeCharset))
                    .col(big_integer(Workspaces::DeviceCodeTtl))
                    .col(big_integer(Workspaces::PollingInterval))
                    .col(boolean(Workspaces::ConsentSkip))
                    .col(big_integer(Workspaces::AccessTokenTtl))
                    .col(big_integer(Workspaces::IdTokenTtl))
                    .col(big_integer(Workspaces::RefreshTokenTtl))
                    .col(big_integer(Workspaces::DeviceGrantMaxAge))
                    .col(string_null(Workspaces::Audience))
                    .col(boolean(Workspaces::DynamicRegistration))
                    .col(boolean(Workspaces::NewDeviceEmail))
                    .col(big_integer(Workspaces::CreatedAt))
                    .col(big_integer(Workspaces::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(uuid(Clients::Id).primary_key())
                    .col(uuid(Clients::WorkspaceId))
                    .col(string(Clients::ClientId).unique_key())
                    .col(string(Clients::Name))
                    .col(string_null(Clients::SecretHash))
                    .col(boolean(Clients::Public))
                    .col(text(Clients::Grants))
                    .col(text(Clients::Scopes))
                    .col(text(Clients::RedirectUris))
                    .col(boolean(Clients::DcrTemplate))
                    .col(uuid_null(Clients::RegisteredFrom))
                    .col(string_null(Clients::RegistrationTokenHash))
                    .col(string(Clients::Access))
                    .col(text(Clients::DeviceNetworks))
                    .col(string(Clients::Proximity))
                    .col(big_integer(Clients::CreatedAt))
                    .col(big_integer(Clients::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_clients_workspace")
                            .from(Clients::Table, Clients::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_clients_workspace")
                    .table(Clients::Table)
                    .col(Clients::WorkspaceId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id).primary_key())
                    .col(uuid(Users::WorkspaceId))
                    .col(string(Users::Username))
                    .col(string_null(Users::Email))
                    .col(string_null(Users::Name))
                    .col(string(Users::PasswordHash))
                    .col(boolean(Users::Disabled))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_workspace")
                            .from(Users::Table, Users::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_users_workspace_username")
                    .table(Users::Table)
                    .col(Users::WorkspaceId)
                    .col(Users::Username)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_workspace_email")
                    .table(Users::Table)
                    .col(Users::WorkspaceId)
                    .col(Users::Email)
                    .to_owned(),
            )
            .await?;

        // The audit log outlives what it talks about: no foreign keys.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(uuid(AuditEvents::Id).primary_key())
                    .col(big_integer(AuditEvents::At))
                    .col(string(AuditEvents::Actor))
                    .col(uuid_null(AuditEvents::WorkspaceId))
                    .col(string(AuditEvents::Action))
                    .col(string_null(AuditEvents::Target))
                    .col(text(AuditEvents::Detail))
                    .col(string_null(AuditEvents::Ip))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_workspace_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::WorkspaceId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await
    }
}
