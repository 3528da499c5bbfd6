//! Exactly once across instances (SPEC §6): in each of a hundred trials, fifty requests for one
//! approved device code, or for one refresh token, are released together over two instances on
//! one database, half on each, every one on its own HTTP connection. One gets tokens; every
//! other answer is an error the protocol allows at that moment; the database holds one issuance.

use std::fmt;
use std::sync::Arc;

use sea_orm::{ColumnTrait as _, DatabaseConnection, EntityTrait as _, QueryFilter as _};
use serde_json::Value;
use tokio::sync::Barrier;
use uuid::Uuid;
use vestibule_core::crypto::SecretKind;
use vestibule_core::entities::{audit_event, device_grant, grant, refresh_token, user};
use vestibule_core::services::device_grants::Status;
use vestibule_core::services::interaction::Decision;
use vestibule_core::services::workspaces::Changes;

use crate::helpers::TestApp;

const TRIALS: usize = 100;
/// Requests released together in one trial, alternately on each instance.
const RACERS: usize = 50;
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SLUG: &str = "race";
/// Enough for a refresh token; without `openid` no ID token is signed, which keeps trials cheap.
const SCOPE: &str = "offline_access";

/// How the device-code answers that are not the winner's say why (`invalid_grant`).
const REDEEMED: &str = "already redeemed";
/// How the refresh answers that are not the winner's say why (`invalid_grant`): the request read
/// the token unused and lost the rotation; read it already used (a replay, which revokes the
/// family); or found the family revoked by such a replay.
const RACED: &str = "used by a concurrent request";
const REUSED: &str = "already used";
const REVOKED: &str = "was revoked";

/// A workspace (polling interval 1 s) served by two instances on one database, a public device
/// client with the refresh grant, a user, and the racers.
struct Arena {
    apps: [TestApp; 2],
    client_id: String,
    user: user::Model,
    racers: Vec<Racer>,
}

/// One racer: an HTTP client of its own, so its own connection, to one instance.
struct Racer {
    instance: usize,
    http: reqwest::Client,
    token_url: String,
}

impl Arena {
    async fn new() -> Self {
        // A device authorization per trial: more than the default limit per client and address.
        // Fifty requests at once on a loaded machine may wait for a pooled connection longer
        // than the 2 s fail-fast default, and a 503 says nothing about exactly-once: wait.
        let first = TestApp::spawn_with(|env| {
            env.insert(
                "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT".into(),
                "0".into(),
            );
            env.insert("VESTIBULE__DATABASE__ACQUIRE_TIMEOUT".into(), "30".into());
        })
        .await;
        let second = first.peer().await;
        let ws = first.workspace(SLUG, Changes::default()).await;
        let (client_id, _) = first
            .client(&ws, true, &["device_code", "refresh_token"], SCOPE)
            .await;
        let user = first.user(&ws, "racer", "racer's password").await;
        let apps = [first, second];
        let racers = (0..RACERS)
            .map(|i| Racer {
                instance: i % 2,
                http: reqwest::Client::new(),
                token_url: apps[i % 2].url(&format!("/w/{SLUG}/token")),
            })
            .collect();
        Self {
            apps,
            client_id,
            user,
            racers,
        }
    }

    fn db(&self) -> &DatabaseConnection {
        &self.apps[0].core.db
    }

    /// Secrets are stored as HMACs; both instances share the master key.
    fn hash(&self, kind: SecretKind, secret: &str) -> String {
        self.apps[0].core.keyring.hash_secret(kind, secret)
    }

