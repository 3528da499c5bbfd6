//! Clients (service providers): registration, secrets, and the rules of what a client may be.

use ipnet::IpNet;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, ModelTrait as _, QueryFilter as _, QueryOrder as _, Set,
};
use uuid::Uuid;

use crate::crypto::{self, SecretKind};
use crate::entities::{client, workspace};
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::types::{
    Access, AfterApprovalUrl, ClientId, DisplayName, Grant, GrantSet, Proximity, RedirectUri,
    ScopeSet,
};
use crate::{Core, net};

/// Scopes a client gets when none are given.
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";

/// A client as it is to be registered, valid by construction once [`NewClient::validate`] passed.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: DisplayName,
    pub client_id: Option<ClientId>,
    /// "Allow authentication without the client secret".
    pub public: bool,
    pub grants: GrantSet,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<RedirectUri>,
    pub dcr_template: bool,
    pub access: Access,
    pub device_networks: Vec<IpNet>,
    pub proximity: Proximity,
    /// Where the browser goes after an approval; `None`: the done page.
    pub after_approval_url: Option<AfterApprovalUrl>,
}

impl NewClient {
    /// Rules that span fields.
    ///
    /// # Errors
    /// `Invalid` naming the field to change.
    pub fn validate(&self) -> Result<(), Error> {
        check(
            self.public,
            &self.grants,
            &self.redirect_uris,
            &self.device_networks,
        )?;
        refuse_unbuilt(&Unbuilt {
            grants: &self.grants,
            redirect_uris: &self.redirect_uris,
            dcr_template: self.dcr_template,
            access: self.access,
        })
    }
}

/// The settings of a client whose capability is not built yet, as asked for.
struct Unbuilt<'a> {
    grants: &'a GrantSet,
    redirect_uris: &'a [RedirectUri],
    dcr_template: bool,
    access: Access,
}

/// Refuses any setting that nothing would enforce yet: stored and ignored, it would tell the
/// admin that a defence is in force while anyone may still approve from anywhere. Only the
/// values that describe what the server does today pass.
fn refuse_unbuilt(asked: &Unbuilt<'_>) -> Result<(), Error> {
    // (asked for, field, the setting, what to do instead), in the order the form shows them.
    let refusals = [
        (
            asked.grants.contains(Grant::AuthorizationCode),
            "grants",
            "the authorization_code grant",
            "choose device_code, refresh_token or client_credentials",
        ),
        (
            !asked.redirect_uris.is_empty(),
            "redirect_uris",
            "redirect_uris (they serve the authorization_code grant)",
            "leave them empty",
        ),
        (
            asked.dcr_template,
            "dcr_template",
            "dcr_template (dynamic client registration)",
            "leave it off",
        ),
        (
            asked.access != Access::Everyone,
            "access",
            "access = assigned (user and group assignments)",
            "use access = everyone",
        ),
    ];
    match refusals.into_iter().find(|(refused, ..)| *refused) {
        Some((_, field, setting, instead)) => Err(unavailable(field, setting, instead)),
        None => Ok(()),
    }
}

/// The refusal of a setting whose capability is not built yet, naming it and what to do.
#[must_use]
pub fn unavailable(field: &'static str, setting: &str, instead: &str) -> Error {
    Error::invalid(field, format!("{setting} is not available yet: {instead}"))
}

/// One network devices may ask from: a CIDR, or a single address, normalized as it is stored
/// (see [`net::normalize`]: `192.0.2.7/24` is `192.0.2.0/24`).
///
/// # Errors
/// `Invalid` naming `device_networks` and the value.
pub fn parse_device_network(value: &str) -> Result<IpNet, Error> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(Into::into))
        .map(net::normalize)
        .map_err(|_| {
            Error::invalid(
                "device_networks",
                format!(
                    "device_networks: {value:?} is not a network; write a CIDR such as \
                     192.0.2.0/24 or 2001:db8::/48, or a single address"
                ),
            )
        })
}

