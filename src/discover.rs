//! Per-node discovery of Prometheus scrape targets, for the metrics collector.
//!
//! Vector's `prometheus_scrape` source has no Kubernetes discovery: it scrapes a fixed
//! endpoint list. So each metrics pod runs this operator's binary as a sidecar
//! (`monitoring-operator discover`) that watches the pods of its own node only (field
//! selector `spec.nodeName`, so the API load grows with pods per node, not with the cluster)
//! and rewrites a small Vector config file with that node's targets; Vector reloads it
//! (`--watch-config`). This module is the pure selection logic (which pods are targets, which
//! log directories are read) and imports nothing else of the crate; the Vector file is
//! rendered by [`crate::vector::discovered`] and the loop lives in [`crate::sidecar`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

/// What the sidecar discovers.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Scrape targets for the metrics collector.
    #[default]
    Metrics,
    /// Log directories for a namespace-scoped logs collector, which cannot use Vector's
    /// `kubernetes_logs` (that needs cluster-wide pod access): the sidecar applies the pod-label
    /// filters with the namespace's Role and lists exactly the pods to read.
    Logs,
}

/// Discovery settings, rendered by the operator into the collector's ConfigMap (`discovery.json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(default)]
    pub mode: Mode,
    /// Namespace-scoped collectors (useClusterRole: false) watch only this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_scope: Option<String>,
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    #[serde(default)]
    pub include_pod_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exclude_pod_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scrape_annotation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port_annotation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_annotation: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scrape_interval_secs: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scrape_timeout_secs: u64,
    pub workspace: String,
    pub tenant: String,
    /// The shared metrics collector: one entry per tenant, each with its own filters and
    /// identity; the top-level filters are then unused and every pod of the node is watched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantSettings>,
}

/// One tenant of a shared collector: its component-id prefix and its settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    pub id: String,
    pub settings: Settings,
    /// This tenant's flow window (its sinks' batch timeouts differ from the others'); 0: the
    /// sidecar's `--flow-window-secs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flow_window_secs: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Annotation selecting http or https (a common convention next to the three configurable ones).
pub const SCHEME_ANNOTATION: &str = "prometheus.io/scheme";

/// One scrape target.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub url: String,
    pub namespace: String,
    pub pod: String,
}

impl Settings {
    /// Pod label selector for the watch: include labels must match, exclude labels must not
    /// (`k!=v` also matches pods without `k`, which is what "exclude" means).
    pub fn label_selector(&self) -> String {
        let mut parts: Vec<String> = self.include_pod_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.extend(self.exclude_pod_labels.iter().map(|(k, v)| format!("{k}!={v}")));
        parts.join(",")
    }

    pub fn namespace_allowed(&self, ns: &str) -> bool {
        if let Some(scope) = &self.namespace_scope
            && scope != ns
        {
            return false;
        }
        (self.include_namespaces.is_empty() || self.include_namespaces.iter().any(|n| n == ns))
            && !self.exclude_namespaces.iter().any(|n| n == ns)
    }

    pub fn labels_allowed(&self, labels: &BTreeMap<String, String>) -> bool {
        self.include_pod_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && !self.exclude_pod_labels.iter().any(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The scrape target a pod offers, if any: Running, with an IP, annotated for scraping,
/// inside the namespace and label filters, with a usable port.
pub fn target(pod: &Pod, s: &Settings) -> Option<Target> {
    let meta = &pod.metadata;
    let ns = meta.namespace.as_deref()?;
    let name = meta.name.as_deref()?;
    if meta.deletion_timestamp.is_some() || !s.namespace_allowed(ns) {
        return None;
    }
    let empty = BTreeMap::new();
    if !s.labels_allowed(meta.labels.as_ref().unwrap_or(&empty)) {
        return None;
    }
    let ann = meta.annotations.as_ref()?;
    if ann.get(&s.scrape_annotation).map(|v| v.trim()) != Some("true") {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let port: u16 = match ann.get(&s.port_annotation) {
        Some(p) => p.trim().parse().ok().filter(|p| *p > 0)?,
        None => {
            // No port annotation: only unambiguous when the pod declares exactly one port.
            let ports: Vec<i32> = pod
                .spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .map(|p| p.container_port)
                .collect();
            match ports.as_slice() {
                [one] => u16::try_from(*one).ok()?,
                _ => return None,
            }
        }
    };
    let path = ann.get(&s.path_annotation).map(|p| p.trim()).filter(|p| !p.is_empty()).unwrap_or("/metrics");
    // Only characters every URL parser keeps as they are: a target Vector cannot parse would
    // stop the node's whole scrape config from loading, and one it re-encodes would no longer
    // match its labels.
    if !path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c)) {
        return None;
    }
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let scheme = match ann.get(SCHEME_ANNOTATION).map(|s| s.trim()) {
        Some("https") => "https",
        _ => "http",
    };
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    Some(Target { url: format!("{scheme}://{host}:{port}{path}"), namespace: ns.into(), pod: name.into() })
}

/// A pod whose log directory (`/var/log/pods/<dir>/<container>/N.log`) lies under a
/// namespace-scoped collector's include glob, with what its records carry.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPod {
    /// `<namespace>_<name>_<uid>`: the pod's directory under `/var/log/pods`.
    pub dir: String,
    /// Passes the pod-label filters (and is not a collector): its lines are shipped.
    pub selected: bool,
    pub ip: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Container name → image.
    pub images: BTreeMap<String, String>,
}

/// Every pod of the node in a namespace-scoped collector's namespace, whatever its phase (a
/// finished pod's logs are still read until it is deleted), sorted by directory: `selected`
/// ones pass the label filters, the others (and the collectors themselves, labelled
/// `vector.dev/exclude=true`) are left out.
pub fn log_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>, s: &Settings) -> Vec<LogPod> {
    let mut out: Vec<LogPod> = pods
        .into_iter()
        .filter_map(|p| {
            let meta = &p.metadata;
            let (ns, name, uid) = (meta.namespace.as_deref()?, meta.name.as_deref()?, meta.uid.as_deref()?);
            if !s.namespace_allowed(ns) {
                return None;
            }
            let labels = meta.labels.clone().unwrap_or_default();
            let own = labels.get("vector.dev/exclude").map(String::as_str) == Some("true");
            let images = p
                .spec
                .iter()
                .flat_map(|spec| spec.containers.iter().chain(spec.init_containers.iter().flatten()))
                .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
                .collect();
            Some(LogPod {
                dir: format!("{ns}_{name}_{uid}"),
                selected: !own && s.labels_allowed(&labels),
                ip: p.status.as_ref().and_then(|st| st.pod_ip.clone()).filter(|ip| !ip.is_empty()),
                labels,
                images,
            })
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.dir == b.dir);
    out
}

/// All targets among `pods`, sorted (deterministic output, so unchanged targets never
/// rewrite the file).
pub fn targets<'a>(pods: impl IntoIterator<Item = &'a Pod>, s: &Settings) -> Vec<Target> {
    let mut out: Vec<Target> = pods.into_iter().filter_map(|p| target(p, s)).collect();
    out.sort();
    out.dedup_by(|a, b| a.url == b.url);
    out
}

