//! Prometheus metrics: request counts by route and status and a latency histogram (from
//! `actix-web-prom`), plus the domain's counters (device grants, poll answers, throttled
//! requests, the `/activate` guard against guessed user codes), read at scrape time.

use std::sync::{Arc, Mutex, PoisonError};

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use vestibule_core::Core;
use vestibule_core::metrics::Counters;
use vestibule_core::throttle::UserCodeGuard;

/// The metrics middleware serving `/metrics`, on a registry of this app's own (so several
/// apps in one process do not share counters).
///
/// # Errors
/// When a metric cannot be registered.
pub fn middleware(core: &Core) -> anyhow::Result<PrometheusMetrics> {
    let registry = prometheus::Registry::new();
    registry.register(Box::new(DomainMetrics::new(core)?))?;
    PrometheusMetricsBuilder::new("vestibule")
        .endpoint("/metrics")
        .registry(registry)
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))
}

/// The domain's counters as Prometheus metrics.
struct DomainMetrics {
    counters: Arc<Counters>,
    guard: Arc<UserCodeGuard>,
    grants: IntCounterVec,
    polls: IntCounterVec,
    throttled: IntCounterVec,
    user_code_failures: IntCounter,
    user_code_surges: IntCounter,
    user_code_surge: IntGauge,
    /// One scrape at a time sets the values it reports.
    scrape: Mutex<()>,
}

impl DomainMetrics {
    fn new(core: &Core) -> prometheus::Result<Self> {
        Ok(Self {
            counters: Arc::clone(&core.counters),
            guard: Arc::clone(&core.user_code_guard),
            grants: IntCounterVec::new(
                Opts::new(
                    "vestibule_device_grants_total",
                    "Device grants by event: requested, approved, denied, redeemed, revoked",
                ),
                &["event"],
            )?,
            polls: IntCounterVec::new(
                Opts::new(
                    "vestibule_device_polls_total",
                    "Device-code polls of the token endpoint by answer",
                ),
                &["answer"],
            )?,
            throttled: IntCounterVec::new(
                Opts::new(
                    "vestibule_throttled_total",
                    "Requests refused for being over a budget, by limit",
                ),
                &["limit"],
            )?,
            user_code_failures: IntCounter::new(
                "vestibule_user_code_failures_total",
                "Wrong user codes entered at /activate",
            )?,
            user_code_surges: IntCounter::new(
                "vestibule_user_code_surges_total",
                "Surges of wrong user codes across the instance (RFC 8628 section 5.1)",
            )?,
            user_code_surge: IntGauge::new(
                "vestibule_user_code_surge",
                "1 while a surge of wrong user codes tightens every address's budget",
            )?,
            scrape: Mutex::new(()),
        })
    }
}

/// Sets a labelled counter to `values`.
fn set_all(vec: &IntCounterVec, values: Vec<(&'static str, u64)>) {
    vec.reset();
    for (label, value) in values {
        vec.with_label_values(&[label]).inc_by(value);
    }
}

fn set(counter: &IntCounter, value: u64) {
    counter.reset();
    counter.inc_by(value);
}

impl Collector for DomainMetrics {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.grants.desc(),
            self.polls.desc(),
            self.throttled.desc(),
            self.user_code_failures.desc(),
            self.user_code_surges.desc(),
            self.user_code_surge.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        set_all(&self.grants, self.counters.grants());
        set_all(&self.polls, self.counters.polls());
        set_all(&self.throttled, self.counters.throttles());
        set(&self.user_code_failures, self.guard.failures_total());
        set(&self.user_code_surges, self.guard.surges_total());
        self.user_code_surge.set(i64::from(self.guard.surging()));
        [
            self.grants.collect(),
            self.polls.collect(),
            self.throttled.collect(),
            self.user_code_failures.collect(),
            self.user_code_surges.collect(),
            self.user_code_surge.collect(),
        ]
        .concat()
    }
}
