//! The device flow end to end, driven by real OAuth clients (the `openidconnect` and `oauth2`
//! crates) and plain HTTP for the error cases.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, DeviceAuthorizationUrl, StandardDeviceAuthorizationResponse, TokenResponse as _,
    TokenUrl,
};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, ClientId, IssuerUrl, Nonce, ProviderMetadata, Scope,
};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vestibule_core::crypto::SecretKind;
use vestibule_core::entities;
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_authorizations;
use vestibule_core::services::device_grants::{self, Lookup};
use vestibule_core::services::interaction::{Decided, Decision};
use vestibule_core::services::workspaces::Changes;

use crate::helpers::{Browser, TestApp, decide_device_code, outlive_a_one_second_lifetime};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: openidconnect::DeviceAuthorizationUrl,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}
type DeviceProviderMetadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts a form to a workspace endpoint; returns status, JSON body and headers.
async fn post(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

async fn authorize(app: &TestApp, slug: &str, client_id: &str, scope: Option<&str>) -> Value {
    let mut form = vec![("client_id", client_id)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let (status, body, _) =
        post(app, &format!("/w/{slug}/device_authorization"), &form, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn poll(app: &TestApp, slug: &str, client_id: &str, device_code: &str) -> (u16, Value) {
    let (status, body, _) = post(
        app,
        &format!("/w/{slug}/token"),
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", client_id),
            ("device_code", device_code),
        ],
        None,
    )
    .await;
    (status, body)
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

async fn jwks(app: &TestApp, slug: &str) -> JwkSet {
    app.get(&format!("/w/{slug}/jwks"))
        .await
        .json()
        .await
        .unwrap()
}

/// Verifies an RS256 JWT against the workspace JWKS and returns its header type and claims.
async fn verify(app: &TestApp, slug: &str, token: &str, audience: &str) -> (Option<String>, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("kid in the header");
    let set = jwks(app, slug).await;
    let jwk = set.find(&kid).expect("the kid is published");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.issuer(slug)]);
    let data =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap();
    (header.typ, data.claims)
}

#[tokio::test]
async fn discovery_documents_describe_the_workspace() {
    let app = TestApp::spawn().await;
    app.workspace("acme", Changes::default()).await;
    let oidc: Value = app
        .get("/w/acme/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let rfc8414: Value = app
        .get("/.well-known/oauth-authorization-server/w/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(oidc, rfc8414);
    let issuer = app.issuer("acme");
    assert_eq!(oidc["issuer"], issuer);
    assert_eq!(
        oidc["device_authorization_endpoint"],
        format!("{issuer}/device_authorization")
    );
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert!(
        oidc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&"RS256".into())
    );
    assert!(
        oidc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&DEVICE_GRANT.into())
    );
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "token_endpoint_auth_methods_supported",
        "scopes_supported",
        "claims_supported",
    ] {
        assert!(!oidc[field].is_null(), "{field}");
    }
    let res = app.get("/w/acme/jwks").await;
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let set: JwkSet = res.json().await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(set.keys[0].common.key_id.is_some());
    let json = serde_json::to_value(&set).unwrap();
    assert!(
        json["keys"][0].get("d").is_none(),
        "no private part is published"
    );

    // A real OIDC client accepts the document (issuer match, required fields, JWKS).
    let meta = DeviceProviderMetadata::discover_async(IssuerUrl::new(issuer).unwrap(), &http())
        .await
        .unwrap();
    assert_eq!(meta.jwks().keys().len(), 1);

    let missing = app.get("/w/nope/.well-known/openid-configuration").await;
    assert_eq!(missing.status(), 404);
    // Workspaces do not share keys.
    let default_keys = jwks(&app, "default").await;
    assert_ne!(
        default_keys.keys[0].common.key_id,
        set.keys[0].common.key_id
    );
}

/// The whole flow as an OIDC client sees it: discovery, device authorization, polling while a
/// person approves, then tokens checked against the JWKS.
#[tokio::test]
async fn public_client_full_flow_with_openidconnect() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", Changes::default()).await;
    let (client_id, secret) = app
        .client(
            &ws,
            true,
            &["device_code", "refresh_token"],
            "openid profile email offline_access",
        )
        .await;
    assert!(secret.is_none());
    let alice = app.user(&ws, "alice", "alice password").await;

    let http = http();
    let meta =
        DeviceProviderMetadata::discover_async(IssuerUrl::new(app.issuer("home")).unwrap(), &http)
            .await
            .unwrap();
    let device_url = meta
        .additional_metadata()
        .device_authorization_endpoint
        .clone();
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(client_id.clone()), None)
        .set_device_authorization_url(device_url)
        .set_auth_type(openidconnect::AuthType::RequestBody);
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(
        details.verification_uri().as_str(),
        format!("{}/activate", app.address)
    );
    let complete = details
        .verification_uri_complete()
        .unwrap()
        .secret()
        .clone();
    assert!(complete.ends_with(&format!("?user_code={}", details.user_code().secret())));
    assert_eq!(details.interval(), Duration::from_secs(1));

    let user_code = details.user_code().secret().clone();
    let approver = {
        let app_core = app.core.clone();
        let alice = alice.clone();
        async move {
            // The device polls after its 1-second interval (the protocol counts whole seconds);
            // approve after that first poll, so that it goes from pending to approved.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            decide_device_code(&app_core, &user_code, &alice, Decision::Approve).await
        }
    };
    let (token, approved) = tokio::join!(
        async {
            client
                .exchange_device_access_token(&details)
                .unwrap()
                .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
                .await
                .unwrap()
        },
        approver
    );
    assert_eq!(approved, Decided::Recorded);
    let scopes: HashSet<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        scopes,
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .into()
    );
    assert!(
        token.refresh_token().is_some(),
        "offline_access + refresh grant gives a refresh token"
    );

    let id_token = token
        .extra_fields()
        .id_token()
        .expect("an ID token for openid");
    let claims = id_token
        .claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(claims.subject().as_str(), alice.id.to_string());
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.test");
    assert_eq!(
        claims.name().unwrap().get(None).unwrap().as_str(),
        "alice Example"
    );
    assert!(claims.auth_time().is_some());

    let (typ, at) = verify(&app, "home", token.access_token().secret(), &client_id).await;
    assert_eq!(typ.as_deref(), Some("at+jwt"), "RFC 9068 header type");
    assert_eq!(at["sub"], alice.id.to_string());
    assert_eq!(at["client_id"], client_id);
    assert_eq!(at["aud"], client_id);
    assert_eq!(at["scope"], "email offline_access openid profile");
    assert!(at["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap() == 3600);
}

/// Confidential clients with client_secret_basic and client_secret_post, driven by `oauth2`.
#[tokio::test]
async fn confidential_clients_basic_and_post() {
    let app = TestApp::spawn().await;
    let ws = app
        .workspace(
            "office",
            Changes {
                audience: Some("https://api.example".into()),
                ..Changes::default()
            },
        )
        .await;
    let bob = app.user(&ws, "bob", "bob's password").await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let (client_id, secret) = app
            .client(&ws, false, &["device_code"], "openid email offline_access")
            .await;
        let client = BasicClient::new(oauth2::ClientId::new(client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(secret.unwrap()))
            .set_auth_type(auth.clone())
            .set_token_uri(TokenUrl::new(format!("{}/token", app.issuer("office"))).unwrap())
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(format!(
                    "{}/device_authorization",
                    app.issuer("office")
                ))
                .unwrap(),
            );
        let http = http();
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scope(oauth2::Scope::new("openid".into()))
            .add_scope(oauth2::Scope::new("offline_access".into()))
            .request_async(&http)
            .await
            .unwrap();
        app.decide(details.user_code().secret(), &bob, Decision::Approve)
            .await;
        let token = client
            .exchange_device_access_token(&details)
            .request_async(&http, tokio::time::sleep, Some(Duration::from_secs(30)))
            .await
            .unwrap();
        // No refresh grant: offline_access is dropped and no refresh token is issued.
        assert!(token.refresh_token().is_none(), "{auth:?}");
        let scopes: Vec<String> = token
            .scopes()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(scopes, ["openid"], "{auth:?}");
        let (_, at) = verify(
            &app,
            "office",
            token.access_token().secret(),
            "https://api.example",
        )
        .await;
        assert_eq!(at["aud"], "https://api.example", "the workspace audience");
        assert_eq!(at["client_id"], client_id);
    }
}

