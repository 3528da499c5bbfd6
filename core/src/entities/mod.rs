//! sea-orm entities: one module a table. Services read and write through these; nothing else.

pub mod admin;
pub mod audit_event;
pub mod client;
pub mod consent;
pub mod device_grant;
pub mod device_grant_change;
pub mod grant;
pub mod refresh_token;
pub mod revoked_access_token;
pub mod signing_key;
pub mod throttle;
pub mod user;
pub mod workspace;
