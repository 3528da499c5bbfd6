//! The Vestibule HTTP server (OAuth/OIDC endpoints, `/activate`, health and metrics) and the
//! `vestibule` command line. Business rules live in `vestibule-core`.

pub mod cli;
pub mod routes;
pub mod startup;
pub mod telemetry;

pub use startup::Application;