#[tokio::test]
async fn device_authorization_errors() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("errs", Changes::default()).await;
    let (public_id, _) = app
        .client(&ws, true, &["device_code"], "openid profile")
        .await;
    let (conf_id, conf_secret) = app.client(&ws, false, &["device_code"], "openid").await;
    let conf_secret = conf_secret.unwrap();
    let (cc_id, cc_secret) = app
        .client(&ws, false, &["client_credentials"], "openid")
        .await;
    let path = "/w/errs/device_authorization";

    let (status, body, _) = post(
        &app,
        path,
        &[("client_id", &public_id), ("scope", "openid email")],
        None,
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_scope"));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("email")
    );

    let (status, body, _) = post(
        &app,
        path,
        &[],
        Some((&cc_id, cc_secret.as_deref().unwrap())),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));

    for (form, basic) in [
        (vec![("client_id", conf_id.as_str())], None),
        (vec![("client_id", "no-such-client")], None),
        (vec![], Some((conf_id.as_str(), "wrong secret"))),
        (
            vec![("client_id", conf_id.as_str()), ("client_secret", "wrong")],
            None,
        ),
        (vec![], None),
    ] {
        let (status, body, headers) = post(&app, path, &form, basic).await;
        assert_eq!(
            (status, error_of(&body)),
            (401, "invalid_client"),
            "{form:?} {basic:?}"
        );
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(headers["cache-control"], "no-store");
    }
    // Both authentication methods at once.
    let (status, body, _) = post(
        &app,
        path,
        &[("client_secret", &conf_secret)],
        Some((&conf_id, &conf_secret)),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    // A repeated parameter, and a JSON body.
    let res = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id={public_id}&client_id={public_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(app.url(path))
        .json(&serde_json::json!({"client_id": public_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        error_of(&res.json::<Value>().await.unwrap()),
        "invalid_request"
    );

    // A client of another workspace is unknown here.
    let other = app.workspace("other", Changes::default()).await;
    let (foreign_id, _) = app.client(&other, true, &["device_code"], "openid").await;
    let (status, body, _) = post(&app, path, &[("client_id", &foreign_id)], None).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));

    // The workspace switch turns the grant off.
    let off = app
        .workspace(
            "off",
            Changes {
                device_flow_enabled: Some(false),
                ..Changes::default()
            },
        )
        .await;
    let (off_id, _) = app.client(&off, true, &["device_code"], "openid").await;
    let (status, body, _) = post(
        &app,
        "/w/off/device_authorization",
        &[("client_id", &off_id)],
        None,
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));

    let (status, _, _) = post(
        &app,
        "/w/missing/device_authorization",
        &[("client_id", &public_id)],
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn token_endpoint_answers_every_state() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("states", Changes::default()).await;
    let carol = app.user(&ws, "carol", "carol's password").await;
    let (cid, _) = app
        .client(&ws, true, &["device_code"], "openid profile")
        .await;
    let (other_cid, _) = app
        .client(&ws, true, &["device_code"], "openid profile")
        .await;

    let started = authorize(&app, "states", &cid, Some("openid")).await;
    let code = started["device_code"].as_str().unwrap();
    assert_eq!(started["interval"], 1);

    // Too soon after the authorization response: slow_down, and the interval grows by 5 s.
    let (status, body) = poll(&app, "states", &cid, code).await;
    assert_eq!((status, error_of(&body)), (400, "slow_down"));
    let audited = entities::audit_event::Entity::find()
        .all(&app.core.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "device.slow_down")
        .count();
    assert_eq!(audited, 1, "the first slow_down of a burst is audited");

    // A second, patient grant: authorization_pending, then the decision.
    let second = authorize(&app, "states", &cid, None).await;
    let second_code = second["device_code"].as_str().unwrap();
    // Intervals count whole seconds: 1 s is the least a workspace allows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = poll(&app, "states", &cid, second_code).await;
    assert_eq!((status, error_of(&body)), (400, "authorization_pending"));
    // 1.1 s is past the first code's original interval, not its grown one.
    let (status, body) = poll(&app, "states", &cid, code).await;
    assert_eq!((status, error_of(&body)), (400, "slow_down"));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("wait at least 11 seconds"),
        "{body}"
    );
    // Too-fast polls write nothing: the row keeps its original interval until redemption.
    let hash = app.core.keyring.hash_secret(SecretKind::DeviceCode, code);
    let first = entities::device_grant::Entity::find()
        .filter(entities::device_grant::Column::DeviceCodeHash.eq(hash))
        .one(&app.core.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.interval, first.slow_downs, first.poll_count),
        (1, 0, 0)
    );
    // Another client of the same workspace cannot use it.
    let (status, body) = poll(&app, "states", &other_cid, second_code).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let (status, body) = poll(&app, "states", &cid, "not-a-device-code").await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

    app.decide(
        second["user_code"].as_str().unwrap(),
        &carol,
        Decision::Deny,
    )
    .await;
    let (status, body) = poll(&app, "states", &cid, second_code).await;
    assert_eq!((status, error_of(&body)), (400, "access_denied"));

    // Approved: tokens once, then invalid_grant. A slow_down before the approval does not delay
    // the redemption, and the poll counts are written with it.
    let third = authorize(&app, "states", &cid, Some("openid profile")).await;
    let third_code = third["device_code"].as_str().unwrap();
    let (_, body) = poll(&app, "states", &cid, third_code).await;
    assert_eq!(error_of(&body), "slow_down");
    app.decide(
        third["user_code"].as_str().unwrap(),
        &carol,
        Decision::Approve,
    )
    .await;
    let (status, tokens) = poll(&app, "states", &cid, third_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(tokens["id_token"].is_string());
    assert!(tokens.get("refresh_token").is_none());
    let (status, body) = poll(&app, "states", &cid, third_code).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let redeemed = entities::device_grant::Entity::find()
        .all(&app.core.db)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.status.as_str() == "consumed")
        .unwrap();
    assert_eq!(
        (redeemed.poll_count, redeemed.slow_downs, redeemed.interval),
        (2, 1, 6)
    );

    // What happened is counted for /metrics.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "vestibule_device_grants_total{event=\"requested\"} 3",
        "vestibule_device_grants_total{event=\"denied\"} 1",
        "vestibule_device_grants_total{event=\"approved\"} 1",
        "vestibule_device_grants_total{event=\"redeemed\"} 1",
        "vestibule_device_polls_total{answer=\"access_denied\"} 1",
        "vestibule_device_polls_total{answer=\"tokens\"} 1",
        "vestibule_device_polls_total{answer=\"slow_down\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Request errors.
    let (status, body, headers) = post(
        &app,
        "/w/states/token",
        &[("grant_type", "password"), ("client_id", &cid)],
        None,
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "unsupported_grant_type"));
    assert_eq!(headers["cache-control"], "no-store");
    let (status, body, _) = post(&app, "/w/states/token", &[("client_id", &cid)], None).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    let (status, body, _) = post(
        &app,
        "/w/states/token",
        &[("grant_type", DEVICE_GRANT), ("client_id", &cid)],
        None,
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    let (cc_id, cc_secret) = app
        .client(&ws, false, &["client_credentials"], "openid")
        .await;
    let (status, body, _) = post(
        &app,
        "/w/states/token",
        &[("grant_type", DEVICE_GRANT), ("device_code", code)],
        Some((&cc_id, &cc_secret.unwrap())),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));
    let (status, body, _) = post(
        &app,
        "/w/states/token",
        &[
            ("grant_type", DEVICE_GRANT),
            ("device_code", code),
            ("client_id", "nobody"),
        ],
        None,
    )
    .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
}

