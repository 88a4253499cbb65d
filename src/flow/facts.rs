//! What the operator makes of its collectors' summaries: one verdict per component of a
//! resource, from the summaries of its pods (each pod's damped reason, and whether it runs the
//! configuration its pod was given).

use serde::{Deserialize, Serialize};

use super::health::{Flow, Reason};

/// What a collector pod's sidecar answers on `/flow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The damped reason: what status should say.
    pub reason: Reason,
    /// The latest verdict with that reason: its message explains it (None when healthy or
    /// unknown).
    #[serde(default)]
    pub shown: Option<Flow>,
    /// The latest undamped verdict over the window (None before the first full window or
    /// while Vector cannot be read).
    pub latest: Option<Flow>,
    /// The configuration id Vector reports it has loaded.
    pub config_id: Option<String>,
    /// Pods this collector reads on its node.
    pub selected: usize,
    pub window_secs: u64,
    /// A shared collector: each tenant's own summary (its sources and sinks only), by tenant id.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tenants: std::collections::BTreeMap<String, Summary>,
}

/// One collector pod as the operator read it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodReport {
    pub node: String,
    /// The pod's `e6data.io/config-id` annotation: what its Vector should report.
    pub expected_config_id: Option<String>,
    /// None: the sidecar did not answer.
    pub summary: Option<Summary>,
}

/// One component's verdict over its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFlow {
    pub reason: Reason,
    /// The worst pod's node and what is wrong there; empty when healthy.
    pub message: String,
    /// Pods that answered.
    pub reporting: usize,
    pub pods: usize,
    /// Nodes whose collector runs another configuration than it was given.
    pub outdated_nodes: Vec<String>,
}

/// The worst known problem wins; with none, any pod that could not be read makes the answer
/// `Unknown` (never a healthy guess).
pub fn aggregate(reports: &[PodReport]) -> ComponentFlow {
    // During a rollout, pods not yet replaced may already have hot-reloaded the new ConfigMap:
    // any configuration some pod of the component was given is a current one.
    let given: std::collections::BTreeSet<&str> =
        reports.iter().filter_map(|r| r.expected_config_id.as_deref()).collect();
    let mut outdated_nodes = Vec::new();
    let mut verdicts: Vec<(Reason, String, &str)> = Vec::new();
    let mut unknown = 0;
    for r in reports {
        let Some(s) = &r.summary else {
            unknown += 1;
            continue;
        };
        let outdated = match (&r.expected_config_id, &s.config_id) {
            (Some(_), Some(got)) => !given.contains(got.as_str()),
            _ => false,
        };
        if outdated {
            outdated_nodes.push(r.node.clone());
            let got = s.config_id.as_deref().unwrap_or_default();
            let want = r.expected_config_id.as_deref().unwrap_or_default();
            verdicts.push((Reason::ConfigOutdated, format!("runs config {got}, was given {want}"), &r.node));
        } else if s.reason == Reason::Unknown {
            unknown += 1;
        } else {
            let message = s.shown.as_ref().map(|f| f.message.clone()).unwrap_or_default();
            verdicts.push((s.reason, message, &r.node));
        }
    }
    outdated_nodes.sort();
    let reporting = reports.len() - reports.iter().filter(|r| r.summary.is_none()).count();
    let problems: Vec<_> = verdicts.iter().filter(|v| v.0.is_problem()).collect();
    // The first pod (by report order) of the worst reason names it.
    let (reason, message) = match problems.iter().min_by_key(|v| std::cmp::Reverse(v.0)) {
        Some((reason, message, node)) => {
            let same = problems.iter().filter(|v| v.0 == *reason).count();
            let more = if same > 1 { format!(" (and {} more nodes)", same - 1) } else { String::new() };
            (*reason, format!("node {node}: {message}{more}"))
        }
        None if reports.is_empty() => (Reason::Unknown, "no collector pod runs".to_string()),
        None if unknown > 0 => {
            (Reason::Unknown, format!("{unknown} of {} collector pods could not be read", reports.len()))
        }
        None => match verdicts.iter().find(|v| v.0 == Reason::NoDataReceived) {
            Some((r, message, node)) => (*r, format!("node {node}: {message}")),
            None => (Reason::Healthy, String::new()),
        },
    };
    ComponentFlow { reason, message, reporting, pods: reports.len(), outdated_nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, reason: Option<Reason>, id: &str) -> PodReport {
        PodReport {
            node: node.into(),
            expected_config_id: Some("c1".into()),
            summary: reason.map(|reason| Summary {
                reason,
                latest: None,
                shown: Some(Flow {
                    reason,
                    message: format!("{reason} here"),
                    sinks: vec![],
                    config_id: Some(id.into()),
                }),
                config_id: Some(id.into()),
                tenants: Default::default(),
                selected: 1,
                window_secs: 60,
            }),
        }
    }

    #[test]
    fn worst_known_problem_then_unknown_then_healthy() {
        let healthy = report("a", Some(Reason::Healthy), "c1");
        assert_eq!(aggregate(&[healthy.clone(), healthy.clone()]).reason, Reason::Healthy);
        let f = aggregate(&[healthy.clone(), report("b", None, "c1")]);
        assert_eq!(
            (f.reason, f.message.as_str(), f.reporting),
            (Reason::Unknown, "1 of 2 collector pods could not be read", 1)
        );
        let f = aggregate(&[
            report("b", Some(Reason::SinkStalled), "c1"),
            report("c", None, "c1"),
            report("d", Some(Reason::SinkStalled), "c1"),
            report("e", Some(Reason::SinkErrors), "c1"),
        ]);
        assert_eq!(f.reason, Reason::SinkStalled);
        assert_eq!(f.message, "node b: SinkStalled here (and 1 more nodes)");
        let f = aggregate(&[healthy, report("x", Some(Reason::Healthy), "c0")]);
        assert_eq!((f.reason, f.outdated_nodes.clone()), (Reason::ConfigOutdated, vec!["x".to_string()]));
        assert_eq!(f.message, "node x: runs config c0, was given c1");
        assert_eq!(aggregate(&[]).reason, Reason::Unknown);
        // Mid-rollout: a pod given c0 that already hot-reloaded c1 (another pod's config) is fine.
        let mut old_pod = report("y", Some(Reason::Healthy), "c1");
        old_pod.expected_config_id = Some("c0".into());
        assert_eq!(aggregate(&[report("a", Some(Reason::Healthy), "c1"), old_pod]).reason, Reason::Healthy);
        // Silence informs but is no problem; a problem elsewhere wins.
        let quiet = report("q", Some(Reason::NoDataReceived), "c1");
        assert_eq!(
            aggregate(&[report("a", Some(Reason::Healthy), "c1"), quiet.clone()]).reason,
            Reason::NoDataReceived
        );
        assert_eq!(aggregate(&[quiet, report("b", Some(Reason::DataDropped), "c1")]).reason, Reason::DataDropped);
    }
}
