//! `status` of `MonitoringServices` (seed section 5) and the condition vocabulary.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lifecycle phase (seed section 5.2).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// Initial state, setup starting.
    #[default]
    Pending,
    /// Child resources created, collectors not yet ready.
    Creating,
    /// All components healthy.
    Running,
    /// Some components unhealthy.
    Degraded,
    /// Setup failed (the message and the Ready condition say why and which field).
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Creating => "Creating",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
        }
    }
    pub const ALL: [Phase; 5] = [Phase::Pending, Phase::Creating, Phase::Running, Phase::Degraded, Phase::Failed];
}

/// Observed state of MonitoringServices.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringServicesStatus {
    /// Current lifecycle phase: Pending, Creating, Running, Degraded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Human-readable status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Overall readiness: every enabled collector is ready on every node it is scheduled to.
    #[serde(default)]
    pub ready: bool,
    /// Cloud provider in use (spec.cloud, or auto-detected from Node spec.providerID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// metadata.generation this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Logs DaemonSet status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_logs_status: Option<ComponentStatus>,
    /// Metrics DaemonSet status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_metrics_status: Option<ComponentStatus>,
    /// Trace endpoint (Deployment) status, when spec.traces is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_traces_status: Option<ComponentStatus>,
    /// GreptimeDB connection status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greptimedb_status: Option<GreptimeDbIntegrationStatus>,
    /// The optional outputs the collectors send to (Loki, Prometheus remote write).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputStatus>,
    /// Detailed conditions: Ready, SpecValid, LogsReady, MetricsReady, TracesReady, GreptimeDBReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Status of one collector DaemonSet.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The collector runs ready on every node it is scheduled to.
    pub ready: bool,
    /// Nodes that should run the collector.
    pub replicas: i32,
    /// Nodes where the collector is ready.
    pub ready_replicas: i32,
    /// Human-readable state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it is (not) ready, one word: the reason of its condition (AllNodesReady,
    /// NotAllNodesReady, PodsRefused, NoEligibleNode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether data actually flows, from the collectors' own measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowStatus>,
    /// Where the collectors run: `namespace/name` of the DaemonSet (Deployment for traces);
    /// in the shared collection mode, the shared collectors in the admin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// What the collector pods of one component report about delivery (damped, per node, worst
/// node shown).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FlowStatus {
    /// Healthy, Unknown, NoDataReceived, BufferFillingUp, SinkErrors, ConfigOutdated,
    /// SinkStalled or DataDropped.
    pub reason: String,
    /// The worst node and what is wrong there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Collector pods whose summary was read, of `pods` running.
    pub pods_reporting: i32,
    pub pods: i32,
    /// Nodes whose collector runs another configuration than its pod was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outdated_nodes: Vec<String>,
}

/// One configured output. Its delivery is measured by the collectors themselves
/// (`vector_component_sent_events_total` / `vector_component_errors_total` with
/// `component_id` = `sink`), which the shipped alerts watch.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OutputStatus {
    /// `loki` or `remoteWrite`.
    pub name: String,
    /// The collector sending: `logs` or `metrics`.
    pub component: String,
    /// Where it sends.
    pub endpoint: String,
    /// The tenant it sends as (X-Scope-OrgID).
    pub tenant_id: String,
    /// The Vector sink's component id in the collectors' metrics.
    pub sink: String,
    /// The Secret keys it reads (`secret/key`), mounted into the collector pods; never values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
}

/// State of the GreptimeDB integration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GreptimeDbIntegrationStatus {
    /// The referenced GreptimeDBCluster exists.
    pub discovered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_namespace: Option<String>,
    /// The log pipeline used by the logs sink exists in GreptimeDB.
    #[serde(default)]
    pub pipeline_ready: bool,
    /// Frontend endpoint (host:port) the collectors write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Database written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

/// Condition types.
pub mod condition {
    /// Overall readiness; its reason is the phase's cause.
    pub const READY: &str = "Ready";
    /// The spec passed the operator's semantic validation.
    pub const SPEC_VALID: &str = "SpecValid";
    /// The logs DaemonSet is ready on every node.
    pub const LOGS_READY: &str = "LogsReady";
    /// The metrics DaemonSet is ready on every node.
    pub const METRICS_READY: &str = "MetricsReady";
    /// The GreptimeDB integration works (cluster found and ready, log pipeline present).
    pub const GREPTIMEDB_READY: &str = "GreptimeDBReady";
    /// The trace endpoint has all its replicas ready.
    pub const TRACES_READY: &str = "TracesReady";
    /// The collectors deliver what they receive (their own measurements, per node).
    pub const FLOW_HEALTHY: &str = "FlowHealthy";
}

/// Condition reasons (besides the phase names, which are the Ready condition's reasons).
pub mod reason {
    /// SpecValid=False: the operator's validation refused a field (the message names it).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Ready=False: the apiserver refused a rendered child (the message names child and field).
    pub const APPLY_REJECTED: &str = "ApplyRejected";
    /// Ready=False, SpecValid=False: the cluster admin's tenancy policy refuses a field (the
    /// message names it); the resource's children were removed.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// SpecValid=True.
    pub const VALID: &str = "Valid";
    /// LogsReady/MetricsReady/TracesReady=True.
    pub const ALL_NODES_READY: &str = "AllNodesReady";
    /// LogsReady/MetricsReady/TracesReady=False.
    pub const NOT_ALL_NODES_READY: &str = "NotAllNodesReady";
    /// LogsReady/MetricsReady/TracesReady=False: the apiserver refused the collector's pods
    /// (Pod Security admission, a quota, a webhook); the message has its answer.
    pub const PODS_REFUSED: &str = "PodsRefused";
    /// LogsReady/MetricsReady=False: no node matches the collector's scheduling constraints.
    pub const NO_ELIGIBLE_NODE: &str = "NoEligibleNode";
    /// GreptimeDBReady=False: the referenced GreptimeDBCluster (or its CRD) does not exist.
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    /// GreptimeDBReady=False: the cluster exists but reports a phase other than Running/Updating.
    pub const CLUSTER_NOT_READY: &str = "ClusterNotReady";
    /// GreptimeDBReady=False: the log pipeline could not be created or confirmed.
    pub const PIPELINE_NOT_READY: &str = "PipelineNotReady";
    /// GreptimeDBReady=True.
    pub const READY: &str = "Ready";
}