/// Polls ask `instance` every 1.1 s (the interval is 1 s, the least there is: the protocol
/// counts whole seconds) until the answer is no longer `authorization_pending`; at most `tries`
/// times.
async fn poll_until_decided(
    instance: &TestApp,
    slug: &str,
    client_id: &str,
    code: &str,
    tries: usize,
) -> (u16, Value) {
    for _ in 0..tries {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, body) = poll(instance, slug, client_id, code).await;
        if body["error"] != "authorization_pending" {
            return (status, body);
        }
    }
    panic!("still authorization_pending after {tries} polls");
}

/// Pending polls are answered from the instance's memory; a decision recorded by another
/// instance on the same database (approval at its /activate, revocation in its console) still
/// reaches them within the sync interval, not at the code's expiry.
#[tokio::test]
async fn decisions_made_on_another_instance_reach_pending_polls() {
    let app = TestApp::spawn().await;
    let peer = app.peer().await;
    let ws = app.workspace("peers", Changes::default()).await;
    let dave = app.user(&ws, "dave", "dave's password").await;
    let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;

    let approved = authorize(&app, "peers", &cid, None).await;
    let revoked = authorize(&app, "peers", &cid, None).await;
    // One polling interval, 1 s (whole seconds), so that these polls are not too fast.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for started in [&approved, &revoked] {
        let (_, body) = poll(
            &app,
            "peers",
            &cid,
            started["device_code"].as_str().unwrap(),
        )
        .await;
        assert_eq!(error_of(&body), "authorization_pending");
    }

    peer.decide(
        approved["user_code"].as_str().unwrap(),
        &dave,
        Decision::Approve,
    )
    .await;
    let (status, body) = poll_until_decided(
        &app,
        "peers",
        &cid,
        approved["device_code"].as_str().unwrap(),
        5,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());

    let Lookup::Pending(pending) = device_grants::find_by_user_code(
        &peer.core.db,
        &peer.core.keyring,
        revoked["user_code"].as_str().unwrap(),
    )
    .await
    .unwrap() else {
        panic!("still pending");
    };
    device_authorizations::revoke(&peer.core, &Actor::Cli, ws.id, pending.grant.id, None)
        .await
        .unwrap();
    let (status, body) = poll_until_decided(
        &app,
        "peers",
        &cid,
        revoked["device_code"].as_str().unwrap(),
        5,
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "access_denied"));
}