    /// Starts a device authorization on instance `home` and approves it there; returns the
    /// device code.
    async fn approved(&self, home: usize, before_approval: impl AsyncFnOnce(&str)) -> String {
        let app = &self.apps[home];
        let (status, started, _) = app
            .post_form(
                &format!("/w/{SLUG}/device_authorization"),
                &[("client_id", self.client_id.as_str()), ("scope", SCOPE)],
                None,
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let device_code = started["device_code"].as_str().unwrap().to_owned();
        before_approval(&device_code).await;
        app.decide(
            started["user_code"].as_str().unwrap(),
            &self.user,
            Decision::Approve,
        )
        .await;
        device_code
    }

    /// One request to the token endpoint of instance `instance`.
    async fn ask(&self, instance: usize, form: &[(&str, &str)]) -> Answer {
        let (status, body, _) = self.apps[instance]
            .post_form(&format!("/w/{SLUG}/token"), form, None)
            .await;
        Answer {
            instance,
            reply: Ok((status, body)),
        }
    }

    fn poll_form<'a>(&'a self, device_code: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("grant_type", DEVICE_GRANT),
            ("client_id", self.client_id.as_str()),
            ("device_code", device_code),
        ]
    }

    fn refresh_form<'a>(&'a self, token: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", token),
        ]
    }

    /// Posts `form` to the token endpoint from every racer at once: each request is built and
    /// its task spawned before a barrier releases them all.
    async fn race(&self, form: &[(&str, &str)]) -> Vec<Answer> {
        let start = Arc::new(Barrier::new(self.racers.len()));
        let racing: Vec<_> = self
            .racers
            .iter()
            .map(|racer| {
                let request = racer.http.post(&racer.token_url).form(form).build();
                let http = racer.http.clone();
                let start = start.clone();
                let instance = racer.instance;
                tokio::spawn(async move {
                    start.wait().await;
                    let reply = match request {
                        Ok(request) => send(&http, request).await,
                        Err(e) => Err(e.to_string()),
                    };
                    Answer { instance, reply }
                })
            })
            .collect();
        futures_util::future::join_all(racing)
            .await
            .into_iter()
            .map(|answer| answer.expect("a racer's task"))
            .collect()
    }

    /// The actions of the audit events about `target`.
    async fn audit_trail(&self, target: Uuid) -> AuditTrail {
        AuditTrail(
            audit_event::Entity::find()
                .filter(audit_event::Column::Target.eq(target.to_string()))
                .all(self.db())
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect(),
        )
    }
}

/// The actions recorded about one target.
#[derive(Debug)]
struct AuditTrail(Vec<String>);

impl AuditTrail {
    fn count(&self, action: &str) -> usize {
        self.0.iter().filter(|a| *a == action).count()
    }
}

async fn send(http: &reqwest::Client, request: reqwest::Request) -> Result<(u16, Value), String> {
    let res = http.execute(request).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// What one request got, from which instance.
struct Answer {
    instance: usize,
    /// The status and body (JSON, else its text), or why there was none.
    reply: Result<(u16, Value), String>,
}

impl Answer {
    /// The token response, when this is one.
    fn tokens(&self) -> Option<&Value> {
        match &self.reply {
            Ok((200, body))
                if body["access_token"].is_string() && body["refresh_token"].is_string() =>
            {
                Some(body)
            }
            _ => None,
        }
    }

    /// `error` and `error_description` of a well-formed RFC 6749 §5.2 error response.
    fn error(&self) -> Option<(&str, &str)> {
        let Ok((400, body)) = &self.reply else {
            return None;
        };
        let error = body["error"].as_str()?;
        let description = body["error_description"]
            .as_str()
            .filter(|d| !d.is_empty())?;
        Some((error, description))
    }

    fn is_invalid_grant(&self, because: &str) -> bool {
        matches!(self.error(), Some(("invalid_grant", why)) if why.contains(because))
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {}: ", self.instance)?;
        match (&self.reply, self.tokens()) {
            (_, Some(tokens)) => write!(f, "200 tokens, scope {}", tokens["scope"]),
            (Ok((status, body)), None) => write!(f, "{status} {body}"),
            (Err(e), None) => write!(f, "no answer: {e}"),
        }
    }
}

/// The one token response among `answers`, when every other answer is one `allowed` accepts;
/// else a failure naming the trial and listing every answer.
fn one_winner<'a>(
    trial: &str,
    answers: &'a [Answer],
    allowed: impl Fn(&Answer) -> bool,
) -> &'a Value {
    let winners: Vec<&Value> = answers.iter().filter_map(Answer::tokens).collect();
    let strays = answers
        .iter()
        .filter(|a| a.tokens().is_none() && !allowed(a))
        .count();
    if winners.len() != 1 || strays > 0 {
        let listing: Vec<String> = answers
            .iter()
            .enumerate()
            .map(|(i, a)| format!("  #{i:02} {a}"))
            .collect();
        panic!(
            "{trial}: {} token responses and {strays} unexpected answers among {}:\n{}",
            winners.len(),
            answers.len(),
            listing.join("\n")
        );
    }
    winners[0]
}

/// The grant id (`gid`) an access token carries.
fn gid(access_token: &Value) -> Uuid {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(access_token.as_str().unwrap())
        .unwrap()
        .claims;
    claims["gid"].as_str().unwrap().parse().unwrap()
}

