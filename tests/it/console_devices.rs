//! `/console` device authorizations, per-user grants and the device-flow simulator, driven over
//! HTTP like a browser, with the device and the resource server speaking OAuth beside it.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use serde_json::Value;
use vestibule_core::entities::{audit_event, device_grant, user, workspace};
use vestibule_core::services::interaction::Decision;
use vestibule_core::services::workspaces::Changes;

use crate::console::{Console, data_field};
use crate::helpers::TestApp;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A workspace with a public TV app (device and refresh grants), a resource server that may
/// introspect, and a user.
struct Setup {
    app: TestApp,
    ws: workspace::Model,
    tv: String,
    rs: (String, String),
    alice: user::Model,
}

async fn setup(slug: &str, changes: Changes) -> Setup {
    let app = TestApp::spawn().await;
    let ws = app.workspace(slug, changes).await;
    let (tv, _) = app
        .client(
            &ws,
            true,
            &["device_code", "refresh_token"],
            "openid profile offline_access",
        )
        .await;
    let (rs_id, rs_secret) = app
        .client(&ws, false, &["client_credentials"], "api:read")
        .await;
    let alice = app.user(&ws, "alice", "alice password").await;
    Setup {
        app,
        ws,
        tv,
        rs: (rs_id, rs_secret.unwrap()),
        alice,
    }
}

