//! The status of custom resources as gauges, kube-state-metrics style, computed from the
//! watch caches at scrape time: a deleted resource simply is not in the cache any more, so
//! its series disappear with it. Reads only in-memory stores.
//!
//! MonitoringServices get their own families (`monitoringservices_*`); any other kind the
//! cluster admin lists (`run --status-metrics-kind group/version/Kind`) gets the generic
//! `customresource_status_*` families from `status.phase` (or `status.state`) and
//! `status.conditions`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use serde_json::Value;

use crate::api::{MonitoringServices, Phase};

/// A generic kind whose status is exported.
#[derive(Clone)]
pub struct WatchedKind {
    pub resource: ApiResource,
    pub store: Store<DynamicObject>,
}

impl std::fmt::Debug for WatchedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WatchedKind({}/{})", self.resource.api_version, self.resource.kind)
    }
}

#[derive(Clone)]
pub struct StatusCollector {
    pub monitoring_services: Store<MonitoringServices>,
    pub kinds: Vec<WatchedKind>,
}

impl std::fmt::Debug for StatusCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatusCollector({:?})", self.kinds)
    }
}

type Labels = Vec<(&'static str, String)>;

/// One gauge family: name, help, and (labels, value) samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, i64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family { name, help, samples: Vec::new() }
    }
}

fn condition_value(status: &str) -> i64 {
    match status {
        "True" => 1,
        "False" => 0,
        _ => -1,
    }
}

fn id(ns: &str, name: &str) -> Labels {
    vec![("namespace", ns.to_string()), ("name", name.to_string())]
}

fn with(mut l: Labels, more: &[(&'static str, &str)]) -> Labels {
    l.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    l
}

/// The MonitoringServices families for `items`.
fn monitoring_services(items: &[std::sync::Arc<MonitoringServices>]) -> Vec<Family> {
    let mut phase =
        Family::new("monitoringservices_status_phase", "Lifecycle phase (StateSet: exactly one phase is 1)");
    let mut cond = Family::new("monitoringservices_status_condition", "Status conditions: 1 True, 0 False, -1 Unknown");
    let mut ready = Family::new("monitoringservices_status_ready", "1 when every enabled collector is ready");
    let mut desired =
        Family::new("monitoringservices_component_desired_replicas", "Nodes that should run the collector");
    let mut ready_rep =
        Family::new("monitoringservices_component_ready_replicas", "Nodes where the collector is ready");
    let mut discovered =
        Family::new("monitoringservices_greptimedb_discovered", "1 when the referenced GreptimeDBCluster exists");
    let mut pipeline =
        Family::new("monitoringservices_greptimedb_pipeline_ready", "1 when the GreptimeDB log pipeline exists");
    for ms in items {
        let base = id(&ms.namespace().unwrap_or_default(), &ms.name_any());
        let st = ms.status.clone().unwrap_or_default();
        let current = st.phase.unwrap_or_default();
        for p in Phase::ALL {
            phase.samples.push((with(base.clone(), &[("phase", p.as_str())]), i64::from(p == current)));
        }
        for c in &st.conditions {
            let Condition { type_, reason, status, .. } = c;
            cond.samples.push((with(base.clone(), &[("type", type_), ("reason", reason)]), condition_value(status)));
        }
        ready.samples.push((base.clone(), i64::from(st.ready)));
        let comps = [
            ("logs", &st.vector_logs_status),
            ("metrics", &st.vector_metrics_status),
            ("traces", &st.vector_traces_status),
        ];
        for (name, comp) in comps {
            if let Some(c) = comp {
                desired.samples.push((with(base.clone(), &[("component", name)]), c.replicas.into()));
                ready_rep.samples.push((with(base.clone(), &[("component", name)]), c.ready_replicas.into()));
            }
        }
        if let Some(g) = &st.greptimedb_status {
            discovered.samples.push((base.clone(), i64::from(g.discovered)));
            pipeline.samples.push((base.clone(), i64::from(g.pipeline_ready)));
        }
    }
    vec![phase, cond, ready, desired, ready_rep, discovered, pipeline]
}

/// The generic families for one kind.
fn generic(kind: &WatchedKind, phase: &mut Family, cond: &mut Family) {
    let ar = &kind.resource;
    for obj in kind.store.state() {
        let base = with(
            id(&obj.namespace().unwrap_or_default(), &obj.name_any()),
            &[
                ("customresource_group", &ar.group),
                ("customresource_version", &ar.version),
                ("customresource_kind", &ar.kind),
            ],
        );
        let status = &obj.data["status"];
        if let Some(p) = status["phase"].as_str().or_else(|| status["state"].as_str()) {
            phase.samples.push((with(base.clone(), &[("phase", p)]), 1));
        }
        for c in status["conditions"].as_array().into_iter().flatten() {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            if let Value::String(t) = &c["type"] {
                cond.samples.push((
                    with(base.clone(), &[("type", t), ("reason", &s("reason"))]),
                    condition_value(&s("status")),
                ));
            }
        }
    }
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut families = monitoring_services(&self.monitoring_services.state());
        let mut phase = Family::new(
            "customresource_status_phase",
            "Current status.phase (or status.state) of watched custom resources: 1 for the current value",
        );
        let mut cond = Family::new(
            "customresource_status_condition",
            "Conditions of watched custom resources: 1 True, 0 False, -1 Unknown",
        );
        for k in &self.kinds {
            generic(k, &mut phase, &mut cond);
        }
        families.push(phase);
        families.push(cond);
        for f in families {
            let gauge = ConstGauge::new(0i64);
            let mut enc = encoder.encode_descriptor(f.name, f.help, None, gauge.metric_type())?;
            for (labels, v) in &f.samples {
                ConstGauge::new(*v).encode(enc.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}
