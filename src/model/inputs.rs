//! What the build needs from outside the resource: gathered by the controller's dereference
//! step from the cluster and the operator's settings, or assumed by `render -f`. Plain data.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Cloud, MonitoringServices};

/// Image of the per-node discovery sidecar when the operator cannot read its own image: the
/// name `.github/workflows/release.yaml` publishes this version under.
pub const DEFAULT_DISCOVERY_IMAGE: &str = concat!("ghcr.io/e6data/monitoring-operator:", env!("CARGO_PKG_VERSION"));

/// Operator-level settings that go into the rendered children (set by the admin, never by a
/// tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSettings {
    /// Image of the per-node discovery sidecar (this operator's image).
    pub discovery_image: String,
    /// Shortest flow window of the collectors' sidecars (longer when a batch timeout needs it).
    pub flow_window_secs: u64,
    /// The admin's `--collector-network-policy`: a NetworkPolicy per collector.
    pub network_policy: bool,
    /// The admin's `--collection-mode=shared`: the namespace of the shared collectors.
    pub shared_namespace: Option<String>,
}

/// Default shortest flow window.
pub const DEFAULT_FLOW_WINDOW_SECS: u64 = 60;

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            discovery_image: DEFAULT_DISCOVERY_IMAGE.into(),
            flow_window_secs: DEFAULT_FLOW_WINDOW_SECS,
            network_policy: false,
            shared_namespace: None,
        }
    }
}

/// Everything read for one resource before its build.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dereferenced {
    /// The cloud the Nodes report (`spec.cloud` wins over it).
    pub detected_cloud: Option<Cloud>,
    /// The referenced GreptimeDBCluster as found; None when there is no `greptimeRef`.
    pub greptime: Option<GreptimeLookup>,
    pub operator: OperatorSettings,
    /// The Secrets the outputs name, by name (in the resource's namespace): None when missing.
    pub secrets: BTreeMap<String, Option<SecretInfo>>,
    /// Shared mode only: the values of the Secret keys `environmentVariables` name.
    pub secret_values: super::shared::SecretValues,
}

/// What was read of a Secret: its key names and version, never its values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretInfo {
    pub resource_version: String,
    pub keys: BTreeSet<String>,
}

/// What the lookup of the referenced GreptimeDBCluster found.
#[derive(Debug, Clone, PartialEq)]
pub enum GreptimeLookup {
    /// No such GreptimeDBCluster (`crd_installed: false`: its CRD is not installed at all).
    Missing { crd_installed: bool },
    /// The cluster object exists.
    Found {
        /// `host:port` of its frontend's HTTP API.
        endpoint: String,
        /// `status.clusterPhase`, when reported.
        phase: Option<String>,
        /// The log pipeline check, made only while the cluster is usable and logs are enabled.
        pipeline: PipelineCheck,
    },
}

/// Outcome of making sure the log pipeline exists in GreptimeDB.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineCheck {
    /// Not checked: logs to GreptimeDB are disabled, or the cluster is not usable yet.
    NotChecked,
    Ready,
    /// GreptimeDB was unreachable or refused the pipeline (bounded message).
    Failed(String),
}

impl Dereferenced {
    /// What `render -f` assumes with no cluster to ask: no detected cloud, the referenced
    /// GreptimeDB running at its default frontend address with its pipeline in place, every
    /// named Secret present with the keys named.
    pub fn assumed(ms: &MonitoringServices) -> Dereferenced {
        let greptime = ms.spec.greptime_ref.as_ref().map(|r| {
            let ns = r.namespace.clone().or_else(|| ms.metadata.namespace.clone()).unwrap_or_default();
            GreptimeLookup::Found {
                endpoint: crate::greptime::default_endpoint(&r.name, &ns),
                phase: Some("Running".into()),
                pipeline: PipelineCheck::Ready,
            }
        });
        // Every Secret the outputs name, with the keys they name.
        let secrets = super::outputs::referenced_secrets(&ms.spec)
            .into_iter()
            .map(|(name, keys)| (name, Some(SecretInfo { resource_version: "assumed".into(), keys })))
            .collect();
        Dereferenced {
            detected_cloud: None,
            greptime,
            operator: OperatorSettings::default(),
            secrets,
            secret_values: Default::default(),
        }
    }
}
