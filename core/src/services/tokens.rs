//! Minting tokens: RFC 9068 JWT access tokens, OIDC ID tokens, and refresh tokens (random,
//! stored as HMAC only).

use jsonwebtoken::{Algorithm, Header};
use sea_orm::{ActiveModelTrait as _, ConnectionTrait, Set};
use serde::Serialize;
use uuid::Uuid;

use crate::crypto::{self, Keyring, SecretKind};
use crate::entities::{client, refresh_token, user, workspace};
use crate::error::Error;
use crate::services::keys::SigningKey;
use crate::services::workspaces::Settings;
use crate::types::{Grant, GrantSet, ScopeSet};

/// The issuer of a workspace: `{public_url}/w/{slug}`.
#[must_use]
pub fn issuer(public_url: &str, slug: &str) -> String {
    format!("{public_url}/w/{slug}")
}

/// What a successful token request returns.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    client_id: &'a str,
    scope: String,
    iat: i64,
    exp: i64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

/// Everything needed to mint tokens for a user's approval.
pub struct UserGrant<'a> {
    pub issuer: &'a str,
    pub workspace: &'a workspace::Model,
    pub settings: &'a Settings,
    pub client: &'a client::Model,
    pub user: &'a user::Model,
    pub scopes: &'a ScopeSet,
    pub auth_time: i64,
    pub device_grant_id: Option<Uuid>,
}

/// Mints the access token, an ID token when `openid` was granted, and a refresh token when
/// `offline_access` was granted to a client that has the refresh grant. Call inside the
/// transaction that consumes the grant, so both happen or neither.
///
/// # Errors
/// When signing or the refresh-token insert fails.
pub async fn issue_for_user(
    db: &impl ConnectionTrait,
    keyring: &Keyring,
    key: &SigningKey,
    g: &UserGrant<'_>,
) -> Result<Issued, Error> {
    let now = crate::now();
    let access_ttl = g.settings.access_token_ttl.get();
    let scope = g.scopes.to_string();
    let access = AccessClaims {
        iss: g.issuer,
        sub: g.user.id.to_string(),
        aud: g
            .settings
            .audience
            .as_deref()
            .unwrap_or(&g.client.client_id),
        client_id: &g.client.client_id,
        scope: scope.clone(),
        iat: now,
        exp: now + access_ttl,
        jti: Uuid::new_v4().to_string(),
        auth_time: Some(g.auth_time),
    };
    let access_token = sign(key, "at+jwt", &access)?;

    let id_token = if g.scopes.contains("openid") {
        let profile = g.scopes.contains("profile");
        let claims = IdClaims {
            iss: g.issuer,
            sub: g.user.id.to_string(),
            aud: &g.client.client_id,
            iat: now,
            exp: now + g.settings.id_token_ttl.get(),
            auth_time: g.auth_time,
            name: g.user.name.as_deref().filter(|_| profile),
            preferred_username: Some(g.user.username.as_str()).filter(|_| profile),
            email: g
                .user
                .email
                .as_deref()
                .filter(|_| g.scopes.contains("email")),
        };
        Some(sign(key, "JWT", &claims)?)
    } else {
        None
    };

    let refresh_allowed = GrantSet::from_stored(&g.client.grants).contains(Grant::RefreshToken);
    let refresh_token = if refresh_allowed && g.scopes.contains("offline_access") {
        let token = crypto::random_token();
        let id = Uuid::now_v7();
        refresh_token::ActiveModel {
            id: Set(id),
            family_id: Set(g.device_grant_id.unwrap_or(id)),
            parent_id: Set(None),
            workspace_id: Set(g.workspace.id),
            client_id: Set(g.client.id),
            user_id: Set(g.user.id),
            device_grant_id: Set(g.device_grant_id),
            token_hash: Set(keyring.hash_secret(SecretKind::RefreshToken, &token)),
            scopes: Set(scope.clone()),
            auth_time: Set(g.auth_time),
            created_at: Set(now),
            expires_at: Set(now + g.settings.refresh_token_ttl.get()),
            used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(db)
        .await?;
        Some(token)
    } else {
        None
    };

    Ok(Issued {
        access_token,
        token_type: "Bearer",
        expires_in: access_ttl,
        scope,
        id_token,
        refresh_token,
    })
}

fn sign<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String, Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding)
        .map_err(|e| Error::Internal(format!("signing failed: {e}")))
}
