//! Grants, consent and sign-ins that end when they should: concurrent first approvals, the
//! remembered consent forgotten on every revocation, disabling a user and changing a password,
//! and `client_credentials` tokens of a deleted client.

use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use serde_json::Value;
use vestibule_core::entities::{audit_event, consent, device_grant, user, workspace};
use vestibule_core::records::{Client, Workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_grants::{self, Lookup, Origin};
use vestibule_core::services::interaction::{self, Approver, Decided, Decision};
use vestibule_core::services::users::{self, Change};
use vestibule_core::services::{clients, consents, device_authorizations, user_grants, workspaces};
use vestibule_core::types::{
    Access, ClientId, DisplayName, GrantSet, Password, Proximity, ScopeSet,
};

use crate::helpers::{TestApp, hidden};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SCOPES: &str = "openid profile email offline_access";

/// An app with a workspace (remembered consent skips the page, the default), a public TV app
/// and a resource server that may introspect.
struct Lab {
    app: TestApp,
    ws: workspace::Model,
    tv: String,
    rs: (String, String),
}

async fn lab() -> Lab {
    let app = TestApp::spawn().await;
    let ws = app
        .workspace(
            "home",
            workspaces::Changes {
                consent_skip: Some(true),
                ..workspaces::Changes::default()
            },
        )
        .await;
    let (tv, _) = app
        .client(&ws, true, &["device_code", "refresh_token"], SCOPES)
        .await;
    let (rs_id, rs_secret) = app
        .client(&ws, false, &["client_credentials"], "api:read")
        .await;
    Lab {
        app,
        ws,
        tv,
        rs: (rs_id, rs_secret.unwrap()),
    }
}

/// A device authorization as the TV app asks for it over HTTP.
struct Asked {
    device_code: String,
    user_code: String,
}

impl Lab {
    async fn user(&self, name: &str) -> user::Model {
        self.app.user(&self.ws, name, &password_of(name)).await
    }

    async fn device_asks(&self, scope: &str) -> Asked {
        let (status, body, _) = self
            .app
            .post_form(
                "/w/home/device_authorization",
                &[("client_id", &self.tv), ("scope", scope)],
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        Asked {
            device_code: body["device_code"].as_str().unwrap().to_owned(),
            user_code: body["user_code"].as_str().unwrap().to_owned(),
        }
    }

    async fn redeem(&self, asked: &Asked) -> Value {
        let (status, body) = self
            .token(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", &asked.device_code),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Approves a code as `user` and redeems it: the token response.
    async fn tokens(&self, user: &user::Model) -> Value {
        let asked = self.device_asks(SCOPES).await;
        self.app
            .decide(&asked.user_code, user, Decision::Approve)
            .await;
        self.redeem(&asked).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let mut form = form.to_vec();
        form.push(("client_id", &self.tv));
        let (status, body, _) = self.app.post_form("/w/home/token", &form, None).await;
        (status, body)
    }

    /// A `client_credentials` access token.
    async fn client_token(&self, client_id: &str, secret: &str) -> String {
        let (status, body, _) = self
            .app
            .post_form(
                "/w/home/token",
                &[("grant_type", "client_credentials")],
                Some((client_id, secret)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn active(&self, token: &str) -> bool {
        let (status, body, _) = self
            .app
            .post_form(
                "/w/home/introspect",
                &[("token", token)],
                Some((&self.rs.0, &self.rs.1)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    }

    async fn remembered(&self, user: &user::Model) -> bool {
        consents::covers(
            &self.app.core.db,
            user.id,
            self.tv_row_id().await,
            &ScopeSet::parse(SCOPES).unwrap(),
        )
        .await
        .unwrap()
    }

    async fn tv_row_id(&self) -> uuid::Uuid {
        clients::find(&self.app.core.db, &self.tv)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    async fn update_user(&self, user: &user::Model, change: Change) {
        users::update(&self.app.core, &Actor::Cli, &self.ws, user.id, change)
            .await
            .unwrap();
    }

    async fn audited(&self, action: &str) -> Vec<audit_event::Model> {
        audit_event::Entity::find()
            .filter(audit_event::Column::WorkspaceId.eq(self.ws.id))
            .filter(audit_event::Column::Action.eq(action))
            .all(&self.app.core.db)
            .await
            .unwrap()
    }
}

fn password_of(username: &str) -> String {
    format!("{username} long password")
}

/// A person's browser at `/activate`: keeps cookies, follows redirects, types codes.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: app.address.clone(),
        }
    }

    /// Posts the form of the page at `path` with `fields`; the path the browser ends on.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let html = self.page(path).await;
        let token = hidden(&html, "csrf_token");
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.url().path().to_owned()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.text().await.unwrap()
    }

    /// Where the browser is sent for a path.
    async fn lands(&self, path: &str) -> String {
        self.get(path).await.url().path().to_owned()
    }

    /// Types a code and signs in as `user` when asked: where the browser ends up.
    async fn type_code(&self, user_code: &str, user: &user::Model) -> String {
        let at = self.submit("/activate", &[("user_code", user_code)]).await;
        if at != "/activate/sign-in" {
            return at;
        }
        self.sign_in(user).await
    }

    async fn sign_in(&self, user: &user::Model) -> String {
        self.submit(
            "/activate/sign-in",
            &[
                ("username", &user.username),
                ("password", &password_of(&user.username)),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn concurrent_first_approvals_of_one_client_are_all_recorded() {
    let lab = lab().await;
    let workspace = Workspace::parse(lab.ws.clone()).unwrap();
    let tv = Client::parse(
        clients::find(&lab.app.core.db, &lab.tv)
            .await
            .unwrap()
            .unwrap(),
    );
    let scopes = ["openid profile", "openid email", "offline_access"];
    for round in 0..4 {
        let alice = lab.user(&format!("alice{round}")).await;
        let mut requests = Vec::new();
        for scope in scopes {
            let started = device_grants::start(
                &lab.app.core,
                &workspace,
                &tv,
                ScopeSet::parse(scope).unwrap(),
                Origin::default(),
            )
            .await
            .unwrap();
            let Lookup::Pending(pending) = device_grants::find_by_user_code(
                &lab.app.core.db,
                &lab.app.core.keyring,
                started.user_code.as_str(),
            )
            .await
            .unwrap() else {
                panic!("just started");
            };
            requests.push(pending.into_request(false));
        }
        let decide = |request| {
            let approver = Approver {
                user: &alice,
                auth_time: vestibule_core::now(),
                ip: None,
            };
            interaction::decide(&lab.app.core, request, approver, Decision::Approve)
        };
        let decided = tokio::join!(
            decide(&requests[0]),
            decide(&requests[1]),
            decide(&requests[2])
        );
        for d in [decided.0, decided.1, decided.2] {
            assert_eq!(d.unwrap(), Decided::Recorded);
        }
        let approved = device_grant::Entity::find()
            .filter(device_grant::Column::UserId.eq(alice.id))
            .all(&lab.app.core.db)
            .await
            .unwrap();
        assert_eq!(approved.len(), scopes.len());
        let remembered = consent::Entity::find()
            .filter(consent::Column::UserId.eq(alice.id))
            .all(&lab.app.core.db)
            .await
            .unwrap();
        assert_eq!(remembered.len(), 1, "one consent per user and client");
        assert_eq!(
            ScopeSet::from_stored(&remembered[0].scopes),
            ScopeSet::parse("openid profile email offline_access").unwrap(),
            "every approval's scopes are remembered"
        );
    }
}

/// How a grant can be revoked.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    ConsoleOneGrant,
    ConsoleAllGrants,
    AdminDeviceRedeemed,
    AdminDeviceApproved,
    RefreshReuse,
    ClientRevokes,
}

#[tokio::test]
async fn every_revocation_forgets_the_remembered_consent() {
    let lab = lab().await;
    let core = &lab.app.core;
    for (n, how) in [
        Revocation::ConsoleOneGrant,
        Revocation::ConsoleAllGrants,
        Revocation::AdminDeviceRedeemed,
        Revocation::AdminDeviceApproved,
        Revocation::RefreshReuse,
        Revocation::ClientRevokes,
    ]
    .into_iter()
    .enumerate()
    {
        let user = lab.user(&format!("user{n}")).await;
        let asked = lab.device_asks(SCOPES).await;
        let Lookup::Pending(pending) =
            device_grants::find_by_user_code(&core.db, &core.keyring, &asked.user_code)
                .await
                .unwrap()
        else {
            panic!("just asked");
        };
        let grant_id = pending.grant.id;
        lab.app
            .decide(&asked.user_code, &user, Decision::Approve)
            .await;
        let tokens = match how {
            Revocation::AdminDeviceApproved => None,
            _ => Some(lab.redeem(&asked).await),
        };
        assert!(lab.remembered(&user).await, "{how:?}: approval remembered");
        match how {
            Revocation::ConsoleOneGrant => {
                assert!(
                    user_grants::revoke(&core.db, &Actor::Cli, lab.ws.id, user.id, grant_id, None)
                        .await
                        .unwrap()
                        .ended
                );
            }
            Revocation::ConsoleAllGrants => {
                let ended =
                    user_grants::revoke_all(&core.db, &Actor::Cli, lab.ws.id, user.id, None)
                        .await
                        .unwrap();
                assert_eq!(ended, 1);
            }
            Revocation::AdminDeviceRedeemed | Revocation::AdminDeviceApproved => {
                device_authorizations::revoke(core, &Actor::Cli, lab.ws.id, grant_id, None)
                    .await
                    .unwrap();
            }
            Revocation::RefreshReuse => {
                let first = tokens.as_ref().unwrap()["refresh_token"].as_str().unwrap();
                assert_eq!(lab.refresh(first).await.0, 200);
                let (status, body) = lab.refresh(first).await;
                assert_eq!(status, 400);
                assert_eq!(body["error"], "invalid_grant");
            }
            Revocation::ClientRevokes => {
                let refresh = tokens.as_ref().unwrap()["refresh_token"].as_str().unwrap();
                let (status, _, _) = lab
                    .app
                    .post_form(
                        "/w/home/revoke",
                        &[("token", refresh), ("client_id", &lab.tv)],
                        None,
                    )
                    .await;
                assert_eq!(status, 200);
            }
        }
        assert!(!lab.remembered(&user).await, "{how:?}: consent forgotten");

        // A phished code of the same client, typed in again: the consent page asks.
        let phished = lab.device_asks(SCOPES).await;
        let browser = Browser::new(&lab.app);
        assert_eq!(
            browser.type_code(&phished.user_code, &user).await,
            "/activate/consent",
            "{how:?}"
        );
    }
}

#[tokio::test]
async fn disabling_a_user_revokes_their_grants_for_good() {
    let lab = lab().await;
    let alice = lab.user("alice").await;
    let first = lab.tokens(&alice).await;
    let second = lab.tokens(&alice).await;
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(lab.active(access).await);

    lab.update_user(&alice, Change::Disabled(true)).await;
    lab.update_user(&alice, Change::Disabled(false)).await;

    for tokens in [&first, &second] {
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let (status, body) = lab.refresh(refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!(!lab.active(refresh).await, "refresh token inactive");
        assert!(!lab.active(tokens["access_token"].as_str().unwrap()).await);
    }
    assert!(!lab.active(refresh).await);
    let revoked = lab.audited("grant.revoked").await;
    assert_eq!(revoked.len(), 2, "one audit event per grant");
    assert!(
        revoked.iter().all(|e| e.detail.contains("user_disabled")),
        "{revoked:?}"
    );
    // New approvals after re-enabling work as usual.
    let fresh = lab.tokens(&alice).await;
    assert!(lab.active(fresh["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_password_change_or_a_disable_ends_the_activate_sign_in() {
    let lab = lab().await;
    let changes: [(&str, Vec<Change>); 2] = [
        (
            "alice",
            vec![Change::Password(
                Password::parse("a brand new long password").unwrap(),
            )],
        ),
        ("bob", vec![Change::Disabled(true), Change::Disabled(false)]),
    ];
    for (name, change) in changes {
        let user = lab.user(name).await;
        let browser = Browser::new(&lab.app);
        let asked = lab.device_asks(SCOPES).await;
        assert_eq!(
            browser.type_code(&asked.user_code, &user).await,
            "/activate/consent"
        );
        assert_eq!(
            browser.lands("/activate/consent").await,
            "/activate/consent"
        );
        for c in change {
            lab.update_user(&user, c).await;
        }
        assert_eq!(
            browser.lands("/activate/consent").await,
            "/activate/sign-in",
            "{name}: signed out"
        );
    }
}

#[tokio::test]
async fn tokens_of_a_deleted_client_never_come_back_with_its_client_id() {
    let lab = lab().await;
    let core = &lab.app.core;
    let new_client = || clients::NewClient {
        name: DisplayName::parse("name", "Billing API").unwrap(),
        client_id: Some(ClientId::parse("billing-api").unwrap()),
        public: false,
        grants: GrantSet::parse(["client_credentials"]).unwrap(),
        scopes: ScopeSet::parse("api:read").unwrap(),
        redirect_uris: Vec::new(),
        dcr_template: false,
        access: Access::Everyone,
        device_networks: Vec::new(),
        proximity: Proximity::Warn,
        after_approval_url: None,
    };
    let first = clients::create(core, &Actor::Cli, &lab.ws, new_client())
        .await
        .unwrap();
    let old = lab
        .client_token("billing-api", &first.secret.unwrap())
        .await;
    assert!(lab.active(&old).await);

    clients::delete(core, &Actor::Cli, &lab.ws, "billing-api")
        .await
        .unwrap();
    assert!(!lab.active(&old).await);
    let again = clients::create(core, &Actor::Cli, &lab.ws, new_client())
        .await
        .unwrap();
    assert!(!lab.active(&old).await, "the old client's token stays dead");
    let new = lab
        .client_token("billing-api", &again.secret.unwrap())
        .await;
    assert!(lab.active(&new).await, "the new client's tokens work");
}
