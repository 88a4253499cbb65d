//! Compute `status` from the model and the children as applied (the workloads' own status).
//! Pure functions; the controller writes the result only when it differs from what is stored.
//! The previous status is read for two things only, both about time: a condition keeps its
//! `lastTransitionTime` while its status holds, and a resource that was up goes `Degraded`
//! rather than back to `Creating`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    Cloud, ComponentStatus, FlowStatus, MonitoringServicesStatus, OutputStatus, Phase, condition, reason,
};
use crate::error::bounded;
use crate::flow::{ComponentFlow, Reason};
use crate::model::{GreptimeHealth, Model, SpecError, Violation};
use crate::render::Children;
use crate::render::meta::Component;

/// Status of one collector from its DaemonSet (None: not found yet). `refused`: the
/// apiserver's answer when it refused to create the collector's pods (from the DaemonSet's
/// `FailedCreate` events, read by the controller).
pub fn component(c: Component, ds: Option<&DaemonSet>, refused: Option<&str>) -> ComponentStatus {
    let Some(ds) = ds else {
        return ComponentStatus { message: Some("DaemonSet not created yet".into()), ..Default::default() };
    };
    let st = ds.status.clone().unwrap_or_default();
    let desired = st.desired_number_scheduled;
    let ready = st.number_ready;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let observed = rollout_observed(ds);
    let verb = match c {
        Component::Logs => "collecting logs",
        Component::Metrics => "scraping metrics",
        Component::Traces => "serving OTLP",
    };
    let not_ready = reason::NOT_ALL_NODES_READY;
    let (ok, reason, message) = if !observed {
        (false, not_ready, "DaemonSet rollout not observed yet".to_string())
    } else if desired == 0 {
        let msg = "No node is eligible to run the collector (check nodeSelector, affinity and tolerations)";
        (false, reason::NO_ELIGIBLE_NODE, msg.to_string())
    } else if let Some(answer) = refused.filter(|_| st.current_number_scheduled < desired) {
        let created = st.current_number_scheduled;
        (
            false,
            reason::PODS_REFUSED,
            format!("{created}/{desired} collector pods created; the apiserver refused the others: {answer}"),
        )
    } else if ready == desired && updated == desired {
        (true, reason::ALL_NODES_READY, format!("All nodes {verb}"))
    } else if updated < desired && ready > 0 && ready >= desired - 1 {
        // A rolling update replaces one pod at a time: still healthy, just not done yet.
        (
            true,
            reason::ALL_NODES_READY,
            format!("All nodes {verb}; rolling out new configuration ({updated}/{desired} updated)"),
        )
    } else if updated < desired {
        (
            false,
            not_ready,
            format!("{ready}/{desired} nodes {verb}; rolling out new configuration ({updated}/{desired} updated)"),
        )
    } else {
        (false, not_ready, format!("{ready}/{desired} nodes {verb}"))
    };
    state(ok, desired, ready, reason, &message)
}

fn state(ok: bool, desired: i32, ready: i32, reason: &str, message: &str) -> ComponentStatus {
    ComponentStatus {
        flow: None,
        ready: ok,
        replicas: desired,
        ready_replicas: ready,
        message: Some(bounded(message)),
        reason: Some(reason.to_string()),
        workload: None,
    }
}

/// True when the DaemonSet wants pods on more nodes than have one: what makes the controller
/// look for the apiserver's refusal and check again soon.
/// The DaemonSet controller has seen the DaemonSet's current spec.
pub fn rollout_observed(ds: &DaemonSet) -> bool {
    ds.status.as_ref().and_then(|st| st.observed_generation).unwrap_or(0) >= ds.metadata.generation.unwrap_or(0)
}

pub fn pods_missing(ds: &DaemonSet) -> bool {
    ds.status.as_ref().is_some_and(|st| st.current_number_scheduled < st.desired_number_scheduled)
}

