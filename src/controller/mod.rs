//! The controller: the only module that talks to the cluster, and the top of the crate
//! (nothing imports it). [`reconcile`] runs the pipeline for one resource; this module wires
//! the watches (the resource, every child kind, GreptimeDBClusters, the metadata of Secrets,
//! collector pods for flow health), their caches, leader election and the metrics endpoint.

pub mod apply;
pub mod client;
pub mod cloud;
mod compact;
mod context;
mod dereference;
mod drift;
mod flow;
pub mod leader;
pub mod own_pod;
mod reconcile;
mod refusals;
mod shared;
mod sweep;
pub mod traced;
pub mod watch;
mod written;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{error, info, warn};

pub use context::{Context, RETRY_MAX, RETRY_MIN, Settings};
pub use reconcile::{FINALIZER, error_policy, reconcile};

use crate::api::MonitoringServices;
use crate::render::Kind;
use crate::render::meta::{self, MANAGER};
use crate::telemetry::server;
use crate::telemetry::status_metrics::{StatusCollector, WatchedKind};

/// A controller ready to run: watches set up, metrics endpoint bound.
pub struct Operator {
    /// Where /metrics is served, when enabled.
    pub metrics_addr: Option<std::net::SocketAddr>,
    run: futures::future::BoxFuture<'static, anyhow::Result<()>>,
}

impl Operator {
    /// Run until SIGTERM/SIGINT (Ok), or until this replica loses its leader lease (Err: the
    /// process should exit and start again as a standby).
    pub async fn run(self) -> anyhow::Result<()> {
        self.run.await
    }
}

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(client: Client, settings: Settings) -> anyhow::Result<()> {
    build(client, settings, None).await?.run().await
}

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

