//! Gathers flow health: every `flow_interval`, read the `/flow` summary of each running
//! collector pod's sidecar (at most `flow_concurrency` requests at once, each bounded by a
//! timeout), aggregate them per resource and component ([`crate::flow::aggregate`]), keep the
//! result in the context for the status step, and re-reconcile exactly the resources whose
//! verdict changed. Touches: a watch of collector pods (a reflector store, no polling of the
//! apiserver) and HTTP GETs to the pods.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::debug;

use super::Context;
use crate::api::MonitoringServices;
use crate::flow::{ComponentFlow, PodReport, Summary, aggregate};
use crate::render::meta;

/// Verdicts by resource, then component (`logs`, `metrics`).
pub type FlowFacts = HashMap<ObjectRef<MonitoringServices>, BTreeMap<String, ComponentFlow>>;

use crate::http_get::Client as HttpClient;

/// A collector pod worth asking.
struct Target {
    owner: ObjectRef<MonitoringServices>,
    component: String,
    ip: String,
    node: String,
    expected: Option<String>,
}

/// Running, with an IP and the sidecar that serves `/flow`.
fn target(p: &Pod) -> Option<Target> {
    let labels = p.labels();
    let instance = labels.get(meta::LABEL_INSTANCE)?;
    let component = labels.get(meta::LABEL_COMPONENT)?;
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let spec = p.spec.as_ref()?;
    spec.containers.iter().find(|c| c.name == "discover")?;
    let node = spec.node_name.clone().unwrap_or_default();
    let expected = p.annotations().get(meta::ANNOTATION_CONFIG_ID).cloned();
    let owner = ObjectRef::new(instance).within(&p.namespace()?);
    Some(Target { owner, component: component.clone(), ip, node, expected })
}

/// What [`target`] reads of a pod, and nothing else: the pod cache keeps one pod per
/// collector per node, and a typed Pod with its full spec is tens of KB.
pub fn slim_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.owner_references = None;
    if let Some(spec) = p.spec.take() {
        let containers = spec
            .containers
            .into_iter()
            .map(|c| k8s_openapi::api::core::v1::Container { name: c.name, ..Default::default() })
            .collect();
        p.spec =
            Some(k8s_openapi::api::core::v1::PodSpec { containers, node_name: spec.node_name, ..Default::default() });
    }
    if let Some(status) = p.status.take() {
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            ..Default::default()
        });
    }
}

/// Waits (briefly) for the pod list, then gathers once into the context.
pub async fn first_round(ctx: &Context, pods: &Store<Pod>) {
    if tokio::time::timeout(Duration::from_secs(10), pods.wait_until_ready()).await.is_err() {
        return;
    }
    let client = crate::http_get::client();
    let facts = round(ctx, &client, pods).await;
    *ctx.flow.lock().unwrap_or_else(|p| p.into_inner()) = facts;
}

/// Runs forever: one gathering round per interval.
pub async fn run(ctx: Arc<Context>, pods: Store<Pod>, trigger: UnboundedSender<ObjectRef<MonitoringServices>>) {
    let Some(interval) = ctx.settings.flow_interval else { return };
    let client = crate::http_get::client();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let facts = round(&ctx, &client, &pods).await;
        let changed: Vec<_> = {
            let mut current = ctx.flow.lock().unwrap_or_else(|p| p.into_inner());
            // Only a changed verdict triggers: messages carry live counts, which the status
            // picks up at the next reconcile without one being forced every round.
            let mut changed: Vec<_> = facts
                .iter()
                .filter(|(k, v)| current.get(*k).map(verdict) != Some(verdict(v)))
                .map(|(k, _)| k.clone())
                .collect();
            changed.extend(current.keys().filter(|k| !facts.contains_key(*k)).cloned());
            *current = facts;
            changed
        };
        for obj in changed {
            debug!(resource = %obj, "flow verdict changed");
            let _ = trigger.unbounded_send(obj);
        }
    }
}

/// What a change of triggers a reconcile: reasons, counts and outdated nodes, not messages.
fn verdict(v: &BTreeMap<String, ComponentFlow>) -> Vec<(&str, crate::flow::Reason, usize, usize, &[String])> {
    v.iter().map(|(c, f)| (c.as_str(), f.reason, f.reporting, f.pods, f.outdated_nodes.as_slice())).collect()
}

/// One round: ask every target pod, aggregate per resource and component.
async fn round(ctx: &Context, client: &HttpClient, pods: &Store<Pod>) -> FlowFacts {
    let port = ctx.settings.flow_port;
    let timeout = ctx.settings.flow_timeout;
    let targets: Vec<_> = pods.state().iter().filter_map(|p| target(p)).collect();
    let answers: Vec<_> = futures::stream::iter(targets)
        .map(|t| async move {
            // IPv6 pod IPs go in brackets.
            let host = if t.ip.contains(':') { format!("[{}]", t.ip) } else { t.ip.clone() };
            let summary = ask(client, &format!("http://{host}:{port}/flow"), timeout).await;
            (t.owner, t.component, PodReport { node: t.node, expected_config_id: t.expected, summary })
        })
        .buffer_unordered(ctx.settings.flow_concurrency.max(1))
        .collect()
        .await;
    let shared_ns = ctx.settings.shared.as_ref().map(|s| s.namespace.as_str());
    let reports = attribute(answers, shared_ns, |component| ctx.shared.owners(component));
    let mut grouped: HashMap<ObjectRef<MonitoringServices>, BTreeMap<String, Vec<PodReport>>> = HashMap::new();
    for (owner, component, report) in reports {
        grouped.entry(owner).or_default().entry(component).or_default().push(report);
    }
    grouped
        .into_iter()
        .map(|(owner, comps)| {
            let verdicts = comps
                .into_iter()
                .map(|(c, mut reports)| {
                    reports.sort_by(|a, b| a.node.cmp(&b.node));
                    (c, aggregate(&reports))
                })
                .collect();
            (owner, verdicts)
        })
        .collect()
}

