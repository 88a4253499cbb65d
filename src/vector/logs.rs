//! The logs collector's Vector configuration: container logs → workspace/tenant stamp → S3.
//!
//! Cluster scope uses Vector's `kubernetes_logs` source, with namespace and pod-label
//! filters passed to the apiserver as selectors (excluded pods are never tailed).
//! Namespace scope (`useClusterRole: false`) has no cluster-wide read access, which
//! `kubernetes_logs` requires. There a discovery sidecar (the operator binary, with the
//! namespace's Role) applies the namespace and pod-label filters to its node's pods and writes
//! a `file` source over exactly those pods' directories
//! (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log`); the pod fields are derived
//! from the path.

use super::vrl::stamp_identity;
use super::*;
use crate::model::{Collector, Model, Scope};

/// Component IDs (stable: they name checkpoint and buffer directories on the node).
pub const SOURCE: &str = "pod_logs";
pub const ENRICH: &str = "enrich";
pub const S3_SINK: &str = "s3_archive";
pub const GREPTIME_FLATTEN: &str = "greptimedb_flatten";
pub const GREPTIME_SINK: &str = "greptimedb_logs";

pub fn config(m: &Model, logs: &Collector) -> Config {
    let mut cfg = base_config();
    let enrich = match m.scope {
        Scope::Cluster => {
            cfg.sources.insert(SOURCE.into(), Source::KubernetesLogs(kubernetes_logs(logs)));
            stamp_identity(&m.workspace, &m.tenant)
        }
        Scope::Namespace => {
            // The source itself is the discovery sidecar's file ([`discovered`]).
            format!("{}{}", PARSE_POD_LOG_FILE, stamp_identity(&m.workspace, &m.tenant))
        }
    };
    cfg.transforms.insert(
        ENRICH.into(),
        Transform::Remap(Remap { inputs: vec![SOURCE.into()], source: enrich, drop_on_error: false }),
    );
    let prefix = key_prefix(&logs.archive, "namespace={{ kubernetes.pod_namespace }}/");
    cfg.sinks.insert(S3_SINK.into(), s3_sink(vec![ENRICH.into()], &logs.archive, prefix));
    if let Some(t) = m.greptime_target().filter(|t| t.logs) {
        // Flat columns for the log pipeline (crate::greptime::PIPELINE).
        cfg.transforms.insert(
            GREPTIME_FLATTEN.into(),
            Transform::Remap(Remap { inputs: vec![ENRICH.into()], source: FLATTEN.into(), drop_on_error: false }),
        );
        cfg.sinks.insert(
            GREPTIME_SINK.into(),
            Sink::GreptimedbLogs(Box::new(GreptimeDbLogs {
                inputs: vec![GREPTIME_FLATTEN.into()],
                endpoint: format!("http://{}", t.endpoint),
                dbname: t.database.clone(),
                table: t.logs_table.clone(),
                pipeline_name: t.pipeline_name.clone(),
                compression: "gzip".into(),
                // Real-time copy: never allowed to stall the archive (see README, dual write).
                buffer: realtime_buffer(),
                healthcheck: Healthcheck { enabled: true, uri: None },
            })),
        );
    }
    self_observability(&mut cfg);
    cfg
}

fn kubernetes_logs(logs: &Collector) -> KubernetesLogs {
    let sel = &logs.selection;
    let mut labels: Vec<String> = sel.include_pod_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.extend(sel.exclude_pod_labels.iter().map(|(k, v)| format!("{k}!={v}")));
    let mut namespaces = Vec::new();
    if !sel.include_namespaces.is_empty() {
        namespaces.push(format!("kubernetes.io/metadata.name in ({})", sel.include_namespaces.join(",")));
    }
    if !sel.exclude_namespaces.is_empty() {
        namespaces.push(format!("kubernetes.io/metadata.name notin ({})", sel.exclude_namespaces.join(",")));
    }
    KubernetesLogs {
        extra_label_selector: labels.join(","),
        extra_namespace_label_selector: namespaces.join(","),
        extra_field_selector: String::new(),
        // List from the apiserver watch cache: far less etcd load with many nodes.
        use_apiserver_cache: true,
        glob_minimum_cooldown_ms: 15_000,
    }
}

