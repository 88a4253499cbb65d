//! The status of custom resources as gauges, kube-state-metrics style, computed from the
//! watch caches at scrape time: a deleted resource simply is not in the cache any more, so
//! its series disappear with it. Reads only in-memory stores.
//!
//! MonitoringServices get their own families (`monitoringservices_*`); any other kind the
//! cluster admin lists (`run --status-metrics-kind group/version/Kind`) gets the generic
//! `customresource_status_*` families from `status.phase` (or `status.state`) and
//! `status.conditions`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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

/// Label values borrow from the cached objects and samples are encoded as they are read: a
/// scrape of 1,000 resources copies no string and keeps no list of samples (measured before:
/// 8 MB of transient memory for a 1.5 MB page).
type Label<'a> = (&'static str, &'a str);

fn condition_value(status: &str) -> i64 {
    match status {
        "True" => 1,
        "False" => 0,
        _ => -1,
    }
}

/// One gauge family, its samples emitted by `samples` through the callback.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl FnOnce(&mut dyn FnMut(&[Label<'_>], i64) -> Result<(), std::fmt::Error>) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut enc = encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    samples(&mut |labels, v| ConstGauge::new(v).encode(enc.encode_family(&labels)?))
}

/// `namespace` and `name` of an object, then `more`.
fn labels<'a, const N: usize>(meta: &'a kube::api::ObjectMeta, more: [Label<'a>; N]) -> Vec<Label<'a>> {
    let mut l = Vec::with_capacity(2 + N);
    l.push(("namespace", meta.namespace.as_deref().unwrap_or_default()));
    l.push(("name", meta.name.as_deref().unwrap_or_default()));
    l.extend(more);
    l
}

/// A resource without a status yet reports the default one.
fn status_of(ms: &MonitoringServices) -> &crate::api::MonitoringServicesStatus {
    static NONE: std::sync::LazyLock<crate::api::MonitoringServicesStatus> = std::sync::LazyLock::new(Default::default);
    ms.status.as_ref().unwrap_or(&NONE)
}

/// The MonitoringServices families for `items`.
fn monitoring_services(
    items: &[std::sync::Arc<MonitoringServices>],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    family(encoder, "monitoringservices_status_phase", "Lifecycle phase (StateSet: exactly one phase is 1)", |emit| {
        for ms in items {
            let current = status_of(ms).phase.unwrap_or_default();
            for p in Phase::ALL {
                emit(&labels(&ms.metadata, [("phase", p.as_str())]), i64::from(p == current))?;
            }
        }
        Ok(())
    })?;
    family(encoder, "monitoringservices_status_condition", "Status conditions: 1 True, 0 False, -1 Unknown", |emit| {
        for ms in items {
            for Condition { type_, reason, status, .. } in &status_of(ms).conditions {
                emit(&labels(&ms.metadata, [("type", type_), ("reason", reason)]), condition_value(status))?;
            }
        }
        Ok(())
    })?;
    family(encoder, "monitoringservices_status_ready", "1 when every enabled collector is ready", |emit| {
        for ms in items {
            emit(&labels(&ms.metadata, []), i64::from(status_of(ms).ready))?;
        }
        Ok(())
    })?;
    fn components(ms: &MonitoringServices) -> Vec<(&'static str, &crate::api::ComponentStatus)> {
        let st = status_of(ms);
        [("logs", &st.vector_logs_status), ("metrics", &st.vector_metrics_status), ("traces", &st.vector_traces_status)]
            .into_iter()
            .filter_map(|(n, c)| Some((n, c.as_ref()?)))
            .collect()
    }
    family(encoder, "monitoringservices_component_desired_replicas", "Nodes that should run the collector", |emit| {
        for ms in items {
            for (n, c) in components(ms) {
                emit(&labels(&ms.metadata, [("component", n)]), c.replicas.into())?;
            }
        }
        Ok(())
    })?;
    family(encoder, "monitoringservices_component_ready_replicas", "Nodes where the collector is ready", |emit| {
        for ms in items {
            for (n, c) in components(ms) {
                emit(&labels(&ms.metadata, [("component", n)]), c.ready_replicas.into())?;
            }
        }
        Ok(())
    })?;
    family(
        encoder,
        "monitoringservices_greptimedb_discovered",
        "1 when the referenced GreptimeDBCluster exists",
        |emit| {
            for ms in items {
                if let Some(g) = &status_of(ms).greptimedb_status {
                    emit(&labels(&ms.metadata, []), i64::from(g.discovered))?;
                }
            }
            Ok(())
        },
    )?;
    family(
        encoder,
        "monitoringservices_greptimedb_pipeline_ready",
        "1 when the GreptimeDB log pipeline exists",
        |emit| {
            for ms in items {
                if let Some(g) = &status_of(ms).greptimedb_status {
                    emit(&labels(&ms.metadata, []), i64::from(g.pipeline_ready))?;
                }
            }
            Ok(())
        },
    )
}

/// The generic families over the objects of every other kind.
fn generic(
    kinds: &[(&WatchedKind, Vec<std::sync::Arc<DynamicObject>>)],
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    fn kind_labels(k: &WatchedKind) -> [Label<'_>; 3] {
        let ar = &k.resource;
        [
            ("customresource_group", &ar.group),
            ("customresource_version", &ar.version),
            ("customresource_kind", &ar.kind),
        ]
    }
    family(
        encoder,
        "customresource_status_phase",
        "Current status.phase (or status.state) of watched custom resources: 1 for the current value",
        |emit| {
            for (k, objects) in kinds {
                let [g, v, kd] = kind_labels(k);
                for obj in objects {
                    let status = &obj.data["status"];
                    if let Some(p) = status["phase"].as_str().or_else(|| status["state"].as_str()) {
                        emit(&labels(&obj.metadata, [g, v, kd, ("phase", p)]), 1)?;
                    }
                }
            }
            Ok(())
        },
    )?;
    family(
        encoder,
        "customresource_status_condition",
        "Conditions of watched custom resources: 1 True, 0 False, -1 Unknown",
        |emit| {
            for (k, objects) in kinds {
                let [g, v, kd] = kind_labels(k);
                for obj in objects {
                    for c in obj.data["status"]["conditions"].as_array().into_iter().flatten() {
                        let s = |key: &str| c[key].as_str().unwrap_or_default();
                        if let Value::String(t) = &c["type"] {
                            let l = labels(&obj.metadata, [g, v, kd, ("type", t), ("reason", s("reason"))]);
                            emit(&l, condition_value(s("status")))?;
                        }
                    }
                }
            }
            Ok(())
        },
    )
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        monitoring_services(&self.monitoring_services.state(), &mut encoder)?;
        let kinds: Vec<_> = self.kinds.iter().map(|k| (k, k.store.state())).collect();
        generic(&kinds, &mut encoder)
    }
}
