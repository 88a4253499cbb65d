//! Operator metrics: reconcile runs, errors by reason, durations, and Kubernetes API requests
//! by verb and resource (counted in the client's tower stack). Names follow Prometheus
//! conventions (`_total` counters, `_seconds` histograms), prefix `monitoring_operator_`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Counters and histograms updated by the controller.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub errors: Family<ReasonLabels, Counter>,
    pub duration: Histogram,
    /// 1 while this process leads (always 1 until leader election exists: one replica).
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("monitoring_operator");
        r.register("reconciles", "Reconcile runs", self.reconciles.clone());
        r.register("reconcile_errors", "Reconcile runs that failed, by reason", self.errors.clone());
        r.register("reconcile_duration_seconds", "Duration of reconcile runs", self.duration.clone());
        r.register("leader", "1 when this replica is the active controller", self.leader.clone());
    }

    /// Record one reconcile run.
    pub fn observe(&self, took: Duration, result: Result<(), &Error>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Err(e) = result {
            self.errors.get_or_create(&ReasonLabels { reason: e.metric_label() }).inc();
        }
    }
}
