//! Everything after the first tokens: refresh with rotation and reuse detection, revocation
//! (RFC 7009), introspection (RFC 7662), userinfo (OIDC Core §5.3), `client_credentials` and
//! signing-key rotation. Driven by the `oauth2` crate where it fits, plain HTTP for the rest;
//! endpoints are found through discovery.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, IntrospectionUrl,
    RefreshToken, Scope, TokenIntrospectionResponse as _, TokenResponse as _, TokenUrl,
};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, HeaderMap, WWW_AUTHENTICATE};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, EntityTrait as _, IntoActiveModel as _,
    QueryFilter as _, Set,
};
use serde_json::Value;
use vestibule_core::entities::{audit_event, refresh_token, user, workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::interaction::Decision;
use vestibule_core::services::workspaces::{self, Changes};
use vestibule_core::services::{clients, keys};

use crate::helpers::{TestApp, outlive_a_one_second_lifetime};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const ALL_SCOPES: &str = "openid profile email offline_access";

/// An `oauth2` client with the token and introspection endpoints set.
type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointSet>;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Endpoint paths of a workspace, read from its discovery document.
struct Endpoints {
    token: String,
    revocation: String,
    introspection: String,
    userinfo: String,
    jwks: String,
}

async fn endpoints(app: &TestApp, slug: &str) -> Endpoints {
    let meta: Value = app
        .get(&format!("/w/{slug}/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    let path = |field: &str| {
        meta[field]
            .as_str()
            .unwrap_or_else(|| panic!("discovery names {field}"))
            .strip_prefix(&app.address)
            .unwrap()
            .to_owned()
    };
    Endpoints {
        token: path("token_endpoint"),
        revocation: path("revocation_endpoint"),
        introspection: path("introspection_endpoint"),
        userinfo: path("userinfo_endpoint"),
        jwks: path("jwks_uri"),
    }
}

/// An app with a workspace, a public TV app with the refresh grant, a resource server (a
/// confidential client) and a user.
struct Lab {
    app: TestApp,
    ws: workspace::Model,
    ep: Endpoints,
    alice: user::Model,
    tv: String,
    rs: (String, String),
}

async fn lab(slug: &str, changes: Changes) -> Lab {
    let app = TestApp::spawn().await;
    lab_in(app, slug, changes).await
}

async fn lab_in(app: TestApp, slug: &str, changes: Changes) -> Lab {
    let ws = app.workspace(slug, changes).await;
    let (tv, _) = app
        .client(&ws, true, &["device_code", "refresh_token"], ALL_SCOPES)
        .await;
    let (rs_id, rs_secret) = app
        .client(&ws, false, &["client_credentials"], "api:read")
        .await;
    let alice = app.user(&ws, "alice", "alice password").await;
    let ep = endpoints(&app, slug).await;
    Lab {
        app,
        ws,
        ep,
        alice,
        tv,
        rs: (rs_id, rs_secret.unwrap()),
    }
}

impl Lab {
    fn slug(&self) -> &str {
        &self.ws.slug
    }

    /// Tokens for alice through the TV app.
    async fn tv_tokens(&self, scope: &str) -> Tokens {
        device_tokens(&self.app, self.slug(), (&self.tv, None), &self.alice, scope).await
    }

    /// A refresh request by a public client.
    async fn refresh(&self, client_id: &str, token: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let (status, body, headers) = self.app.post_form(&self.ep.token, &form, None).await;
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        (status, body)
    }

    /// What the resource server learns about a token.
    async fn introspect(&self, token: &str, hint: Option<&str>) -> Value {
        let mut form = vec![("token", token)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        let (status, body, headers) = self
            .app
            .post_form(
                &self.ep.introspection,
                &form,
                Some((&self.rs.0, &self.rs.1)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        body
    }

    async fn active(&self, token: &str) -> bool {
        let body = self.introspect(token, None).await;
        let active = body["active"].as_bool().unwrap();
        if !active {
            assert_eq!(body, serde_json::json!({"active": false}), "nothing more");
        }
        active
    }

    /// A revocation request; `basic` authenticates a confidential client, else `client_id` is
    /// sent in the body. Returns the status and body.
    async fn revoke(
        &self,
        client: (&str, Option<&str>),
        token: &str,
        hint: Option<&str>,
    ) -> (u16, Value) {
        let mut form = vec![("token", token)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        let basic = match client {
            (id, Some(secret)) => Some((id, secret)),
            (id, None) => {
                form.push(("client_id", id));
                None
            }
        };
        let (status, body, headers) = self.app.post_form(&self.ep.revocation, &form, basic).await;
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        (status, body)
    }

    async fn audit_actions(&self) -> Vec<String> {
        audit_event::Entity::find()
            .filter(audit_event::Column::WorkspaceId.eq(self.ws.id))
            .all(&self.app.core.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// An `oauth2` client of this workspace.
    fn oauth(&self, client_id: &str, secret: Option<&str>) -> OAuthClient {
        let client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_token_uri(TokenUrl::new(self.app.url(&self.ep.token)).unwrap())
            .set_introspection_url(
                IntrospectionUrl::new(self.app.url(&self.ep.introspection)).unwrap(),
            );
        match secret {
            Some(s) => client.set_client_secret(ClientSecret::new(s.to_owned())),
            None => client.set_auth_type(AuthType::RequestBody),
        }
    }
}

/// A token response's tokens.
#[derive(Debug, Clone)]
struct Tokens {
    body: Value,
    access: String,
    refresh: Option<String>,
}

impl Tokens {
    fn from_body(body: Value) -> Self {
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().map(str::to_owned),
            body,
        }
    }

    fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh token")
    }
}

/// Runs a device flow to the end: the client asks, `user` approves, the client redeems.
async fn device_tokens(
    app: &TestApp,
    slug: &str,
    (client_id, secret): (&str, Option<&str>),
    user: &user::Model,
    scope: &str,
) -> Tokens {
    let basic = secret.map(|s| (client_id, s));
    let mut form = vec![("scope", scope)];
    if secret.is_none() {
        form.push(("client_id", client_id));
    }
    let (status, started, _) = app
        .post_form(&format!("/w/{slug}/device_authorization"), &form, basic)
        .await;
    assert_eq!(status, 200, "{started}");
    app.decide(
        started["user_code"].as_str().unwrap(),
        user,
        Decision::Approve,
    )
    .await;
    let mut form = vec![
        ("grant_type", DEVICE_GRANT),
        ("device_code", started["device_code"].as_str().unwrap()),
    ];
    if secret.is_none() {
        form.push(("client_id", client_id));
    }
    let (status, body, _) = app
        .post_form(&format!("/w/{slug}/token"), &form, basic)
        .await;
    assert_eq!(status, 200, "{body}");
    Tokens::from_body(body)
}

fn error_of(body: &Value) -> &str {
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "error_description always: {body}"
    );
    body["error"].as_str().unwrap_or_default()
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

fn scope_set(scopes: &[Scope]) -> HashSet<String> {
    scopes.iter().map(|s| s.to_string()).collect()
}

fn set(words: &str) -> HashSet<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

async fn jwks(app: &TestApp, path: &str) -> JwkSet {
    app.get(path).await.json().await.unwrap()
}

/// Verifies an RS256 JWT against the JWKS at `path` and returns its claims.
async fn verify(app: &TestApp, path: &str, token: &str, audience: &str) -> Value {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let set = jwks(app, path).await;
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is published"));
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn discovery_names_the_lifecycle_endpoints() {
    let app = TestApp::spawn().await;
    app.workspace("disc", Changes::default()).await;
    let meta: Value = app
        .get("/w/disc/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let issuer = app.issuer("disc");
    assert_eq!(meta["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{issuer}/introspect")
    );
    assert_eq!(meta["userinfo_endpoint"], format!("{issuer}/userinfo"));
    let grants: HashSet<&str> = meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(
        grants,
        HashSet::from([DEVICE_GRANT, "refresh_token", "client_credentials"])
    );
    assert_eq!(
        meta["revocation_endpoint_auth_methods_supported"],
        serde_json::json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    let rfc8414: Value = app
        .get("/.well-known/oauth-authorization-server/w/disc")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta, rfc8414);
}

/// Rotation on every use; presenting a used token ends the whole family.
#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let lab = lab("rotate", Changes::default()).await;
    let first = lab.tv_tokens(ALL_SCOPES).await;
    let (rt1, at1) = (first.refresh().to_owned(), first.access.clone());

    // A real client refreshes: a new refresh token comes back, with the same scope.
    let client = lab.oauth(&lab.tv, None);
    let http = http();
    let second = client
        .exchange_refresh_token(&RefreshToken::new(rt1.clone()))
        .request_async(&http)
        .await
        .unwrap();
    let rt2 = second
        .refresh_token()
        .expect("rotation returns a new refresh token")
        .secret()
        .clone();
    let at2 = second.access_token().secret().clone();
    assert_ne!(rt2, rt1);
    assert_ne!(at2, at1);
    assert_eq!(scope_set(second.scopes().unwrap()), set(ALL_SCOPES));

    // The old one is refused from now on: shown by introspection (presenting it would be a
    // replay). The new one works, and gives an ID token again.
    assert!(!lab.active(&rt1).await);
    assert!(lab.active(&rt2).await);
    let (status, third) = lab.refresh(&lab.tv, &rt2, None).await;
    assert_eq!(status, 200, "{third}");
    assert!(third["id_token"].is_string());
    assert_eq!(third["token_type"], "Bearer");
    let third = Tokens::from_body(third);
    let (rt3, at3) = (third.refresh().to_owned(), third.access.clone());
    for (token, active) in [
        (&rt1, false),
        (&rt2, false),
        (&rt3, true),
        (&at1, true),
        (&at2, true),
        (&at3, true),
    ] {
        assert_eq!(lab.active(token).await, active, "{token}");
    }
    // Every access token of the family names the same grant.
    let gid = |t: &str| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(t)
            .unwrap()
            .claims["gid"]
            .clone()
    };
    assert!(gid(&at1).is_string());
    assert_eq!(gid(&at1), gid(&at3));

    // Replay of the first token: refused, and every member of the family is now inactive.
    let (status, body) = lab.refresh(&lab.tv, &rt1, None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    assert!(description(&body).contains("already used"), "{body}");
    for token in [&rt1, &rt2, &rt3, &at1, &at2, &at3] {
        assert!(!lab.active(token).await, "{token}");
    }
    let (status, body) = lab.refresh(&lab.tv, &rt3, None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

    let actions = lab.audit_actions().await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("refresh_token.rotated"), 2, "{actions:?}");
    assert_eq!(count("refresh_token.reused"), 1, "{actions:?}");
    assert_eq!(count("grant.revoked"), 1, "{actions:?}");

    // One family, chained by parent, stored as HMACs only.
    let rows = refresh_token::Entity::find()
        .all(&lab.app.core.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.family_id == rows[0].family_id));
    assert_eq!(rows.iter().filter(|r| r.parent_id.is_none()).count(), 1);
    let dump = format!("{rows:?}");
    for token in [&rt1, &rt2, &rt3] {
        assert!(!dump.contains(token.as_str()), "a refresh token in clear");
    }
}

#[tokio::test]
async fn racing_refreshes_rotate_exactly_once() {
    let lab = lab("race", Changes::default()).await;
    let tokens = lab.tv_tokens(ALL_SCOPES).await;
    let racers = (0..20).map(|_| {
        let http = lab.app.client.clone();
        let url = lab.app.url(&lab.ep.token);
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", tokens.refresh().to_owned()),
            ("client_id", lab.tv.clone()),
        ];
        tokio::spawn(async move {
            let res = http.post(url).form(&form).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    });
    let results: Vec<(u16, Value)> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 400 && b["error"] == "invalid_grant"),
        "{results:?}"
    );
    let children = refresh_token::Entity::find()
        .filter(refresh_token::Column::ParentId.is_not_null())
        .all(&lab.app.core.db)
        .await
        .unwrap();
    assert_eq!(children.len(), 1, "one rotation, one new refresh token");
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let lab = lab("narrow", Changes::default()).await;
    let tokens = lab.tv_tokens("openid profile offline_access").await;
    let client = lab.oauth(&lab.tv, None);
    let http = http();

    let narrowed = client
        .exchange_refresh_token(&RefreshToken::new(tokens.refresh().to_owned()))
        .add_scope(Scope::new("profile".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(scope_set(narrowed.scopes().unwrap()), set("profile"));
    let access = lab
        .introspect(narrowed.access_token().secret(), Some("access_token"))
        .await;
    assert_eq!(access["scope"], "profile");
    // The new refresh token keeps the scope originally granted (RFC 6749 §6).
    let rt2 = narrowed.refresh_token().unwrap().secret().clone();
    let refresh = lab.introspect(&rt2, Some("refresh_token")).await;
    assert_eq!(refresh["scope"], "offline_access openid profile");

    // email is enabled for the client but was not granted: a widening refresh is refused…
    let (status, body) = lab.refresh(&lab.tv, &rt2, Some("openid email")).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_scope"));
    assert!(description(&body).contains("email"), "{body}");
    // …and does not use up the token, which still gives the full granted scope.
    let (status, body) = lab.refresh(&lab.tv, &rt2, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "offline_access openid profile");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn refresh_tokens_expire_after_the_workspace_lifetime() {
    let lab = lab(
        "brief",
        Changes {
            refresh_token_ttl: Some(1),
            ..Changes::default()
        },
    )
    .await;
    let tokens = lab.tv_tokens(ALL_SCOPES).await;
    outlive_a_one_second_lifetime().await;
    assert!(!lab.active(tokens.refresh()).await);
    let (status, body) = lab.refresh(&lab.tv, tokens.refresh(), None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    assert!(description(&body).contains("expired"), "{body}");
    // An expired token is not a replay: the access token of the grant is untouched.
    assert!(lab.active(&tokens.access).await);
}

#[tokio::test]
async fn device_grant_max_age_ends_refresh_whatever_the_rotation() {
    let lab = lab("aged", Changes::default()).await;
    let tokens = lab.tv_tokens(ALL_SCOPES).await;
    let (status, rotated) = lab.refresh(&lab.tv, tokens.refresh(), None).await;
    assert_eq!(status, 200, "{rotated}");
    let rotated = Tokens::from_body(rotated);
    assert!(lab.active(rotated.refresh()).await);

    // The admin shortens the maximum age: it applies to authorizations already made. 1 s is
    // the least there is (ages count whole seconds), so the wait below is just over one.
    workspaces::update(
        &lab.app.core,
        &Actor::Cli,
        "aged",
        &Changes {
            device_grant_max_age: Some(1),
            ..Changes::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let (status, body) = lab.refresh(&lab.tv, rotated.refresh(), None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    assert!(
        description(&body).contains("device_grant_max_age"),
        "{body}"
    );
    assert!(!lab.active(rotated.refresh()).await);
    assert!(!lab.active(&rotated.access).await);
}

#[tokio::test]
async fn a_disabled_user_or_a_deleted_client_cannot_refresh() {
    let lab = lab("gone", Changes::default()).await;
    let alice = lab.tv_tokens(ALL_SCOPES).await;
    let bob = lab.app.user(&lab.ws, "bob", "bob password").await;
    let (tv2, _) = lab
        .app
        .client(&lab.ws, true, &["device_code", "refresh_token"], ALL_SCOPES)
        .await;
    let bobs = device_tokens(&lab.app, "gone", (&tv2, None), &bob, ALL_SCOPES).await;

    let mut disabled = lab.alice.clone().into_active_model();
    disabled.disabled = Set(true);
    disabled.update(&lab.app.core.db).await.unwrap();
    let (status, body) = lab.refresh(&lab.tv, alice.refresh(), None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    assert!(!lab.active(alice.refresh()).await);
    assert!(!lab.active(&alice.access).await);

    clients::delete(&lab.app.core, &Actor::Cli, &lab.ws, &tv2)
        .await
        .unwrap();
    let (status, body) = lab.refresh(&tv2, bobs.refresh(), None).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    assert!(!lab.active(bobs.refresh()).await);
    assert!(!lab.active(&bobs.access).await);
}

#[tokio::test]
async fn revocation_matrix() {
    let lab = lab("revoke", Changes::default()).await;
    let tv = (lab.tv.as_str(), None);
    let (box_id, box_secret) = lab
        .app
        .client(
            &lab.ws,
            false,
            &["device_code", "refresh_token"],
            ALL_SCOPES,
        )
        .await;
    let settop = (box_id.as_str(), box_secret.as_deref());

    // Unknown tokens: 200, whatever the hint.
    for hint in [
        None,
        Some("access_token"),
        Some("refresh_token"),
        Some("bogus"),
    ] {
        let (status, _) = lab.revoke(tv, "no-such-token", hint).await;
        assert_eq!(status, 200, "{hint:?}");
        let (status, _) = lab.revoke(settop, "a.b.c", hint).await;
        assert_eq!(status, 200, "{hint:?}");
    }

    let first = lab.tv_tokens(ALL_SCOPES).await;
    let (status, body) = lab.refresh(&lab.tv, first.refresh(), None).await;
    assert_eq!(status, 200, "{body}");
    let second = Tokens::from_body(body);

    // Another client cannot revoke the TV's tokens: 200, no effect.
    for token in [second.refresh(), second.access.as_str()] {
        for hint in [None, Some("access_token"), Some("refresh_token")] {
            let (status, _) = lab.revoke(settop, token, hint).await;
            assert_eq!(status, 200);
        }
        assert!(lab.active(token).await);
    }

    // An access token, with a wrong hint: only that access token ends.
    let (status, _) = lab.revoke(tv, &second.access, Some("refresh_token")).await;
    assert_eq!(status, 200);
    assert!(!lab.active(&second.access).await);
    assert!(lab.active(&first.access).await);
    assert!(lab.active(second.refresh()).await);
    // Revoking it again changes nothing.
    let (status, _) = lab.revoke(tv, &second.access, None).await;
    assert_eq!(status, 200);

    // A refresh token, with a wrong hint: the family ends, access tokens included.
    let (status, _) = lab.revoke(tv, second.refresh(), Some("access_token")).await;
    assert_eq!(status, 200);
    assert!(!lab.active(second.refresh()).await);
    assert!(!lab.active(&first.access).await);
    let (status, body) = lab.refresh(&lab.tv, second.refresh(), None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

    // The confidential client revokes its own: refresh token with the right hint…
    let boxed = device_tokens(&lab.app, "revoke", settop, &lab.alice, ALL_SCOPES).await;
    let (status, _) = lab
        .revoke(settop, boxed.refresh(), Some("refresh_token"))
        .await;
    assert_eq!(status, 200);
    assert!(!lab.active(boxed.refresh()).await);
    assert!(!lab.active(&boxed.access).await);
    // …an access token with no hint, and a refresh token with no hint (client_secret_post).
    let other = device_tokens(&lab.app, "revoke", settop, &lab.alice, ALL_SCOPES).await;
    let (status, _) = lab.revoke(settop, &other.access, None).await;
    assert_eq!(status, 200);
    assert!(!lab.active(&other.access).await);
    assert!(lab.active(other.refresh()).await);
    let (status, _, _) = lab
        .app
        .post_form(
            &lab.ep.revocation,
            &[
                ("token", other.refresh()),
                ("client_id", &box_id),
                ("client_secret", box_secret.as_deref().unwrap()),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(!lab.active(other.refresh()).await);

    // Request errors.
    let (status, body) = lab.revoke(settop, "", None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    let (status, body) = lab
        .revoke((&box_id, Some("wrong secret")), &other.access, None)
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    let (status, body) = lab.revoke((&box_id, None), &other.access, None).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));

    let actions = lab.audit_actions().await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("grant.revoked"), 3, "{actions:?}");
    assert_eq!(count("access_token.revoked"), 2, "{actions:?}");
}

#[tokio::test]
async fn introspection_matrix() {
    let lab = lab("intro", Changes::default()).await;
    let tokens = lab.tv_tokens("openid profile offline_access").await;
    let issuer = lab.app.issuer("intro");

    // A real resource server introspects the access token.
    let rs = lab.oauth(&lab.rs.0, Some(&lab.rs.1));
    let http = http();
    let answer = rs
        .introspect(&AccessToken::new(tokens.access.clone()))
        .request_async(&http)
        .await
        .unwrap();
    assert!(answer.active());
    assert_eq!(
        scope_set(answer.scopes().unwrap()),
        set("openid profile offline_access")
    );
    assert_eq!(answer.client_id().unwrap().as_str(), lab.tv);
    assert_eq!(answer.sub(), Some(lab.alice.id.to_string().as_str()));
    assert_eq!(answer.iss(), Some(issuer.as_str()));
    assert_eq!(answer.username(), Some("alice"));
    assert!(answer.jti().is_some());
    assert_eq!(answer.aud(), Some(&vec![lab.tv.clone()]));
    let (exp, iat) = (
        answer.exp().unwrap().timestamp(),
        answer.iat().unwrap().timestamp(),
    );
    assert_eq!(exp - iat, 3600);
    let raw = lab.introspect(&tokens.access, Some("access_token")).await;
    assert_eq!(raw["token_type"], "Bearer");

    // The refresh token, with client_secret_post and a wrong hint.
    let (status, refresh, _) = lab
        .app
        .post_form(
            &lab.ep.introspection,
            &[
                ("token", tokens.refresh()),
                ("token_type_hint", "access_token"),
                ("client_id", &lab.rs.0),
                ("client_secret", &lab.rs.1),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    assert_eq!(refresh["client_id"], lab.tv.as_str());
    assert_eq!(refresh["sub"], lab.alice.id.to_string());
    assert_eq!(refresh["iss"], issuer.as_str());
    assert_eq!(refresh["scope"], "offline_access openid profile");
    assert!(refresh["exp"].as_i64().unwrap() > refresh["iat"].as_i64().unwrap());
    assert!(refresh.get("jti").is_none() && refresh.get("aud").is_none());

    // Public clients and bad credentials may not introspect.
    let (status, body, headers) = lab
        .app
        .post_form(
            &lab.ep.introspection,
            &[("token", &tokens.access), ("client_id", &lab.tv)],
            None,
        )
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    assert!(
        headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let (status, body, _) = lab
        .app
        .post_form(
            &lab.ep.introspection,
            &[("token", &tokens.access)],
            Some((&lab.rs.0, "wrong secret")),
        )
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    let (status, body, _) = lab
        .app
        .post_form(&lab.ep.introspection, &[("token", &tokens.access)], None)
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    let (status, body, _) = lab
        .app
        .post_form(&lab.ep.introspection, &[], Some((&lab.rs.0, &lab.rs.1)))
        .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));

    // Malformed, tampered, or not an access token at all: inactive.
    let mut tampered = tokens.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let id_token = tokens.body["id_token"].as_str().unwrap();
    for token in ["garbage", "a.b.c", &tampered, id_token] {
        assert!(!lab.active(token).await, "{token}");
    }
    // Signed with the workspace's own key, yet not an access token of this issuer.
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&tokens.access)
        .unwrap()
        .claims;
    let key = keys::current(&lab.app.core.db, &lab.app.core.keyring, lab.ws.id)
        .await
        .unwrap();
    let forge = |typ: &str, claims: &Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    };
    assert!(
        lab.active(&forge("at+jwt", &claims)).await,
        "the forge works"
    );
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = lab.app.issuer("elsewhere").into();
    let mut other_subject = claims.clone();
    other_subject["sub"] = uuid::Uuid::new_v4().to_string().into();
    for forged in [
        forge("JWT", &claims),
        forge("at+jwt", &other_issuer),
        forge("at+jwt", &other_subject),
    ] {
        assert!(!lab.active(&forged).await);
    }

    // Another workspace's tokens are inactive here, and its resource server is unknown here.
    let other = lab_in(TestApp::spawn().await, "elsewhere", Changes::default()).await;
    let foreign_app_token = other.tv_tokens(ALL_SCOPES).await;
    assert!(other.active(&foreign_app_token.access).await);
    assert!(!lab.active(&foreign_app_token.access).await);
    assert!(!lab.active(foreign_app_token.refresh()).await);
    let work = lab.app.workspace("work", Changes::default()).await;
    let (work_tv, _) = lab
        .app
        .client(&work, true, &["device_code", "refresh_token"], ALL_SCOPES)
        .await;
    let bob = lab.app.user(&work, "bob", "bob password").await;
    let foreign = device_tokens(&lab.app, "work", (&work_tv, None), &bob, ALL_SCOPES).await;
    assert!(!lab.active(&foreign.access).await);
    assert!(!lab.active(foreign.refresh()).await);
    let (status, _, _) = lab
        .app
        .post_form(
            "/w/work/introspect",
            &[("token", &foreign.access)],
            Some((&lab.rs.0, &lab.rs.1)),
        )
        .await;
    assert_eq!(status, 401);

    // Revoked.
    let (status, _) = lab.revoke((&lab.tv, None), &tokens.access, None).await;
    assert_eq!(status, 200);
    assert!(!lab.active(&tokens.access).await);
}

#[tokio::test]
async fn an_expired_access_token_is_inactive() {
    let lab = lab(
        "short",
        Changes {
            access_token_ttl: Some(1),
            ..Changes::default()
        },
    )
    .await;
    let tokens = lab.tv_tokens(ALL_SCOPES).await;
    assert_eq!(tokens.body["expires_in"], 1);
    outlive_a_one_second_lifetime().await;
    assert!(!lab.active(&tokens.access).await);
    let (status, _, headers) = userinfo_get(&lab, Some(&tokens.access)).await;
    assert_eq!(status, 401);
    assert!(
        headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // The refresh token still gives a fresh one.
    let (status, body) = lab.refresh(&lab.tv, tokens.refresh(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(lab.active(body["access_token"].as_str().unwrap()).await);
}

async fn userinfo_get(lab: &Lab, token: Option<&str>) -> (u16, Value, HeaderMap) {
    let mut req = lab.app.client.get(lab.app.url(&lab.ep.userinfo));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

async fn userinfo_post(
    lab: &Lab,
    header: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value, HeaderMap) {
    let mut req = lab
        .app
        .client
        .post(lab.app.url(&lab.ep.userinfo))
        .form(form);
    if let Some(t) = header {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

fn challenge(headers: &HeaderMap) -> String {
    headers[WWW_AUTHENTICATE].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn userinfo_claims_follow_the_scopes() {
    let lab = lab("me", Changes::default()).await;
    let sub = lab.alice.id.to_string();
    let full = lab.tv_tokens(ALL_SCOPES).await;
    let expected = serde_json::json!({
        "sub": sub,
        "name": "alice Example",
        "preferred_username": "alice",
        "email": "alice@example.test",
    });
    let (status, body, headers) = userinfo_get(&lab, Some(&full.access)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, expected);
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let (status, body, _) = userinfo_post(&lab, Some(&full.access), &[]).await;
    assert_eq!((status, &body), (200, &expected));
    let (status, body, _) = userinfo_post(&lab, None, &[("access_token", &full.access)]).await;
    assert_eq!((status, &body), (200, &expected));

    for (scope, claims) in [
        ("openid", serde_json::json!({ "sub": sub })),
        (
            "openid email",
            serde_json::json!({ "sub": sub, "email": "alice@example.test" }),
        ),
        (
            "openid profile",
            serde_json::json!({ "sub": sub, "name": "alice Example", "preferred_username": "alice" }),
        ),
    ] {
        let tokens = lab.tv_tokens(scope).await;
        let (status, body, _) = userinfo_get(&lab, Some(&tokens.access)).await;
        assert_eq!((status, body), (200, claims), "{scope}");
    }
}

#[tokio::test]
async fn userinfo_refuses_what_it_should() {
    let lab = lab("guard", Changes::default()).await;
    let tokens = lab.tv_tokens(ALL_SCOPES).await;

    // No token: a bare challenge (RFC 6750 §3.1), for GET and POST.
    let (status, _, headers) = userinfo_get(&lab, None).await;
    assert_eq!(status, 401);
    assert_eq!(challenge(&headers), "Bearer realm=\"vestibule\"");
    let (status, _, headers) = userinfo_post(&lab, None, &[("unrelated", "x")]).await;
    assert_eq!(status, 401);
    assert_eq!(challenge(&headers), "Bearer realm=\"vestibule\"");

    // Bad tokens: invalid_token, by header or by form body.
    let invalid = |status: u16, body: &Value, headers: &HeaderMap| {
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_token");
        let c = challenge(headers);
        assert!(
            c.starts_with("Bearer realm=\"vestibule\", error=\"invalid_token\""),
            "{c}"
        );
    };
    let (s, b, h) = userinfo_get(&lab, Some("garbage")).await;
    invalid(s, &b, &h);
    let (s, b, h) = userinfo_post(&lab, None, &[("access_token", "garbage")]).await;
    invalid(s, &b, &h);
    // A refresh token is not an access token.
    let (s, b, h) = userinfo_get(&lab, Some(tokens.refresh())).await;
    invalid(s, &b, &h);

    // Another workspace's token.
    let work = lab.app.workspace("work", Changes::default()).await;
    let (work_tv, _) = lab
        .app
        .client(&work, true, &["device_code"], ALL_SCOPES)
        .await;
    let bob = lab.app.user(&work, "bob", "bob password").await;
    let foreign = device_tokens(&lab.app, "work", (&work_tv, None), &bob, "openid").await;
    let (s, b, h) = userinfo_get(&lab, Some(&foreign.access)).await;
    invalid(s, &b, &h);
    let (status, _, _) = lab
        .app
        .post_form(
            "/w/work/userinfo",
            &[("access_token", &foreign.access)],
            None,
        )
        .await;
    assert_eq!(status, 200, "it works at home");

    // Without openid: 403 insufficient_scope.
    let no_openid = lab.tv_tokens("profile email").await;
    let (status, body, headers) = userinfo_get(&lab, Some(&no_openid.access)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert!(challenge(&headers).contains("error=\"insufficient_scope\""));

    // Two ways at once is a bad request.
    let (status, body, _) = userinfo_post(
        &lab,
        Some(&tokens.access),
        &[("access_token", &tokens.access)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Revoked, then: works before, refused after.
    let (status, _, _) = userinfo_get(&lab, Some(&tokens.access)).await;
    assert_eq!(status, 200);
    let (status, _) = lab.revoke((&lab.tv, None), &tokens.access, None).await;
    assert_eq!(status, 200);
    let (s, b, h) = userinfo_get(&lab, Some(&tokens.access)).await;
    invalid(s, &b, &h);
    let (s, b, h) = userinfo_post(&lab, Some(&tokens.access), &[]).await;
    invalid(s, &b, &h);
}

#[tokio::test]
async fn client_credentials_for_confidential_clients() {
    let lab = lab(
        "m2m",
        Changes {
            audience: Some("https://api.example".into()),
            ..Changes::default()
        },
    )
    .await;
    let (id, secret) = lab
        .app
        .client(
            &lab.ws,
            false,
            &["client_credentials"],
            "openid offline_access api:read api:write",
        )
        .await;
    let secret = secret.unwrap();
    let client = lab.oauth(&id, Some(&secret));
    let http = http();

    let token = client
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap();
    assert!(token.refresh_token().is_none());
    assert_eq!(
        scope_set(token.scopes().unwrap()),
        set("api:read api:write")
    );
    let claims = verify(
        &lab.app,
        &lab.ep.jwks,
        token.access_token().secret(),
        "https://api.example",
    )
    .await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], "https://api.example");
    assert!(claims.get("gid").is_none());
    let seen = lab.introspect(token.access_token().secret(), None).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], id.as_str());
    assert_eq!(seen["aud"], "https://api.example");
    assert!(seen.get("username").is_none());
    // It is not a user's token: no userinfo.
    let (status, _, _) = userinfo_get(&lab, Some(token.access_token().secret())).await;
    assert_eq!(status, 403);

    // Raw: no ID token, no refresh token; openid and offline_access are never granted.
    let (status, body, headers) = lab
        .app
        .post_form(
            &lab.ep.token,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read openid offline_access"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(body["scope"], "api:read");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());

    let (status, body, _) = lab
        .app
        .post_form(
            &lab.ep.token,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:delete"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_scope"));

    // Revocable like any access token.
    let (status, _) = lab
        .revoke((&id, Some(&secret)), token.access_token().secret(), None)
        .await;
    assert_eq!(status, 200);
    assert!(!lab.active(token.access_token().secret()).await);

    // Who may not: a public client, a confidential client without its secret or without the
    // grant.
    let cc = [("grant_type", "client_credentials")];
    let (status, body, _) = lab
        .app
        .post_form(
            &lab.ep.token,
            &[("grant_type", "client_credentials"), ("client_id", &lab.tv)],
            None,
        )
        .await;
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));
    let (status, body, _) = lab
        .app
        .post_form(
            &lab.ep.token,
            &[("grant_type", "client_credentials"), ("client_id", &id)],
            None,
        )
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    let (device_only, device_secret) = lab
        .app
        .client(&lab.ws, false, &["device_code"], "openid")
        .await;
    let (status, body, _) = lab
        .app
        .post_form(
            &lab.ep.token,
            &cc,
            Some((&device_only, device_secret.as_deref().unwrap())),
        )
        .await;
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));

    // Without a workspace audience, `aud` is the client_id.
    let plain = lab.app.workspace("plain", Changes::default()).await;
    let (plain_id, plain_secret) = lab
        .app
        .client(&plain, false, &["client_credentials"], "api:read")
        .await;
    let (status, body, _) = lab
        .app
        .post_form(
            "/w/plain/token",
            &cc,
            Some((&plain_id, plain_secret.as_deref().unwrap())),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        &lab.app,
        "/w/plain/jwks",
        body["access_token"].as_str().unwrap(),
        &plain_id,
    )
    .await;
    assert_eq!(claims["aud"], plain_id.as_str());
}

/// `vestibule keys rotate` against the running app's database: old tokens keep verifying
/// through the JWKS, new ones use the new key, and the retired key leaves the JWKS once the
/// tokens it signed can no longer be valid. Keys are cached for 1 s here, the least
/// `security.key_cache_ttl` allows, so that the retired key goes soon.
#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_until_they_expire() {
    let app = TestApp::spawn_with(|env| {
        env.insert("VESTIBULE__SECURITY__KEY_CACHE_TTL".into(), "1".into());
    })
    .await;
    let lab = lab_in(app, "keys", Changes::default()).await;
    let before = lab.tv_tokens(ALL_SCOPES).await;
    let old_kid = kid_of(&before.access);
    assert_eq!(jwks(&lab.app, &lab.ep.jwks).await.keys.len(), 1);

    let out = lab
        .app
        .cli(&["keys", "rotate", "--workspace", "keys"])
        .await
        .json();
    assert_eq!(out["workspace"], "keys");
    let new_kid = out["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(out["retired_kids"], serde_json::json!([old_kid]));
    lab.app
        .cli(&["keys", "rotate", "--workspace", "nowhere"])
        .await
        .fails(1, "nowhere");

    // Both keys are published; tokens signed before the rotation still verify.
    let set = jwks(&lab.app, &lab.ep.jwks).await;
    let kids: HashSet<String> = set
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, HashSet::from([old_kid.clone(), new_kid.clone()]));
    let claims = verify(&lab.app, &lab.ep.jwks, &before.access, &lab.tv).await;
    assert_eq!(claims["sub"], lab.alice.id.to_string());
    verify(
        &lab.app,
        &lab.ep.jwks,
        before.body["id_token"].as_str().unwrap(),
        &lab.tv,
    )
    .await;
    assert!(lab.active(&before.access).await);
    let (status, _, _) = userinfo_get(&lab, Some(&before.access)).await;
    assert_eq!(status, 200);

    // New tokens are signed with the new key (once this instance's key cache lets go).
    lab.app.core.keys.invalidate(lab.ws.id);
    let after = lab.tv_tokens(ALL_SCOPES).await;
    assert_eq!(kid_of(&after.access), new_kid);
    verify(&lab.app, &lab.ep.jwks, &after.access, &lab.tv).await;
    assert!(lab.active(&after.access).await);
    let (status, refreshed) = lab.refresh(&lab.tv, before.refresh(), None).await;
    assert_eq!(status, 200);
    assert_eq!(kid_of(refreshed["access_token"].as_str().unwrap()), new_kid);

    // With 1-second token lifetimes, the retired key goes once nothing it signed can be
    // valid (plus the key cache's second during which other instances may still sign).
    workspaces::update(
        &lab.app.core,
        &Actor::Cli,
        "keys",
        &Changes {
            access_token_ttl: Some(1),
            id_token_ttl: Some(1),
            ..Changes::default()
        },
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let set = jwks(&lab.app, &lab.ep.jwks).await;
        if set.keys.len() == 1 {
            assert_eq!(set.keys[0].common.key_id.as_deref(), Some(new_kid.as_str()));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retired key is still published"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let actions = lab.audit_actions().await;
    assert!(actions.iter().any(|a| a == "keys.rotated"), "{actions:?}");
}
