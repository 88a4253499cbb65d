//! The metrics collector's Vector configuration, in two files:
//! - the base (`vector.yaml` in the ConfigMap): scraped metrics → log-shaped records stamped
//!   with workspace/tenant → S3 archive, and → GreptimeDB remote write when configured;
//! - the per-node targets file written by the discovery sidecar ([`discovered`]): the
//!   `prometheus_scrape` source with this node's endpoints and a remap that labels every
//!   sample with its pod's namespace and name.
//!
//! Vector merges both (`--config` twice) and reloads on change (`--watch-config`).

use std::collections::BTreeMap;

use super::vrl::{stamp_identity, vrl_string};
use super::*;
use crate::discover::{Settings, Target};
use crate::model::{MetricsCollector, Model, Scope};

pub const SOURCE: &str = "pod_metrics";
/// Output of the discovered labelling remap: what the base config consumes.
pub const LABELED: &str = "pod_metrics_labeled";
pub const TO_LOG: &str = "metrics_to_logs";
pub const ENRICH: &str = "enrich";
pub const S3_SINK: &str = "s3_archive";
pub const GREPTIME_SINK: &str = "greptimedb_remote_write";

pub fn config(m: &Model, metrics: &MetricsCollector) -> Config {
    let mut cfg = base_config();
    // S3 objects hold records, not metrics: convert before encoding.
    cfg.transforms.insert(TO_LOG.into(), Transform::MetricToLog(MetricToLog { inputs: vec![LABELED.into()] }));
    cfg.transforms.insert(
        ENRICH.into(),
        Transform::Remap(Remap {
            inputs: vec![TO_LOG.into()],
            source: stamp_identity(&m.workspace, &m.tenant),
            drop_on_error: false,
        }),
    );
    let prefix = key_prefix(&metrics.common.archive, "");
    cfg.sinks.insert(S3_SINK.into(), s3_sink(vec![ENRICH.into()], &metrics.common.archive, prefix));
    if let Some(t) = m.greptime_target().filter(|t| t.metrics) {
        cfg.sinks.insert(
            GREPTIME_SINK.into(),
            Sink::PrometheusRemoteWrite(Box::new(PrometheusRemoteWrite {
                inputs: vec![LABELED.into()],
                endpoint: format!("http://{}/v1/prometheus/write?db={}", t.endpoint, t.database),
                // Real-time copy: never allowed to stall the archive (see README, dual write).
                buffer: realtime_buffer(),
                healthcheck: Healthcheck { enabled: true, uri: Some(format!("http://{}/health", t.endpoint)) },
            })),
        );
    }
    self_observability(&mut cfg);
    cfg
}

/// Discovery settings for the sidecar (the metrics ConfigMap's `discovery.json`).
pub fn settings(m: &Model, metrics: &MetricsCollector) -> Settings {
    let sel = &metrics.common.selection;
    Settings {
        mode: crate::discover::Mode::Metrics,
        namespace_scope: (m.scope == Scope::Namespace).then(|| m.namespace.clone()),
        include_namespaces: sel.include_namespaces.clone(),
        exclude_namespaces: sel.exclude_namespaces.clone(),
        include_pod_labels: sel.include_pod_labels.clone(),
        exclude_pod_labels: sel.exclude_pod_labels.clone(),
        scrape_annotation: metrics.scrape_annotation.clone(),
        port_annotation: metrics.port_annotation.clone(),
        path_annotation: metrics.path_annotation.clone(),
        scrape_interval_secs: metrics.scrape_interval_secs,
        scrape_timeout_secs: metrics.scrape_timeout_secs,
        workspace: m.workspace.clone(),
        tenant: m.tenant.clone(),
    }
}

/// The targets file for `node`. With no targets it is still valid: an empty endpoint list
/// scrapes nothing, so Vector starts cleanly on a node without annotated pods.
pub fn discovered(targets: &[Target], s: &Settings, node: &str) -> Result<String, serde_norway::Error> {
    let fragment = Fragment {
        sources: BTreeMap::from([(
            SOURCE.to_string(),
            Source::PrometheusScrape(PrometheusScrape {
                endpoints: targets.iter().map(|t| t.url.clone()).collect(),
                scrape_interval_secs: s.scrape_interval_secs,
                scrape_timeout_secs: s.scrape_timeout_secs as f64,
                instance_tag: "instance".into(),
                endpoint_tag: "endpoint".into(),
                honor_labels: false,
            }),
        )]),
        transforms: BTreeMap::from([(
            LABELED.to_string(),
            Transform::Remap(Remap {
                inputs: vec![SOURCE.into()],
                source: label_program(targets, s, node),
                drop_on_error: false,
            }),
        )]),
    };
    Ok(format!(
        "# Written by monitoring-operator discover for node {node}: {} target(s). Do not edit.\n{}",
        targets.len(),
        fragment_yaml(&fragment)?
    ))
}

/// Labels every sample with the pod it came from and the CR's identity. Our labels are set
/// last; a scraped label of the same name is kept as `exported_<name>` (Prometheus'
/// honor_labels=false convention) instead of overwriting them.
fn label_program(targets: &[Target], s: &Settings, node: &str) -> String {
    let entries: Vec<String> = targets
        .iter()
        .map(|t| {
            format!(
                "  {}: {{\"namespace\": {}, \"pod\": {}}}",
                vrl_string(&t.url),
                vrl_string(&t.namespace),
                vrl_string(&t.pod)
            )
        })
        .collect();
    let table = if entries.is_empty() { "{}".to_string() } else { format!("{{\n{}\n}}", entries.join(",\n")) };
    let mut out = format!(
        "targets = {table}\nendpoint = string(.tags.endpoint) ?? \"\"\ntarget = object(get(targets, [endpoint]) ?? {{}}) ?? {{}}\n"
    );
    for tag in ["namespace", "pod", "node", "workspace", "tenant"] {
        out.push_str(&format!("if exists(.tags.{tag}) {{ .tags.exported_{tag} = .tags.{tag} }}\n"));
    }
    out.push_str("if exists(target.namespace) { .tags.namespace = string(target.namespace) ?? \"\" } else { del(.tags.namespace) }\n");
    out.push_str("if exists(target.pod) { .tags.pod = string(target.pod) ?? \"\" } else { del(.tags.pod) }\n");
    out.push_str(&format!(".tags.node = {}\n", vrl_string(node)));
    out.push_str(&format!(
        ".tags.workspace = {}\n.tags.tenant = {}\n",
        vrl_string(&s.workspace),
        vrl_string(&s.tenant)
    ));
    out
}
