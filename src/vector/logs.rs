//! The logs collector's Vector configuration: container logs → workspace/tenant stamp → S3.
//!
//! Cluster scope uses Vector's `kubernetes_logs` source, with namespace and pod-label
//! filters passed to the apiserver as selectors (excluded pods are never tailed).
//! Namespace scope (`useClusterRole: false`) has no cluster-wide read access, which
//! `kubernetes_logs` requires. There a discovery sidecar (the operator binary, with the
//! namespace's Role) watches its node's pods and writes a `file` source over the namespace's
//! pod directories (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log`) minus the pods
//! the label filters reject, and a remap with the pods' metadata ([`discovered`]).
//!
//! Both modes then write the same documented record ([`RECORD`]): `timestamp`, `message`,
//! `stream`, `kubernetes.{pod_namespace, pod_name, pod_uid, pod_ip, pod_labels, pod_node_name,
//! container_name, container_image}`, `workspace`, `tenant`.

use std::collections::BTreeMap;

use super::vrl::{stamp_identity, vrl_string};
use super::*;
use crate::discover::{LogPod, Settings};
use crate::model::{Collector, Model, Scope};

/// Component IDs (stable: they name checkpoint and buffer directories on the node).
pub const SOURCE: &str = "pod_logs";
pub const ENRICH: &str = "enrich";
pub const S3_SINK: &str = "s3_archive";
pub const GREPTIME_FLATTEN: &str = "greptimedb_flatten";
pub const GREPTIME_SINK: &str = "greptimedb_logs";
pub const LOKI_SINK: &str = "loki";

pub fn config(m: &Model, logs: &Collector) -> Config {
    let mut cfg = base_config();
    let input = match m.scope {
        Scope::Cluster => {
            cfg.sources.insert(SOURCE.into(), Source::KubernetesLogs(kubernetes_logs(logs)));
            SOURCE
        }
        // The source and the pod metadata are the discovery sidecar's file ([`discovered`]).
        Scope::Namespace => POD_META,
    };
    // The namespace-scoped mode's remap already builds the record (one object per line, not two).
    let record = if m.scope == Scope::Cluster { RECORD } else { "" };
    let enrich = format!("{record}{}", stamp_identity(&m.workspace, &m.tenant));
    cfg.transforms.insert(
        ENRICH.into(),
        Transform::Remap(Remap { inputs: vec![input.into()], source: enrich, drop_on_error: false }),
    );
    let prefix = key_prefix(&logs.archive, "namespace={{ kubernetes.pod_namespace }}/");
    cfg.sinks.insert(S3_SINK.into(), s3_sink(vec![ENRICH.into()], &logs.archive, prefix));
    if let Some(t) = m.greptime_target().filter(|t| t.logs) {
        // Flat columns for the log pipeline (crate::greptime::PIPELINE).
        cfg.transforms.insert(
            GREPTIME_FLATTEN.into(),
            Transform::Remap(Remap { inputs: vec![ENRICH.into()], source: FLATTEN.into(), drop_on_error: false }),
        );
        cfg.sinks.insert(GREPTIME_SINK.into(), greptime_sink(vec![GREPTIME_FLATTEN.into()], t));
    }
    if let Some(l) = &logs.loki {
        let sink = loki_sink(vec![ENRICH.into()], (&m.workspace, &m.tenant), l, SecretFiles::Mounted);
        cfg.sinks.insert(LOKI_SINK.into(), Sink::Loki(Box::new(sink)));
        secret_backends(&mut cfg, &logs.secrets);
    }
    self_observability(&mut cfg);
    cfg
}

/// The GreptimeDB log sink over the flattened records. Real-time copy: never allowed to stall
/// the archive (see README, dual write).
pub fn greptime_sink(inputs: Vec<String>, t: &crate::model::GreptimeTarget) -> Sink {
    Sink::GreptimedbLogs(Box::new(GreptimeDbLogs {
        inputs,
        endpoint: format!("http://{}", t.endpoint),
        dbname: t.database.clone(),
        table: t.logs_table.clone(),
        pipeline_name: t.pipeline_name.clone(),
        compression: "gzip".into(),
        buffer: realtime_buffer(),
        healthcheck: Healthcheck { enabled: true, uri: None },
    }))
}