/// The trusted networks of a client (BCP 247 §6.1.8) as an admin lists them, one per item
/// (a console line, a CLI flag): blank items ignored, each parsed and normalized, duplicates
/// dropped, at most [`net::MAX_DEVICE_NETWORKS`]. Empty means anywhere.
///
/// # Errors
/// `Invalid` naming `device_networks` and the first item that is not a network, or the bound.
pub fn parse_device_networks<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<IpNet>, Error> {
    let mut nets: Vec<IpNet> = Vec::new();
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        let net = parse_device_network(item)?;
        if !nets.contains(&net) {
            nets.push(net);
            // Checked as the list grows, so a huge paste costs no more than the bound.
            check_device_networks(&nets)?;
        }
    }
    Ok(nets)
}

/// The bound on a client's trusted networks.
fn check_device_networks(nets: &[IpNet]) -> Result<(), Error> {
    if nets.len() > net::MAX_DEVICE_NETWORKS {
        return Err(Error::invalid(
            "device_networks",
            format!(
                "device_networks: at most {} networks are allowed; cover neighbours with a \
                 shorter prefix",
                net::MAX_DEVICE_NETWORKS
            ),
        ));
    }
    Ok(())
}

/// The stored form of trusted networks: normalized, one a line.
fn stored_device_networks(nets: &[IpNet]) -> String {
    join_lines(nets.iter().map(|n| net::normalize(*n).to_string()))
}

/// The rules that span fields, for a new client and an edited one alike.
fn check(
    public: bool,
    grants: &GrantSet,
    redirect_uris: &[RedirectUri],
    device_networks: &[IpNet],
) -> Result<(), Error> {
    check_device_networks(device_networks)?;
    if grants.is_empty() {
        return Err(Error::invalid("grants", "enable at least one grant"));
    }
    if public && grants.contains(Grant::ClientCredentials) {
        return Err(Error::invalid(
            "grants",
            "client_credentials needs a client secret: a public client cannot have it",
        ));
    }
    if grants.contains(Grant::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uris",
            "authorization_code needs at least one redirect URI",
        ));
    }
    Ok(())
}

/// A freshly registered client and, for a confidential one, its secret (shown once, never
/// stored in clear).
#[derive(Debug)]
pub struct Created {
    pub client: client::Model,
    pub secret: Option<String>,
}

