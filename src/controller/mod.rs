//! The controller: the only module that talks to the cluster, and the top of the crate
//! (nothing imports it). [`reconcile`] runs the pipeline for one resource; this module wires
//! the watches (the resource, every child kind, GreptimeDBClusters, the metadata of Secrets,
//! collector pods for flow health) and the metrics endpoint.

pub mod apply;
pub mod client;
pub mod cloud;
mod context;
mod dereference;
mod drift;
mod flow;
mod reconcile;
mod refusals;
pub mod traced;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

pub use context::{Context, RETRY_MAX, RETRY_MIN, Settings};
pub use reconcile::{FINALIZER, error_policy, reconcile};

use crate::api::MonitoringServices;
use crate::render::meta::{self, MANAGER};
use crate::telemetry::server;
use crate::telemetry::status_metrics::{StatusCollector, WatchedKind};

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
    let secrets_store = store.clone();

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
    // A Secret an output names appearing or changing re-reconciles the resources of its
    // namespace naming it (a new resourceVersion rolls their collectors). Metadata only: the
    // operator never receives Secret values through the watch (kube asks for metadata only
    // when the type is `PartialObjectMeta`).
    let secret_meta = scoped::<PartialObjectMeta<Secret>>(&client, ns);
    let controller = controller.watches(secret_meta, watcher::Config::default(), move |secret| {
        let (name, sns) = (secret.name_any(), secret.namespace());
        secrets_store
            .state()
            .into_iter()
            .filter(|ms| ms.namespace() == sns && crate::model::referenced_secrets(&ms.spec).contains_key(&name))
            .map(|ms| ObjectRef::from_obj(&*ms))
            .collect::<Vec<_>>()
    });
    // Flow health: the collector pods (a watch, this operator's pods only) and a gathering
    // task that re-reconciles the resources whose verdict changed.
    let (flow_trigger, flow_changed) = futures::channel::mpsc::unbounded();
    if ctx.settings.flow_interval.is_some() {
        let (pods, writer) = kube::runtime::reflector::store::<Pod>();
        let pod_watch = kube::runtime::reflector(
            writer,
            watcher::watcher(scoped::<Pod>(&client, ns), children.clone()).default_backoff().modify(|p| {
                // Only labels, annotations, spec and status are read: drop the rest early.
                p.managed_fields_mut().clear();
            }),
        );
        tokio::spawn(pod_watch.for_each(|_| futures::future::ready(())));
        // One round before the first reconcile, so a restarted operator does not flip every
        // resource's flow to Unknown and back.
        flow::first_round(&ctx, &pods).await;
        tokio::spawn(flow::run(ctx.clone(), pods, flow_trigger));
    } else {
        // Keep the channel open so the controller's trigger stream never ends.
        tokio::spawn(async move {
            let _open = flow_trigger;
            std::future::pending::<()>().await
        });
    }
    let run = controller
        .reconcile_on(flow_changed)
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
        // Failures are logged once, by the error policy.
        .for_each(|_| futures::future::ready(()));
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
