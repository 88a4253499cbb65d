//! The shared collection mode (`--collection-mode=shared`): every resource's reconcile puts
//! its part ([`Tenant`]) into the [`Registry`]; one task renders the shared collectors from
//! all parts and applies them in the admin's namespace (the same `apply::sync` as a
//! resource's children, so drift by any verb is reverted the same way). Touches: the
//! Kubernetes API (through `apply`).
//!
//! The task runs when a part changes, a resource is deleted, a shared child changes (drift),
//! and every ten minutes. At start it waits (at most a minute) until every resource has been
//! reconciled once, so a restarted operator never applies a config missing tenants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::Store;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::apply::{self, SyncError};
use super::context::Context;
use crate::api::MonitoringServices;
use crate::model::shared::{INSTANCE, Tenant};
use crate::render::meta;

type Key = (String, String);

/// Every resource's part of the shared collectors, by namespace and name.
#[derive(Default)]
pub struct Registry {
    parts: Mutex<Parts>,
    changed: Notify,
}

#[derive(Default)]
struct Parts {
    tenants: BTreeMap<Key, Tenant>,
    /// Resources reconciled at least once since start (with or without a part).
    seen: BTreeSet<Key>,
}

impl Registry {
    /// Set (or, with None, remove) the part of `namespace/name`; wakes the task when it changed.
    /// A part whose id another resource already holds is refused (and this resource's old part
    /// removed): ids are 48 bits of a hash, so a name can be searched for that collides with
    /// another tenant's, whose routes, sinks and credentials it would then overwrite. Returns
    /// the holder's `namespace/name`.
    pub fn set(&self, namespace: &str, name: &str, tenant: Option<Tenant>) -> Result<(), String> {
        let key = (namespace.to_string(), name.to_string());
        let mut p = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        p.seen.insert(key.clone());
        let holder = tenant.as_ref().and_then(|t| p.tenants.iter().find(|(k, o)| **k != key && o.id == t.id));
        let taken = holder.map(|((ns, n), _)| format!("{ns}/{n}"));
        let changed = match tenant {
            Some(t) if taken.is_none() => p.tenants.insert(key, t.clone()).as_ref() != Some(&t),
            _ => p.tenants.remove(&key).is_some(),
        };
        drop(p);
        if changed {
            self.changed.notify_one();
        }
        taken.map_or(Ok(()), Err)
    }

    /// Remove the part of `namespace/name` (if any).
    pub fn remove(&self, namespace: &str, name: &str) {
        // Never refused: only a part being set can collide.
        let _ = self.set(namespace, name, None);
    }

    /// Something outside the parts changed (a deletion, a shared child): look again.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// The parts of resources still in `store` (a deleted resource's part is dropped here).
    fn current(&self, store: &Store<MonitoringServices>) -> Vec<Tenant> {
        let mut p = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let live: BTreeSet<Key> =
            store.state().iter().map(|ms| (ms.namespace().unwrap_or_default(), ms.name_any())).collect();
        p.tenants.retain(|k, _| live.contains(k));
        p.seen.retain(|k| live.contains(k));
        p.tenants.values().cloned().collect()
    }

    /// Tenant id → its resource, for the tenants collecting `component` (`logs`, `metrics`).
    pub fn owners(&self, component: &str) -> BTreeMap<String, kube::runtime::reflector::ObjectRef<MonitoringServices>> {
        let p = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        p.tenants
            .iter()
            .filter(|(_, t)| match component {
                "logs" => t.logs.is_some(),
                "metrics" => t.metrics.is_some(),
                _ => false,
            })
            .map(|((ns, name), t)| (t.id.clone(), kube::runtime::reflector::ObjectRef::new(name).within(ns)))
            .collect()
    }

    fn all_seen(&self, store: &Store<MonitoringServices>) -> bool {
        let p = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        store.state().iter().all(|ms| p.seen.contains(&(ms.namespace().unwrap_or_default(), ms.name_any())))
    }
}

/// Whether `obj` is one of the shared collectors' children.
pub fn is_shared_child<K: kube::Resource>(obj: &K, shared_namespace: &str) -> bool {
    obj.labels().get(meta::LABEL_INSTANCE).map(String::as_str) == Some(INSTANCE)
        && obj.meta().namespace.as_deref().is_none_or(|ns| ns == shared_namespace)
}

/// A child watch's inspector: a change of a shared child wakes the shared task (drift is
/// reverted) and, with `trigger`, asks for a round of every resource (their status).
pub fn hook<K: kube::Resource>(
    ctx: Arc<Context>,
    shared_namespace: String,
    trigger: Option<futures::channel::mpsc::Sender<()>>,
) -> impl Fn(&kube::runtime::watcher::Result<PartialObjectMeta<K>>) {
    move |e| {
        if let Ok(obj) = e
            && is_shared_child(obj, &shared_namespace)
        {
            ctx.shared.poke();
            if let Some(mut t) = trigger.clone() {
                // Full: a round of every resource is already due.
                let _ = t.try_send(());
            }
        }
    }
}

/// The shared DaemonSets as the watch cache has them now (their status is each resource's).
pub async fn daemon_sets(ctx: &Context) -> Vec<DaemonSet> {
    let (Some(s), Some(c)) = (&ctx.settings.shared, ctx.caches.get()) else { return Vec::new() };
    c.children.daemon_sets.skeletons(&s.namespace, &meta::children_selector(INSTANCE)).await.unwrap_or_default()
}