/// How many of `pods` this collector reads (log directories or scrape targets): with none,
/// silence is not a flow problem.
pub fn selected<'a>(pods: impl IntoIterator<Item = &'a Pod> + Clone, s: &Settings) -> usize {
    if !s.tenants.is_empty() {
        return s.tenants.iter().map(|t| selected(pods.clone(), &t.settings)).sum();
    }
    match s.mode {
        Mode::Metrics => targets(pods, s).len(),
        Mode::Logs => log_pods(pods, s).iter().filter(|p| p.selected).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            scrape_annotation: "prometheus.io/scrape".into(),
            port_annotation: "prometheus.io/port".into(),
            path_annotation: "prometheus.io/path".into(),
            scrape_interval_secs: 30,
            scrape_timeout_secs: 10,
            workspace: "w".into(),
            tenant: "t".into(),
            ..Default::default()
        }
    }

    fn pod(ns: &str, name: &str, ann: serde_json::Value, phase: &str, ip: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "annotations": ann, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": phase, "podIP": ip}
        }))
        .unwrap()
    }

    #[test]
    fn selects_annotated_running_pods() {
        let s = settings();
        let ann = json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "stats"});
        let t = target(&pod("a", "p", ann.clone(), "Running", Some("10.0.0.1")), &s).unwrap();
        assert_eq!(t.url, "http://10.0.0.1:9100/stats");
        assert!(target(&pod("a", "p", ann.clone(), "Pending", Some("10.0.0.1")), &s).is_none());
        assert!(target(&pod("a", "p", ann.clone(), "Running", None), &s).is_none());
        assert!(
            target(&pod("a", "p", json!({"prometheus.io/scrape": "false"}), "Running", Some("10.0.0.1")), &s).is_none()
        );
        // Declared port used when not annotated; https via the scheme annotation; IPv6 bracketed.
        let t = target(
            &pod(
                "a",
                "p",
                json!({"prometheus.io/scrape": "true", "prometheus.io/scheme": "https"}),
                "Running",
                Some("fd00::1"),
            ),
            &s,
        )
        .unwrap();
        assert_eq!(t.url, "https://[fd00::1]:8080/metrics");
        assert!(
            target(
                &pod(
                    "a",
                    "p",
                    json!({"prometheus.io/scrape": "true", "prometheus.io/port": "x"}),
                    "Running",
                    Some("10.0.0.1")
                ),
                &s
            )
            .is_none()
        );
    }

    #[test]
    fn honours_namespace_and_label_filters() {
        let ann = json!({"prometheus.io/scrape": "true"});
        let mut s = settings();
        s.include_namespaces = vec!["a".into()];
        assert!(target(&pod("a", "p", ann.clone(), "Running", Some("10.0.0.1")), &s).is_some());
        assert!(target(&pod("b", "p", ann.clone(), "Running", Some("10.0.0.1")), &s).is_none());
        s.exclude_pod_labels = BTreeMap::from([("app".into(), "p".into())]);
        assert!(target(&pod("a", "p", ann.clone(), "Running", Some("10.0.0.1")), &s).is_none());
        assert_eq!(s.label_selector(), "app!=p");
        let mut s = settings();
        s.namespace_scope = Some("a".into());
        assert!(target(&pod("b", "p", ann, "Running", Some("10.0.0.1")), &s).is_none());
    }
}
