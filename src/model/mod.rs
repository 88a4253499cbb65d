//! Validate a `MonitoringServices` and what was read about it ([`Dereferenced`]) into a
//! complete, defaulted [`Model`]: the only input of rendering and of status. Pure: no I/O.
//! Everything the apiserver schema cannot check (cross-object facts such as the CR's own
//! namespace, `${VAR}` references, label and quantity syntax) is checked here, and a failure
//! names the offending field so status can say exactly what to fix.

mod collector;
mod greptime;
mod inputs;
mod outputs;
mod policy;
pub mod shared;
mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, Toleration};
use kube::ResourceExt;

use crate::api::{
    Cloud, Compression, DEFAULT_IMAGE_TAG, EncodingCodec, MonitoringServices, MonitoringServicesSpec, PullPolicy,
    ResourceSpec, S3Partition, SelectionSpec,
};
pub use greptime::{Greptime, GreptimeHealth, GreptimeTarget};
pub use inputs::{
    DEFAULT_DISCOVERY_IMAGE, DEFAULT_FLOW_WINDOW_SECS, Dereferenced, GreptimeLookup, OperatorSettings, PipelineCheck,
    SecretInfo,
};
pub use outputs::{
    HttpAuth, LOKI_LABELS, Loki, MountedSecret, RemoteWrite, SECRETS_DIR, SecretFile, Tls, backend_name,
    referenced_secrets,
};
pub use policy::{Policy, Violation};
pub use validate::{SpecError, check_label, check_quantity, substitute};
use validate::{check_dns_subdomain, err};

/// How collectors get Kubernetes API access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Namespaced Role: logs are read from this namespace's pod log directories by path.
    Namespace,
    /// ClusterRole: Vector's kubernetes_logs source with API-side selectors.
    Cluster,
}

/// Defaulted, validated desired state: complete, nothing is filled in later.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub namespace: String,
    pub workspace: String,
    pub tenant: String,
    /// `spec.cloud`, else the cloud detected from the Nodes.
    pub cloud: Option<Cloud>,
    pub scope: Scope,
    /// ServiceAccount the pods run as.
    pub service_account: String,
    /// Whether the operator creates that ServiceAccount.
    pub create_service_account: bool,
    /// Whether the operator creates the Role/ClusterRole and binding.
    pub create_rbac: bool,
    pub pod: PodSettings,
    pub logs: Option<Collector>,
    pub metrics: Option<MetricsCollector>,
    pub traces: Option<Traces>,
    /// The GreptimeDB integration, when `greptimeRef` is set: what to render and its health.
    pub greptime: Option<Greptime>,
    /// Image of the discovery sidecar (this operator's own image).
    pub discovery_image: String,
    /// Shortest flow window of the sidecars (the admin's `--flow-window-secs`).
    pub flow_window_secs: u64,
    /// A NetworkPolicy per collector (the admin's `--collector-network-policy`).
    pub network_policy: bool,
    /// The shared collection mode (the admin's `--collection-mode=shared`): no collector of
    /// this resource's own; its part of the shared collectors.
    pub shared: Option<Shared>,
}

/// A resource served by the shared collectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Shared {
    /// Where the shared collectors run (the admin's namespace).
    pub namespace: String,
    pub tenant: shared::Tenant,
}

impl Model {
    /// Where the real-time sinks write, when they are rendered.
    pub fn greptime_target(&self) -> Option<&GreptimeTarget> {
        self.greptime.as_ref().and_then(|g| g.target.as_ref())
    }
}

/// Scheduling and pull settings shared by both DaemonSets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodSettings {
    pub image_pull_secrets: Vec<String>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: BTreeMap<String, String>,
    pub affinity: Option<Affinity>,
}

/// One collector (logs or metrics), defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    pub image: String,
    pub pull_policy: Option<PullPolicy>,
    pub resources: ResourceSpec,
    pub env: Vec<EnvVar>,
    pub archive: Archive,
    pub selection: SelectionSpec,
    /// Logs to Loki (logs collector only).
    pub loki: Option<Loki>,
    /// Secrets the pods mount for the outputs, by name.
    pub secrets: BTreeMap<String, MountedSecret>,
}

/// Metrics collector: the common part plus scrape settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsCollector {
    pub common: Collector,
    pub scrape_interval_secs: u64,
    pub scrape_timeout_secs: u64,
    pub scrape_annotation: String,
    pub port_annotation: String,
    pub path_annotation: String,
    /// Metrics to a Prometheus remote-write endpoint.
    pub remote_write: Option<RemoteWrite>,
}

