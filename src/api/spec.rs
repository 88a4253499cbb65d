//! `spec` of `MonitoringServices` (seed section 3). Defaults live in serde attributes so the
//! generated CRD carries them and the apiserver applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::env::EnvValue;
use super::outputs::{LokiSpec, RemoteWriteSpec};
use super::schema;
use super::status::MonitoringServicesStatus;

/// Default Vector image repository.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "timberio/vector";
/// Pinned default Vector image tag (see docs/vector-notes.md: 0.57 behaviours are relied on).
pub const DEFAULT_IMAGE_TAG: &str = "0.57.0-distroless-libc";

/// MonitoringServices deploys Vector log and metrics collection for one e6data workspace:
/// a logs DaemonSet shipping container logs to S3 (and GreptimeDB) and a metrics DaemonSet
/// scraping annotated pods.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "e6data.io",
    version = "v1alpha2",
    kind = "MonitoringServices",
    plural = "monitoringservices",
    singular = "monitoringservices",
    shortname = "ms",
    namespaced,
    status = "MonitoringServicesStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready","description":"All enabled collectors ready on every node"}"#,
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant","description":"Tenant identifier"}"#,
    printcolumn = r#"{"name":"Workspace","type":"string","priority":1,"jsonPath":".spec.workspace","description":"Workspace name"}"#,
    printcolumn = r#"{"name":"Cloud","type":"string","priority":1,"jsonPath":".status.cloud","description":"Cloud provider in use"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 47").message("metadata.name must be at most 47 characters: child names such as {name}-vector-metrics-config and the app.kubernetes.io/instance label are derived from it"),
)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringServicesSpec {
    /// Workspace name. Stamped on every collected record and used in labels; also the default
    /// ServiceAccount name when autoCreateRBAC is false.
    #[schemars(schema_with = "schema::label_value")]
    pub workspace: String,

    /// Tenant identifier. Stamped on every collected record and used in labels.
    #[schemars(schema_with = "schema::label_value")]
    pub tenant: String,

    /// Cloud provider (AWS, GCP or AZURE). Auto-detected from the Nodes' spec.providerID when
    /// unset; the value in use is reported in status.cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,

    /// Vector image repository. Overridden per component by vectorLogs.image/vectorMetrics.image.
    #[serde(default = "default_image_repository")]
    #[schemars(length(min = 1))]
    pub image_repository: String,

    /// ServiceAccount the collectors run as. Unset: the operator creates {name}-vector when
    /// autoCreateRBAC is true, else the workspace name is used. Set: this existing account is
    /// used (and bound to the collector role when autoCreateRBAC is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_dns_subdomain")]
    pub service_account: Option<String>,

    /// Create the ServiceAccount and RBAC the collectors need.
    #[serde(default = "default_true", rename = "autoCreateRBAC")]
    pub auto_create_rbac: bool,

    /// true: a ClusterRole lets the collectors read pods, namespaces and nodes cluster-wide
    /// (required to collect from other namespaces). false: a namespaced Role only; logs are
    /// then read from this namespace's pod log directories without any cluster-wide access.
    #[serde(default)]
    pub use_cluster_role: bool,

    /// Names of image pull Secrets in this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,

    /// GreptimeDB integration for real-time queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greptime_ref: Option<GreptimeDbRef>,

    /// Container log collection. Absent: no log collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_logs: Option<VectorLogsSpec>,

    /// Prometheus metrics collection. Absent: no metrics collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_metrics: Option<VectorMetricsSpec>,

    /// Workload traces: an OTLP endpoint (Service `{name}-vector-otlp`, gRPC 4317 and HTTP 4318)
    /// that forwards applications' traces to Tempo, and to GreptimeDB when greptimeRef is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<TracesSpec>,

    /// Pod tolerations. Unset: the collectors tolerate every taint so they run on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node selector for the collector pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Affinity rules for the collector pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Karpenter NodePool to run on (adds the node selector karpenter.sh/nodepool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_label_value")]
    pub karpenter_node_pool: Option<String>,
}

/// Cloud provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    #[serde(rename = "AWS")]
    Aws,
    #[serde(rename = "GCP")]
    Gcp,
    #[serde(rename = "AZURE")]
    Azure,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "AWS",
            Cloud::Gcp => "GCP",
            Cloud::Azure => "AZURE",
        }
    }
}

