//! Rendered children and the Vector configs a collector pod runs, for the render tests and
//! the real-Vector tests.

use k8s_openapi::api::core::v1::Pod;
use monitoring_operator::api::MonitoringServices;
use monitoring_operator::discover::Settings;
use monitoring_operator::render::{self, Child, Kind};
use monitoring_operator::{model, vector};
use serde_json::Value;

pub fn children(ms: &MonitoringServices) -> Vec<Child> {
    // As `render -f` does: a referenced GreptimeDB is assumed at its default address.
    let m = model::build(ms, &model::Dereferenced::assumed(ms)).expect("seed example is valid");
    render::render(&m, None).unwrap().to_list().unwrap()
}

/// Pods on a node, as the discovery sidecar would see them: two scrape targets (one https with
/// a path) and a debug pod.
pub fn sample_pods() -> Vec<Pod> {
    let pod = |ns: &str, name: &str, uid: &str, app: &str, ip: &str, ann: Value| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": {"app": app}, "annotations": ann},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip}
        }))
        .unwrap()
    };
    vec![
        pod(
            "workspace-prod",
            "api-1",
            "u1",
            "api",
            "10.0.0.7",
            serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}),
        ),
        pod(
            "workspace-dev",
            "db-0",
            "u2",
            "db",
            "10.0.0.8",
            serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": "8443", "prometheus.io/path": "/stats", "prometheus.io/scheme": "https"}),
        ),
        pod("workspace-prod", "debug-1", "u3", "debug", "10.0.0.9", serde_json::json!({})),
    ]
}

/// Deep-merge `b` into `a` (how Vector combines several --config files).
pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Every Vector config a pod would run: the logs config as is; the metrics config merged with
/// the discovery sidecar's file, once with no targets (a fresh node) and once with some.
pub fn vector_configs(children: &[Child]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for c in children.iter().filter(|c| c.kind == Kind::ConfigMap) {
        let data = &c.object.data["data"];
        let base: Value = serde_norway::from_str(data["vector.yaml"].as_str().unwrap()).unwrap();
        match data.get("discovery.json") {
            None => out.push((c.name().to_string(), base)),
            Some(settings) => {
                let settings: Settings = serde_json::from_str(settings.as_str().unwrap()).unwrap();
                // A cluster-wide logs collector's sidecar writes no file (kubernetes_logs).
                if settings.mode == monitoring_operator::discover::Mode::Logs && settings.namespace_scope.is_none() {
                    out.push((c.name().to_string(), base));
                    continue;
                }
                for (label, pods) in [("no targets", vec![]), ("two targets", sample_pods())] {
                    let fragment = vector::discovered(pods.iter(), &settings, "node-a").unwrap();
                    let mut cfg = base.clone();
                    merge(&mut cfg, serde_norway::from_str(&fragment).unwrap());
                    out.push((format!("{} + {label}", c.name()), cfg));
                }
            }
        }
    }
    out
}
