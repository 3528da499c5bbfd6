//! Integration tests: the real application on a random port against a fresh database per test
//! (a temporary SQLite file, or a fresh PostgreSQL database when `VESTIBULE_TEST_DATABASE_URL`
//! is set), spoken to over HTTP or through the `vestibule` binary, as clients would.

// A test binary: failing loudly on the unexpected is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod account;
mod activate;
mod after_approval;
mod browser;
mod budgets;
mod cli;
mod config;
mod console;
mod console_devices;
mod crash;
mod defences;
mod device_flow;
mod fail_closed;
mod hostile_input;
mod lifecycle;
mod networks;
mod outage;
mod qr;
mod races;
mod server;
mod token_lifecycle;