/// Status of the trace endpoint from its Deployment (None: not found yet).
pub fn deployment(d: Option<&Deployment>) -> ComponentStatus {
    let Some(d) = d else {
        return ComponentStatus { message: Some("Deployment not created yet".into()), ..Default::default() };
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let ok = observed && ready >= desired && updated >= desired;
    // The Deployment controller reports refused pods itself (ReplicaFailure, FailedCreate).
    let failure = st.conditions.iter().flatten().find(|c| c.type_ == "ReplicaFailure" && c.status == "True");
    let (reason, message) = match failure {
        Some(f) if !ok => (
            reason::PODS_REFUSED,
            format!(
                "{ready}/{desired} replicas ready; the apiserver refused pods: {}",
                f.message.as_deref().unwrap_or("")
            ),
        ),
        _ if ok => (reason::ALL_NODES_READY, "All replicas serving OTLP".to_string()),
        _ => (reason::NOT_ALL_NODES_READY, format!("{ready}/{desired} replicas ready")),
    };
    state(ok, desired, ready, reason, &message)
}

/// Phase from the components' states; `previous` keeps a once-running CR Degraded rather
/// than Creating when everything goes down.
pub fn phase(components: &[&ComponentStatus], previous: Option<Phase>) -> Phase {
    if components.iter().all(|c| c.ready) {
        return Phase::Running;
    }
    let any_ready = components.iter().any(|c| c.ready_replicas > 0);
    let was_up = matches!(previous, Some(Phase::Running | Phase::Degraded));
    if any_ready || was_up { Phase::Degraded } else { Phase::Creating }
}

/// A condition with `lastTransitionTime` carried over from `old` when its status is unchanged.
pub fn condition(
    old: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    condition_status(old, type_, if ok { "True" } else { "False" }, reason, message, generation)
}

/// [`condition`] with any status (`True`, `False`, `Unknown`).
pub fn condition_status(
    old: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let prev = old.iter().find(|c| c.type_ == type_);
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Two statuses are equal for writing purposes (all fields, conditions included).
pub fn same(a: Option<&MonitoringServicesStatus>, b: &MonitoringServicesStatus) -> bool {
    a == Some(b)
}

/// Why a resource is `Failed`: the spec, or a child the apiserver refused.
#[derive(Debug, Clone)]
pub enum Failure {
    InvalidSpec(SpecError),
    /// `kind name: message` of the refused child.
    ApplyRejected(String),
    /// The admin's tenancy policy refuses a field; the resource's children were removed.
    PolicyViolation(Violation),
}

/// Status of a CR whose spec or apply failed, phase Failed: children untouched, except under
/// a policy violation, where they were removed.
pub fn failed(
    old: Option<&MonitoringServicesStatus>,
    generation: Option<i64>,
    failure: &Failure,
) -> MonitoringServicesStatus {
    let (reason, message, spec_valid) = match failure {
        Failure::InvalidSpec(e) => (reason::INVALID_SPEC, bounded(&e.to_string()), false),
        Failure::ApplyRejected(m) => (reason::APPLY_REJECTED, bounded(m), true),
        Failure::PolicyViolation(v) => (reason::POLICY_VIOLATION, bounded(&v.to_string()), false),
    };
    let removed = matches!(failure, Failure::PolicyViolation(_));
    let message = message.as_str();
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut st = old.cloned().unwrap_or_default();
    st.phase = Some(Phase::Failed);
    st.ready = false;
    st.message = Some(message.to_string());
    st.observed_generation = generation;
    let spec = if spec_valid {
        condition(old_conditions, condition::SPEC_VALID, true, reason::VALID, "The spec is valid", generation)
    } else {
        condition(old_conditions, condition::SPEC_VALID, false, reason, message, generation)
    };
    let mut conditions = vec![condition(old_conditions, condition::READY, false, reason, message, generation), spec];
    if removed {
        // Nothing of the resource runs any more: no component to report.
        (st.vector_logs_status, st.vector_metrics_status, st.vector_traces_status) = (None, None, None);
        st.greptimedb_status = None;
        st.outputs.clear();
    } else {
        // Component conditions stay as last observed: the running collectors were not touched.
        conditions.extend(
            old_conditions.iter().filter(|c| c.type_ != condition::READY && c.type_ != condition::SPEC_VALID).cloned(),
        );
    }
    st.conditions = conditions;
    st
}

/// What one reconcile observed, for [`compose`].
pub struct Observed<'a> {
    pub logs: Option<ComponentStatus>,
    pub metrics: Option<ComponentStatus>,
    pub traces: Option<ComponentStatus>,
    pub greptime: Option<&'a GreptimeHealth>,
    pub outputs: Vec<OutputStatus>,
    pub cloud: Option<Cloud>,
    pub generation: Option<i64>,
}

/// The outputs `m` configures, for status.
pub fn outputs(m: &Model) -> Vec<OutputStatus> {
    let mut out = Vec::new();
    let credentials = |secrets: &BTreeMap<String, crate::model::MountedSecret>| {
        secrets.iter().flat_map(|(n, s)| s.keys.iter().map(move |k| format!("{n}/{k}"))).collect::<Vec<_>>()
    };
    if let Some((c, l)) = m.logs.as_ref().and_then(|c| Some((c, c.loki.as_ref()?))) {
        out.push(OutputStatus {
            name: "loki".into(),
            component: "logs".into(),
            endpoint: l.endpoint.clone(),
            tenant_id: l.tenant_id.clone(),
            sink: crate::vector::logs::LOKI_SINK.into(),
            credentials: credentials(&c.secrets),
        });
    }
    if let Some((c, r)) = m.metrics.as_ref().and_then(|c| Some((c, c.remote_write.as_ref()?))) {
        out.push(OutputStatus {
            name: "remoteWrite".into(),
            component: "metrics".into(),
            endpoint: r.endpoint.clone(),
            tenant_id: r.tenant_id.clone(),
            sink: crate::vector::metrics::REMOTE_WRITE_SINK.into(),
            credentials: credentials(&c.common.secrets),
        });
    }
    out
}

/// The flow status of one collector from the gathered verdicts (`None`: flow health is off).
pub fn flow_status(c: Component, flow: Option<&BTreeMap<String, ComponentFlow>>) -> Option<FlowStatus> {
    let verdicts = flow?;
    Some(match verdicts.get(c.short()) {
        Some(f) => FlowStatus {
            reason: f.reason.as_str().into(),
            message: Some(f.message.clone()).filter(|m| !m.is_empty()),
            pods_reporting: i32::try_from(f.reporting).unwrap_or(i32::MAX),
            pods: i32::try_from(f.pods).unwrap_or(i32::MAX),
            outdated_nodes: f.outdated_nodes.clone(),
        },
        None => FlowStatus {
            reason: Reason::Unknown.as_str().into(),
            message: Some("no running collector pod has been read yet".into()),
            ..Default::default()
        },
    })
}

/// What `m`'s applied children (as the apiserver returned or listed them) report; `refused`:
/// the apiserver's answer per DaemonSet name whose pods it refused; `flow`: the verdicts
/// gathered from its collector pods, by component.
pub fn observe<'a>(
    m: &'a Model,
    applied: &Children,
    refused: &BTreeMap<String, String>,
    generation: Option<i64>,
    flow: Option<&BTreeMap<String, ComponentFlow>>,
) -> Observed<'a> {
    // Shared mode: the shared collectors report this resource's collection.
    let named = |c: Component| match c {
        Component::Logs | Component::Metrics if m.shared.is_some() => c.workload_name(crate::model::shared::INSTANCE),
        _ => c.workload_name(&m.name),
    };
    let ds = |c: Component| applied.daemon_sets.iter().find(|d| d.metadata.name.as_deref() == Some(&named(c)));
    let deploy = applied.deployments.iter().find(|d| d.metadata.name.as_deref() == Some(&named(Component::Traces)));
    let collector = |c: Component| ComponentStatus {
        flow: flow_status(c, flow),
        workload: ds(c).map(where_runs),
        ..component(c, ds(c), refused.get(&named(c)).map(String::as_str))
    };
    Observed {
        logs: m.logs.as_ref().map(|_| collector(Component::Logs)),
        metrics: m.metrics.as_ref().map(|_| collector(Component::Metrics)),
        traces: m.traces.as_ref().map(|_| ComponentStatus { workload: deploy.map(where_runs), ..deployment(deploy) }),
        greptime: m.greptime.as_ref().map(|g| &g.health),
        outputs: outputs(m),
        cloud: m.cloud,
        generation,
    }
}

