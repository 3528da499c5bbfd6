//! Device flow: per-workspace signing keys, device grants (the timeline of one request),
//! remembered consents and refresh tokens.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, string, string_null, text, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Workspaces {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    WorkspaceId,
    Kid,
    Alg,
    PrivateKeySealed,
    PublicJwk,
    CreatedAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum DeviceGrants {
    Table,
    Id,
    WorkspaceId,
    ClientId,
    DeviceCodeHash,
    UserCodeHash,
    Scopes,
    Status,
    Interval,
    CreatedAt,
    ExpiresAt,
    UserId,
    AuthTime,
    DecidedAt,
    ConsumedAt,
    CreatedIp,
    UserAgent,
    ApprovedIp,
    PollCount,
    SlowDowns,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    UserId,
    ClientId,
    Scopes,
    GrantedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    ParentId,
    WorkspaceId,
    ClientId,
    UserId,
    DeviceGrantId,
    TokenHash,
    Scopes,
    AuthTime,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(uuid(SigningKeys::Id).primary_key())
                    .col(uuid(SigningKeys::WorkspaceId))
                    .col(string(SigningKeys::Kid).unique_key())
                    .col(string(SigningKeys::Alg))
                    .col(text(SigningKeys::PrivateKeySealed))
                    .col(text(SigningKeys::PublicJwk))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer_null(SigningKeys::RetiredAt))
                    .foreign_key(&mut fk(
                        "fk_signing_keys_workspace",
                        (SigningKeys::Table, SigningKeys::WorkspaceId),
                        (Workspaces::Table, Workspaces::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_signing_keys_workspace")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::WorkspaceId)
                    .col(SigningKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceGrants::Table)
                    .col(uuid(DeviceGrants::Id).primary_key())
                    .col(uuid(DeviceGrants::WorkspaceId))
                    .col(uuid(DeviceGrants::ClientId))
                    .col(string(DeviceGrants::DeviceCodeHash).unique_key())
                    // Nullable: cleared once the code's lifetime has passed, so it can be drawn again.
                    .col(string_null(DeviceGrants::UserCodeHash).unique_key())
                    .col(text(DeviceGrants::Scopes))
                    .col(string(DeviceGrants::Status))
                    .col(big_integer(DeviceGrants::Interval))
                    .col(big_integer(DeviceGrants::CreatedAt))
                    .col(big_integer(DeviceGrants::ExpiresAt))
                    .col(uuid_null(DeviceGrants::UserId))
                    .col(big_integer_null(DeviceGrants::AuthTime))
                    .col(big_integer_null(DeviceGrants::DecidedAt))
                    .col(big_integer_null(DeviceGrants::ConsumedAt))
                    .col(string_null(DeviceGrants::CreatedIp))
                    .col(string_null(DeviceGrants::UserAgent))
                    .col(string_null(DeviceGrants::ApprovedIp))
                    .col(big_integer(DeviceGrants::PollCount))
                    .col(big_integer(DeviceGrants::SlowDowns))
                    .foreign_key(&mut fk(
                        "fk_device_grants_workspace",
                        (DeviceGrants::Table, DeviceGrants::WorkspaceId),
                        (Workspaces::Table, Workspaces::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_device_grants_client",
                        (DeviceGrants::Table, DeviceGrants::ClientId),
                        (Clients::Table, Clients::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_device_grants_user",
                        (DeviceGrants::Table, DeviceGrants::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_grants_workspace_created")
                    .table(DeviceGrants::Table)
                    .col(DeviceGrants::WorkspaceId)
                    .col(DeviceGrants::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(uuid(Consents::Id).primary_key())
                    .col(uuid(Consents::UserId))
                    .col(uuid(Consents::ClientId))
                    .col(text(Consents::Scopes))
                    .col(big_integer(Consents::GrantedAt))
                    .foreign_key(&mut fk(
                        "fk_consents_user",
                        (Consents::Table, Consents::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_consents_client",
                        (Consents::Table, Consents::ClientId),
                        (Clients::Table, Clients::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_consents_user_client")
                    .table(Consents::Table)
                    .col(Consents::UserId)
                    .col(Consents::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(uuid(RefreshTokens::Id).primary_key())
                    .col(uuid(RefreshTokens::FamilyId))
                    .col(uuid_null(RefreshTokens::ParentId))
                    .col(uuid(RefreshTokens::WorkspaceId))
                    .col(uuid(RefreshTokens::ClientId))
                    .col(uuid(RefreshTokens::UserId))
                    .col(uuid_null(RefreshTokens::DeviceGrantId))
                    .col(string(RefreshTokens::TokenHash).unique_key())
                    .col(text(RefreshTokens::Scopes))
                    .col(big_integer(RefreshTokens::AuthTime))
                    .col(big_integer(RefreshTokens::CreatedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::UsedAt))
                    .col(big_integer_null(RefreshTokens::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_refresh_tokens_workspace",
                        (RefreshTokens::Table, RefreshTokens::WorkspaceId),
                        (Workspaces::Table, Workspaces::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_refresh_tokens_client",
                        (RefreshTokens::Table, RefreshTokens::ClientId),
                        (Clients::Table, Clients::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_refresh_tokens_user",
                        (RefreshTokens::Table, RefreshTokens::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_family")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await
    }
}