/// Container image override.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Repository; defaults to spec.imageRepository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag; defaults to the pinned Vector release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// CPU and memory for the collector container: used as both request and limit.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct ResourceSpec {
    /// CPU, e.g. "200m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub cpu: Option<String>,
    /// Memory, e.g. "256Mi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_quantity")]
    pub memory: Option<String>,
}

/// Object-key time partitioning of archived data.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum S3Partition {
    /// One prefix per day: .../date=YYYY-MM-DD/
    Day,
    /// One prefix per hour: .../date=YYYY-MM-DD/hour=HH/
    #[default]
    Hour,
}

/// Compression of archived objects.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
    Zlib,
    Snappy,
}

/// Encoding of archived records; every codec is written one record per line.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncodingCodec {
    /// Newline-delimited JSON (one object per line).
    #[default]
    Json,
    /// The message field only.
    Text,
    /// logfmt key=value lines.
    Logfmt,
}

/// Settings shared by both collectors (flattened into each component).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSpec {
    /// S3 bucket (no s3:// prefix). Required when the component is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_bucket")]
    pub s3_bucket: Option<String>,
    /// S3 bucket region. Required when the component is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub s3_region: Option<String>,
    /// Custom S3 endpoint URL for S3-compatible stores (MinIO, Linode, DigitalOcean...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("s3Endpoint must be an absolute http:// or https:// URL"))]
    pub s3_endpoint: Option<String>,
    /// Time partitioning of object keys.
    #[serde(default)]
    pub s3_partition: S3Partition,
    /// Maximum batch size in bytes (before compression) per S3 object.
    #[serde(default = "default_batch_max_bytes")]
    #[schemars(range(min = 1024, max = 1073741824))]
    pub batch_max_bytes: i64,
    /// Maximum time in seconds a batch is held before it is written.
    #[serde(default = "default_batch_timeout_secs")]
    #[schemars(range(min = 1, max = 3600))]
    pub batch_timeout_secs: i32,
    /// Compression of S3 objects.
    #[serde(default)]
    pub compression: Compression,
    /// Encoding of S3 objects.
    #[serde(default)]
    pub encoding_codec: EncodingCodec,
}

/// Which pods a collector reads.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SelectionSpec {
    /// Namespaces to collect from. Empty: all namespaces (within what the RBAC mode allows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::namespace_list")]
    pub include_namespaces: Vec<String>,
    /// Namespaces never collected from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::namespace_list")]
    pub exclude_namespaces: Vec<String>,
    /// Only pods carrying all of these labels are collected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub include_pod_labels: BTreeMap<String, String>,
    /// Pods carrying any of these labels are not collected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_pod_labels: BTreeMap<String, String>,
}

/// Container settings shared by both collectors.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Image override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// CPU and memory (request = limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
    /// Container environment: each value is either a string or {valueFrom: {...}} as in a
    /// Pod's env (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef). Names that change
    /// how Vector itself runs make the resource Failed: VECTOR_*, HTTP(S)_PROXY, ALL_PROXY,
    /// NO_PROXY (either case), LD_PRELOAD, LD_LIBRARY_PATH.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, EnvValue>,
    /// Values substituted for ${NAME} references in this component's string fields when the
    /// Vector configuration is rendered (Vector 0.57 no longer interpolates environment
    /// variables itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_variables: BTreeMap<String, String>,
}

/// Container log collection (seed section 3.3).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.s3Bucket) && has(self.s3Region))").message("s3Bucket and s3Region are required when vectorLogs is enabled"))]
pub struct VectorLogsSpec {
    /// Enable log collection.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Key prefix in the bucket.
    #[serde(default = "default_logs_prefix")]
    #[schemars(schema_with = "schema::s3_prefix")]
    pub s3_prefix: String,
    #[serde(flatten)]
    pub archive: ArchiveSpec,
    #[serde(flatten)]
    pub selection: SelectionSpec,
    #[serde(flatten)]
    pub container: ContainerSpec,
    /// Also push the logs to Loki (one tenant per resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loki: Option<LokiSpec>,
}