/// Endpoint paths from discovery.
async fn endpoint(app: &TestApp, slug: &str, field: &str) -> String {
    let meta: Value = app
        .get(&format!("/w/{slug}/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    meta[field]
        .as_str()
        .unwrap()
        .strip_prefix(&app.address)
        .unwrap()
        .to_owned()
}

impl Setup {
    fn slug(&self) -> &str {
        &self.ws.slug
    }

    /// A device authorization by the TV app: its device code, user code and grant id.
    async fn start(&self) -> (String, String, uuid::Uuid) {
        let path = endpoint(&self.app, self.slug(), "device_authorization_endpoint").await;
        let (status, body, _) = self
            .app
            .post_form(
                &path,
                &[
                    ("client_id", self.tv.as_str()),
                    ("scope", "openid offline_access"),
                ],
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let device_code = body["device_code"].as_str().unwrap().to_owned();
        let user_code = body["user_code"].as_str().unwrap().to_owned();
        let id = self.newest_request().await;
        (device_code, user_code, id)
    }

    /// The id of the newest device authorization (ids are time-ordered UUIDv7).
    async fn newest_request(&self) -> uuid::Uuid {
        device_grant::Entity::find()
            .filter(device_grant::Column::WorkspaceId.eq(self.ws.id))
            .all(&self.app.core.db)
            .await
            .unwrap()
            .into_iter()
            .max_by_key(|g| g.id)
            .unwrap()
            .id
    }

    async fn poll(&self, device_code: &str) -> (u16, Value) {
        let path = endpoint(&self.app, self.slug(), "token_endpoint").await;
        let (status, body, _) = self
            .app
            .post_form(
                &path,
                &[
                    ("grant_type", DEVICE_GRANT),
                    ("device_code", device_code),
                    ("client_id", self.tv.as_str()),
                ],
                None,
            )
            .await;
        (status, body)
    }

    /// A full flow approved by alice: (access token, refresh token, grant id).
    async fn tokens(&self) -> (String, String, uuid::Uuid) {
        let (device_code, user_code, id) = self.start().await;
        self.app
            .decide(&user_code, &self.alice, Decision::Approve)
            .await;
        let (status, body) = self.poll(&device_code).await;
        assert_eq!(status, 200, "{body}");
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
            id,
        )
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        let path = endpoint(&self.app, self.slug(), "token_endpoint").await;
        let (status, body, _) = self
            .app
            .post_form(
                &path,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("client_id", self.tv.as_str()),
                ],
                None,
            )
            .await;
        (status, body)
    }

    async fn active(&self, token: &str) -> bool {
        let path = endpoint(&self.app, self.slug(), "introspection_endpoint").await;
        let (status, body, _) = self
            .app
            .post_form(&path, &[("token", token)], Some((&self.rs.0, &self.rs.1)))
            .await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    }

    async fn actions(&self, target: uuid::Uuid) -> Vec<String> {
        audit_event::Entity::find()
            .filter(audit_event::Column::Target.eq(target.to_string()))
            .all(&self.app.core.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    fn devices(&self) -> String {
        format!("/console/workspaces/{}/devices", self.slug())
    }
}

/// The status word shown in the row of device `id`.
fn row_status(html: &str, id: uuid::Uuid) -> String {
    let marker = format!("data-device=\"{id}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for {id}"));
    data_field_like(&html[start..], "data-status")
}

fn data_field_like(html: &str, attr: &str) -> String {
    let start = html.find(attr).unwrap();
    let open = html[start..].find('>').unwrap() + start + 1;
    let close = html[open..].find('<').unwrap() + open;
    html[open..close].trim().to_owned()
}

#[tokio::test]
async fn devices_list_shows_live_and_past_with_a_timeline() {
    let s = setup("devices", Changes::default()).await;
    let (_, _, pending) = s.start().await;
    let (_, _, redeemed) = s.tokens().await;
    let (_, denied_code, denied) = s.start().await;
    s.app.decide(&denied_code, &s.alice, Decision::Deny).await;

    let console = Console::signed_in(&s.app).await;
    let page = console.get(&s.devices()).await;
    assert_eq!(page.status, StatusCode::OK);
    let (live, past) = page.body.split_at(page.body.find("past-heading").unwrap());
    assert!(live.contains(&pending.to_string()), "pending is live");
    assert!(!live.contains(&redeemed.to_string()));
    assert!(past.contains(&redeemed.to_string()), "redeemed is past");
    assert!(past.contains(&denied.to_string()), "denied is past");
    assert_eq!(row_status(live, pending), "pending");
    assert_eq!(row_status(past, redeemed), "redeemed");
    assert_eq!(row_status(past, denied), "denied");
    assert!(page.body.contains("alice"), "the approving user is named");
    assert!(page.body.contains("Test TV"), "the client is named");

    // Filtered by a client without requests: nothing; by an unknown client: 404.
    let page = console
        .get(&format!("{}?client={}", s.devices(), s.rs.0))
        .await;
    assert!(!page.body.contains(&pending.to_string()));
    let page = console.get(&format!("{}?client=nope", s.devices())).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    let page = console.get(&format!("{}/{redeemed}", s.devices())).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        data_field(&page.body, "status").as_deref(),
        Some("redeemed")
    );
    for step in ["Requested", "Decided", "Redeemed"] {
        assert!(page.body.contains(step), "timeline has {step}");
    }
    for action in ["device.requested", "device.approved", "device.redeemed"] {
        assert!(page.body.contains(action), "timeline lists {action}");
    }
}

#[tokio::test]
async fn revoking_a_pending_or_approved_request_denies_the_device() {
    let s = setup("revoke-live", Changes::default()).await;
    let console = Console::signed_in(&s.app).await;

    let (device_code, _, id) = s.start().await;
    let page = console
        .post(&format!("{}/{id}/revoke", s.devices()), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location.unwrap();
    assert_eq!(location, format!("{}/{id}", s.devices()));
    let shown = console.get(&location).await;
    assert!(shown.body.contains("revoked"), "{}", shown.body);
    assert_eq!(data_field(&shown.body, "status").as_deref(), Some("denied"));
    let (status, body) = s.poll(&device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );
    assert!(s.actions(id).await.contains(&"device.revoked".to_owned()));

    // Approved but not yet collected by the device: refused too.
    let (device_code, user_code, id) = s.start().await;
    s.app.decide(&user_code, &s.alice, Decision::Approve).await;
    let page = console
        .post(&format!("{}/{id}/revoke", s.devices()), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (status, body) = s.poll(&device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );

    // Revoking again changes nothing and says so.
    let page = console
        .post(&format!("{}/{id}/revoke", s.devices()), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let shown = console.get(&page.location.unwrap()).await;
    assert!(shown.body.contains("already ended"), "{}", shown.body);
}

#[tokio::test]
async fn revoking_a_redeemed_request_ends_every_token_from_it() {
    let s = setup("revoke-redeemed", Changes::default()).await;
    let (access, refresh, id) = s.tokens().await;
    assert!(s.active(&access).await);
    let console = Console::signed_in(&s.app).await;
    let page = console
        .post(&format!("{}/{id}/revoke", s.devices()), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let shown = console.get(&page.location.unwrap()).await;
    assert!(
        shown
            .body
            .contains("every token issued from it stopped working"),
        "{}",
        shown.body
    );
    assert_eq!(
        data_field(&shown.body, "status").as_deref(),
        Some("revoked")
    );
    assert!(!s.active(&access).await, "introspection: inactive");
    let (status, body) = s.refresh(&refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(s.actions(id).await.contains(&"grant.revoked".to_owned()));
}

#[tokio::test]
async fn revoke_needs_the_csrf_token_and_the_right_workspace() {
    let s = setup("home", Changes::default()).await;
    let other = s.app.workspace("other", Changes::default()).await;
    let (foreign_client, _) = s.app.client(&other, true, &["device_code"], "openid").await;
    let (device_code, _, id) = s.start().await;
    let console = Console::signed_in(&s.app).await;

    let page = console
        .post_raw(&format!("{}/{id}/revoke", s.devices()), &[])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = console
        .post_raw(
            &format!("{}/{id}/revoke", s.devices()),
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let (_, body) = s.poll(&device_code).await;
    assert_ne!(body["error"].as_str(), Some("access_denied"), "not revoked");

    // The device id through another workspace's path: not found, nothing changed.
    let foreign = format!("/console/workspaces/other/devices/{id}");
    assert_eq!(console.get(&foreign).await.status, StatusCode::NOT_FOUND);
    let page = console.post(&format!("{foreign}/revoke"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let (_, body) = s.poll(&device_code).await;
    assert_ne!(body["error"].as_str(), Some("access_denied"), "not revoked");
    assert!(!s.actions(id).await.contains(&"device.revoked".to_owned()));
    // Nor may the other workspace's list show it, nor its simulator run another's client.
    let page = console.get("/console/workspaces/other/devices").await;
    assert!(!page.body.contains(&id.to_string()));
    let page = console
        .get(&format!(
            "/console/workspaces/home/clients/{foreign_client}/simulator"
        ))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        console
            .get(&format!("{}/not-a-uuid", s.devices()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_page_lists_active_grants_and_revokes_one_or_all() {
    let s = setup("grants", Changes::default()).await;
    let (access_1, refresh_1, first) = s.tokens().await;
    let (access_2, refresh_2, second) = s.tokens().await;
    let (_, _, third) = s.tokens().await;
    let console = Console::signed_in(&s.app).await;
    let user_path = format!("/console/workspaces/grants/users/{}", s.alice.id);

    let page = console.get(&user_path).await;
    assert_eq!(page.status, StatusCode::OK);
    for id in [first, second, third] {
        assert!(
            page.body.contains(&format!("data-grant=\"{id}\"")),
            "{id} listed"
        );
    }
    assert!(page.body.contains("offline_access"), "scopes shown");

    // Another workspace's path for the same grant: 404.
    s.app.workspace("elsewhere", Changes::default()).await;
    let page = console
        .post(
            &format!(
                "/console/workspaces/elsewhere/users/{}/grants/{first}/revoke",
                s.alice.id
            ),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // Without the CSRF token: refused.
    let page = console
        .post_raw(&format!("{user_path}/grants/{first}/revoke"), &[])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(s.active(&access_1).await);

    let page = console
        .post(&format!("{user_path}/grants/{first}/revoke"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some(user_path.as_str()));
    assert!(!s.active(&access_1).await);
    assert_eq!(s.refresh(&refresh_1).await.1["error"], "invalid_grant");
    assert!(s.active(&access_2).await, "the other grants keep working");
    let page = console.get(&user_path).await;
    assert!(!page.body.contains(&format!("data-grant=\"{first}\"")));
    assert!(page.body.contains(&format!("data-grant=\"{second}\"")));

    let page = console
        .post(&format!("{user_path}/grants/revoke-all"), &[])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = console.get(&user_path).await;
    assert!(
        page.body.contains("2 grant(s) of alice revoked"),
        "{}",
        page.body
    );
    assert!(page.body.contains("No active grants."));
    assert!(!s.active(&access_2).await);
    assert_eq!(s.refresh(&refresh_2).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn simulator_shows_the_code_and_qr_then_the_outcome() {
    let s = setup(
        "sim",
        Changes {
            user_code_length: Some(10),
            user_code_charset: Some("digits".into()),
            ..Changes::default()
        },
    )
    .await;
    let console = Console::signed_in(&s.app).await;
    let client_page = console
        .get(&format!("/console/workspaces/sim/clients/{}", s.tv))
        .await;
    let sim_path = format!("/console/workspaces/sim/clients/{}/simulator", s.tv);
    assert!(client_page.body.contains(&format!("action=\"{sim_path}\"")));

    let page = console.get(&sim_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        data_field(&page.body, "user_code").is_none(),
        "nothing started yet"
    );

    let page = console.post(&sim_path, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some(sim_path.as_str()));
    let page = console.get(&sim_path).await;
    let user_code = data_field(&page.body, "user_code").expect("a user code");
    let bare: String = user_code.chars().filter(|c| *c != '-').collect();
    assert_eq!(bare.len(), 10, "{user_code}");
    assert!(bare.chars().all(|c| c.is_ascii_digit()), "{user_code}");
    let link = data_field(&page.body, "verification_uri_complete")
        .unwrap()
        .replace("&#x2F;", "/");
    assert_eq!(
        link,
        format!("{}/activate?user_code={user_code}", s.app.address)
    );
    assert!(page.body.contains("<svg"), "an inline SVG QR code");
    assert!(!page.body.contains("<?xml"), "no XML prologue inline");
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "reloads itself"
    );
    assert_eq!(
        data_field(&page.body, "simulator_status").as_deref(),
        Some("waiting for the user")
    );
    // The device code is nowhere in the page: only its hash is stored, so look for the
    // shape of one (a long URL-safe token) besides the CSRF token.
    let csrf = crate::console::hidden(&page.body, "csrf_token");
    assert!(!page.body.contains("device_code\""), "no device code field");
    assert!(
        !page
            .body
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .any(|w| w.len() >= 40 && w != csrf),
        "no token-like string in the page"
    );

    // Reloading while pending counts no poll, so never a slow_down.
    for _ in 0..3 {
        console.get(&sim_path).await;
    }
    let grant = device_grant::Entity::find()
        .filter(device_grant::Column::WorkspaceId.eq(s.ws.id))
        .one(&s.app.core.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.slow_downs, 0);
    assert!(
        s.actions(grant.id)
            .await
            .contains(&"device.simulated".to_owned())
    );

    s.app.decide(&user_code, &s.alice, Decision::Approve).await;
    let page = console.get(&sim_path).await;
    assert_eq!(
        data_field(&page.body, "simulator_status").as_deref(),
        Some("approved — tokens issued")
    );
    assert!(page.body.contains("a refresh token"), "{}", page.body);
    assert!(
        !page.body.contains("http-equiv=\"refresh\""),
        "done: no reload"
    );
    let grant = device_grant::Entity::find_by_id(grant.id)
        .one(&s.app.core.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant.status.as_str(),
        "consumed",
        "the simulator redeemed the code"
    );
    // Later looks still report the success.
    let page = console.get(&sim_path).await;
    assert_eq!(
        data_field(&page.body, "simulator_status").as_deref(),
        Some("approved — tokens issued")
    );

    // A confidential client is simulated without its secret; a denial is reported.
    let (confidential, _) = s.app.client(&s.ws, false, &["device_code"], "openid").await;
    let sim_path = format!("/console/workspaces/sim/clients/{confidential}/simulator");
    assert_eq!(
        console.post(&sim_path, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let page = console.get(&sim_path).await;
    let user_code = data_field(&page.body, "user_code").unwrap();
    s.app.decide(&user_code, &s.alice, Decision::Deny).await;
    let page = console.get(&sim_path).await;
    assert_eq!(
        data_field(&page.body, "simulator_status").as_deref(),
        Some("denied")
    );

    // A client without the device grant cannot be simulated: the page says why.
    let (no_device, _) = s
        .app
        .client(&s.ws, false, &["client_credentials"], "api:read")
        .await;
    let sim_path = format!("/console/workspaces/sim/clients/{no_device}/simulator");
    let page = console.post(&sim_path, &[]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("unauthorized_client"), "{}", page.body);
}