#[tokio::test]
async fn expired_codes_answer_expired_token() {
    let app = TestApp::spawn().await;
    let ws = app
        .workspace(
            "brief",
            Changes {
                device_code_ttl: Some(1),
                ..Changes::default()
            },
        )
        .await;
    let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let started = authorize(&app, "brief", &cid, None).await;
    assert_eq!(started["expires_in"], 1);
    outlive_a_one_second_lifetime().await;
    let (status, body) = poll(
        &app,
        "brief",
        &cid,
        started["device_code"].as_str().unwrap(),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "expired_token"));
}

#[tokio::test]
async fn a_device_code_of_one_workspace_is_refused_in_another() {
    let app = TestApp::spawn().await;
    let a = app.workspace("ws-a", Changes::default()).await;
    let b = app.workspace("ws-b", Changes::default()).await;
    let user = app.user(&a, "dana", "dana's password").await;
    let (a_cid, _) = app.client(&a, true, &["device_code"], "openid").await;
    let (b_cid, _) = app.client(&b, true, &["device_code"], "openid").await;
    let started = authorize(&app, "ws-a", &a_cid, None).await;
    app.decide(
        started["user_code"].as_str().unwrap(),
        &user,
        Decision::Approve,
    )
    .await;
    let code = started["device_code"].as_str().unwrap();
    let (status, body) = poll(&app, "ws-b", &b_cid, code).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // A's client at B's endpoint is not a client there.
    let (status, body) = poll(&app, "ws-b", &a_cid, code).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    // A user of B cannot decide A's grant.
    let b_user = app.user(&b, "erin", "erin's password").await;
    let fresh = authorize(&app, "ws-a", &a_cid, None).await;
    let decided = decide_device_code(
        &app.core,
        fresh["user_code"].as_str().unwrap(),
        &b_user,
        Decision::Approve,
    )
    .await;
    assert_eq!(
        decided,
        Decided::NoAccess,
        "a user of another workspace cannot approve"
    );
    // The right workspace still redeems the first code.
    let (status, _) = poll(&app, "ws-a", &a_cid, code).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn user_code_shapes_follow_the_workspace() {
    let app = TestApp::spawn().await;
    let cases = [
        ("digits", 6, r"^\d{3}-\d{3}$"),
        (
            "base20",
            12,
            "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$",
        ),
        ("digits", 10, r"^\d{4}-\d{3}-\d{3}$"),
        (
            "base20",
            8,
            "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$",
        ),
    ];
    for (i, (charset, len, _)) in cases.iter().enumerate() {
        let slug = format!("shape{i}");
        let ws = app
            .workspace(
                &slug,
                Changes {
                    user_code_charset: Some((*charset).into()),
                    user_code_length: Some(*len),
                    device_code_ttl: Some(900),
                    polling_interval: Some(7),
                    ..Changes::default()
                },
            )
            .await;
        let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;
        let body = authorize(&app, &slug, &cid, None).await;
        let code = body["user_code"].as_str().unwrap();
        let bare: String = code.chars().filter(|c| *c != '-').collect();
        assert_eq!(bare.len(), *len as usize, "{code}");
        let alphabet = if *charset == "digits" {
            "0123456789"
        } else {
            "BCDFGHJKLMNPQRSTVWXZ"
        };
        assert!(bare.chars().all(|c| alphabet.contains(c)), "{code}");
        let groups: Vec<usize> = code.split('-').map(str::len).collect();
        assert!(groups.iter().all(|g| (3..=4).contains(g)), "{code}");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["interval"], 7);
        assert_eq!(
            body["device_code"].as_str().unwrap().len(),
            43,
            "256-bit device code"
        );
    }
}

