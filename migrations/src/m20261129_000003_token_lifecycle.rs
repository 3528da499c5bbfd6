//! Token lifecycle: a `grants` row anchors every token issued from one approval (its id is the
//! `gid` claim of access tokens and the family of refresh tokens), and `revoked_access_tokens`
//! remembers single revoked access tokens until they expire.

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
enum Grants {
    Table,
    Id,
    WorkspaceId,
    ClientId,
    UserId,
    DeviceGrantId,
    Scopes,
    AuthTime,
    CreatedAt,
    LastRefreshAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RevokedAccessTokens {
    Table,
    Jti,
    WorkspaceId,
    ExpiresAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(uuid(Grants::Id).primary_key())
                    .col(uuid(Grants::WorkspaceId))
                    .col(uuid(Grants::ClientId))
                    .col(uuid_null(Grants::UserId))
                    .col(uuid_null(Grants::DeviceGrantId))
                    .col(text(Grants::Scopes))
                    .col(big_integer(Grants::AuthTime))
                    .col(big_integer(Grants::CreatedAt))
                    .col(big_integer_null(Grants::LastRefreshAt))
                    .col(big_integer_null(Grants::RevokedAt))
                    .col(string_null(Grants::RevokedReason))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_grants_workspace")
                            .from(Grants::Table, Grants::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_grants_client")
                            .from(Grants::Table, Grants::ClientId)
                            .to(Clients::Table, Clients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_grants_user")
                            .from(Grants::Table, Grants::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_user")
                    .table(Grants::Table)
                    .col(Grants::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RevokedAccessTokens::Table)
                    .col(string(RevokedAccessTokens::Jti).primary_key())
                    .col(uuid(RevokedAccessTokens::WorkspaceId))
                    .col(big_integer(RevokedAccessTokens::ExpiresAt))
                    .col(big_integer(RevokedAccessTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_revoked_access_tokens_workspace")
                            .from(RevokedAccessTokens::Table, RevokedAccessTokens::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The housekeeping purge deletes by expiry.
        manager
            .create_index(
                Index::create()
                    .name("idx_revoked_access_tokens_expires")
                    .table(RevokedAccessTokens::Table)
                    .col(RevokedAccessTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }
}
