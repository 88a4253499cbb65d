//! Serde types for the Vector components the operator generates (Vector 0.57 field names;
//! validated against Vector's own JSON Schema in the tests).

use std::collections::BTreeMap;

use serde::Serialize;

/// Root of a Vector configuration file.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: String,
    pub api: Api,
    pub sources: BTreeMap<String, Source>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub transforms: BTreeMap<String, Transform>,
    pub sinks: BTreeMap<String, Sink>,
    /// Secret backends (`SECRET[name.key]` references resolve through them at load).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret: BTreeMap<String, SecretBackend>,
    /// The id stamped on the collector's own metrics (`super::CONFIG_ID_TAG`); not part of
    /// Vector's config file, set by `super::self_observability`.
    #[serde(skip)]
    pub id: String,
}

/// A Vector secret backend.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecretBackend {
    /// One file per key: a mounted Kubernetes Secret.
    Directory { path: String, remove_trailing_whitespace: bool },
}

impl Config {
    /// YAML text of the config (deterministic).
    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Api {
    pub enabled: bool,
    pub address: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    KubernetesLogs(KubernetesLogs),
    File(FileSource),
    InternalMetrics(InternalMetrics),
    PrometheusScrape(PrometheusScrape),
    Opentelemetry(OtlpSource),
    StaticMetrics(StaticMetrics),
}

/// A source of fixed metrics; with none it never emits (a placeholder that keeps a wildcard
/// input matching something).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StaticMetrics {
    pub metrics: Vec<serde_json::Value>,
    pub interval_secs: u64,
}

/// OTLP receiver (gRPC and HTTP).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OtlpSource {
    pub grpc: Listen,
    pub http: Listen,
    /// Keep each request as one OTLP event so it can be re-encoded as OTLP (passthrough).
    pub use_otlp_decoding: OtlpDecoding,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Listen {
    pub address: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OtlpDecoding {
    pub logs: bool,
    pub metrics: bool,
    pub traces: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct KubernetesLogs {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub extra_label_selector: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub extra_namespace_label_selector: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub extra_field_selector: String,
    pub use_apiserver_cache: bool,
    pub glob_minimum_cooldown_ms: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FileSource {
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub read_from: String,
    pub glob_minimum_cooldown_ms: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct InternalMetrics {
    pub namespace: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PrometheusScrape {
    pub endpoints: Vec<String>,
    pub scrape_interval_secs: u64,
    pub scrape_timeout_secs: f64,
    pub instance_tag: String,
    pub endpoint_tag: String,
    pub honor_labels: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    Remap(Remap),
    MetricToLog(MetricToLog),
    Route(Route),
}

/// Each event to the outputs (`<id>.<route>`) whose VRL condition it matches.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Route {
    pub inputs: Vec<String>,
    pub route: BTreeMap<String, String>,
    /// false: an event no route matches is dropped (no `_unmatched` output).
    pub reroute_unmatched: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Remap {
    pub inputs: Vec<String>,
    pub source: String,
    pub drop_on_error: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct MetricToLog {
    pub inputs: Vec<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sink {
    AwsS3(Box<AwsS3>),
    PrometheusExporter(PrometheusExporter),
    GreptimedbLogs(Box<GreptimeDbLogs>),
    PrometheusRemoteWrite(Box<PrometheusRemoteWrite>),
    Opentelemetry(Box<OtlpSink>),
    Loki(Box<LokiSink>),
}

/// OTLP/HTTP exporter (Vector's `opentelemetry` sink; it has no gRPC egress).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OtlpSink {
    pub inputs: Vec<String>,
    pub protocol: OtlpHttp,
    pub buffer: Buffer,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OtlpHttp {
    #[serde(rename = "type")]
    pub type_: String,
    pub uri: String,
    pub method: String,
    pub encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub headers: BTreeMap<String, String>,
}

impl Sink {
    pub fn inputs(&self) -> &[String] {
        match self {
            Sink::AwsS3(s) => &s.inputs,
            Sink::PrometheusExporter(s) => &s.inputs,
            Sink::GreptimedbLogs(s) => &s.inputs,
            Sink::PrometheusRemoteWrite(s) => &s.inputs,
            Sink::Opentelemetry(s) => &s.inputs,
            Sink::Loki(s) => &s.inputs,
        }
    }
}

/// GreptimeDB HTTP logs sink (`/v1/events/logs`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct GreptimeDbLogs {
    pub inputs: Vec<String>,
    pub endpoint: String,
    pub dbname: String,
    pub table: String,
    pub pipeline_name: String,
    pub compression: String,
    pub buffer: Buffer,
    pub healthcheck: Healthcheck,
}

/// Prometheus remote write (GreptimeDB's `/v1/prometheus/write`, Thanos, Mimir, Prometheus).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PrometheusRemoteWrite {
    pub inputs: Vec<String>,
    pub endpoint: String,
    /// Sent as `X-Scope-OrgID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub buffer: Buffer,
    pub healthcheck: Healthcheck,
}

/// Loki push API sink (protobuf + snappy by default).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LokiSink {
    pub inputs: Vec<String>,
    pub endpoint: String,
    pub tenant_id: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub structured_metadata: BTreeMap<String, String>,
    pub encoding: Encoding,
    pub compression: String,
    pub out_of_order_action: String,
    /// Labels are templates without a literal prefix (`{{ kubernetes.pod_namespace }}`), which
    /// Vector 0.57's path confinement refuses at startup; confinement protects file and key
    /// paths, and a label value is neither.
    pub dangerously_allow_unconfined_template_resolution: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub buffer: Buffer,
    pub healthcheck: Healthcheck,
}

/// HTTP authentication of a sink.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum HttpAuth {
    Basic { user: String, password: String },
    Bearer { token: String },
}

/// Client TLS settings of a sink.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Tls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crt_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    pub verify_certificate: bool,
    pub verify_hostname: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AwsS3 {
    pub inputs: Vec<String>,
    pub bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub key_prefix: String,
    pub compression: String,
    pub encoding: Encoding,
    pub framing: Framing,
    pub batch: Batch,
    pub buffer: Buffer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub content_type: String,
    pub filename_extension: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Healthcheck {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Encoding {
    pub codec: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Framing {
    pub method: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Batch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    Block,
    DropNewest,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Buffer {
    Disk { max_size: u64, when_full: WhenFull },
    Memory { max_events: u64, when_full: WhenFull },
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PrometheusExporter {
    pub inputs: Vec<String>,
    pub address: String,
}