/// BCP 247 §6.1.11: device authorization requests per client and address, shared by every
/// instance; then 429 with `Retry-After` and `slow_down`.
#[tokio::test]
async fn device_authorizations_are_rate_limited_per_client_and_address() {
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT".into(),
            "3".into(),
        );
    })
    .await;
    let peer = app.peer().await;
    let ws = app.workspace("limited", Changes::default()).await;
    let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let (other, _) = app.client(&ws, true, &["device_code"], "openid").await;
    authorize(&app, "limited", &cid, None).await;
    authorize(&peer, "limited", &cid, None).await;
    authorize(&app, "limited", &cid, None).await;
    for instance in [&app, &peer] {
        let (status, body, headers) = post(
            instance,
            "/w/limited/device_authorization",
            &[("client_id", cid.as_str())],
            None,
        )
        .await;
        assert_eq!((status, error_of(&body)), (429, "slow_down"));
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    // Another client from the same address is not affected.
    authorize(&app, "limited", &other, None).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_throttled_total{limit=\"device_authorizations\"} 1"),
        "{metrics}"
    );
    // Nothing was started for the refused requests.
    let grants = entities::device_grant::Entity::find()
        .all(&app.core.db)
        .await
        .unwrap();
    assert_eq!(grants.len(), 4);
}

