//! Prometheus metrics: request counts by route and status and a latency histogram (from
//! `actix-web-prom`), plus the `/activate` guard against guessed user codes, read at scrape time.

use std::sync::{Arc, Mutex, PoisonError};

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};
use vestibule_core::Core;
use vestibule_core::throttle::UserCodeGuard;

/// The metrics middleware serving `/metrics`, on a registry of this app's own (so several
/// apps in one process do not share counters).
///
/// # Errors
/// When a metric cannot be registered.
pub fn middleware(core: &Core) -> anyhow::Result<PrometheusMetrics> {
    let registry = prometheus::Registry::new();
    registry.register(Box::new(UserCodeMetrics::new(Arc::clone(
        &core.user_code_guard,
    ))?))?;
    PrometheusMetricsBuilder::new("vestibule")
        .endpoint("/metrics")
        .registry(registry)
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))
}

/// Wrong user codes, surges started, and whether one is under way (1) or not (0).
struct UserCodeMetrics {
    guard: Arc<UserCodeGuard>,
    failures: IntCounter,
    surges: IntCounter,
    surging: IntGauge,
    /// One scrape at a time sets the values it reports.
    scrape: Mutex<()>,
}

impl UserCodeMetrics {
    fn new(guard: Arc<UserCodeGuard>) -> prometheus::Result<Self> {
        Ok(Self {
            guard,
            failures: IntCounter::new(
                "vestibule_user_code_failures_total",
                "Wrong user codes entered at /activate",
            )?,
            surges: IntCounter::new(
                "vestibule_user_code_surges_total",
                "Surges of wrong user codes across the instance (RFC 8628 section 5.1)",
            )?,
            surging: IntGauge::new(
                "vestibule_user_code_surge",
                "1 while a surge of wrong user codes tightens every address's budget",
            )?,
            scrape: Mutex::new(()),
        })
    }
}

impl Collector for UserCodeMetrics {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.failures.desc(),
            self.surges.desc(),
            self.surging.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.failures.reset();
        self.failures.inc_by(self.guard.failures_total());
        self.surges.reset();
        self.surges.inc_by(self.guard.surges_total());
        self.surging.set(i64::from(self.guard.surging()));
        [
            self.failures.collect(),
            self.surges.collect(),
            self.surging.collect(),
        ]
        .concat()
    }
}
