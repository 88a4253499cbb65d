//! Shared state of the controller: the client, the operator's settings, caches of what the
//! dereference step reads (the cloud, confirmed GreptimeDB pipelines), the pooled GreptimeDB
//! client, metrics, and the per-resource retry backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::Client;
use kube::runtime::reflector::ObjectRef;

use crate::api::{Cloud, MonitoringServices};
use crate::greptime::client::PipelineClient;
use crate::model::{DEFAULT_DISCOVERY_IMAGE, OperatorSettings};
use crate::render::meta::MANAGER;
use crate::telemetry::metrics::Metrics;

/// Operator-level settings (flags of `run`), not tenant-controlled.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only this namespace is watched (None: all).
    pub namespace: Option<String>,
    /// Only resources with these labels are reconciled (None: all).
    pub resource_selector: Option<String>,
    /// Image of the per-node discovery sidecar (this operator's image).
    pub discovery_image: String,
    /// Reach GreptimeDB's HTTP API here instead of `http://<frontend Service>` (for an
    /// operator running outside the cluster).
    pub greptime_url: Option<String>,
    /// Serve /metrics, /healthz and /readyz here (None: no endpoint).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Other custom resource kinds (`group/version/Kind`) whose status is exported as metrics.
    pub status_kinds: Vec<String>,
    /// The cluster admin's tenancy policy (open by default: the seed's behaviour).
    pub policy: crate::model::Policy,
    /// How often collector pods' flow summaries are read (None: flow health is off).
    pub flow_interval: Option<Duration>,
    /// Port of the sidecars' `/flow` (the rendered pods use `render::FLOW_PORT`).
    pub flow_port: u16,
    /// At most this many `/flow` requests at once.
    pub flow_concurrency: usize,
    /// Per request.
    pub flow_timeout: Duration,
    /// Shortest flow window rendered into the collectors' sidecars.
    pub flow_window_secs: u64,
    /// A NetworkPolicy per collector (`--collector-network-policy`).
    pub network_policy: bool,
    /// At most this many reconciles at once.
    pub reconcile_concurrency: u16,
    /// Leader election (None: this process always leads, e.g. one replica or tests).
    pub leader: Option<super::leader::LeaderSettings>,
    /// The shared collection mode (`--collection-mode=shared`); None: per-resource collectors.
    pub shared: Option<crate::render::shared::SharedSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            resource_selector: None,
            discovery_image: DEFAULT_DISCOVERY_IMAGE.into(),
            greptime_url: None,
            metrics_addr: None,
            status_kinds: Vec::new(),
            policy: Default::default(),
            flow_interval: Some(Duration::from_secs(30)),
            flow_port: crate::render::FLOW_PORT as u16,
            flow_concurrency: 32,
            flow_timeout: Duration::from_secs(3),
            flow_window_secs: crate::model::DEFAULT_FLOW_WINDOW_SECS,
            leader: None,
            network_policy: false,
            reconcile_concurrency: 16,
            shared: None,
        }
    }
}

impl Settings {
    /// The part of the settings that goes into rendered children.
    pub fn operator(&self) -> OperatorSettings {
        OperatorSettings {
            discovery_image: self.discovery_image.clone(),
            flow_window_secs: self.flow_window_secs,
            network_policy: self.network_policy,
            shared_namespace: self.shared.as_ref().map(|s| s.namespace.clone()),
        }
    }
}

/// Secret values by namespace and name: its resourceVersion and the keys read.
type SecretValueCache = HashMap<(String, String), (String, std::collections::BTreeMap<String, String>)>;

/// First and longest retry delay of a resource whose reconcile failed for a transient reason.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    /// Who publishes the Events (`reportingInstance`): the pod's name, else the operator's.
    pub(super) reporting_instance: String,
    /// Cloud detected from Nodes, with when: a cluster does not change cloud, but a cluster
    /// whose Nodes carry no known providerID yet may get some.
    pub(super) cloud: tokio::sync::Mutex<Option<(Option<Cloud>, Instant)>>,
    /// GreptimeDB pipelines confirmed to exist, by endpoint and name, with when.
    pub(super) pipelines: Mutex<HashMap<String, Instant>>,
    pub(super) greptime: PipelineClient,
    pub metrics: Metrics,
    /// The latest flow verdicts gathered from the collectors (`controller::flow`).
    pub(super) flow: Mutex<super::flow::FlowFacts>,
    /// The watch caches, once the controller's watches exist.
    pub(super) caches: std::sync::OnceLock<super::watch::Caches>,
    /// What was read of a Secret (key names), by namespace and name, with its resourceVersion:
    /// read again only when the Secret watch shows a new version.
    pub(super) secret_infos: Mutex<HashMap<(String, String), crate::model::SecretInfo>>,
    /// Shared mode: the credential values read from a Secret, with its resourceVersion.
    pub(super) secret_values: Mutex<SecretValueCache>,
    /// Shared mode: every resource's part of the shared collectors, and what they are now.
    pub(super) shared: super::shared::Registry,
    /// Retry delays of the resources whose last reconcile failed; reset by a success.
    backoff: Mutex<HashMap<ObjectRef<MonitoringServices>, ExponentialBackoff>>,
    /// Statuses written that the resource watch may not show yet.
    pub(super) written: super::written::Written,
    /// Resources whose last apply the apiserver refused: their next ones dry-run first.
    pub(super) refused: Mutex<std::collections::HashSet<ObjectRef<MonitoringServices>>>,
}

impl Context {
    pub fn new(client: Client) -> Arc<Context> {
        Context::with_settings(client, Settings::default())
    }

    pub fn with_settings(client: Client, settings: Settings) -> Arc<Context> {
        Arc::new(Context {
            reporting_instance: std::env::var("POD_NAME").unwrap_or_else(|_| MANAGER.into()),
            client,
            settings,
            cloud: tokio::sync::Mutex::new(None),
            pipelines: Mutex::new(HashMap::new()),
            greptime: PipelineClient::default(),
            metrics: Metrics::default(),
            backoff: Mutex::new(HashMap::new()),
            refused: Default::default(),
            written: Default::default(),
            flow: Mutex::new(HashMap::new()),
            caches: Default::default(),
            secret_infos: Mutex::new(HashMap::new()),
            secret_values: Mutex::new(HashMap::new()),
            shared: Default::default(),
        })
    }

    /// The next retry delay of `obj`: exponential from [`RETRY_MIN`] to [`RETRY_MAX`], with
    /// jitter so resources that failed together do not retry together.
    pub fn next_retry(&self, obj: ObjectRef<MonitoringServices>) -> Duration {
        let mut map = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let backoff = map.entry(obj).or_insert_with(|| {
            ExponentialBuilder::new()
                .with_min_delay(RETRY_MIN)
                .with_max_delay(RETRY_MAX)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times()
                .build()
        });
        backoff.next().unwrap_or(RETRY_MAX)
    }

    /// `obj` reconciled: its next failure starts the backoff again.
    pub fn reset_retry(&self, obj: &ObjectRef<MonitoringServices>) {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(obj);
    }
}
