//! Minting tokens: RFC 9068 JWT access tokens, OIDC ID tokens, and refresh tokens (random,
//! stored as HMAC only).

use jsonwebtoken::{Algorithm, Header};
use sea_orm::{ActiveModelTrait as _, ConnectionTrait, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{self, Keyring, SecretKind};
use crate::entities::{grant, refresh_token, user};
use crate::error::Error;
use crate::records::Client;
use crate::services::keys::SigningKey;
use crate::services::workspaces::Settings;
use crate::types::{Grant, ScopeSet};

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

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

/// The claims of an access token (RFC 9068 §2.2), as minted and as read back when validating.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's id, or the client_id of a `client_credentials` token.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The grant (approval) the token was issued from; absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The client's own id (`clients.id`) on a `client_credentials` token: a client deleted and
    /// registered again under the same client_id is another client, and the old one's tokens
    /// stay inactive. A user's token is bound to the client through its grant instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<Uuid>,
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

/// Everything needed to mint tokens from a user's approval.
pub struct UserGrant<'a> {
    pub issuer: &'a str,
    pub settings: &'a Settings,
    pub client: &'a Client,
    pub user: &'a user::Model,
    /// The approval every token issued here descends from.
    pub grant: &'a grant::Model,
    /// The scopes of this access token: the grant's, or fewer on a narrowing refresh.
    pub scopes: &'a ScopeSet,
    /// The refresh token this response replaces (rotation), if any.
    pub replaces: Option<Uuid>,
}

/// Mints the access token, an ID token when `openid` is among the token's scopes, and a
/// refresh token when `offline_access` was granted to a client that has the refresh grant.
/// The refresh token carries exactly the grant's scopes (RFC 6749 §6), whatever the access
/// token was narrowed to. Call inside the transaction that consumes the grant or the refresh
/// token, so both happen or neither.
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
        iss: g.issuer.to_owned(),
        sub: g.user.id.to_string(),
        aud: audience(g.settings, g.client),
        client_id: g.client.client_id.clone(),
        scope: scope.clone(),
        iat: now,
        exp: now + access_ttl,
        jti: Uuid::new_v4().to_string(),
        gid: Some(g.grant.id),
        auth_time: Some(g.grant.auth_time),
        cid: None,
    };
    let access_token = sign(key, ACCESS_TOKEN_TYP, &access)?;

    let id_token = if g.scopes.contains("openid") {
        let profile = g.scopes.contains("profile");
        let claims = IdClaims {
            iss: g.issuer,
            sub: g.user.id.to_string(),
            aud: &g.client.client_id,
            iat: now,
            exp: now + g.settings.id_token_ttl.get(),
            auth_time: g.grant.auth_time,
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

    let refresh_allowed = g.client.grants.contains(Grant::RefreshToken);
    let refresh_token =
        if refresh_allowed && ScopeSet::from_stored(&g.grant.scopes).contains("offline_access") {
            let token = crypto::random_token();
            refresh_token::ActiveModel {
                id: Set(Uuid::now_v7()),
                family_id: Set(g.grant.id),
                parent_id: Set(g.replaces),
                workspace_id: Set(g.grant.workspace_id),
                client_id: Set(g.client.id),
                user_id: Set(g.user.id),
                device_grant_id: Set(g.grant.device_grant_id),
                token_hash: Set(keyring.hash_secret(SecretKind::RefreshToken, &token)),
                scopes: Set(g.grant.scopes.clone()),
                auth_time: Set(g.grant.auth_time),
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

/// Mints a `client_credentials` access token: the client acts for itself (`sub` = its
/// client_id), with no ID token and no refresh token (RFC 6749 §4.4.3).
///
/// # Errors
/// When signing fails.
pub fn issue_for_client(
    key: &SigningKey,
    issuer: &str,
    settings: &Settings,
    client: &Client,
    scopes: &ScopeSet,
) -> Result<Issued, Error> {
    let now = crate::now();
    let access_ttl = settings.access_token_ttl.get();
    let scope = scopes.to_string();
    let claims = AccessClaims {
        iss: issuer.to_owned(),
        sub: client.client_id.clone(),
        aud: audience(settings, client),
        client_id: client.client_id.clone(),
        scope: scope.clone(),
        iat: now,
        exp: now + access_ttl,
        jti: Uuid::new_v4().to_string(),
        gid: None,
        auth_time: None,
        cid: Some(client.id),
    };
    Ok(Issued {
        access_token: sign(key, ACCESS_TOKEN_TYP, &claims)?,
        token_type: "Bearer",
        expires_in: access_ttl,
        scope,
        id_token: None,
        refresh_token: None,
    })
}

/// The `aud` of access tokens: the workspace's configured audience, else the client_id.
fn audience(settings: &Settings, client: &Client) -> String {
    settings
        .audience
        .clone()
        .unwrap_or_else(|| client.client_id.clone())
}

fn sign<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String, Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding)
        .map_err(|e| Error::internal_from("signing failed", e))
}
