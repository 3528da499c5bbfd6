//! Which scopes a client's request gets: the one rule every grant applies to `scope`.

use crate::oauth::Refusal;
use crate::records::Client;
use crate::types::{Grant, ScopeSet};

/// The scopes a request gets: those asked for (all the client's when none are), each of
/// which the client must be allowed; `offline_access` only with the refresh grant.
///
/// # Errors
/// [`Refusal::ScopeMalformed`], or [`Refusal::ScopeNotEnabled`] naming the scopes the client
/// may not ask for.
pub fn grantable(client: &Client, requested: Option<&str>) -> Result<ScopeSet, Refusal> {
    let allowed = &client.scopes;
    let mut scopes = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => ScopeSet::parse(s).map_err(|e| Refusal::ScopeMalformed(e.to_string()))?,
        None => allowed.clone(),
    };
    let extra = scopes.difference(allowed);
    if !extra.is_empty() {
        return Err(Refusal::ScopeNotEnabled(extra));
    }
    if !client.grants.contains(Grant::RefreshToken) {
        scopes.remove("offline_access");
    }
    Ok(scopes)
}