/// Per trial: a device code is started and approved on one instance (the two take turns), then
/// polled fifty times at once over both. In every other pair of trials the other instance polled
/// the code while it was pending first, so it remembers it as pending: until it follows the
/// change log (one tick, about 250 ms) it may still answer `authorization_pending`, or
/// `slow_down` since those polls come faster than the interval. That is the documented
/// multi-instance bound (docs/device-grant-store.md), so such answers are allowed from that
/// instance in those trials only. Everything else is either the one token response or
/// `invalid_grant` for a code already redeemed; so is a poll on either instance afterwards.
#[tokio::test]
async fn fifty_polls_over_two_instances_redeem_a_device_code_once() {
    let arena = Arena::new().await;
    for trial in 0..TRIALS {
        let home = trial % 2;
        let other = 1 - home;
        let other_polled_first = trial / 2 % 2 == 1;
        let label = format!(
            "device trial {trial} (started and approved on instance {home}{})",
            if other_polled_first {
                format!(", polled while pending on instance {other}")
            } else {
                String::new()
            }
        );
        let device_code = arena
            .approved(home, async |code: &str| {
                if other_polled_first {
                    let early = arena.ask(other, &arena.poll_form(code)).await;
                    assert!(
                        matches!(
                            early.error(),
                            Some(("authorization_pending" | "slow_down", _))
                        ),
                        "{label}: {early}"
                    );
                }
            })
            .await;

        let answers = arena.race(&arena.poll_form(&device_code)).await;
        let tokens = one_winner(&label, &answers, |a| {
            a.is_invalid_grant(REDEEMED)
                || (other_polled_first
                    && a.instance == other
                    && matches!(a.error(), Some(("authorization_pending" | "slow_down", _))))
        });

        if other_polled_first {
            // What its next tick does anyway: read the log, forget the snapshot.
            let other = &arena.apps[other].core;
            other.device_grants.follow(&other.db).await.unwrap();
        }
        for instance in [home, other] {
            let again = arena.ask(instance, &arena.poll_form(&device_code)).await;
            assert!(
                again.is_invalid_grant(REDEEMED),
                "{label}, polled again: {again}"
            );
        }
        assert_redeemed_once(&arena, &label, &device_code, tokens).await;
    }
}

/// The database holds one redemption of the device code: the grant consumed, one approval, one
/// refresh token (the winner's), one `device.redeemed` event, and the winner's access token
/// names that approval.
async fn assert_redeemed_once(arena: &Arena, trial: &str, device_code: &str, tokens: &Value) {
    let db = arena.db();
    let device = device_grant::Entity::find()
        .filter(
            device_grant::Column::DeviceCodeHash
                .eq(arena.hash(SecretKind::DeviceCode, device_code)),
        )
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.status, Status::Consumed, "{trial}");
    assert!(device.consumed_at.is_some(), "{trial}");
    let approvals = grant::Entity::find()
        .filter(grant::Column::DeviceGrantId.eq(device.id))
        .all(db)
        .await
        .unwrap();
    assert_eq!(approvals.len(), 1, "{trial}: {approvals:?}");
    assert_eq!(gid(&tokens["access_token"]), approvals[0].id, "{trial}");
    let refresh_tokens = refresh_token::Entity::find()
        .filter(refresh_token::Column::DeviceGrantId.eq(device.id))
        .all(db)
        .await
        .unwrap();
    assert_eq!(refresh_tokens.len(), 1, "{trial}: {refresh_tokens:?}");
    assert_eq!(
        refresh_tokens[0].token_hash,
        arena.hash(
            SecretKind::RefreshToken,
            tokens["refresh_token"].as_str().unwrap()
        ),
        "{trial}: the stored refresh token is the winner's"
    );
    let trail = arena.audit_trail(device.id).await;
    assert_eq!(trail.count("device.redeemed"), 1, "{trial}: {trail:?}");
}