/// Discovery settings for a namespace-scoped logs collector's sidecar (`discovery.json`).
pub fn settings(m: &Model, logs: &Collector) -> crate::discover::Settings {
    let sel = &logs.selection;
    crate::discover::Settings {
        mode: crate::discover::Mode::Logs,
        namespace_scope: Some(m.namespace.clone()),
        include_namespaces: sel.include_namespaces.clone(),
        exclude_namespaces: sel.exclude_namespaces.clone(),
        include_pod_labels: sel.include_pod_labels.clone(),
        exclude_pod_labels: sel.exclude_pod_labels.clone(),
        workspace: m.workspace.clone(),
        tenant: m.tenant.clone(),
        ..Default::default()
    }
}

/// Matches no file: a node without pods to read still gets a valid `file` source.
const NO_PODS: &str = "/var/log/pods/.no-pods-selected-on-this-node/*.log";

/// The sidecar's file for a namespace-scoped collector: a `file` source over exactly the
/// selected pods' log directories. Read from the beginning, so a pod that appears between two
/// reloads loses nothing.
pub fn discovered(globs: &[String], node: &str) -> Result<String, serde_norway::Error> {
    let include = if globs.is_empty() { vec![NO_PODS.to_string()] } else { globs.to_vec() };
    let fragment = Fragment {
        sources: std::collections::BTreeMap::from([(
            SOURCE.to_string(),
            Source::File(FileSource {
                include,
                exclude: Vec::new(),
                read_from: "beginning".into(),
                glob_minimum_cooldown_ms: 5_000,
            }),
        )]),
        transforms: Default::default(),
    };
    Ok(format!(
        "# Written by monitoring-operator discover for node {node}: {} pod(s). Do not edit.\n{}",
        globs.len(),
        fragment_yaml(&fragment)?
    ))
}

/// One flat record per log line, the columns of the GreptimeDB log pipeline.
const FLATTEN: &str = r#". = {
  "timestamp": .timestamp,
  "message": .message,
  "stream": .stream,
  "namespace": .kubernetes.pod_namespace,
  "pod": .kubernetes.pod_name,
  "container": .kubernetes.container_name,
  "node": .kubernetes.pod_node_name,
  "workspace": .workspace,
  "tenant": .tenant
}
"#;

/// Parses the pod log path and the CRI (or Docker JSON) line format into the field layout
/// `kubernetes_logs` produces (CRI partial lines are not merged).
const PARSE_POD_LOG_FILE: &str = r#"path = parse_regex(string(.file) ?? "", r'^/var/log/pods/(?P<namespace>[^_]+)_(?P<pod>[^_]+)_(?P<uid>[^/]+)/(?P<container>[^/]+)/') ?? {}
.kubernetes.pod_namespace = path.namespace
.kubernetes.pod_name = path.pod
.kubernetes.pod_uid = path.uid
.kubernetes.container_name = path.container
.kubernetes.pod_node_name = get_env_var("VECTOR_SELF_NODE_NAME") ?? null
line = string(.message) ?? ""
cri, cri_err = parse_regex(line, r'^(?P<time>\S+) (?P<stream>stdout|stderr) (?P<tag>[FP]) (?P<msg>.*)$')
if cri_err == null {
  .message = cri.msg
  .stream = cri.stream
  ts, ts_err = parse_timestamp(string(cri.time) ?? "", "%+")
  if ts_err == null { .timestamp = ts }
} else {
  docker, docker_err = parse_json(line)
  if docker_err == null && is_object(docker) {
    .message = replace(string(docker.log) ?? "", r'\n$', "")
    .stream = docker.stream
  }
}
"#;