#[tokio::test]
async fn two_hundred_codes_are_distinct() {
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT".into(),
            "0".into(),
        );
    })
    .await;
    let ws = app
        .workspace(
            "many",
            Changes {
                user_code_charset: Some("digits".into()),
                user_code_length: Some(6),
                ..Changes::default()
            },
        )
        .await;
    let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let mut user_codes = HashSet::new();
    let mut device_codes = HashSet::new();
    for _ in 0..200 {
        let body = authorize(&app, "many", &cid, None).await;
        assert!(user_codes.insert(body["user_code"].as_str().unwrap().to_owned()));
        assert!(device_codes.insert(body["device_code"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn racing_polls_redeem_exactly_once() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("race", Changes::default()).await;
    let user = app.user(&ws, "racer", "racer's password").await;
    let (cid, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let started = authorize(&app, "race", &cid, None).await;
    app.decide(
        started["user_code"].as_str().unwrap(),
        &user,
        Decision::Approve,
    )
    .await;
    let code = started["device_code"].as_str().unwrap().to_owned();
    let polls = (0..30).map(|_| {
        let client = app.client.clone();
        let url = app.url("/w/race/token");
        let form = [
            ("grant_type", DEVICE_GRANT.to_owned()),
            ("client_id", cid.clone()),
            ("device_code", code.clone()),
        ];
        tokio::spawn(async move {
            let res = client.post(url).form(&form).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    });
    let results: Vec<(u16, Value)> = futures_util::future::join_all(polls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, b)| *s == 400 && b["error"] == "invalid_grant"),
        "{results:?}"
    );
}

/// No device code, user code, client secret, password or refresh token is stored in clear.
#[tokio::test]
async fn the_database_holds_no_secret_in_clear() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("vault", Changes::default()).await;
    let password = "a very secret password";
    let user = app.user(&ws, "vera", password).await;
    let (cid, secret) = app
        .client(
            &ws,
            false,
            &["device_code", "refresh_token"],
            "openid offline_access",
        )
        .await;
    let secret = secret.unwrap();
    let (status, started, _) = post(
        &app,
        "/w/vault/device_authorization",
        &[("scope", "openid offline_access")],
        Some((&cid, &secret)),
    )
    .await;
    assert_eq!(status, 200);
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    app.decide(&user_code, &user, Decision::Approve).await;
    let (status, tokens, _) = post(
        &app,
        "/w/vault/token",
        &[("grant_type", DEVICE_GRANT), ("device_code", &device_code)],
        Some((&cid, &secret)),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let db = &app.core.db;
    let mut dump = String::new();
    macro_rules! dump {
        ($($m:ident),*) => {$(
            for row in entities::$m::Entity::find().into_json().all(db).await.unwrap() {
                dump.push_str(&row.to_string());
            }
        )*};
    }
    dump!(
        admin,
        workspace,
        client,
        user,
        audit_event,
        signing_key,
        device_grant,
        consent,
        refresh_token
    );
    assert!(dump.contains(&cid), "the dump is real");
    for (what, value) in [
        ("device code", device_code.as_str()),
        ("user code", user_code.as_str()),
        ("user code, normalized", &user_code.replace('-', "")),
        ("client secret", secret.as_str()),
        ("password", password),
        ("refresh token", refresh.as_str()),
    ] {
        assert!(!dump.contains(value), "{what} is stored in clear");
    }
}

/// What a person does: a device (the `oauth2` crate) starts the flow and polls; a browser opens
/// `verification_uri_complete`, signs in and approves; the device gets its tokens.
#[tokio::test]
async fn approval_in_the_browser_releases_the_tokens() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("living-room", Changes::default()).await;
    let (client_id, _) = app
        .client(
            &ws,
            true,
            &["device_code", "refresh_token"],
            "openid profile offline_access",
        )
        .await;
    let frank = app.user(&ws, "frank", "frank's password").await;
    let client = BasicClient::new(oauth2::ClientId::new(client_id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(format!("{}/token", app.issuer("living-room"))).unwrap())
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(format!(
                "{}/device_authorization",
                app.issuer("living-room")
            ))
            .unwrap(),
        );
    let http = http();
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scope(oauth2::Scope::new("openid".into()))
        .add_scope(oauth2::Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .unwrap();
    let link = details
        .verification_uri_complete()
        .unwrap()
        .secret()
        .clone();
    let (token, done) = tokio::join!(
        client.exchange_device_access_token(&details).request_async(
            &http,
            tokio::time::sleep,
            Some(Duration::from_secs(30))
        ),
        async {
            Browser::new()
                .activate(&link, "frank", "frank's password", "approve")
                .await
        }
    );
    assert!(done.contains("return to your device"), "{done}");
    let token = token.unwrap();
    assert!(token.refresh_token().is_some());
    let (_, at) = verify(
        &app,
        "living-room",
        token.access_token().secret(),
        &client_id,
    )
    .await;
    assert_eq!(at["sub"], frank.id.to_string());
    assert_eq!(at["scope"], "offline_access openid");

    // Denying in the browser reaches the device as access_denied.
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .request_async(&http)
        .await
        .unwrap();
    let link = details
        .verification_uri_complete()
        .unwrap()
        .secret()
        .clone();
    let (token, done) = tokio::join!(
        client.exchange_device_access_token(&details).request_async(
            &http,
            tokio::time::sleep,
            Some(Duration::from_secs(30))
        ),
        async {
            Browser::new()
                .activate(&link, "frank", "frank's password", "deny")
                .await
        }
    );
    assert!(done.contains("denied"), "{done}");
    let err = token.unwrap_err();
    assert!(format!("{err:?}").contains("access_denied"), "{err:?}");
}

/// A device authorization is one unit of work: when its audit event cannot be written (a
/// trigger refuses it here), no grant is left behind either, and its device code leads
/// nowhere; once the audit log accepts writes again, a request stores both.
#[tokio::test]
async fn a_device_authorization_is_written_whole_or_not_at_all() {
    use sea_orm::{ConnectionTrait as _, DbBackend, PaginatorTrait as _};

    let app = TestApp::spawn().await;
    let ws = app.workspace("home", Changes::default()).await;
    let (client_id, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let db = &app.core.db;
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let refuse_audit: &[&str] = match db.get_database_backend() {
        DbBackend::Postgres => &[
            "CREATE FUNCTION refuse_device_audit() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_device_audit BEFORE INSERT ON audit_events FOR EACH ROW \
             WHEN (NEW.action = 'device.requested') EXECUTE FUNCTION refuse_device_audit()",
        ],
        _ => &[
            "CREATE TRIGGER refuse_device_audit BEFORE INSERT ON audit_events \
             WHEN NEW.action = 'device.requested' BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        ],
    };
    for statement in refuse_audit {
        db.execute_unprepared(statement).await.unwrap();
    }
    let grants = || entities::device_grant::Entity::find().count(db);
    let audited = || {
        entities::audit_event::Entity::find()
            .filter(entities::audit_event::Column::Action.eq("device.requested"))
            .count(db)
    };

    let (status, body, _) = post(
        &app,
        "/w/home/device_authorization",
        &[("client_id", &client_id)],
        None,
    )
    .await;
    assert!(status >= 500, "{status} {body}");
    assert!(body.get("device_code").is_none(), "{body}");
    assert_eq!(
        grants().await.unwrap(),
        0,
        "a grant without its audit event"
    );
    assert_eq!(audited().await.unwrap(), 0);

    db.execute_unprepared(if postgres {
        "DROP TRIGGER refuse_device_audit ON audit_events"
    } else {
        "DROP TRIGGER refuse_device_audit"
    })
    .await
    .unwrap();
    let started = authorize(&app, "home", &client_id, None).await;
    assert_eq!(grants().await.unwrap(), 1);
    assert_eq!(audited().await.unwrap(), 1);
    let (status, body) = poll(
        &app,
        "home",
        &client_id,
        started["device_code"].as_str().unwrap(),
    )
    .await;
    // Known, and waiting (polled at once, it is also too early).
    assert_eq!(status, 400, "{body}");
    assert!(
        matches!(
            body["error"].as_str(),
            Some("authorization_pending" | "slow_down")
        ),
        "{body}"
    );
}
