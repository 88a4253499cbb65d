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
use k8s_openapi::api::core::v1::Pod;

pub const SOURCE: &str = "pod_metrics";
/// Prefix of each target's labelling remap (`pod_metrics_labeled_<id>`); the base config consumes
/// them all through the wildcard [`LABELED_ALL`].
pub const LABELED: &str = "pod_metrics_labeled";
pub const LABELED_ALL: &str = "pod_metrics_labeled_*";
/// Matches the wildcard on a node without targets (Vector refuses a wildcard matching nothing);
/// emits nothing.
pub const LABELED_NONE: &str = "pod_metrics_labeled_none";
pub const TO_LOG: &str = "metrics_to_logs";
pub const ENRICH: &str = "enrich";
pub const S3_SINK: &str = "s3_archive";
pub const GREPTIME_SINK: &str = "greptimedb_remote_write";
pub const REMOTE_WRITE_SINK: &str = "remote_write";

pub fn config(m: &Model, metrics: &MetricsCollector) -> Config {
    let mut cfg = base_config();
    cfg.sources.insert(
        LABELED_NONE.into(),
        Source::StaticMetrics(StaticMetrics { metrics: Vec::new(), interval_secs: 86_400 }),
    );
    // S3 objects hold records, not metrics: convert before encoding.
    cfg.transforms.insert(TO_LOG.into(), Transform::MetricToLog(MetricToLog { inputs: vec![LABELED_ALL.into()] }));
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
        cfg.sinks.insert(GREPTIME_SINK.into(), greptime_sink(vec![LABELED_ALL.into()], t));
    }
    if let Some(rw) = &metrics.remote_write {
        cfg.sinks
            .insert(REMOTE_WRITE_SINK.into(), remote_write_sink(vec![LABELED_ALL.into()], rw, SecretFiles::Mounted));
        secret_backends(&mut cfg, &metrics.common.secrets);
    }
    self_observability(&mut cfg);
    cfg
}

/// The Prometheus remote-write output (Thanos, Mimir, Cortex, Prometheus).
pub fn remote_write_sink(inputs: Vec<String>, rw: &crate::model::RemoteWrite, files: SecretFiles<'_>) -> Sink {
    Sink::PrometheusRemoteWrite(Box::new(PrometheusRemoteWrite {
        inputs,
        endpoint: rw.endpoint.clone(),
        tenant_id: Some(rw.tenant_id.clone()),
        auth: rw.auth.as_ref().map(|a| http_auth(a, files)),
        tls: rw.tls.as_ref().map(|t| tls(t, files)),
        // A real-time copy like GreptimeDB's: never stalls the archive.
        buffer: realtime_buffer(),
        // Thanos Receive, Mimir and Cortex answer a GET on the write path with 405, and
        // Vector's check wants 200: it would only log a false alarm at every start.
        healthcheck: Healthcheck { enabled: false, uri: None },
    }))
}

/// GreptimeDB's Prometheus remote write. Real-time copy: never allowed to stall the archive
/// (see README, dual write).
pub fn greptime_sink(inputs: Vec<String>, t: &crate::model::GreptimeTarget) -> Sink {
    Sink::PrometheusRemoteWrite(Box::new(PrometheusRemoteWrite {
        inputs,
        endpoint: format!("http://{}/v1/prometheus/write?db={}", t.endpoint, t.database),
        tenant_id: None,
        auth: None,
        tls: None,
        buffer: realtime_buffer(),
        healthcheck: Healthcheck { enabled: true, uri: Some(format!("http://{}/health", t.endpoint)) },
    }))
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
        tenants: Vec::new(),
    }
}

/// Stable component id of a target: the same URL always gets the same id.
pub fn target_id(url: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(url.as_bytes())[..6])
}

/// The targets file for `node`: per target its own `prometheus_scrape` source
/// (`pod_metrics_<id>`) and labelling remap (`pod_metrics_labeled_<id>`). A target coming or
/// going adds or removes only its own components, so a reload never restarts (and re-scrapes
/// at once) the other targets: each keeps its cadence. With no targets the file is empty of
/// components and the base config's placeholder keeps its wildcard valid.
pub fn discovered(targets: &[Target], s: &Settings, node: &str) -> Result<String, serde_norway::Error> {
    let mut fragment = Fragment { sources: BTreeMap::new(), transforms: BTreeMap::new() };
    target_components(&mut fragment, "", targets, s, node);
    Ok(format!(
        "# Written by monitoring-operator discover for node {node}: {} target(s). Do not edit.\n{}",
        targets.len(),
        fragment_yaml(&fragment)?
    ))
}

/// The shared collector's targets file: per tenant its own targets (its filters), with its
/// id before every component id (`<id>_pod_metrics_<target>`), so the tenant's base pipeline
/// consumes only its own through its wildcard.
pub fn discovered_shared(pods: &[&Pod], s: &Settings, node: &str) -> Result<String, serde_norway::Error> {
    let mut fragment = Fragment { sources: BTreeMap::new(), transforms: BTreeMap::new() };
    let mut count = 0;
    for t in &s.tenants {
        let targets = crate::discover::targets(pods.iter().copied(), &t.settings);
        count += targets.len();
        target_components(&mut fragment, &format!("{}_", t.id), &targets, &t.settings, node);
    }
    Ok(format!(
        "# Written by monitoring-operator discover for node {node}: {count} target(s) of {} tenant(s). Do not edit.\n{}",
        s.tenants.len(),
        fragment_yaml(&fragment)?
    ))
}

fn target_components(f: &mut Fragment, prefix: &str, targets: &[Target], s: &Settings, node: &str) {
    for t in targets {
        let id = target_id(&t.url);
        let source = format!("{prefix}{SOURCE}_{id}");
        f.sources.insert(
            source.clone(),
            Source::PrometheusScrape(PrometheusScrape {
                endpoints: vec![t.url.clone()],
                scrape_interval_secs: s.scrape_interval_secs,
                scrape_timeout_secs: s.scrape_timeout_secs as f64,
                instance_tag: "instance".into(),
                endpoint_tag: "endpoint".into(),
                honor_labels: false,
            }),
        );
        f.transforms.insert(
            format!("{prefix}{LABELED}_{id}"),
            Transform::Remap(Remap { inputs: vec![source], source: label_program(t, s, node), drop_on_error: false }),
        );
    }
}

/// Labels every sample of target `t` with its pod and the CR's identity. Our labels are set
/// last; a scraped label of the same name is kept as `exported_<name>` (Prometheus'
/// honor_labels=false convention) instead of overwriting them.
fn label_program(t: &Target, s: &Settings, node: &str) -> String {
    let mut out = String::new();
    for tag in ["namespace", "pod", "node", "workspace", "tenant"] {
        out.push_str(&format!("if exists(.tags.{tag}) {{ .tags.exported_{tag} = .tags.{tag} }}\n"));
    }
    for (tag, value) in [
        ("namespace", t.namespace.as_str()),
        ("pod", &t.pod),
        ("node", node),
        ("workspace", &s.workspace),
        ("tenant", &s.tenant),
    ] {
        out.push_str(&format!(".tags.{tag} = {}\n", vrl_string(value)));
    }
    out
}