/// Per-resource mode: remove shared collectors left from an earlier run in shared mode (their
/// config Secret holds tenants' credentials; their ClusterRole goes with the orphan sweep).
pub async fn remove_leftovers(ctx: Arc<Context>) {
    let Some(c) = ctx.caches.get() else { return };
    let shared =
        |labels: &BTreeMap<String, String>| labels.get(meta::LABEL_INSTANCE).map(String::as_str) == Some(INSTANCE);
    // Where shared children are: their DaemonSets and config Secrets (the rest goes with them).
    let daemon_sets = c.children.daemon_sets.all().await.unwrap_or_default();
    let secrets = c.children.secrets.all().await.unwrap_or_default();
    let namespaces: BTreeSet<String> = daemon_sets
        .iter()
        .map(|d| (d.labels(), d.namespace()))
        .chain(secrets.iter().map(|s| (s.labels(), s.namespace())))
        .filter(|(labels, _)| shared(labels))
        .filter_map(|(_, ns)| ns)
        .collect();
    for ns in namespaces {
        // A resource may itself be named `monitoring-shared` (per-resource mode allows it):
        // its children carry the same instance label and are not leftovers.
        let resources = kube::Api::<MonitoringServices>::namespaced(ctx.client.clone(), &ns);
        match resources.get_opt(INSTANCE).await {
            Ok(None) => {}
            Ok(Some(_)) => continue,
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not check for a resource named like the shared collectors");
                continue;
            }
        }
        let empty = crate::render::Children::default();
        match apply::sync(&ctx.client, Some(&c.children), &ns, INSTANCE, empty, false).await {
            Ok(s) if s.deleted > 0 => {
                info!(namespace = %ns, deleted = s.deleted, "removed the shared collectors of an earlier shared-mode run")
            }
            Ok(_) => {}
            Err(e) => {
                warn!(namespace = %ns, error = %e, "could not remove the shared collectors of an earlier shared-mode run")
            }
        }
    }
}

/// Keep the shared collectors in line with the registry, forever (the leader's task).
pub async fn run(ctx: Arc<Context>, store: Store<MonitoringServices>) {
    let Some(mut settings) = ctx.settings.shared.clone() else { return };
    settings.discovery_image = ctx.settings.discovery_image.clone();
    settings.network_policy = ctx.settings.network_policy;
    settings.flow_window_secs = ctx.settings.flow_window_secs;
    // Polled, not awaited: awaited before the reflector's first event, kube-runtime 5.0's
    // `wait_until_ready` was measured never to wake here.
    while store.wait_until_ready().now_or_never().is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let start = tokio::time::Instant::now();
    while !ctx.shared.all_seen(&store) && start.elapsed() < Duration::from_secs(60) {
        tokio::select! {
            _ = ctx.shared.changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    // After a refusal, retries dry-run first (nothing is created and deleted again each time).
    let mut careful = false;
    loop {
        // Parts arrive in bursts (every resource at start, a namespace of them at once).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tenants = ctx.shared.current(&store);
        let result = sync(&ctx, &settings, &tenants, careful).await;
        careful = matches!(result, Err(Failure::Refused(_)));
        let again = match result.map_err(anyhow::Error::from) {
            // Pokes cover every change; this only repairs what no watch event announced.
            Ok(()) => Duration::from_secs(600),
            Err(e) => {
                warn!(error = %e, tenants = tenants.len(), "shared collectors: apply failed; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = ctx.shared.changed.notified() => {}
            _ = tokio::time::sleep(again) => {}
        }
    }
}

/// Why a sync of the shared children failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the apiserver refused a shared child: {0}")]
    Refused(apply::Rejected),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

async fn sync(
    ctx: &Context,
    s: &crate::render::shared::SharedSettings,
    tenants: &[Tenant],
    careful: bool,
) -> Result<(), Failure> {
    let children = crate::render::shared::render(s, tenants).map_err(anyhow::Error::from)?;
    let caches = ctx.caches.get().map(|c| &c.children);
    match apply::sync(&ctx.client, caches, &s.namespace, INSTANCE, children, careful).await {
        Ok(synced) => {
            if synced.applied + synced.deleted > 0 {
                info!(
                    tenants = tenants.len(),
                    applied = synced.applied,
                    deleted = synced.deleted,
                    "shared collectors synced"
                );
            }
            Ok(())
        }
        Err(SyncError::Rejected(r)) => Err(Failure::Refused(r)),
        Err(SyncError::Failed(e)) => Err(Failure::Other(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(ns: &str, id: &str) -> Tenant {
        Tenant {
            id: id.into(),
            namespace: ns.into(),
            name: "mon".into(),
            workspace: "w".into(),
            tenant: "t".into(),
            logs: None,
            loki: None,
            metrics: None,
            greptime: None,
        }
    }

    /// A resource whose id collides with another's is refused, and never replaces the holder.
    #[test]
    fn a_colliding_id_is_refused_and_the_holder_keeps_its_part() {
        let r = Registry::default();
        assert_eq!(r.set("team-a", "mon", Some(tenant("team-a", "t1"))), Ok(()));
        assert_eq!(r.set("team-b", "mon", Some(tenant("team-b", "t1"))), Err("team-a/mon".to_string()));
        let parts = r.parts.lock().unwrap();
        assert_eq!(parts.tenants.len(), 1);
        assert_eq!(parts.tenants[&("team-a".to_string(), "mon".to_string())].namespace, "team-a");
        drop(parts);
        // Its own part again is no collision; once the holder is gone the id is free.
        assert_eq!(r.set("team-a", "mon", Some(tenant("team-a", "t1"))), Ok(()));
        r.remove("team-a", "mon");
        assert_eq!(r.set("team-b", "mon", Some(tenant("team-b", "t1"))), Ok(()));
    }
}
