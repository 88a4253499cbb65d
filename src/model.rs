//! Validate a `MonitoringServices` into a fully defaulted [`Model`]: the only input rendering
//! sees. Pure: no I/O. Everything the apiserver schema cannot check (cross-object facts such
//! as the CR's own namespace, `${VAR}` references, label syntax) is checked here, and a
//! failure names the offending field so status can say exactly what to fix.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, Toleration};
use kube::ResourceExt;

use crate::api::{
    ArchiveSpec, Cloud, Compression, ContainerSpec, DEFAULT_IMAGE_TAG, EncodingCodec, EnvValue, GreptimeDbRef,
    MonitoringServices, PullPolicy, ResourceSpec, S3Partition, SelectionSpec,
};

/// A spec the schema accepted but that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// JSON path of the offending field, e.g. `spec.vectorLogs.s3Bucket`.
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

/// How collectors get Kubernetes API access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Namespaced Role: logs are read from this namespace's pod log directories by path.
    Namespace,
    /// ClusterRole: Vector's kubernetes_logs source with API-side selectors.
    Cluster,
}

/// Defaulted, validated desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub namespace: String,
    pub workspace: String,
    pub tenant: String,
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
    pub greptime: Option<GreptimeDbRef>,
    /// Where GreptimeDB is, once the referenced cluster was found (set by the controller,
    /// or assumed at its default address by `render`). None: no real-time sinks.
    pub greptime_target: Option<GreptimeTarget>,
    /// Image of the discovery sidecar (this operator's own image).
    pub discovery_image: String,
}

/// Default image for the per-node discovery sidecar: this operator's own image.
pub const DEFAULT_DISCOVERY_IMAGE: &str = concat!("ghcr.io/e6data/monitoring-operator:", env!("CARGO_PKG_VERSION"));

/// A reachable GreptimeDB for the real-time branch.
#[derive(Debug, Clone, PartialEq)]
pub struct GreptimeTarget {
    /// `host:port` of the frontend's HTTP API.
    pub endpoint: String,
    pub database: String,
    pub logs_table: String,
    /// Log pipeline the logs sink writes through.
    pub pipeline_name: String,
    pub logs: bool,
    pub metrics: bool,
}

impl GreptimeTarget {
    /// The target for `r` at `endpoint`.
    pub fn new(r: &GreptimeDbRef, endpoint: String) -> GreptimeTarget {
        GreptimeTarget {
            endpoint,
            database: r.database.clone(),
            logs_table: r.logs_table.clone(),
            pipeline_name: crate::greptime::pipeline_name(),
            logs: r.logs_enabled,
            metrics: r.metrics_enabled,
        }
    }
}

impl Model {
    /// Namespace of the referenced GreptimeDBCluster (default: the resource's own).
    pub fn greptime_namespace(&self) -> Option<String> {
        self.greptime.as_ref().map(|g| g.namespace.clone().unwrap_or_else(|| self.namespace.clone()))
    }

