//! HTTP handlers, grouped by resource.

pub mod health;
