//! The metrics collector's Vector configuration: scraped Prometheus metrics → log-shaped
//! records stamped with workspace/tenant → S3. Scrape targets are per node; the
//! `prometheus_scrape` source carries the spec's interval and timeout, and its endpoint list
//! is what per-node discovery fills in.

use super::vrl::stamp_identity;
use super::*;
use crate::model::{MetricsCollector, Model};

pub const SOURCE: &str = "pod_metrics";
pub const TO_LOG: &str = "metrics_to_logs";
pub const ENRICH: &str = "enrich";
pub const S3_SINK: &str = "s3_archive";

pub fn config(m: &Model, metrics: &MetricsCollector) -> Config {
    let mut cfg = base_config();
    cfg.sources.insert(
        SOURCE.into(),
        Source::PrometheusScrape(PrometheusScrape {
            endpoints: Vec::new(),
            scrape_interval_secs: metrics.scrape_interval_secs,
            scrape_timeout_secs: metrics.scrape_timeout_secs as f64,
            instance_tag: "instance".into(),
            endpoint_tag: "endpoint".into(),
            honor_labels: false,
        }),
    );
    // S3 objects hold records, not metrics: convert before encoding.
    cfg.transforms.insert(
        TO_LOG.into(),
        Transform::MetricToLog(MetricToLog {
            inputs: vec![SOURCE.into()],
        }),
    );
    cfg.transforms.insert(
        ENRICH.into(),
        Transform::Remap(Remap {
            inputs: vec![TO_LOG.into()],
            source: stamp_identity(&m.workspace, &m.tenant),
            drop_on_error: false,
        }),
    );
    let prefix = key_prefix(&metrics.common.archive, "");
    cfg.sinks.insert(
        S3_SINK.into(),
        s3_sink(vec![ENRICH.into()], &metrics.common.archive, prefix),
    );
    self_observability(&mut cfg);
    cfg
}
