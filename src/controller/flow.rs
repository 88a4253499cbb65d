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
    let mut reports = Vec::new();
    for (owner, component, report) in answers {
        if owner.name != crate::model::shared::INSTANCE {
            reports.push((owner, component, report));
            continue;
        }
        // A shared collector: each tenant's own summary is that tenant's report from this node
        // (a pod that did not answer is Unknown for every tenant it serves).
        for (id, tenant) in ctx.shared.owners(&component) {
            let summary = match &report.summary {
                Some(s) => s.tenants.get(&id).cloned(),
                None => None,
            };
            let r = PodReport { node: report.node.clone(), expected_config_id: None, summary };
            reports.push((tenant, component.clone(), r));
        }
    }
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

async fn ask(client: &HttpClient, url: &str, timeout: Duration) -> Option<Summary> {
    serde_json::from_slice(&crate::http_get::body(client, url, timeout).await?).ok()
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
}