/// The Loki sink: one stream per namespace, pod and container of the resource (labels never
/// take a per-line value), the line is the log message, per-pod details that would multiply
/// streams go into structured metadata. Like GreptimeDB, a real-time copy: its trouble never
/// stalls the archive. `identity`: the resource's workspace and tenant.
pub fn loki_sink(
    inputs: Vec<String>,
    (workspace, tenant): (&str, &str),
    l: &crate::model::Loki,
    files: SecretFiles<'_>,
) -> LokiSink {
    let mut labels = BTreeMap::from([
        ("namespace".to_string(), "{{ kubernetes.pod_namespace }}".to_string()),
        ("pod".into(), "{{ kubernetes.pod_name }}".into()),
        ("container".into(), "{{ kubernetes.container_name }}".into()),
        ("workspace".into(), workspace.to_string()),
        ("tenant".into(), tenant.to_string()),
    ]);
    labels.extend(l.extra_labels.clone());
    let structured_metadata = if l.structured_metadata {
        BTreeMap::from([
            ("node".to_string(), "{{ kubernetes.pod_node_name }}".to_string()),
            ("pod_uid".into(), "{{ kubernetes.pod_uid }}".into()),
            ("container_image".into(), "{{ kubernetes.container_image }}".into()),
            ("stream".into(), "{{ stream }}".into()),
        ])
    } else {
        BTreeMap::new()
    };
    LokiSink {
        inputs,
        endpoint: l.endpoint.clone(),
        tenant_id: l.tenant_id.clone(),
        labels,
        structured_metadata,
        encoding: Encoding { codec: "text".into() },
        compression: "snappy".into(),
        out_of_order_action: "accept".into(),
        dangerously_allow_unconfined_template_resolution: true,
        auth: l.auth.as_ref().map(|a| http_auth(a, files)),
        tls: l.tls.as_ref().map(|t| tls(t, files)),
        buffer: realtime_buffer(),
        healthcheck: Healthcheck { enabled: true, uri: None },
    }
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

/// Settings of a logs collector's sidecar (`discovery.json`): a namespace-scoped collector's
/// pod files; for a cluster-wide one (`kubernetes_logs` finds its pods itself) only which pods
/// it reads, for the flow summary.
pub fn settings(m: &Model, logs: &Collector) -> crate::discover::Settings {
    let sel = &logs.selection;
    crate::discover::Settings {
        mode: crate::discover::Mode::Logs,
        namespace_scope: (m.scope == crate::model::Scope::Namespace).then(|| m.namespace.clone()),
        include_namespaces: sel.include_namespaces.clone(),
        exclude_namespaces: sel.exclude_namespaces.clone(),
        include_pod_labels: sel.include_pod_labels.clone(),
        exclude_pod_labels: sel.exclude_pod_labels.clone(),
        workspace: m.workspace.clone(),
        tenant: m.tenant.clone(),
        ..Default::default()
    }
}

/// Component of the sidecar's file: the pod metadata of the namespace-scoped mode.
pub const POD_META: &str = "pod_logs_meta";

/// The sidecar's file for a namespace-scoped collector:
/// - a `file` source over the namespace's pod directories on this node, minus the pods the
///   label filters reject. Its include never changes, so a selected pod coming or going does
///   not rebuild it (a rebuilt file source re-reads what it had read since its last checkpoint:
///   duplicates on every pod start); read from the beginning, so a pod whose files appear
///   before the sidecar names it loses nothing;
/// - a remap with the pods' metadata (labels, IP, images), which also drops a rejected pod's
///   lines read before its exclusion reached the source. Only this remap changes as pods come
///   and go.
pub fn discovered(pods: &[LogPod], s: &Settings, node: &str) -> Result<String, serde_norway::Error> {
    let ns = s.namespace_scope.as_deref().unwrap_or_default();
    let exclude = pods.iter().filter(|p| !p.selected).map(|p| format!("/var/log/pods/{}/*/*.log", p.dir)).collect();
    let fragment = Fragment {
        sources: BTreeMap::from([(
            SOURCE.to_string(),
            Source::File(FileSource {
                include: vec![format!("/var/log/pods/{ns}_*/*/*.log")],
                exclude,
                read_from: "beginning".into(),
                glob_minimum_cooldown_ms: 5_000,
            }),
        )]),
        transforms: BTreeMap::from([(
            POD_META.to_string(),
            Transform::Remap(Remap {
                inputs: vec![SOURCE.into()],
                source: pod_meta_program(pods, node),
                drop_on_error: false,
            }),
        )]),
    };
    let selected = pods.iter().filter(|p| p.selected).count();
    Ok(format!(
        "# Written by monitoring-operator discover for node {node}: {selected} pod(s) selected, {} left out. Do not edit.\n{}",
        pods.len() - selected,
        fragment_yaml(&fragment)?
    ))
}

/// The pod table and the per-line program of the namespace-scoped mode. Cheap per line: the
/// path and the CRI line are split on fixed separators (no regular expression), the pod's
/// metadata is one table lookup.
fn pod_meta_program(pods: &[LogPod], node: &str) -> String {
    let entries: Vec<String> = pods
        .iter()
        .map(|p| {
            let map = |m: &BTreeMap<String, String>| {
                let kv: Vec<String> = m.iter().map(|(k, v)| format!("{}: {}", vrl_string(k), vrl_string(v))).collect();
                format!("{{{}}}", kv.join(", "))
            };
            format!(
                "  {}: {{\"selected\": {}, \"ip\": {}, \"labels\": {}, \"images\": {}}}",
                vrl_string(&p.dir),
                p.selected,
                p.ip.as_deref().map(vrl_string).unwrap_or_else(|| "null".into()),
                map(&p.labels),
                map(&p.images),
            )
        })
        .collect();
    let table = if entries.is_empty() { "{}".to_string() } else { format!("{{\n{}\n}}", entries.join(",\n")) };
    format!("pods = {table}\nnode = {}\n{PARSE_POD_LOG_LINE}", vrl_string(node))
}

/// One flat record per log line, the columns of the GreptimeDB log pipeline.
pub(super) const FLATTEN: &str = r#". = {
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

/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log` and the CRI (or Docker JSON) line
/// format straight into the documented record ([`RECORD`]'s fields; CRI partial lines are not
/// merged). `pods` and `node` are set before it.
const PARSE_POD_LOG_LINE: &str = r#"parts = split(string(.file) ?? "", "/")
dir = string(parts[4]) ?? ""
meta = object(get(pods, [dir]) ?? {}) ?? {}
if meta.selected == false { abort }
ids = split(dir, "_", limit: 3)
container = string(parts[5]) ?? ""
line = string(.message) ?? ""
message = line
stream = null
ts = .timestamp
cri = split(line, " ", limit: 4)
if length(cri) == 4 && (cri[1] == "stdout" || cri[1] == "stderr") {
  message = cri[3]
  stream = cri[1]
  ts = parse_timestamp(string(cri[0]) ?? "", "%+") ?? .timestamp
} else {
  docker, docker_err = parse_json(line)
  if docker_err == null && is_object(docker) {
    message = replace(string(docker.log) ?? "", "\n", "")
    stream = docker.stream
  }
}
. = {
  "timestamp": ts,
  "message": message,
  "stream": stream,
  "kubernetes": {
    "pod_namespace": ids[0],
    "pod_name": ids[1],
    "pod_uid": ids[2],
    "pod_ip": meta.ip,
    "pod_labels": meta.labels,
    "pod_node_name": node,
    "container_name": container,
    "container_image": get(meta.images, [container]) ?? null
  }
}
"#;

/// The documented record, the same in both collection modes: exactly these fields, whatever
/// the source added (kubernetes_logs adds annotations, namespace and node labels, container
/// ids, `file`, `source_type`; the file source adds `file`, `host`, `source_type`).
pub(super) const RECORD: &str = r#"k = object(.kubernetes) ?? {}
. = {
  "timestamp": .timestamp,
  "message": .message,
  "stream": .stream,
  "kubernetes": {
    "pod_namespace": k.pod_namespace,
    "pod_name": k.pod_name,
    "pod_uid": k.pod_uid,
    "pod_ip": k.pod_ip,
    "pod_labels": k.pod_labels,
    "pod_node_name": k.pod_node_name,
    "container_name": k.container_name,
    "container_image": k.container_image
  }
}
"#;
