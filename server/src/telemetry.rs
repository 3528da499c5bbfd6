//! Logging: `tracing` to standard error, human-readable or JSON, filtered by `log.level`
//! (or `RUST_LOG` when set).

use tracing_subscriber::EnvFilter;
use vestibule_core::config::{LogFormat, LogSettings};

/// Installs the global subscriber. A second call (tests start many apps) changes nothing.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
