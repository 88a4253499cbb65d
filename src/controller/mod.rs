//! The controller: the only module that talks to the cluster. Reconcile = fetch (the
//! watched CR) → [`crate::model::build`] → [`crate::render::render`] → [`apply::sync`] →
//! status (written only when it changed) → Events on phase changes.

pub mod apply;
pub mod client;
pub mod cloud;
pub mod greptime;
pub mod status;
pub mod traced;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Mutex;
use tracing::{Instrument, info, warn};

use crate::api::{Cloud, MonitoringServices, MonitoringServicesStatus, Phase};
use crate::model;
use crate::render::meta::{self, Component, MANAGER};
use crate::render::{self, Kind};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::server;
use crate::telemetry::status_metrics::{StatusCollector, WatchedKind};
use kube::runtime::WatchStreamExt;

/// Finalizer that removes the cluster-scoped children (they cannot be owned by a namespaced CR).
pub const FINALIZER: &str = "e6data.io/cluster-resources";

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    recorder: Recorder,
    /// Cloud detected from Nodes; detected once per process (a cluster does not change cloud).
    cloud: Mutex<Option<Cloud>>,
    /// GreptimeDB pipelines confirmed to exist, by endpoint and name, with when.
    pipelines: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    pub metrics: Metrics,
}

/// Operator-level settings (flags of `run`), not tenant-controlled.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only this namespace is watched (None: all).
    pub namespace: Option<String>,
    /// Image of the per-node discovery sidecar (this operator's image).
    pub discovery_image: String,
    /// Reach GreptimeDB's HTTP API here instead of `http://<frontend Service>` (for an
    /// operator running outside the cluster).
    pub greptime_url: Option<String>,
    /// Serve /metrics, /healthz and /readyz here (None: no endpoint).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Other custom resource kinds (`group/version/Kind`) whose status is exported as metrics.
    pub status_kinds: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            discovery_image: model::DEFAULT_DISCOVERY_IMAGE.into(),
            greptime_url: None,
            metrics_addr: None,
            status_kinds: Vec::new(),
        }
    }
}

impl Context {
    pub fn new(client: Client) -> Arc<Context> {
        Context::with_settings(client, Settings::default())
    }

    pub fn with_settings(client: Client, settings: Settings) -> Arc<Context> {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            cloud: Mutex::new(None),
            pipelines: Mutex::new(Default::default()),
            metrics: Metrics::default(),
        })
    }

    async fn cloud(&self, spec: Option<Cloud>) -> Option<Cloud> {
        if spec.is_some() {
            return spec;
        }
        let mut cached = self.cloud.lock().await;
        if cached.is_none() {
            match traced::traced("detect cloud", "Node", "", "", cloud::detect(&Api::<Node>::all(self.client.clone())))
                .await
            {
                Ok(found) => *cached = found,
                Err(e) => warn!(error = %e, "cloud detection failed"),
            }
        }
        *cached
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short, bounded label for metrics: the apiserver's reason (`Conflict`, `Forbidden`,
    /// ...) or the failing layer.
    pub fn reason(&self) -> String {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(kube::Error::Api(e)) => e.reason.clone(),
            Error::Kube(_) => "Transport".into(),
            Error::Finalizer(f) => match &**f {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.reason(),
                F::AddFinalizer(_) | F::RemoveFinalizer(_) => "Finalizer".into(),
                _ => "Finalizer".into(),
            },
        }
    }
}

/// A controller ready to run: watches set up, metrics endpoint bound.
pub struct Operator {
    /// Where /metrics is served, when enabled.
    pub metrics_addr: Option<std::net::SocketAddr>,
    run: futures::future::BoxFuture<'static, ()>,
}

impl Operator {
    /// Run until SIGTERM/SIGINT.
    pub async fn run(self) {
        self.run.await
    }
}

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, settings: Settings) -> anyhow::Result<()> {
    build(client, settings, None).await?.run().await;
    Ok(())
}

