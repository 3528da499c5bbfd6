//! Logging: `tracing` to standard error, human-readable or JSON, filtered by `log.level`
//! (or `RUST_LOG` when set).

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
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

/// The span of each request: method, route pattern, path and request id — never the query
/// string, which can hold a user code (`/activate?user_code=…`).
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // Field values are only computed when the span is enabled (`log.level` info or finer).
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = request.match_pattern().as_deref().unwrap_or("UNMATCHED"),
            path = %request.path(),
            request_id = request
                .extensions()
                .get::<RequestId>()
                .copied()
                .map(tracing::field::display),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        match outcome {
            Ok(res) => {
                span.record("status", res.status().as_u16());
                if let Some(e) = res.response().error()
                    && res.status().is_server_error()
                {
                    tracing::error!(parent: &span, error = %e, "request failed");
                }
            }
            Err(e) => {
                tracing::error!(parent: &span, error = %e, "request failed");
            }
        }
    }
}