/// Prometheus metrics collection (seed section 3.4).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || (has(self.s3Bucket) && has(self.s3Region))").message("s3Bucket and s3Region are required when vectorMetrics is enabled"))]
#[x_kube(validation = Rule::new("self.scrapeTimeout < self.scrapeInterval").message("scrapeTimeout must be less than scrapeInterval"))]
pub struct VectorMetricsSpec {
    /// Enable metrics collection.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Key prefix in the bucket.
    #[serde(default = "default_metrics_prefix")]
    #[schemars(schema_with = "schema::s3_prefix")]
    pub s3_prefix: String,
    /// Scrape interval in seconds.
    #[serde(default = "default_scrape_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub scrape_interval: i32,
    /// Scrape timeout in seconds; must be less than scrapeInterval.
    #[serde(default = "default_scrape_timeout")]
    #[schemars(range(min = 1, max = 3600))]
    pub scrape_timeout: i32,
    /// Pod annotation that marks a scrape target (value "true").
    #[serde(default = "default_scrape_annotation")]
    #[schemars(schema_with = "schema::qualified_name")]
    pub prometheus_pod_annotation: String,
    /// Pod annotation holding the metrics port.
    #[serde(default = "default_port_annotation")]
    #[schemars(schema_with = "schema::qualified_name")]
    pub prometheus_port_annotation: String,
    /// Pod annotation holding the metrics path (default /metrics).
    #[serde(default = "default_path_annotation")]
    #[schemars(schema_with = "schema::qualified_name")]
    pub prometheus_path_annotation: String,
    #[serde(flatten)]
    pub archive: ArchiveSpec,
    #[serde(flatten)]
    pub selection: SelectionSpec,
    #[serde(flatten)]
    pub container: ContainerSpec,
    /// Also send the metrics to a Prometheus remote-write endpoint (Thanos Receive, Mimir,
    /// Cortex, Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<RemoteWriteSpec>,
}

/// Workload trace forwarding (OTLP in, OTLP/HTTP out).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || has(self.tempoEndpoint)").message("tempoEndpoint is required when traces is enabled"))]
pub struct TracesSpec {
    /// Deploy the OTLP endpoint.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Tempo's OTLP/HTTP base URL, e.g. http://tempo.monitoring.svc:4318 (traces go to
    /// <tempoEndpoint>/v1/traces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("tempoEndpoint must be an absolute http:// or https:// URL"))]
    pub tempo_endpoint: Option<String>,
    /// Also send traces to GreptimeDB's OTLP endpoint when greptimeRef is set.
    #[serde(default = "default_true")]
    pub greptime_enabled: bool,
    /// Replicas of the OTLP endpoint (2 by default, so one can restart without losing the endpoint).
    #[serde(default = "default_trace_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
    /// Image override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpec>,
    /// CPU and memory (request = limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
}

fn default_trace_replicas() -> i32 {
    2
}

/// Reference to a GreptimeDBCluster (greptime.io/v1alpha1) for real-time queries.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GreptimeDbRef {
    /// GreptimeDBCluster name.
    #[schemars(schema_with = "schema::dns_label")]
    pub name: String,
    /// GreptimeDBCluster namespace; defaults to this resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_dns_label")]
    pub namespace: Option<String>,
    /// Database in GreptimeDB.
    #[serde(default = "default_database")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
    pub database: String,
    /// Table for logs.
    #[serde(default = "default_logs_table")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
    pub logs_table: String,
    /// Send metrics to GreptimeDB (Prometheus remote write).
    #[serde(default = "default_true")]
    pub metrics_enabled: bool,
    /// Send logs to GreptimeDB.
    #[serde(default = "default_true")]
    pub logs_enabled: bool,
}

fn default_true() -> bool {
    true
}
fn default_image_repository() -> String {
    DEFAULT_IMAGE_REPOSITORY.into()
}
fn default_logs_prefix() -> String {
    "vector-logs-v1".into()
}
fn default_metrics_prefix() -> String {
    "vector-metrics-v1".into()
}
fn default_batch_max_bytes() -> i64 {
    10_485_760
}
fn default_batch_timeout_secs() -> i32 {
    30
}
fn default_scrape_interval() -> i32 {
    30
}
fn default_scrape_timeout() -> i32 {
    10
}
fn default_scrape_annotation() -> String {
    "prometheus.io/scrape".into()
}
fn default_port_annotation() -> String {
    "prometheus.io/port".into()
}
fn default_path_annotation() -> String {
    "prometheus.io/path".into()
}
fn default_database() -> String {
    "public".into()
}
fn default_logs_table() -> String {
    "logs".into()
}

impl VectorLogsSpec {
    /// Parse-side defaults, identical to what the apiserver fills in.
    pub fn is_enabled(this: &Option<Self>) -> bool {
        this.as_ref().is_some_and(|c| c.enabled)
    }
}

impl VectorMetricsSpec {
    pub fn is_enabled(this: &Option<Self>) -> bool {
        this.as_ref().is_some_and(|c| c.enabled)
    }
}
