//! Access tokens after minting: the one validation that introspection, userinfo and revocation
//! share, and revoking a single access token.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _, Set};
use uuid::Uuid;

use crate::Core;
use crate::entities::{revoked_access_token, user};
use crate::error::Error;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::tokens::{self, AccessClaims};
use crate::services::{grants, users};

/// An access token that is valid right now.
#[derive(Debug, Clone)]
pub struct ActiveAccessToken {
    pub claims: AccessClaims,
    pub client: Arc<crate::records::Client>,
    /// The user the token acts for; `None` for a `client_credentials` token.
    pub user: Option<user::Model>,
}

/// Validates an access token presented to the workspace. `None` (inactive) unless every check
/// passes: an RS256 JWT of type `at+jwt` signed by one of the workspace's published keys (by
/// `kid`), issued by the workspace, not expired, not revoked one by one (`jti`), its client
/// still registered in the workspace (for a `client_credentials` token, the very client it was
/// issued to, by row id), and — for a user's token — its grant neither revoked nor past
/// `device_grant_max_age`, and its user still there and enabled.
///
/// # Errors
/// Only on a database failure or a corrupt stored key: a bad token is `Ok(None)`.
pub async fn validate(
    core: &Core,
    workspace: &Workspace,
    token: &str,
) -> Result<Option<ActiveAccessToken>, Error> {
    let Some(claims) = verify_signature(core, workspace, token).await? else {
        return Ok(None);
    };
    let now = crate::now();
    if claims.exp <= now {
        return Ok(None);
    }
    let Some(client) = core
        .records
        .client(&core.db, &claims.client_id)
        .await?
        .filter(|c| c.workspace_id == workspace.id)
    else {
        return Ok(None);
    };
    let revoked = revoked_access_token::Entity::find_by_id(claims.jti.clone())
        .one(&core.db)
        .await?
        .is_some();
    if revoked {
        return Ok(None);
    }
    let user = match claims.gid {
        Some(gid) => {
            let Some(user) = user_of_grant(core, workspace, &client, gid, &claims, now).await?
            else {
                return Ok(None);
            };
            Some(user)
        }
        // A client acting for itself: this very client, not an earlier one with its client_id.
        None if claims.sub == client.client_id && claims.cid == Some(client.id) => None,
        None => return Ok(None),
    };
    Ok(Some(ActiveAccessToken {
        claims,
        client,
        user,
    }))
}

/// The claims of a well-formed token signed by a published key of the workspace.
async fn verify_signature(
    core: &Core,
    workspace: &Workspace,
    token: &str,
) -> Result<Option<AccessClaims>, Error> {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(None);
    };
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(tokens::ACCESS_TOKEN_TYP)
            || t.eq_ignore_ascii_case("application/at+jwt")
    });
    let Some(kid) = header
        .kid
        .filter(|_| typ_ok && header.alg == Algorithm::RS256)
    else {
        return Ok(None);
    };
    let verifiers = core.keys.verifiers(&core.db, workspace, &kid).await?;
    let Some(key) = verifiers.get(&kid) else {
        return Ok(None);
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[tokens::issuer(
        &core.settings.server.public_url,
        &workspace.slug,
    )]);
    // Resource servers check the audience; here every audience of the workspace is ours.
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    Ok(
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .ok()
            .map(|data| data.claims),
    )
}

/// The enabled user a live grant of this client belongs to, if the token's `sub` is that user.
async fn user_of_grant(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    gid: Uuid,
    claims: &AccessClaims,
    now: i64,
) -> Result<Option<user::Model>, Error> {
    let Some(grant) = grants::find(&core.db, gid)
        .await?
        .filter(|g| g.workspace_id == workspace.id && g.client_id == client.id)
        .filter(|g| grants::is_live(g, &workspace.settings, now))
    else {
        return Ok(None);
    };
    let Some(user_id) = grant.user_id.filter(|id| id.to_string() == claims.sub) else {
        return Ok(None);
    };
    Ok(users::find_by_id(&core.db, user_id)
        .await?
        .filter(|u| !u.disabled && u.workspace_id == workspace.id))
}

/// Makes one access token inactive until it would have expired anyway. `false` when it was
/// already revoked.
///
/// # Errors
/// On a database failure.
pub async fn revoke(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    token: &ActiveAccessToken,
    actor: &Actor,
    ip: Option<String>,
) -> Result<bool, Error> {
    let inserted = revoked_access_token::Entity::insert(revoked_access_token::ActiveModel {
        jti: Set(token.claims.jti.clone()),
        workspace_id: Set(workspace_id),
        expires_at: Set(token.claims.exp),
        revoked_at: Set(crate::now()),
    })
    .on_conflict(
        OnConflict::column(revoked_access_token::Column::Jti)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 0 {
        return Ok(false);
    }
    audit::record(
        db,
        audit::Event {
            actor,
            workspace_id: Some(workspace_id),
            action: Action::AccessTokenRevoked,
            target: Some(token.claims.jti.clone()),
            detail: serde_json::json!({
                "client": token.claims.client_id,
                "grant": token.claims.gid,
                "expires_at": token.claims.exp,
            }),
            ip,
        },
    )
    .await?;
    Ok(true)
}

/// Forgets revocations of tokens that have expired since (they fail validation by `exp`).
///
/// # Errors
/// On a database failure.
pub async fn purge_expired_revocations(db: &impl ConnectionTrait) -> Result<u64, Error> {
    Ok(revoked_access_token::Entity::delete_many()
        .filter(revoked_access_token::Column::ExpiresAt.lte(crate::now()))
        .exec(db)
        .await?
        .rows_affected)
}