    /// The GreptimeDB target at the cluster's default frontend address
    /// (`<cluster>-frontend.<namespace>.svc:4000`), used when no cluster can be asked.
    pub fn assumed_greptime_target(&self) -> Option<GreptimeTarget> {
        let r = self.greptime.as_ref()?;
        let ns = self.greptime_namespace()?;
        Some(GreptimeTarget::new(r, crate::greptime::default_endpoint(&r.name, &ns)))
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

/// Validate and default. `namespace` is the CR's namespace.
pub fn build(ms: &MonitoringServices) -> Result<Model, SpecError> {
    let name = ms.name_any();
    let namespace = ms.namespace().ok_or_else(|| err("metadata.namespace", "must be set"))?;
    let spec = &ms.spec;
    let scope = if spec.use_cluster_role { Scope::Cluster } else { Scope::Namespace };

    let own_sa = format!("{name}-vector");
    let (service_account, create_service_account) = match (&spec.service_account, spec.auto_create_rbac) {
        // Naming the account we create anyway (e.g. after annotating it for IRSA) keeps it ours.
        (Some(sa), true) if *sa == own_sa => (own_sa.clone(), true),
        (Some(sa), _) => (sa.clone(), false),
        (None, true) => (own_sa, true),
        (None, false) => {
            check_dns_subdomain("spec.workspace", &spec.workspace.to_lowercase())?;
            (spec.workspace.to_lowercase(), false)
        }
    };

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
    let pod = PodSettings {
        image_pull_secrets: spec.image_pull_secrets.clone(),
        tolerations,
        node_selector,
        affinity: spec.affinity.clone(),
    };

    let logs = match &spec.vector_logs {
        Some(l) if l.enabled => Some(collector(
            "spec.vectorLogs",
            &spec.image_repository,
            &l.s3_prefix,
            &l.archive,
            &l.selection,
            &l.container,
            scope,
            &namespace,
        )?),
        _ => None,
    };
    let metrics = match &spec.vector_metrics {
        Some(m) if m.enabled => {
            if m.scrape_timeout >= m.scrape_interval {
                return Err(err("spec.vectorMetrics.scrapeTimeout", "must be less than scrapeInterval"));
            }
            Some(MetricsCollector {
                common: collector(
                    "spec.vectorMetrics",
                    &spec.image_repository,
                    &m.s3_prefix,
                    &m.archive,
                    &m.selection,
                    &m.container,
                    scope,
                    &namespace,
                )?,
                scrape_interval_secs: positive("spec.vectorMetrics.scrapeInterval", m.scrape_interval.into())?,
                scrape_timeout_secs: positive("spec.vectorMetrics.scrapeTimeout", m.scrape_timeout.into())?,
                scrape_annotation: m.prometheus_pod_annotation.clone(),
                port_annotation: m.prometheus_port_annotation.clone(),
                path_annotation: m.prometheus_path_annotation.clone(),
            })
        }
        _ => None,
    };

    let traces = match &spec.traces {
        Some(t) if t.enabled => {
            let base = t
                .tempo_endpoint
                .as_deref()
                .ok_or_else(|| err("spec.traces.tempoEndpoint", "required when traces is enabled"))?;
            if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains(char::is_whitespace) {
                return Err(err("spec.traces.tempoEndpoint", "must be an absolute http:// or https:// URL"));
            }
            let image = t.image.clone().unwrap_or_default();
            let repo = image.repository.unwrap_or_else(|| spec.image_repository.clone());
            Some(Traces {
                image: format!("{repo}:{}", image.tag.unwrap_or_else(|| DEFAULT_IMAGE_TAG.to_string())),
                pull_policy: image.pull_policy,
                resources: t.resources.clone().unwrap_or_default(),
                replicas: t.replicas.max(1),
                tempo_traces_url: format!("{}/v1/traces", base.trim_end_matches('/').trim_end_matches("/v1/traces")),
                greptime: t.greptime_enabled,
            })
        }
        _ => None,
    };

    Ok(Model {
        name,
        namespace,
        workspace: spec.workspace.clone(),
        tenant: spec.tenant.clone(),
        cloud: spec.cloud,
        scope,
        service_account,
        create_service_account,
        create_rbac: spec.auto_create_rbac,
        pod,
        logs,
        metrics,
        traces,
        greptime: spec.greptime_ref.clone(),
        greptime_target: None,
        discovery_image: DEFAULT_DISCOVERY_IMAGE.into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn collector(
    path: &str,
    image_repository: &str,
    prefix: &str,
    archive: &ArchiveSpec,
    selection: &SelectionSpec,
    container: &ContainerSpec,
    scope: Scope,
    namespace: &str,
) -> Result<Collector, SpecError> {
    let vars = &container.config_variables;
    for k in vars.keys() {
        if !is_env_name(k) {
            return Err(err(format!("{path}.configVariables"), format!("{k:?} is not a valid variable name")));
        }
    }
    let sub =
        |field: &str, v: &str| substitute(&format!("{path}.{field}"), v, vars, &format!("{path}.configVariables"));
    let required = |field: &str, v: &Option<String>| -> Result<String, SpecError> {
        let v = v.as_deref().ok_or_else(|| err(format!("{path}.{field}"), "required when the component is enabled"))?;
        let v = sub(field, v)?;
        if v.trim().is_empty() {
            return Err(err(format!("{path}.{field}"), "must not be empty"));
        }
        Ok(v)
    };
    let bucket = required("s3Bucket", &archive.s3_bucket)?;
    if bucket.contains('/') || bucket.starts_with("s3:") {
        return Err(err(format!("{path}.s3Bucket"), "must be a bucket name without s3:// or /"));
    }
    let region = required("s3Region", &archive.s3_region)?;
    let endpoint = archive.s3_endpoint.as_deref().map(|e| sub("s3Endpoint", e)).transpose()?;
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(err(format!("{path}.s3Endpoint"), "must be an absolute http:// or https:// URL"));
    }
    let prefix = sub("s3Prefix", prefix)?;
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.is_empty() || prefix.contains("{{") || prefix.contains('%') || prefix.contains("..") {
        return Err(err(format!("{path}.s3Prefix"), "must be a non-empty literal key prefix without {{, % or .."));
    }

    for (k, v) in selection.include_pod_labels.iter() {
        check_label(&format!("{path}.includePodLabels"), k, v)?;
    }
    for (k, v) in selection.exclude_pod_labels.iter() {
        check_label(&format!("{path}.excludePodLabels"), k, v)?;
    }
    if scope == Scope::Namespace {
        if let Some(other) = selection.include_namespaces.iter().find(|n| n.as_str() != namespace) {
            return Err(err(
                format!("{path}.includeNamespaces"),
                format!(
                    "namespace {other:?} is outside {namespace:?}; collecting from other namespaces needs spec.useClusterRole: true"
                ),
            ));
        }
        if selection.exclude_namespaces.iter().any(|n| n == namespace) {
            return Err(err(
                format!("{path}.excludeNamespaces"),
                format!(
                    "excludes {namespace:?}, the only namespace a namespace-scoped collector (useClusterRole: false) can read"
                ),
            ));
        }
    }

    let mut env = Vec::new();
    for (k, v) in &container.environment_variables {
        if !is_env_name(k) || RESERVED_ENV.contains(&k.as_str()) {
            return Err(err(
                format!("{path}.environmentVariables"),
                format!("{k:?} is not a valid or is a reserved (VECTOR_SELF_*) variable name"),
            ));
        }
        env.push(match v {
            EnvValue::Plain(s) => EnvVar { name: k.clone(), value: Some(s.clone()), value_from: None },
            EnvValue::Invalid(_) => {
                return Err(err(
                    format!("{path}.environmentVariables.{k}"),
                    "must be a string or an object with exactly one key, valueFrom",
                ));
            }
            EnvValue::From { value_from } => {
                let set = [
                    value_from.secret_key_ref.is_some(),
                    value_from.config_map_key_ref.is_some(),
                    value_from.field_ref.is_some(),
                    value_from.resource_field_ref.is_some(),
                ];
                if set.iter().filter(|b| **b).count() != 1 {
                    return Err(err(
                        format!("{path}.environmentVariables.{k}.valueFrom"),
                        "must set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef",
                    ));
                }
                EnvVar { name: k.clone(), value: None, value_from: Some((**value_from).clone()) }
            }
        });
    }

    let image = container.image.clone().unwrap_or_default();
    let repo = image.repository.unwrap_or_else(|| image_repository.to_string());
    let tag = image.tag.unwrap_or_else(|| DEFAULT_IMAGE_TAG.to_string());
    Ok(Collector {
        image: format!("{repo}:{tag}"),
        pull_policy: image.pull_policy,
        resources: container.resources.clone().unwrap_or_default(),
        env,
        archive: Archive {
            bucket,
            region,
            endpoint,
            prefix,
            partition: archive.s3_partition,
            batch_max_bytes: positive(&format!("{path}.batchMaxBytes"), archive.batch_max_bytes)?,
            batch_timeout_secs: positive(&format!("{path}.batchTimeoutSecs"), archive.batch_timeout_secs.into())?,
            compression: archive.compression,
            codec: archive.encoding_codec,
        },
        selection: selection.clone(),
    })
}

/// Variables the DaemonSet sets itself.
const RESERVED_ENV: [&str; 3] = ["VECTOR_SELF_NODE_NAME", "VECTOR_SELF_POD_NAME", "VECTOR_SELF_POD_NAMESPACE"];

fn positive(field: &str, v: i64) -> Result<u64, SpecError> {
    u64::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| err(field, "must be greater than 0"))
}

/// Replace every `${NAME}` in `value` from `vars`; an unknown name is an error naming `field`.
pub fn substitute(
    field: &str,
    value: &str,
    vars: &BTreeMap<String, String>,
    vars_field: &str,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| err(field, "unterminated ${ reference"))?;
        let key = &after[..end];
        let v = vars
            .get(key)
            .ok_or_else(|| err(field, format!("references ${{{key}}}, which is not defined in {vars_field}")))?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn check_dns_subdomain(field: &str, s: &str) -> Result<(), SpecError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(err(field, format!("{s:?} is not a valid Kubernetes object name"))) }
}

fn is_label_segment(s: &str, max: usize, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    s.len() <= max
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Kubernetes label key (`[prefix/]name`) and value syntax.
pub fn check_label(field: &str, key: &str, value: &str) -> Result<(), SpecError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    if !prefix_ok || !is_label_segment(name, 63, false) {
        return Err(err(field, format!("{key:?} is not a valid label key")));
    }
    if !is_label_segment(value, 63, true) {
        return Err(err(format!("{field}.{key}"), format!("{value:?} is not a valid label value")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("BUCKET".to_string(), "b1".to_string())])
    }

    #[test]
    fn substitutes_and_names_missing_variables() {
        assert_eq!(substitute("f", "x-${BUCKET}-y", &vars(), "v").unwrap(), "x-b1-y");
        let e =
            substitute("spec.vectorLogs.s3Bucket", "${NOPE}", &vars(), "spec.vectorLogs.configVariables").unwrap_err();
        assert_eq!(e.field, "spec.vectorLogs.s3Bucket");
        assert!(e.message.contains("${NOPE}") && e.message.contains("configVariables"), "{e}");
        assert!(substitute("f", "${OPEN", &vars(), "v").is_err());
    }

    #[test]
    fn label_syntax() {
        assert!(check_label("f", "app", "debug").is_ok());
        assert!(check_label("f", "example.com/app", "").is_ok());
        assert!(check_label("f", "bad key", "x").is_err());
        assert_eq!(check_label("f", "app", "bad value").unwrap_err().field, "f.app");
    }
}