type Report = (ObjectRef<MonitoringServices>, String, PodReport);

/// Whose report each answer is. A collector pod speaks for the resource it is labelled with,
/// in its own namespace; a shared collector pod (`monitoring-shared` in the admin's shared
/// namespace) for each tenant it serves (`owners`: tenant id → resource), each getting only
/// its own summary (a pod that did not answer is Unknown for every tenant it serves). Only
/// pods in the shared namespace speak for the shared collectors: anyone may label a pod of
/// their own namespace `monitoring-shared`, and its answers must never become other tenants'
/// verdicts (there it stands for a resource of that name in that namespace only).
fn attribute(
    answers: Vec<Report>,
    shared_ns: Option<&str>,
    owners: impl Fn(&str) -> BTreeMap<String, ObjectRef<MonitoringServices>>,
) -> Vec<Report> {
    let mut reports = Vec::new();
    for (owner, component, report) in answers {
        if owner.name != crate::model::shared::INSTANCE || owner.namespace.as_deref() != shared_ns {
            reports.push((owner, component, report));
            continue;
        }
        for (id, tenant) in owners(&component) {
            let summary = report.summary.as_ref().and_then(|s| s.tenants.get(&id).cloned());
            let r = PodReport { node: report.node.clone(), expected_config_id: None, summary };
            reports.push((tenant, component.clone(), r));
        }
    }
    reports
}

/// The longest `/flow` answer read. A shared collector's summary is about 1 KB per tenant;
/// a pod that is not ours but carries our labels (anyone may label a pod of their namespace)
/// must not make the operator hold more than this per request.
const MAX_SUMMARY_BYTES: usize = 2 << 20;

async fn ask(client: &HttpClient, url: &str, timeout: Duration) -> Option<Summary> {
    serde_json::from_slice(&crate::http_get::body(client, url, timeout, MAX_SUMMARY_BYTES).await?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slimmed_pod_is_still_a_target() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c-x", "namespace": "ns", "labels": {"app.kubernetes.io/instance": "ms",
                         "app.kubernetes.io/component": "logs"}, "annotations": {"e6data.io/config-id": "abc"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "vector", "image": "v", "args": ["a"]},
                     {"name": "discover", "image": "d"}], "volumes": [{"name": "x", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        slim_pod(&mut p);
        assert!(p.spec.as_ref().unwrap().volumes.is_none() && p.status.as_ref().unwrap().conditions.is_none());
        let t = target(&p).unwrap();
        assert_eq!((t.ip.as_str(), t.node.as_str(), t.expected.as_deref()), ("10.0.0.1", "n1", Some("abc")));
    }

    /// A pod in a tenant's namespace labelled as a shared collector speaks for nobody else:
    /// only the admin namespace's shared pods hand tenants their verdicts.
    #[test]
    fn only_the_shared_namespace_speaks_for_tenants() {
        fn summary(reason: crate::flow::Reason, tenants: &[(&str, crate::flow::Reason)]) -> Summary {
            Summary {
                reason,
                shown: None,
                latest: None,
                config_id: None,
                selected: 1,
                window_secs: 30,
                tenants: tenants.iter().map(|(id, r)| (id.to_string(), summary(*r, &[]))).collect(),
            }
        }
        let shared = |ns: &str, s: Summary| {
            let owner = ObjectRef::new(crate::model::shared::INSTANCE).within(ns);
            (owner, "logs".to_string(), PodReport { node: "n1".into(), expected_config_id: None, summary: Some(s) })
        };
        let owners = |_: &str| {
            BTreeMap::from([
                ("ta".to_string(), ObjectRef::new("mon").within("team-a")),
                ("tb".to_string(), ObjectRef::new("mon").within("team-b")),
            ])
        };
        use crate::flow::Reason::*;
        let answers = vec![
            shared("admin", summary(SinkStalled, &[("ta", SinkStalled), ("tb", Healthy)])),
            // team-b forging team-a's verdict from its own namespace.
            shared("team-b", summary(Healthy, &[("ta", Healthy), ("tb", Healthy)])),
        ];
        let reports = attribute(answers, Some("admin"), owners);
        let of = |ns: &str, name: &str| -> Vec<Option<crate::flow::Reason>> {
            reports
                .iter()
                .filter(|(o, _, _)| o.name == name && o.namespace.as_deref() == Some(ns))
                .map(|(_, _, r)| r.summary.as_ref().map(|s| s.reason))
                .collect()
        };
        assert_eq!(of("team-a", "mon"), vec![Some(SinkStalled)], "team-a: only the admin pod's answer");
        assert_eq!(of("team-b", "mon"), vec![Some(Healthy)]);
        assert_eq!(of("team-b", crate::model::shared::INSTANCE).len(), 1, "the forged pod is its own namespace's");
        // Per-resource mode: no shared namespace, nobody speaks for tenants.
        let answers = vec![shared("admin", summary(SinkStalled, &[("ta", SinkStalled)]))];
        let reports = attribute(answers, None, owners);
        assert!(reports.iter().all(|(o, _, _)| o.name == crate::model::shared::INSTANCE));
    }
}
