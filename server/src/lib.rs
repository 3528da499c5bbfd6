//! The Vestibule HTTP server (OAuth/OIDC endpoints, `/activate`, health and metrics) and the
//! `vestibule` command line. Business rules live in `vestibule-core`.

pub mod activate;
pub mod assets;
pub mod cli;
pub mod metrics;
pub mod oauth;
pub mod routes;
pub mod startup;
pub mod telemetry;

pub use startup::Application;