/// Set up the controller. `counter` (from [`client::counted`]) feeds the API request metric.
pub async fn build(
    client: Client,
    settings: Settings,
    counter: Option<client::RequestCounter>,
) -> anyhow::Result<Operator> {
    let namespace = settings.namespace.clone();
    let metrics_addr = settings.metrics_addr;
    let status_kinds = settings.status_kinds.clone();
    let ctx = Context::with_settings(client.clone(), settings);
    let ns = namespace.as_deref();
    fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let children = watcher::Config::default().labels(&format!("{}={}", meta::LABEL_MANAGED_BY, MANAGER));
    // Cluster-scoped children carry the owner as labels, not an ownerReference.
    let to_owner = |obj: &dyn ResourceExtLabels| {
        let l = obj.labels_ref();
        Some(
            ObjectRef::<MonitoringServices>::new(l.get(meta::LABEL_OWNER_NAME)?)
                .within(l.get(meta::LABEL_OWNER_NAMESPACE)?),
        )
    };
    let controller = Controller::new(scoped::<MonitoringServices>(&client, ns), watcher::Config::default());
    let store = controller.store();

    // The metrics endpoint: operator counters, API requests, and status gauges read from the
    // controller's own cache (plus any other kinds the admin listed).
    let endpoint_addr = match metrics_addr {
        Some(addr) => {
            let mut registry = prometheus_client::registry::Registry::default();
            ctx.metrics.register(&mut registry);
            ctx.metrics.leader.set(1);
            if let Some(c) = counter {
                registry.register_collector(Box::new(c));
            }
            let kinds = status_metric_kinds(&client, &status_kinds).await?;
            registry.register_collector(Box::new(StatusCollector { monitoring_services: store.clone(), kinds }));
            let ep = Arc::new(server::Endpoint { registry, ready: Default::default() });
            let bound = server::serve(addr, ep.clone()).await?;
            // Ready once the watched kind can be listed with our credentials (what every watch
            // of the controller needs); retried until it works.
            let probe: Api<MonitoringServices> = scoped(&client, ns);
            tokio::spawn(async move {
                loop {
                    match probe.list_metadata(&kube::api::ListParams::default().limit(1)).await {
                        Ok(_) => {
                            ep.ready.store(true, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        Err(e) => warn!(error = %e, "not ready: cannot list MonitoringServices"),
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
            });
            info!(addr = %bound, "serving /metrics, /healthz, /readyz");
            Some(bound)
        }
        None => None,
    };

    // A GreptimeDBCluster appearing or changing re-reconciles the resources referring to it.
    // Watched only when its CRD is installed; otherwise resources waiting for it requeue.
    let ar = crate::greptime::cluster_resource();
    let clusters: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    let controller = if clusters.list_metadata(&kube::api::ListParams::default().limit(1)).await.is_ok() {
        controller.watches_with(clusters, ar, watcher::Config::default(), move |cluster| {
            let (name, cns) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
            store
                .state()
                .into_iter()
                .filter(|ms| {
                    ms.spec.greptime_ref.as_ref().is_some_and(|g| {
                        g.name == name
                            && g.namespace.clone().or_else(|| ms.namespace()).as_deref() == Some(cns.as_str())
                    })
                })
                .map(|ms| ObjectRef::from_obj(&*ms))
                .collect::<Vec<_>>()
        })
    } else {
        controller
    };
    let run = controller
        .owns(scoped::<DaemonSet>(&client, ns), children.clone())
        .owns(scoped::<Deployment>(&client, ns), children.clone())
        .owns(scoped::<Service>(&client, ns), children.clone())
        .owns(scoped::<ConfigMap>(&client, ns), children.clone())
        .owns(scoped::<ServiceAccount>(&client, ns), children.clone())
        .owns(scoped::<Role>(&client, ns), children.clone())
        .owns(scoped::<RoleBinding>(&client, ns), children.clone())
        .watches(Api::<ClusterRole>::all(client.clone()), children.clone(), move |o: ClusterRole| to_owner(&o))
        .watches(Api::<ClusterRoleBinding>::all(client.clone()), children, move |o: ClusterRoleBinding| to_owner(&o))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "reconcile failed");
            }
        });
    Ok(Operator { metrics_addr: endpoint_addr, run: Box::pin(run) })
}

