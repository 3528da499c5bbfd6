//! Access tokens after minting: the one validation that introspection, userinfo and revocation
//! share, and revoking a single access token.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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
    let Some(kid) = claimed_kid(token) else {
        return Ok(None);
    };
    let verifiers = core.keys.verifiers(&core.db, workspace, &kid).await?;
    let issuer = tokens::issuer(&core.settings.server.public_url, &workspace.slug);
    Ok(verifiers
        .get(&kid)
        .and_then(|key| verified_claims(token, key, &issuer)))
}

/// The `kid` of a token that presents itself as one of ours: an RS256 JWT of type `at+jwt`.
fn claimed_kid(token: &str) -> Option<String> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(tokens::ACCESS_TOKEN_TYP)
            || t.eq_ignore_ascii_case("application/at+jwt")
    });
    header
        .kid
        .filter(|_| typ_ok && header.alg == Algorithm::RS256)
}

/// The claims of `token` when `key` signed it, for `issuer`, and it has not expired.
fn verified_claims(token: &str, key: &DecodingKey, issuer: &str) -> Option<AccessClaims> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    // Resource servers check the audience; here every audience of the workspace is ours.
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .ok()
        .map(|data| data.claims)
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

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;
    use crate::entities::client;
    use crate::services::keys;
    use crate::services::workspaces::Settings;
    use crate::types::{DisplayName, ScopeSet};

    const ISSUER: &str = "https://id.example.test/w/home";
    const KID: &str = "k1";

    /// A genuine access token, the key that signed it, and another key published under the
    /// same kid (as after a botched rotation, or an attacker's guess).
    struct Issued {
        token: String,
        verifier: DecodingKey,
        stranger: DecodingKey,
    }

    static ISSUED: LazyLock<Issued> = LazyLock::new(|| {
        let (key, verifier) = keys::unsaved(KID);
        let (_, stranger) = keys::unsaved(KID);
        let client = Client::parse(client::Model {
            id: Uuid::nil(),
            workspace_id: Uuid::nil(),
            client_id: "svc".into(),
            name: "Service".into(),
            secret_hash: None,
            public: false,
            grants: "client_credentials".into(),
            scopes: "api:read".into(),
            redirect_uris: String::new(),
            dcr_template: false,
            registered_from: None,
            registration_token_hash: None,
            access: "everyone".into(),
            device_networks: String::new(),
            proximity: "warn".into(),
            after_approval_url: None,
            created_at: 0,
            updated_at: 0,
        });
        let settings = Settings::defaults(DisplayName::parse("name", "Home").unwrap());
        let scopes = ScopeSet::parse("api:read").unwrap();
        let token = tokens::issue_for_client(&key, ISSUER, &settings, &client, &scopes)
            .unwrap()
            .access_token;
        Issued {
            token,
            verifier,
            stranger,
        }
    });

    /// Checked as [`verify_signature`] checks a token, with the published key of its kid.
    fn accepted(token: &str) -> bool {
        claimed_kid(token).is_some_and(|kid| kid == KID)
            && verified_claims(token, &ISSUED.verifier, ISSUER).is_some()
    }

    #[test]
    fn the_genuine_token_is_accepted_only_with_its_key_and_issuer() {
        let token = &ISSUED.token;
        assert!(accepted(token));
        let claims = verified_claims(token, &ISSUED.verifier, ISSUER).unwrap();
        assert_eq!((claims.sub.as_str(), claims.iss.as_str()), ("svc", ISSUER));
        assert!(verified_claims(token, &ISSUED.stranger, ISSUER).is_none());
        assert!(
            verified_claims(token, &ISSUED.verifier, "https://id.example.test/w/other").is_none()
        );
    }

    /// The header's algorithm is not believed: `none`, or HMAC keyed with the public key.
    #[test]
    fn other_algorithms_are_refused() {
        let (_, payload, _) = segments(&ISSUED.token);
        for alg in ["none", "HS256", "RS512", "PS256", "ES256"] {
            let header = URL_SAFE_NO_PAD
                .encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{KID}"}}"#));
            for signature in ["", "c2lnbmF0dXJl"] {
                let forged = format!("{header}.{payload}.{signature}");
                assert!(claimed_kid(&forged).is_none(), "{alg}");
                assert!(
                    verified_claims(&forged, &ISSUED.verifier, ISSUER).is_none(),
                    "{alg}"
                );
            }
        }
    }

    fn segments(token: &str) -> (&str, &str, &str) {
        let mut parts = token.splitn(3, '.');
        let mut next = || parts.next().unwrap();
        (next(), next(), next())
    }

    proptest! {
        #[test]
        fn arbitrary_strings_are_refused(token in any::<String>()) {
            prop_assert!(!accepted(&token));
            prop_assert!(verified_claims(&token, &ISSUED.verifier, ISSUER).is_none());
        }

        /// Our header and any payload, with a signature that is not the key's.
        #[test]
        fn forged_payloads_are_refused(
            payload in prop_oneof![
                any::<Vec<u8>>(),
                (any::<String>(), any::<i64>(), any::<i64>()).prop_map(|(sub, iat, exp)| {
                    serde_json::to_vec(&serde_json::json!({
                        "iss": ISSUER, "sub": sub, "aud": sub, "client_id": sub,
                        "iat": iat, "exp": exp, "jti": "j",
                    }))
                    .unwrap()
                }),
            ],
            signature in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (header, _, _) = segments(&ISSUED.token);
            let forged = format!(
                "{header}.{}.{}",
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(signature)
            );
            prop_assert!(!accepted(&forged));
        }

        /// The genuine token with any one character changed is refused.
        #[test]
        fn a_token_with_one_character_changed_is_refused(at in any::<prop::sample::Index>(), by in any::<char>()) {
            let token = &ISSUED.token;
            let at = at.index(token.len());
            prop_assume!(!token[at..].starts_with(by));
            let mut changed = token.clone();
            changed.replace_range(at..=at, by.encode_utf8(&mut [0; 4]));
            prop_assert!(!accepted(&changed), "{changed}");
        }

        /// Nor is any part of it, or more than it.
        #[test]
        fn a_cut_or_extended_token_is_refused(len in any::<prop::sample::Index>(), tail in "[ -~]{1,8}") {
            let token = &ISSUED.token;
            prop_assert!(!accepted(&token[..len.index(token.len())]));
            let extended = format!("{token}{tail}");
            prop_assert!(!accepted(&extended), "{}", extended);
        }
    }
}