/// `namespace/name` of a workload.
fn where_runs<K: kube::Resource>(w: &K) -> String {
    format!("{}/{}", w.meta().namespace.as_deref().unwrap_or_default(), w.meta().name.as_deref().unwrap_or_default())
}

/// The status of a reconciled resource: phase (Degraded when only the GreptimeDB branch is
/// down), message, conditions (transition times kept from `old`), component states.
pub fn compose(old: Option<&MonitoringServicesStatus>, o: Observed<'_>) -> MonitoringServicesStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conditions = Vec::new();
    let enabled: Vec<_> = o.logs.iter().chain(o.metrics.iter()).chain(o.traces.iter()).collect();
    let named = [("logs", &o.logs), ("metrics", &o.metrics), ("traces", &o.traces)];
    let mut phase = phase(&enabled, old.and_then(|s| s.phase));
    let greptime_down = o.greptime.filter(|i| !i.ready);
    // Flow: the worst component verdict (logs, metrics).
    let flows: Vec<(&str, &FlowStatus)> = [("logs", &o.logs), ("metrics", &o.metrics)]
        .into_iter()
        .filter_map(|(n, c)| Some((n, c.as_ref()?.flow.as_ref()?)))
        .collect();
    let worst_flow = flows
        .iter()
        .map(|(n, f)| (Reason::parse(&f.reason).unwrap_or(Reason::Unknown), *n, *f))
        .min_by_key(|(r, _, _)| std::cmp::Reverse(*r));
    let flow_problem = worst_flow.filter(|(r, _, _)| r.is_problem());
    let message = match (phase, enabled.is_empty()) {
        (Phase::Running, _) if let Some((r, n, f)) = flow_problem => {
            // Pods are ready, but what they collect does not arrive everywhere it should.
            phase = Phase::Degraded;
            format!("{n}: {r}: {}", f.message.as_deref().unwrap_or_default())
        }
        (Phase::Running, _) if greptime_down.is_some() => {
            // Collectors and the S3 archive are fine; only the real-time branch is not.
            phase = Phase::Degraded;
            format!("greptimedb: {}", greptime_down.map(|i| i.message.as_str()).unwrap_or_default())
        }
        (Phase::Running, true) => "No collector enabled".to_string(),
        (Phase::Running, false) => "All collectors ready".to_string(),
        _ => named
            .iter()
            .filter_map(|(n, c)| {
                c.as_ref().filter(|c| !c.ready).map(|c| format!("{n}: {}", c.message.as_deref().unwrap_or("")))
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    conditions.push(condition(
        old_conditions,
        condition::READY,
        phase == Phase::Running,
        phase.as_str(),
        &message,
        o.generation,
    ));
    conditions.push(condition(
        old_conditions,
        condition::SPEC_VALID,
        true,
        reason::VALID,
        "The spec is valid",
        o.generation,
    ));
    for (c, t) in
        [(&o.logs, condition::LOGS_READY), (&o.metrics, condition::METRICS_READY), (&o.traces, condition::TRACES_READY)]
    {
        if let Some(c) = c {
            let fallback = if c.ready { reason::ALL_NODES_READY } else { reason::NOT_ALL_NODES_READY };
            let reason = c.reason.as_deref().unwrap_or(fallback);
            conditions.push(condition(
                old_conditions,
                t,
                c.ready,
                reason,
                c.message.as_deref().unwrap_or(""),
                o.generation,
            ));
        }
    }
    if let Some(i) = o.greptime {
        conditions.push(condition(
            old_conditions,
            condition::GREPTIMEDB_READY,
            i.ready,
            i.reason,
            &i.message,
            o.generation,
        ));
    }
    if let Some((r, _, _)) = worst_flow {
        let status = match r {
            Reason::Healthy | Reason::NoDataReceived => "True",
            Reason::Unknown => "Unknown",
            _ => "False",
        };
        let message = flows
            .iter()
            .map(|(n, f)| match &f.message {
                Some(m) => format!("{n}: {}: {m}", f.reason),
                None => format!("{n}: {}", f.reason),
            })
            .collect::<Vec<_>>()
            .join("; ");
        conditions.push(condition_status(
            old_conditions,
            condition::FLOW_HEALTHY,
            status,
            r.as_str(),
            &message,
            o.generation,
        ));
    }
    MonitoringServicesStatus {
        phase: Some(phase),
        message: Some(message),
        ready: phase == Phase::Running,
        cloud: o.cloud.map(|c| c.as_str().to_string()),
        observed_generation: o.generation,
        vector_logs_status: o.logs,
        vector_metrics_status: o.metrics,
        vector_traces_status: o.traces,
        greptimedb_status: o.greptime.map(|i| i.status.clone()),
        outputs: o.outputs,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ds(desired: i32, ready: i32, updated: i32) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta { generation: Some(2), ..Default::default() },
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                number_ready: ready,
                updated_number_scheduled: Some(updated),
                observed_generation: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn component_states() {
        let all = component(Component::Logs, Some(&ds(3, 3, 3)), None);
        assert!(all.ready);
        assert_eq!(all.message.as_deref(), Some("All nodes collecting logs"));
        let part = component(Component::Metrics, Some(&ds(3, 1, 3)), None);
        assert!(!part.ready);
        assert_eq!((part.replicas, part.ready_replicas), (3, 1));
        assert!(!component(Component::Logs, Some(&ds(0, 0, 0)), None).ready);
        assert!(!component(Component::Logs, None, None).ready);
        // Rolling update with one pod down at a time: healthy, says it is rolling out.
        let rolling = component(Component::Logs, Some(&ds(3, 2, 1)), None);
        assert!(rolling.ready && rolling.message.unwrap().contains("rolling out"));
        assert!(!component(Component::Logs, Some(&ds(3, 1, 1)), None).ready);
        assert!(!component(Component::Logs, Some(&ds(1, 0, 0)), None).ready);
        // Pods refused by admission: said, with the apiserver's answer, while pods are missing.
        let answer = "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes";
        let refused = component(Component::Logs, Some(&ds(2, 0, 0)), Some(answer));
        assert_eq!(refused.reason.as_deref(), Some(reason::PODS_REFUSED));
        assert!(refused.message.unwrap().ends_with(answer));
        let mut created = ds(2, 2, 2);
        created.status.as_mut().unwrap().current_number_scheduled = 2;
        assert!(component(Component::Logs, Some(&created), Some(answer)).ready, "an old refusal no longer counts");
    }

    #[test]
    fn phases() {
        let ok = ComponentStatus { ready: true, replicas: 2, ready_replicas: 2, ..Default::default() };
        let half = ComponentStatus { ready: false, replicas: 2, ready_replicas: 1, ..Default::default() };
        let none = ComponentStatus { ready: false, replicas: 2, ready_replicas: 0, ..Default::default() };
        assert_eq!(phase(&[&ok, &ok], None), Phase::Running);
        assert_eq!(phase(&[&ok, &half], None), Phase::Degraded);
        assert_eq!(phase(&[&none], None), Phase::Creating);
        assert_eq!(phase(&[&none], Some(Phase::Running)), Phase::Degraded);
        assert_eq!(phase(&[], None), Phase::Running);
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = condition(&[], "Ready", false, "Creating", "x", Some(1));
        let again = condition(std::slice::from_ref(&first), "Ready", false, "Creating", "y", Some(2));
        assert_eq!(first.last_transition_time, again.last_transition_time);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let flipped = condition(std::slice::from_ref(&again), "Ready", true, "Running", "z", Some(2));
        assert!(flipped.last_transition_time.0 > again.last_transition_time.0);
    }

    #[test]
    fn greptime_down_degrades_an_otherwise_running_resource() {
        use crate::api::GreptimeDbIntegrationStatus;
        let ok = ComponentStatus {
            ready: true,
            replicas: 1,
            ready_replicas: 1,
            message: Some("All nodes collecting logs".into()),
            reason: None,
            flow: None,
            workload: None,
        };
        let down = GreptimeHealth {
            status: GreptimeDbIntegrationStatus::default(),
            ready: false,
            reason: reason::CLUSTER_NOT_FOUND,
            message: "GreptimeDBCluster g/x not found; S3 archival continues".into(),
        };
        let o = Observed {
            logs: Some(ok.clone()),
            metrics: None,
            traces: None,
            greptime: Some(&down),
            outputs: Vec::new(),
            cloud: None,
            generation: Some(3),
        };
        let st = compose(None, o);
        assert_eq!(st.phase, Some(Phase::Degraded));
        assert!(!st.ready);
        assert!(st.message.unwrap().starts_with("greptimedb: GreptimeDBCluster"));
        let g = st.conditions.iter().find(|c| c.type_ == condition::GREPTIMEDB_READY).unwrap();
        assert_eq!(
            (g.status.as_str(), g.reason.as_str(), g.observed_generation),
            ("False", "ClusterNotFound", Some(3))
        );
        let o = Observed {
            logs: Some(ok),
            metrics: None,
            traces: None,
            greptime: None,
            outputs: Vec::new(),
            cloud: Some(Cloud::Gcp),
            generation: Some(3),
        };
        let st = compose(None, o);
        assert_eq!((st.phase, st.ready, st.cloud.as_deref()), (Some(Phase::Running), true, Some("GCP")));
    }

    #[test]
    fn a_flow_problem_degrades_running_and_unknown_claims_nothing() {
        let with = |reason: Reason, message: &str| {
            let verdicts = BTreeMap::from([(
                "logs".to_string(),
                ComponentFlow { reason, message: message.into(), reporting: 2, pods: 2, outdated_nodes: vec![] },
            )]);
            let logs = ComponentStatus {
                ready: true,
                replicas: 2,
                ready_replicas: 2,
                flow: flow_status(Component::Logs, Some(&verdicts)),
                ..Default::default()
            };
            let o = Observed {
                logs: Some(logs),
                metrics: None,
                traces: None,
                greptime: None,
                outputs: Vec::new(),
                cloud: None,
                generation: Some(1),
            };
            compose(None, o)
        };
        let st = with(Reason::SinkStalled, "node a: sink loki: 140 events waiting, 0 received, none sent");
        assert_eq!(st.phase, Some(Phase::Degraded));
        assert_eq!(
            st.message.as_deref(),
            Some("logs: SinkStalled: node a: sink loki: 140 events waiting, 0 received, none sent")
        );
        let c = st.conditions.iter().find(|c| c.type_ == condition::FLOW_HEALTHY).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "SinkStalled"));
        let st = with(Reason::Unknown, "1 of 2 collector pods could not be read");
        assert_eq!(st.phase, Some(Phase::Running), "Unknown never degrades");
        let c = st.conditions.iter().find(|c| c.type_ == condition::FLOW_HEALTHY).unwrap();
        assert_eq!(c.status, "Unknown");
        let st = with(Reason::NoDataReceived, "node a: the sources received no events");
        assert_eq!(st.phase, Some(Phase::Running), "quiet pods are no problem");
        let c = st.conditions.iter().find(|c| c.type_ == condition::FLOW_HEALTHY).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "NoDataReceived"));
        let st = with(Reason::Healthy, "");
        let c = st.conditions.iter().find(|c| c.type_ == condition::FLOW_HEALTHY).unwrap();
        assert_eq!((c.status.as_str(), c.message.as_str()), ("True", "logs: Healthy"));
    }
}