/// The workload trace endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Traces {
    pub image: String,
    pub pull_policy: Option<PullPolicy>,
    pub resources: ResourceSpec,
    pub replicas: i32,
    /// OTLP/HTTP traces URL of Tempo (`.../v1/traces`).
    pub tempo_traces_url: String,
    pub greptime: bool,
}

/// S3 archive settings with `${VAR}`s substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub prefix: String,
    pub partition: S3Partition,
    pub batch_max_bytes: u64,
    pub batch_timeout_secs: u64,
    pub compression: Compression,
    pub codec: EncodingCodec,
}

/// Validate and default `ms` with what the dereference step read for it.
pub fn build(ms: &MonitoringServices, deref: &Dereferenced) -> Result<Model, SpecError> {
    let name = ms.name_any();
    let namespace = ms.namespace().ok_or_else(|| err("metadata.namespace", "must be set"))?;
    let spec = &ms.spec;
    let scope = if spec.use_cluster_role { Scope::Cluster } else { Scope::Namespace };
    let (service_account, create_service_account) = service_account(&name, spec)?;
    let secrets = || outputs::Secrets { found: &deref.secrets, namespace: &namespace, mounts: Default::default() };
    let logs = match &spec.vector_logs {
        Some(l) if l.enabled => {
            let mut c = collector::logs(l, spec, scope, &namespace)?;
            if let Some(loki) = &l.loki {
                let mut s = secrets();
                c.loki = Some(outputs::loki(loki, &spec.tenant, &mut s)?);
                c.secrets = s.mounts;
            }
            Some(c)
        }
        _ => None,
    };
    let metrics = match &spec.vector_metrics {
        Some(m) if m.enabled => {
            let mut c = collector::metrics(m, spec, scope, &namespace)?;
            if let Some(rw) = &m.remote_write {
                let mut s = secrets();
                c.remote_write = Some(outputs::remote_write(rw, &spec.tenant, &mut s)?);
                c.common.secrets = s.mounts;
            }
            Some(c)
        }
        _ => None,
    };
    let mut m = Model {
        pod: pod_settings(spec)?,
        traces: traces(spec)?,
        greptime: spec.greptime_ref.as_ref().map(|r| greptime::build(r, &namespace, deref.greptime.as_ref())),
        name,
        namespace,
        workspace: spec.workspace.clone(),
        tenant: spec.tenant.clone(),
        cloud: spec.cloud.or(deref.detected_cloud),
        scope,
        service_account,
        create_service_account,
        create_rbac: spec.auto_create_rbac,
        logs,
        metrics,
        discovery_image: deref.operator.discovery_image.clone(),
        flow_window_secs: deref.operator.flow_window_secs,
        network_policy: deref.operator.network_policy,
        shared: None,
    };
    if let Some(ns) = &deref.operator.shared_namespace {
        if *ns == m.namespace && m.name == shared::INSTANCE {
            return Err(err(
                "metadata.name",
                format!("{:?} is the shared collectors' own name in this namespace", shared::INSTANCE),
            ));
        }
        let tenant = shared::tenant(&m, &deref.secret_values)?;
        m.shared = Some(Shared { namespace: ns.clone(), tenant });
    }
    Ok(m)
}

/// The ServiceAccount the pods run as, and whether the operator creates it.
fn service_account(name: &str, spec: &MonitoringServicesSpec) -> Result<(String, bool), SpecError> {
    let own_sa = format!("{name}-vector");
    Ok(match (&spec.service_account, spec.auto_create_rbac) {
        // Naming the account we create anyway (e.g. after annotating it for IRSA) keeps it ours.
        (Some(sa), true) if *sa == own_sa => (own_sa, true),
        (Some(sa), _) => (sa.clone(), false),
        (None, true) => (own_sa, true),
        (None, false) => {
            check_dns_subdomain("spec.workspace", &spec.workspace.to_lowercase())?;
            (spec.workspace.to_lowercase(), false)
        }
    })
}

fn pod_settings(spec: &MonitoringServicesSpec) -> Result<PodSettings, SpecError> {
    for (i, s) in spec.image_pull_secrets.iter().enumerate() {
        check_dns_subdomain(&format!("spec.imagePullSecrets[{i}]"), s)?;
    }
    let mut node_selector = spec.node_selector.clone();
    for (k, v) in &node_selector {
        check_label("spec.nodeSelector", k, v)?;
    }
    if let Some(pool) = &spec.karpenter_node_pool {
        node_selector.insert("karpenter.sh/nodepool".into(), pool.clone());
    }
    let tolerations = spec.tolerations.clone().unwrap_or_else(|| {
        // Collectors belong on every node, tainted ones included.
        vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]
    });
    Ok(PodSettings {
        image_pull_secrets: spec.image_pull_secrets.clone(),
        tolerations,
        node_selector,
        affinity: spec.affinity.clone(),
    })
}