/// # Errors
/// `Invalid` for inconsistent settings, `Conflict` when the client_id is taken.
pub async fn create(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    new: NewClient,
) -> Result<Created, Error> {
    new.validate()?;
    let txn = crate::db::begin_write(&core.db).await?;
    let client_id = new.client_id.clone().unwrap_or_else(ClientId::generate);
    let duplicate = || {
        Error::conflict(
            "client_id",
            format!("client_id {client_id} is already taken"),
        )
    };
    if find(&txn, client_id.as_str()).await?.is_some() {
        return Err(duplicate());
    }
    let secret = (!new.public).then(crypto::random_token);
    let now = crate::now();
    let model = client::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(workspace.id),
        client_id: Set(client_id.to_string()),
        name: Set(new.name.to_string()),
        secret_hash: Set(secret
            .as_deref()
            .map(|s| core.keyring.hash_secret(SecretKind::ClientSecret, s))),
        public: Set(new.public),
        grants: Set(new.grants.to_string()),
        scopes: Set(new.scopes.to_string()),
        redirect_uris: Set(join_lines(
            new.redirect_uris.iter().map(RedirectUri::as_str),
        )),
        dcr_template: Set(new.dcr_template),
        registered_from: Set(None),
        registration_token_hash: Set(None),
        access: Set(new.access.as_str().to_owned()),
        device_networks: Set(stored_device_networks(&new.device_networks)),
        proximity: Set(new.proximity.as_str().to_owned()),
        after_approval_url: Set(new.after_approval_url.map(|u| u.as_str().to_owned())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| super::map_unique(e, "client_id", duplicate().to_string()))?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::ClientCreated,
            target: Some(model.client_id.clone()),
            detail: serde_json::json!({
                "name": model.name,
                "public": model.public,
                "grants": model.grants,
                "scopes": model.scopes,
                "device_networks": model.device_networks.lines().collect::<Vec<_>>(),
                "proximity": model.proximity,
                "after_approval_url": model.after_approval_url,
            }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    // Its absence may be cached by the protocol endpoints.
    core.records.forget_client(&model.client_id);
    Ok(Created {
        client: model,
        secret,
    })
}

/// # Errors
/// On a database failure.
pub async fn find(
    db: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Option<client::Model>, Error> {
    // What cannot be a client_id names no client; PostgreSQL would refuse some of it (a NUL).
    if ClientId::parse(client_id).is_err() {
        return Ok(None);
    }
    Ok(client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await?)
}

/// # Errors
/// On a database failure.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
) -> Result<Vec<client::Model>, Error> {
    Ok(client::Entity::find()
        .filter(client::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(client::Column::Name)
        .all(db)
        .await?)
}

/// The public view of a client (CLI output): never the secret or its hash.
#[must_use]
pub fn to_json(m: &client::Model, workspace_slug: &str) -> serde_json::Value {
    serde_json::json!({
        "client_id": m.client_id,
        "workspace": workspace_slug,
        "name": m.name,
        "public": m.public,
        "grants": m.grants.split_whitespace().collect::<Vec<_>>(),
        "scopes": m.scopes,
        "redirect_uris": m.redirect_uris.lines().collect::<Vec<_>>(),
        "dcr_template": m.dcr_template,
        "access": m.access,
        "device_networks": m.device_networks.lines().collect::<Vec<_>>(),
        "proximity": m.proximity,
        "after_approval_url": m.after_approval_url,
    })
}

fn join_lines<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a client presented itself at a token-type endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `none`: a public client names itself with `client_id` in the body.
    None { client_id: String },
    /// `client_secret_basic` or `client_secret_post`.
    Secret { client_id: String, secret: String },
}

impl Credentials {
    #[must_use]
    pub fn client_id(&self) -> &str {
        match self {
            Self::None { client_id } | Self::Secret { client_id, .. } => client_id,
        }
    }
}

/// Authenticates a client of the given workspace. A confidential client must present its
/// secret; a public client must not present one. Unknown clients and wrong secrets take the
/// same path and get the same answer.
///
/// # Errors
/// [`Refusal::ClientAuthenticationFailed`] for any failure to authenticate, but
/// [`Refusal::ClientSecretRequired`] for a confidential client that sent no secret;
/// `Invalid` for a client_id no client can have (see [`crate::types::identifier`]).
pub async fn authenticate(
    core: &crate::Core,
    workspace_id: Uuid,
    credentials: &Credentials,
) -> Result<std::sync::Arc<crate::records::Client>, Error> {
    use crate::oauth::Refusal;
    let keyring = &core.keyring;
    let client_id = crate::types::identifier("client_id", credentials.client_id())?;
    let found = core
        .records
        .client(&core.db, client_id)
        .await?
        .filter(|c| c.workspace_id == workspace_id);
    match (credentials, found) {
        (Credentials::Secret { secret, .. }, Some(c)) => {
            let ok = c
                .secret_hash
                .as_deref()
                .is_some_and(|h| keyring.verify_secret(SecretKind::ClientSecret, secret, h));
            if ok {
                Ok(c)
            } else {
                Err(Refusal::ClientAuthenticationFailed.into())
            }
        }
        (Credentials::Secret { secret, .. }, None) => {
            // Same work as a real check.
            let _ = keyring.verify_secret(SecretKind::ClientSecret, secret, "");
            Err(Refusal::ClientAuthenticationFailed.into())
        }
        (Credentials::None { .. }, Some(c)) if c.public => Ok(c),
        (Credentials::None { .. }, Some(_)) => Err(Refusal::ClientSecretRequired.into()),
        (Credentials::None { .. }, None) => Err(Refusal::ClientAuthenticationFailed.into()),
    }
}

/// The client with this client_id, only if it belongs to `workspace_id`: a client is never
/// reachable through another workspace.
///
/// # Errors
/// `NotFound` when there is no such client in this workspace.
pub async fn get_in_workspace(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    client_id: &str,
) -> Result<client::Model, Error> {
    if ClientId::parse(client_id).is_err() {
        return Err(Error::NotFound(format!(
            "no client {client_id:?} in this workspace"
        )));
    }
    client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .filter(client::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no client {client_id:?} in this workspace")))
}

/// What an admin may change of a client (the console's form).
#[derive(Debug, Clone)]
pub struct Edit {
    pub name: DisplayName,
    pub public: bool,
    pub grants: GrantSet,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<RedirectUri>,
    pub dcr_template: bool,
    pub access: Access,
    pub device_networks: Vec<IpNet>,
    pub proximity: Proximity,
    /// Where the browser goes after an approval; `None`: the done page.
    pub after_approval_url: Option<AfterApprovalUrl>,
}

impl Edit {
    /// A client's settings as stored, to change some of them (the CLI's `client update`).
    ///
    /// # Errors
    /// `Invalid` naming a stored setting that no longer reads (the row was edited by hand).
    pub fn stored(m: &client::Model) -> Result<Self, Error> {
        Ok(Self {
            name: DisplayName::parse("name", &m.name)?,
            public: m.public,
            grants: GrantSet::from_stored(&m.grants),
            scopes: ScopeSet::from_stored(&m.scopes),
            redirect_uris: m
                .redirect_uris
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(RedirectUri::parse)
                .collect::<Result<_, _>>()?,
            dcr_template: m.dcr_template,
            access: m.access.parse()?,
            device_networks: parse_device_networks(m.device_networks.lines())?,
            proximity: m.proximity.parse()?,
            after_approval_url: AfterApprovalUrl::from_stored(m.after_approval_url.as_deref()),
        })
    }
}

/// A changed client and, when it just became confidential, its first secret (shown once).
#[derive(Debug)]
pub struct Updated {
    pub client: client::Model,
    pub secret: Option<String>,
}

/// Changes a client of `workspace`. Becoming public drops the secret; becoming confidential
/// makes one.
///
/// # Errors
/// `NotFound` when the client is not in this workspace; `Invalid` for inconsistent settings.
pub async fn update(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    client_id: &str,
    edit: Edit,
) -> Result<Updated, Error> {
    check(
        edit.public,
        &edit.grants,
        &edit.redirect_uris,
        &edit.device_networks,
    )?;
    refuse_unbuilt(&Unbuilt {
        grants: &edit.grants,
        redirect_uris: &edit.redirect_uris,
        dcr_template: edit.dcr_template,
        access: edit.access,
    })?;
    let txn = crate::db::begin_write(&core.db).await?;
    let current = get_in_workspace(&txn, workspace.id, client_id).await?;
    let secret = (!edit.public && current.secret_hash.is_none()).then(crypto::random_token);
    let mut active = current.into_active_model();
    active.name = Set(edit.name.to_string());
    active.public = Set(edit.public);
    if edit.public {
        active.secret_hash = Set(None);
    } else if let Some(secret) = &secret {
        active.secret_hash = Set(Some(
            core.keyring.hash_secret(SecretKind::ClientSecret, secret),
        ));
    }
    active.grants = Set(edit.grants.to_string());
    active.scopes = Set(edit.scopes.to_string());
    active.redirect_uris = Set(join_lines(
        edit.redirect_uris.iter().map(RedirectUri::as_str),
    ));
    active.dcr_template = Set(edit.dcr_template);
    active.access = Set(edit.access.as_str().to_owned());
    active.device_networks = Set(stored_device_networks(&edit.device_networks));
    active.proximity = Set(edit.proximity.as_str().to_owned());
    active.after_approval_url = Set(edit.after_approval_url.map(|u| u.as_str().to_owned()));
    active.updated_at = Set(crate::now());
    let model = active.update(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::ClientUpdated,
            target: Some(model.client_id.clone()),
            detail: serde_json::json!({
                "name": model.name,
                "public": model.public,
                "grants": model.grants,
                "scopes": model.scopes,
                "redirect_uris": model.redirect_uris.lines().collect::<Vec<_>>(),
                "dcr_template": model.dcr_template,
                "access": model.access,
                "device_networks": model.device_networks.lines().collect::<Vec<_>>(),
                "proximity": model.proximity,
                "after_approval_url": model.after_approval_url,
            }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    core.records.forget_client(&model.client_id);
    Ok(Updated {
        client: model,
        secret,
    })
}

/// Gives a confidential client a new secret; the old one stops working at once.
///
/// # Errors
/// `NotFound` when the client is not in this workspace; `Invalid` for a public client.
pub async fn regenerate_secret(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    client_id: &str,
) -> Result<String, Error> {
    let txn = crate::db::begin_write(&core.db).await?;
    let current = get_in_workspace(&txn, workspace.id, client_id).await?;
    if current.public {
        return Err(Error::invalid(
            "public",
            "this client authenticates without a secret: there is none to regenerate",
        ));
    }
    let secret = crypto::random_token();
    let mut active = current.into_active_model();
    active.secret_hash = Set(Some(
        core.keyring.hash_secret(SecretKind::ClientSecret, &secret),
    ));
    active.updated_at = Set(crate::now());
    let model = active.update(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::ClientSecretRegenerated,
            target: Some(model.client_id.clone()),
            detail: serde_json::json!({}),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    core.records.forget_client(&model.client_id);
    Ok(secret)
}

/// Deletes a client of `workspace`; what was issued to it goes with it (the foreign keys
/// cascade), so its tokens stop working.
///
/// # Errors
/// `NotFound` when the client is not in this workspace.
pub async fn delete(
    core: &Core,
    actor: &Actor,
    workspace: &workspace::Model,
    client_id: &str,
) -> Result<client::Model, Error> {
    let txn = crate::db::begin_write(&core.db).await?;
    let current = get_in_workspace(&txn, workspace.id, client_id).await?;
    current.clone().delete(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::ClientDeleted,
            target: Some(current.client_id.clone()),
            detail: serde_json::json!({ "name": current.name }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    core.records.forget_client(&current.client_id);
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn device_network_lists_skip_blanks_drop_duplicates_and_are_bounded() {
        let nets =
            parse_device_networks(["", " 192.0.2.7/24", "192.0.2.0/24", "\t", "2001:db8::1"])
                .unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["192.0.2.0/24", "2001:db8::1/128"]);

        let hundred: Vec<String> = (0..100).map(|i| format!("10.0.{i}.0/24")).collect();
        let listed = parse_device_networks(hundred.iter().map(String::as_str)).unwrap();
        assert_eq!(listed.len(), 100);
        let more = hundred.iter().map(String::as_str).chain(["10.1.0.0/24"]);
        let error = parse_device_networks(more).unwrap_err();
        assert_eq!(error.field(), Some("device_networks"));
        assert!(error.to_string().contains("at most 100"), "{error}");

        let error = parse_device_networks(["192.0.2.0/24", "nope"]).unwrap_err();
        assert_eq!(error.field(), Some("device_networks"));
        assert!(
            error.to_string().contains("\"nope\" is not a network"),
            "{error}"
        );
    }

    proptest! {
        /// Whatever a line of `device_networks` holds, it is a network or a field error, and a
        /// network reads back as itself (it is stored normalized).
        #[test]
        fn device_networks_read_back_as_themselves(line in prop_oneof![
            any::<String>(),
            "[ \t]?[0-9a-f.:]{1,20}(/[0-9]{1,4})?[ \t]?",
        ]) {
            if let Ok(net) = parse_device_network(&line) {
                prop_assert_eq!(parse_device_network(&net.to_string()).unwrap(), net);
            }
        }

        /// Every network parses, stored without host bits and still holding its address.
        #[test]
        fn every_network_parses(addr in any::<[u8; 16]>(), v4 in any::<bool>(), prefix in 0u8..=128) {
            let net = if v4 {
                let octets = [addr[0], addr[1], addr[2], addr[3]];
                IpNet::new(std::net::Ipv4Addr::from(octets).into(), prefix % 33)
            } else {
                IpNet::new(std::net::Ipv6Addr::from(addr).into(), prefix)
            }
            .unwrap();
            let stored = parse_device_network(&format!(" {net}\t")).unwrap();
            prop_assert_eq!(stored, net::normalize(net));
            let addr = net.addr();
            prop_assert!(
                stored.contains(&addr) || stored.contains(&addr.to_canonical()),
                "{net} → {stored}"
            );
            prop_assert_eq!(stored, stored.trunc(), "no host bits");
            let single = parse_device_network(&net.addr().to_string()).unwrap();
            prop_assert_eq!(single.prefix_len(), single.max_prefix_len());
        }
    }
}