/// Watch caches for the extra kinds whose status is exported (`group/version/Kind`; the core
/// group is written `/v1/Kind`).
async fn status_metric_kinds(client: &Client, specs: &[String]) -> anyhow::Result<Vec<WatchedKind>> {
    let mut out = Vec::new();
    for spec in specs {
        let parts: Vec<&str> = spec.split('/').collect();
        let [group, version, kind] = parts[..] else {
            anyhow::bail!("--status-metrics-kind {spec:?}: expected group/version/Kind");
        };
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| anyhow::anyhow!("--status-metrics-kind {spec}: {e}"))?;
        let writer = kube::runtime::reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
        let stream =
            kube::runtime::reflector(writer, watcher::watcher(api, watcher::Config::default()).default_backoff());
        tokio::spawn(stream.for_each(|_| futures::future::ready(())));
        info!(kind = %spec, "exporting status metrics");
        out.push(WatchedKind { resource, store: reader });
    }
    Ok(out)
}

/// Access to labels of any watched child (object-safe helper for the mapper above).
trait ResourceExtLabels {
    fn labels_ref(&self) -> &std::collections::BTreeMap<String, String>;
}
impl<K: Resource> ResourceExtLabels for K {
    fn labels_ref(&self) -> &std::collections::BTreeMap<String, String> {
        self.labels()
    }
}

fn error_policy(_ms: Arc<MonitoringServices>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %err, "reconcile error, retrying");
    Action::requeue(Duration::from_secs(10))
}

/// One reconcile of one CR.
pub async fn reconcile(ms: Arc<MonitoringServices>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ms.namespace().unwrap_or_default();
    let span = tracing::info_span!(
        "reconcile",
        otel.name = "reconcile MonitoringServices",
        k8s.kind = "MonitoringServices",
        k8s.namespace = %ns,
        k8s.name = %ms.name_any(),
        k8s.generation = ms.metadata.generation.unwrap_or_default(),
        trace_id = tracing::field::Empty,
        result = tracing::field::Empty,
    );
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let id = span.context().span().span_context().trace_id();
        if id != opentelemetry::trace::TraceId::INVALID {
            span.record("trace_id", tracing::field::display(id));
        }
    }
    let start = std::time::Instant::now();
    let out = reconcile_inner(ms, ctx.clone(), ns).instrument(span.clone()).await;
    ctx.metrics.observe(start.elapsed(), out.as_ref().map(|_| ()));
    span.record("result", if out.is_ok() { "ok" } else { "error" });
    out
}