/// Per trial: a fresh refresh token (device flow on one instance, the two take turns) is
/// presented fifty times at once over both. One request rotates it; each other one is
/// `invalid_grant` because it lost the rotation, or read the token already rotated — a replay
/// (RFC 9700 §4.14.2) that revokes the whole family — or found the family revoked by such a
/// replay. The database holds one child of the token; the family is revoked exactly when some
/// request was answered as a replay, and once the token is presented again on either instance
/// after the race.
#[tokio::test]
async fn fifty_refreshes_over_two_instances_rotate_a_refresh_token_once() {
    let arena = Arena::new().await;
    for trial in 0..TRIALS {
        let home = trial % 2;
        let label = format!("refresh trial {trial} (tokens from instance {home})");
        let device_code = arena.approved(home, async |_: &str| {}).await;
        let first = arena.ask(home, &arena.poll_form(&device_code)).await;
        let parent = first.tokens().unwrap_or_else(|| panic!("{label}: {first}"))["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();

        let answers = arena.race(&arena.refresh_form(&parent)).await;
        let tokens = one_winner(&label, &answers, |a| {
            [RACED, REUSED, REVOKED]
                .iter()
                .any(|why| a.is_invalid_grant(why))
        });
        let replays = answers
            .iter()
            .filter(|a| a.is_invalid_grant(REUSED))
            .count();
        let revoked = answers
            .iter()
            .filter(|a| a.is_invalid_grant(REVOKED))
            .count();
        assert!(
            revoked == 0 || replays > 0,
            "{label}: {revoked} answers saw a revocation without a replay"
        );
        let family = assert_rotated_once(&arena, &label, &parent, tokens, replays).await;

        for instance in [home, 1 - home] {
            let again = arena.ask(instance, &arena.refresh_form(&parent)).await;
            assert!(
                again.is_invalid_grant(REUSED) || again.is_invalid_grant(REVOKED),
                "{label}, presented again: {again}"
            );
        }
        assert_family_revoked(&arena, &label, family).await;
        let trail = arena.audit_trail(family).await;
        assert_eq!(trail.count("grant.revoked"), 1, "{label}: {trail:?}");
    }
}

/// The database holds one rotation of `parent`: it is used, its family has exactly one other
/// token (the winner's, its child), one `refresh_token.rotated` event, and the family is
/// revoked (one `refresh_token.reused` event per replay answer) exactly when `replays > 0`.
/// Returns the family (grant) id.
async fn assert_rotated_once(
    arena: &Arena,
    trial: &str,
    parent: &str,
    tokens: &Value,
    replays: usize,
) -> Uuid {
    let db = arena.db();
    let parent = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(arena.hash(SecretKind::RefreshToken, parent)))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(parent.used_at.is_some(), "{trial}: the token was rotated");
    let family = refresh_token::Entity::find()
        .filter(refresh_token::Column::FamilyId.eq(parent.family_id))
        .all(db)
        .await
        .unwrap();
    let children: Vec<_> = family
        .iter()
        .filter(|t| t.parent_id == Some(parent.id))
        .collect();
    assert_eq!(family.len(), 2, "{trial}: {family:?}");
    assert_eq!(children.len(), 1, "{trial}: {family:?}");
    assert_eq!(
        children[0].token_hash,
        arena.hash(
            SecretKind::RefreshToken,
            tokens["refresh_token"].as_str().unwrap()
        ),
        "{trial}: the child is the winner's refresh token"
    );
    assert_eq!(gid(&tokens["access_token"]), parent.family_id, "{trial}");
    let trail = arena.audit_trail(parent.family_id).await;
    assert_eq!(
        trail.count("refresh_token.rotated"),
        1,
        "{trial}: {trail:?}"
    );
    assert_eq!(
        trail.count("refresh_token.reused"),
        replays,
        "{trial}: one event per replay: {trail:?}"
    );
    assert_eq!(
        trail.count("grant.revoked"),
        usize::from(replays > 0),
        "{trial}: {trail:?}"
    );
    if replays > 0 {
        assert_family_revoked(arena, trial, parent.family_id).await;
    } else {
        let approval = grant::Entity::find_by_id(parent.family_id)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            approval.revoked_at, None,
            "{trial}: no replay, no revocation"
        );
        assert!(
            children[0].used_at.is_none() && children[0].revoked_at.is_none(),
            "{trial}: the winner's refresh token works: {:?}",
            children[0]
        );
    }
    parent.family_id
}

/// The family's grant is revoked for reuse, and so is every refresh token in it.
async fn assert_family_revoked(arena: &Arena, trial: &str, family: Uuid) {
    let db = arena.db();
    let approval = grant::Entity::find_by_id(family)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(approval.revoked_at.is_some(), "{trial}: {approval:?}");
    assert_eq!(
        approval.revoked_reason.as_deref(),
        Some("refresh_token_reused"),
        "{trial}"
    );
    let live: Vec<_> = refresh_token::Entity::find()
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .all(db)
        .await
        .unwrap();
    assert!(
        live.is_empty(),
        "{trial}: unrevoked in the family: {live:?}"
    );
}
