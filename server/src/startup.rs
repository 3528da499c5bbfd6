//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_web::dev::{Server, Service as _, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, UPGRADE};
use actix_web::{App, HttpMessage as _, HttpResponse, HttpServer, ResponseError as _, web};
use futures_util::future::{Either, ready};
use tracing_actix_web::{RequestId, TracingLogger};
use vestibule_core::Core;
use vestibule_core::config::Settings;
use vestibule_core::services::device_grants;

use crate::oauth::error::{OAuthError, OAuthResponse};
use crate::routes;

/// A bound, not yet running server. Tests bind port 0 and read the real port from here.
pub struct Application {
    port: u16,
    server: Server,
    core: Core,
}

impl Application {
    /// Binds `server.bind` (so that port 0 is resolved before the public URL is needed), opens
    /// the database (migrating and bootstrapping it) and builds the server.
    ///
    /// # Errors
    /// When the listener, the database or the master key cannot be set up.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        let bind = settings.server.bind;
        let listener =
            TcpListener::bind(bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        settings.server.listening_on(listener.local_addr()?);
        let (core, report) = Core::open(settings).await?;
        crate::cli::announce_bootstrap(&report);
        Self::serve(core, listener)
    }

    /// Builds the server on an opened [`Core`] and its bound listener.
    fn serve(core: Core, listener: TcpListener) -> anyhow::Result<Self> {
        let bind = core.settings.server.bind;
        let port = listener.local_addr()?.port();
        let metrics = crate::metrics::middleware(&core)?;
        let data = web::Data::new(core.clone());
        let app_core = core.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap_fn(|req, srv| {
                    if asks_for_websocket(&req) {
                        let refused = refuse_upgrade(req.path());
                        let res = req.into_response(refused).map_into_right_body();
                        return Either::Left(ready(Ok(res)));
                    }
                    let fut = srv.call(req);
                    Either::Right(async move { fut.await.map(ServiceResponse::map_into_left_body) })
                })
                .wrap_fn(|req, srv| {
                    let id = req.extensions().get::<RequestId>().copied();
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        if let Some(value) =
                            id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
                        {
                            res.headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(res)
                    }
                })
                .wrap(metrics.clone())
                .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                .app_data(data.clone())
                .service(routes::health::healthz)
                .service(routes::health::readyz)
                // Before the protocol endpoints: the account pages live under `/w/{slug}`.
                .configure(|cfg| crate::activate::configure(cfg, &app_core))
                .configure(crate::oauth::configure)
                .configure(crate::assets::configure)
                .configure(|cfg| vestibule_console::configure(cfg, &app_core))
        })
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        tracing::info!(%bind, port, "listening");
        spawn_housekeeping(&core);
        Ok(Self { port, server, core })
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    #[must_use]
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests and returns.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Whether the request asks to switch to WebSocket (`Upgrade: websocket`, whatever its
/// `Connection` header says). The HTTP/1 decoder then reads the request's body as a stream that
/// ends only when the client closes the connection, so such a request is answered before any
/// handler reads it. Other upgrades (`h2c`) are ignored, as RFC 9110 §7.8 allows: their body is
/// read as usual.
fn asks_for_websocket(req: &ServiceRequest) -> bool {
    req.headers().get_all(UPGRADE).any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// The answer to a request asking to switch to WebSocket: none is offered, and its body has no
/// declared end (see [`asks_for_websocket`]). It is refused in the form of the surface it
/// addressed.
fn refuse_upgrade(path: &str) -> HttpResponse {
    const WHY: &str = "protocol upgrades are not offered";
    if path.starts_with("/w/") {
        OAuthResponse::from(OAuthError::invalid_request(WHY)).error_response()
    } else {
        HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body(format!("Bad request: {WHY}.\n"))
    }
}

/// Background chores of a serving instance; both end with the last `Core`.
/// - Every [`device_grants::FOLLOW_INTERVAL`]: follow the device-grant changes of every
///   instance (so polls here stop answering `authorization_pending` for decided grants).
/// - Every minute: forget poll state of grants nobody polls any more, old device-grant
///   changes, revocations of access tokens that have expired since, and failure counters of
///   windows long over.
fn spawn_housekeeping(core: &Core) {
    let store = std::sync::Arc::downgrade(&core.device_grants);
    let db = core.db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(device_grants::FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { break };
            match store.follow(&db).await {
                Ok(_) => failing = false,
                // One line when it starts failing, not four a second.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e.report(), "cannot read recent device-grant changes");
                }
                Err(_) => {}
            }
        }
    });
    let store = std::sync::Arc::downgrade(&core.device_grants);
    let db = core.db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { break };
            if let Err(e) = store.purge(&db).await {
                tracing::warn!(error = %e, "could not prune old device-grant changes");
            }
            if let Err(e) =
                vestibule_core::services::access_tokens::purge_expired_revocations(&db).await
            {
                tracing::warn!(error = %e.report(), "could not purge expired access-token revocations");
            }
            if let Err(e) = vestibule_core::throttle::purge(&db).await {
                tracing::warn!(error = %e.report(), "could not purge old failure counters");
            }
        }
    });
}