async fn reconcile_inner(ms: Arc<MonitoringServices>, ctx: Arc<Context>, ns: String) -> Result<Action, Error> {
    let api: Api<MonitoringServices> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, ms, |event| async {
        match event {
            Finalizer::Apply(ms) => apply(ms, ctx.clone()).await,
            Finalizer::Cleanup(ms) => {
                apply::delete_cluster_children(&ctx.client, &ns, &ms.name_any()).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(ms: Arc<MonitoringServices>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = ms.name_any();
    let ns = ms.namespace().unwrap_or_default();
    let generation = ms.metadata.generation;
    let old = ms.status.as_ref();

    let mut model = match model::build(&ms) {
        Ok(m) => m,
        Err(e) => {
            let st = status::failed(old, generation, "InvalidSpec", &e.to_string(), false);
            write_status(&ctx, &ms, st).await?;
            return Ok(Action::await_change());
        }
    };
    // A failed detection (apiserver hiccup) keeps the last known cloud instead of flapping status.
    let cloud = ctx.cloud(model.cloud).await.or_else(|| {
        old.and_then(|s| s.cloud.as_deref()).and_then(|c| match c {
            "AWS" => Some(Cloud::Aws),
            "GCP" => Some(Cloud::Gcp),
            "AZURE" => Some(Cloud::Azure),
            _ => None,
        })
    });
    model.discovery_image = ctx.settings.discovery_image.clone();
    let integration = greptime::resolve(&ctx, &model, old.and_then(|s| s.greptimedb_status.as_ref())).await;
    model.greptime_target = integration.as_ref().and_then(|i| i.target.clone());
    let owner = ms.controller_owner_ref(&()).expect("CR has name and uid");
    let children = render::render(&model, Some(&owner));
    let synced = match apply::sync(&ctx.client, &ns, &name, children).await {
        Ok(s) => s,
        Err(apply::SyncError::Rejected(r)) => {
            let st = status::failed(old, generation, "ApplyRejected", &r.to_string(), true);
            write_status(&ctx, &ms, st).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        Err(apply::SyncError::Kube(e)) => return Err(e.into()),
    };
    if synced.applied + synced.deleted > 0 {
        info!(%ns, %name, applied = synced.applied, deleted = synced.deleted, "children synced");
    }

    let ds = |c: Component| -> Option<DaemonSet> {
        let obj = synced.live.get(&(Kind::DaemonSet, c.workload_name(&name)))?;
        serde_json::to_value(obj).ok().and_then(|v| serde_json::from_value(v).ok())
    };
    let logs = model.logs.as_ref().map(|_| status::component(Component::Logs, ds(Component::Logs).as_ref()));
    let metrics =
        model.metrics.as_ref().map(|_| status::component(Component::Metrics, ds(Component::Metrics).as_ref()));
    let traces = model.traces.as_ref().map(|_| {
        let d = synced.live.get(&(Kind::Deployment, Component::Traces.workload_name(&name)));
        status::deployment(
            d.and_then(|o| serde_json::to_value(o).ok()).and_then(|v| serde_json::from_value(v).ok()).as_ref(),
        )
    });
    let greptime_down = integration.as_ref().is_some_and(|i| !i.ready);
    let observed = status::Observed { logs, metrics, traces, greptime: integration.as_ref(), cloud, generation };
    let st = status::compose(old, observed);
    write_status(&ctx, &ms, st).await?;
    if greptime_down {
        // GreptimeDB is outside what we watch when its CRD was absent at start-up, and its
        // HTTP API is never watched: look again soon.
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    // Watches on every child drive reconciles; the periodic requeue only repairs drift that
    // produced no watch event.
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// Write `st` if it differs from the stored status; publish an Event when the phase changes.
async fn write_status(ctx: &Context, ms: &MonitoringServices, st: MonitoringServicesStatus) -> Result<(), Error> {
    let old = ms.status.as_ref();
    if status::same(old, &st) {
        return Ok(());
    }
    let api: Api<MonitoringServices> = Api::namespaced(ctx.client.clone(), &ms.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": MonitoringServices::api_version(&()),
        "kind": MonitoringServices::kind(&()),
        "status": st,
    });
    let (ns, name) = (ms.namespace().unwrap_or_default(), ms.name_any());
    let (pp, patch) = (PatchParams::apply(MANAGER).force(), Patch::Apply(&patch));
    traced::traced("patch status", "MonitoringServices", &ns, &name, api.patch_status(&name, &pp, &patch)).await?;
    let old_phase = old.and_then(|s| s.phase);
    if old_phase != st.phase {
        let phase = st.phase.unwrap_or_default();
        let type_ =
            if matches!(phase, Phase::Degraded | Phase::Failed) { EventType::Warning } else { EventType::Normal };
        let ev = Event {
            type_,
            reason: phase.as_str().into(),
            note: st.message.clone().map(|m| m.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference = ms.object_ref(&());
        if let Err(e) = traced::traced("create", "Event", &ns, &name, ctx.recorder.publish(&ev, &reference)).await {
            warn!(error = %e, "could not publish event");
        }
    }
    Ok(())
}