fn traces(spec: &MonitoringServicesSpec) -> Result<Option<Traces>, SpecError> {
    let Some(t) = spec.traces.as_ref().filter(|t| t.enabled) else {
        return Ok(None);
    };
    let base = t
        .tempo_endpoint
        .as_deref()
        .ok_or_else(|| err("spec.traces.tempoEndpoint", "required when traces is enabled"))?;
    if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains(char::is_whitespace) {
        return Err(err("spec.traces.tempoEndpoint", "must be an absolute http:// or https:// URL"));
    }
    let resources = t.resources.clone().unwrap_or_default();
    collector::check_resources("spec.traces.resources", &resources)?;
    let image = t.image.clone().unwrap_or_default();
    let repo = image.repository.unwrap_or_else(|| spec.image_repository.clone());
    Ok(Some(Traces {
        image: format!("{repo}:{}", image.tag.unwrap_or_else(|| DEFAULT_IMAGE_TAG.to_string())),
        pull_policy: image.pull_policy,
        resources,
        replicas: t.replicas.max(1),
        tempo_traces_url: format!("{}/v1/traces", base.trim_end_matches('/').trim_end_matches("/v1/traces")),
        greptime: t.greptime_enabled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(spec: serde_json::Value) -> MonitoringServices {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn field_of(spec: serde_json::Value) -> String {
        build(&ms(spec), &Dereferenced::default()).unwrap_err().field
    }

    #[test]
    fn text_codec_on_metrics_is_refused() {
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorMetrics": {"s3Bucket": "b", "s3Region": "r", "encodingCodec": "text"}});
        assert_eq!(field_of(spec), "spec.vectorMetrics.encodingCodec");
        // Logs keep it: a log record's text is its message.
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "encodingCodec": "text"}});
        assert!(build(&ms(spec), &Dereferenced::default()).is_ok());
    }

    #[test]
    fn variables_that_change_how_vector_runs_are_refused() {
        for name in ["VECTOR_CONFIG", "VECTOR_SELF_NODE_NAME", "HTTPS_PROXY", "no_proxy", "LD_PRELOAD"] {
            let spec = serde_json::json!({"workspace": "w", "tenant": "t",
                "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "environmentVariables": {name: "x"}}});
            assert_eq!(field_of(spec), format!("spec.vectorLogs.environmentVariables.{name}"));
        }
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "environmentVariables": {"AWS_ACCESS_KEY_ID": "x", "MY_VECTOR": "y"}}});
        assert!(build(&ms(spec), &Dereferenced::default()).is_ok());
    }

    #[test]
    fn bad_quantities_name_their_field() {
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "resources": {"cpu": "1.2.3"}}});
        assert_eq!(field_of(spec), "spec.vectorLogs.resources.cpu");
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorMetrics": {"s3Bucket": "b", "s3Region": "r", "resources": {"memory": "5Ki5"}}});
        assert_eq!(field_of(spec), "spec.vectorMetrics.resources.memory");
    }

    #[test]
    fn the_model_is_complete_from_its_inputs() {
        let spec = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorLogs": {"s3Bucket": "b", "s3Region": "r"},
            "greptimeRef": {"name": "g", "namespace": "gs"}});
        let deref = Dereferenced {
            detected_cloud: Some(Cloud::Gcp),
            greptime: Some(GreptimeLookup::Found {
                endpoint: "g-frontend.gs.svc:4000".into(),
                phase: Some("Error".into()),
                pipeline: PipelineCheck::NotChecked,
            }),
            operator: OperatorSettings { discovery_image: "img:1".into(), ..Default::default() },
            ..Default::default()
        };
        let m = build(&ms(spec.clone()), &deref).unwrap();
        assert_eq!((m.cloud, m.discovery_image.as_str()), (Some(Cloud::Gcp), "img:1"));
        // A cluster in trouble keeps its sinks (no rollout) and reports the trouble.
        let g = m.greptime.unwrap();
        assert_eq!(g.target.unwrap().endpoint, "g-frontend.gs.svc:4000");
        assert_eq!((g.health.ready, g.health.reason), (false, crate::api::reason::CLUSTER_NOT_READY));
        let missing =
            Dereferenced { greptime: Some(GreptimeLookup::Missing { crd_installed: true }), ..Dereferenced::default() };
        let g = build(&ms(spec), &missing).unwrap().greptime.unwrap();
        assert!(g.target.is_none());
        assert_eq!(g.health.reason, crate::api::reason::CLUSTER_NOT_FOUND);
    }
}