/// Set up the operator: the metrics endpoint now; the watches and the controller once this
/// replica leads (at once without leader election). `counter` (from [`client::counted`])
/// feeds the API request metric.
pub async fn build(
    client: Client,
    settings: Settings,
    counter: Option<client::RequestCounter>,
) -> anyhow::Result<Operator> {
    let namespace = settings.namespace.clone();
    let settings_selector = settings.resource_selector.clone();
    let metrics_addr = settings.metrics_addr;
    let status_kinds = settings.status_kinds.clone();
    let ctx = Context::with_settings(client.clone(), settings);
    let ns = namespace.as_deref();
    let mut resources = watcher::Config::default();
    if let Some(selector) = &settings_selector {
        resources = resources.labels(selector);
    }
    let (ms_store, ms_events) = watch::cached(scoped::<MonitoringServices>(&client, ns), resources);
    let mut extra_watches = Vec::new();

    // The metrics endpoint: operator counters, API requests, and status gauges read from the
    // controller's own cache (plus any other kinds the admin listed). A standby serves it
    // too, with leader 0 and no status gauges (its caches stay empty until it leads, so two
    // replicas never export the same series twice).
    let endpoint_addr = match metrics_addr {
        Some(addr) => {
            let mut registry = prometheus_client::registry::Registry::default();
            ctx.metrics.register(&mut registry);
            if let Some(c) = counter {
                registry.register_collector(Box::new(c));
            }
            let (kinds, watches) = status_metric_kinds(&client, &status_kinds).await?;
            extra_watches = watches;
            registry.register_collector(Box::new(StatusCollector { monitoring_services: ms_store.clone(), kinds }));
            let ep = Arc::new(server::Endpoint { registry, ready: Default::default(), last_size: Default::default() });
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

    let run = async move {
        let lease = match ctx.settings.leader.clone() {
            Some(l) => tokio::select! {
                m = leader::acquire(l.client.clone(), &l) => Some(m),
                _ = server::shutdown_signal() => return Ok(()),
            },
            None => None,
        };
        ctx.metrics.leader.set(1);
        for w in extra_watches {
            tokio::spawn(w);
        }
        let controller = wire(ctx.clone(), client, ms_store, ms_events).await;
        let Some(lease) = lease else {
            controller.await;
            return Ok(());
        };
        tokio::select! {
            // Graceful shutdown finished: hand the lease over at once.
            _ = controller => {
                leader::release(&lease).await;
                Ok(())
            }
            // Dropping the controller cancels every reconcile in flight: nothing more is written.
            why = leader::hold(&lease) => {
                ctx.metrics.leader.set(0);
                error!(%why, "leadership lost: stopped reconciling");
                Err(anyhow::anyhow!("leadership lost: {why}"))
            }
        }
    };
    Ok(Operator { metrics_addr: endpoint_addr, run: Box::pin(run) })
}

/// The watches and the controller over them, as one future that ends after a graceful
/// shutdown. Every watch fills a cache the reconcile reads instead of the API.
async fn wire(
    ctx: Arc<Context>,
    client: Client,
    ms_store: Store<MonitoringServices>,
    ms_events: watch::Events<MonitoringServices>,
) -> futures::future::BoxFuture<'static, ()> {
    let ns = ctx.settings.namespace.clone();
    let ns = ns.as_deref();
    // Small list pages: a page is decoded typed before it is compacted, and 11 watches list at
    // once at start-up (500 DaemonSets decode to about 18 MB).
    let children = watcher::Config::default().labels(&format!("{}={}", meta::LABEL_MANAGED_BY, MANAGER)).page_size(100);
    // Cluster-scoped children carry the owner as labels, not an ownerReference.
    fn to_owner<K: Resource>(obj: K) -> Option<ObjectRef<MonitoringServices>> {
        let l = obj.labels();
        Some(
            ObjectRef::<MonitoringServices>::new(l.get(meta::LABEL_OWNER_NAME)?)
                .within(l.get(meta::LABEL_OWNER_NAMESPACE)?),
        )
    }
    let applied = watch::Applied::default();
    let w = |kind: Kind| (kind, applied.clone());
    let (service_accounts, mut sa_events) =
        compact::cache(w(Kind::ServiceAccount), watch::watch(scoped::<ServiceAccount>(&client, ns), children.clone()));
    let (roles, role_events) =
        compact::cache(w(Kind::Role), watch::watch(scoped::<Role>(&client, ns), children.clone()));
    let (role_bindings, rb_events) =
        compact::cache(w(Kind::RoleBinding), watch::watch(scoped::<RoleBinding>(&client, ns), children.clone()));
    let (cluster_roles, mut cr_events) =
        compact::cache(w(Kind::ClusterRole), watch::watch(Api::<ClusterRole>::all(client.clone()), children.clone()));
    let (cluster_role_bindings, mut crb_events) = compact::cache(
        w(Kind::ClusterRoleBinding),
        watch::watch(Api::<ClusterRoleBinding>::all(client.clone()), children.clone()),
    );
    let (owned_secrets, mut owned_secret_events) =
        compact::cache(w(Kind::Secret), watch::watch(scoped::<Secret>(&client, ns), children.clone()));
    let (config_maps, mut cm_events) =
        compact::cache(w(Kind::ConfigMap), watch::watch(scoped::<ConfigMap>(&client, ns), children.clone()));
    let (daemon_sets, mut ds_events) =
        compact::cache(w(Kind::DaemonSet), watch::watch(scoped::<DaemonSet>(&client, ns), children.clone()));
    let (deployments, deploy_events) =
        compact::cache(w(Kind::Deployment), watch::watch(scoped::<Deployment>(&client, ns), children.clone()));
    let (services, svc_events) =
        compact::cache(w(Kind::Service), watch::watch(scoped::<Service>(&client, ns), children.clone()));
    let (network_policies, netpol_events) = compact::cache(
        w(Kind::NetworkPolicy),
        watch::watch(scoped::<k8s_openapi::api::networking::v1::NetworkPolicy>(&client, ns), children.clone()),
    );
    // Secrets an output names: metadata only, the operator never receives Secret values
    // through the watch (kube asks for metadata only when the type is `PartialObjectMeta`).
    let (secrets, secret_events) =
        watch::cached(scoped::<PartialObjectMeta<Secret>>(&client, ns), watcher::Config::default());

    // A GreptimeDBCluster appearing or changing re-reconciles the resources referring to it.
    // Watched only when its CRD is installed; otherwise resources waiting for it requeue.
    let ar = crate::greptime::cluster_resource();
    let clusters: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    let greptime = if clusters.list_metadata(&kube::api::ListParams::default().limit(1)).await.is_ok() {
        let writer = kube::runtime::reflector::store::Writer::new(ar.clone());
        let store = writer.as_reader();
        let events = kube::runtime::reflector(writer, watch::watch(clusters, watcher::Config::default()));
        Some((store, events))
    } else {
        None
    };
    let caches = watch::Caches {
        children: watch::ChildCaches {
            service_accounts,
            roles,
            role_bindings,
            cluster_roles,
            cluster_role_bindings,
            secrets: owned_secrets,
            config_maps,
            daemon_sets,
            deployments,
            services,
            network_policies,
            applied,
        },
        secrets,
        greptime: greptime.as_ref().map(|(s, _)| s.clone()),
    };
    let shared_ns = ctx.settings.shared.as_ref().map(|s| s.namespace.clone());
    tokio::spawn(sweep::run(
        client.clone(),
        caches.children.clone(),
        ms_store.clone(),
        ctx.settings.namespace.clone(),
        shared_ns.clone(),
        ctx.settings.resource_selector.is_some(),
    ));
    if ctx.caches.set(caches).is_err() {
        warn!("watch caches were already set up");
    }

    // Bounded: each reconcile in flight holds its rendered and decoded children; a restart
    // with 1,000 resources otherwise starts all 1,000 at once.
    let config = kube::runtime::controller::Config::default().concurrency(ctx.settings.reconcile_concurrency);
    // Shared mode: a deleted resource's part leaves the shared collectors at once.
    let deletions = ctx.clone();
    let ms_events = ms_events.inspect(move |e| {
        if let Ok(watcher::Event::Delete(_)) = e {
            deletions.shared.poke();
        }
    });
    let controller = Controller::for_stream(ms_events.applied_objects(), ms_store.clone()).with_config(config);
    let controller = match greptime {
        Some((_, events)) => {
            let store = ms_store.clone();
            controller.watches_stream_with(
                events.touched_objects(),
                move |cluster| {
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
                },
                ar,
            )
        }
        None => controller,
    };
    // A Secret an output names appearing or changing re-reconciles the resources of its
    // namespace naming it (a new resourceVersion rolls their collectors).
    let secrets_store = ms_store.clone();
    let shared_mode = ctx.settings.shared.is_some();
    let controller = controller.watches_stream(secret_events.touched_objects(), move |secret| {
        let (name, sns) = (secret.name_any(), secret.namespace());
        secrets_store
            .state()
            .into_iter()
            .filter(|ms| {
                ms.namespace() == sns
                    && (crate::model::referenced_secrets(&ms.spec).contains_key(&name)
                        // Shared mode carries the values of credentials named by env.
                        || (shared_mode && crate::model::shared::value_refs(&ms.spec).contains_key(&name)))
            })
            .map(|ms| ObjectRef::from_obj(&*ms))
            .collect::<Vec<_>>()
    });
    // Flow health: the collector pods (a watch, this operator's pods only) and a gathering
    // task that re-reconciles the resources whose verdict changed.
    let (flow_trigger, flow_changed) = futures::channel::mpsc::unbounded();
    if ctx.settings.flow_interval.is_some() {
        let writer = kube::runtime::reflector::store::Writer::<Pod>::default();
        let pods = writer.as_reader();
        let pod_watch = kube::runtime::reflector(
            writer,
            watch::watch(scoped::<Pod>(&client, ns), children.clone()).modify(flow::slim_pod),
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
    // Shared mode: a change of a shared child wakes the shared task (drift is reverted), and
    // a shared DaemonSet's change (its rollout, its pods' readiness) is every resource's status.
    let (all_trigger, all_changed) = futures::channel::mpsc::channel::<()>(1);
    if let Some(shared_ns) = shared_ns {
        tokio::spawn(shared::run(ctx.clone(), ms_store.clone()));
        let n = || shared_ns.clone();
        let c = || ctx.clone();
        ds_events = ds_events.inspect(shared::hook(c(), n(), Some(all_trigger.clone()))).boxed();
        cm_events = cm_events.inspect(shared::hook(c(), n(), None)).boxed();
        owned_secret_events = owned_secret_events.inspect(shared::hook(c(), n(), None)).boxed();
        sa_events = sa_events.inspect(shared::hook(c(), n(), None)).boxed();
        cr_events = cr_events.inspect(shared::hook(c(), n(), None)).boxed();
        crb_events = crb_events.inspect(shared::hook(c(), n(), None)).boxed();
    } else if ctx.settings.namespace.is_none() {
        tokio::spawn(shared::remove_leftovers(ctx.clone()));
    }
    let _open = all_trigger;
    let run = controller
        .reconcile_on(flow_changed)
        .reconcile_all_on(all_changed)
        .owns_stream(ds_events)
        .owns_stream(deploy_events)
        .owns_stream(svc_events)
        .owns_stream(netpol_events)
        .owns_stream(cm_events)
        .owns_stream(owned_secret_events)
        .owns_stream(sa_events)
        .owns_stream(role_events)
        .owns_stream(rb_events)
        .watches_stream(cr_events, to_owner::<PartialObjectMeta<ClusterRole>>)
        .watches_stream(crb_events, to_owner::<PartialObjectMeta<ClusterRoleBinding>>)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        // Failures are logged once, by the error policy.
        .for_each(|_| futures::future::ready(()));
    Box::pin(run)
}

/// Watch caches for the extra kinds whose status is exported (`group/version/Kind`; the core
/// group is written `/v1/Kind`), and their watches (run once this replica leads).
async fn status_metric_kinds(
    client: &Client,
    specs: &[String],
) -> anyhow::Result<(Vec<WatchedKind>, Vec<futures::future::BoxFuture<'static, ()>>)> {
    let mut out = Vec::new();
    let mut watches = Vec::new();
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
        let stream = kube::runtime::reflector(writer, watch::watch(api, watcher::Config::default()));
        watches.push(stream.for_each(|_| futures::future::ready(())).boxed());
        info!(kind = %spec, "exporting status metrics");
        out.push(WatchedKind { resource, store: reader });
    }
    Ok((out, watches))
}
