//! The safety net under the finalizer: cluster-scoped children (ClusterRoles and their
//! bindings, which no owner reference can tie to a namespaced resource) whose resource is gone
//! are deleted, shortly after start-up and then periodically. A leftover ClusterRoleBinding
//! grants cluster-wide pod reads to whatever ServiceAccount of that name appears later.
//! Reads the watch caches only; touches: the Kubernetes API (delete).

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::compact::Cache;
use super::watch::ChildCaches;
use crate::api::MonitoringServices;
use crate::render::meta;

const FIRST: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_secs(300);

/// Sweep forever (the leader's task). `namespace`: the only namespace this operator watches
/// (None: all); children of resources elsewhere belong to another operator and are left alone.
/// `shared`: the shared collectors' namespace in shared mode, whose RBAC has no resource.
/// `selective`: the operator reconciles only resources matching a label selector.
pub async fn run(
    client: Client,
    caches: ChildCaches,
    resources: Store<MonitoringServices>,
    namespace: Option<String>,
    shared: Option<String>,
    selective: bool,
) {
    tokio::time::sleep(FIRST).await;
    loop {
        if resources.wait_until_ready().await.is_ok() {
            let (ns, shared) = (namespace.as_deref(), shared.as_deref());
            let crbs = &caches.cluster_role_bindings;
            sweep(Api::<ClusterRoleBinding>::all(client.clone()), crbs, &resources, ns, shared, selective).await;
            let crs = &caches.cluster_roles;
            sweep(Api::<ClusterRole>::all(client.clone()), crs, &resources, ns, shared, selective).await;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// The owner (namespace, name) a cluster-scoped child names in its labels.
fn owner<K: Resource>(obj: &K) -> Option<(&str, &str)> {
    let l = obj.labels();
    Some((l.get(meta::LABEL_OWNER_NAMESPACE)?.as_str(), l.get(meta::LABEL_OWNER_NAME)?.as_str()))
}

async fn sweep<K>(
    api: Api<K>,
    cache: &Cache<K>,
    resources: &Store<MonitoringServices>,
    namespace: Option<&str>,
    shared: Option<&str>,
    selective: bool,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let Ok(objects) = cache.all().await else { return };
    for obj in objects {
        let Some((ns, name)) = owner(&obj) else { continue };
        // The shared collectors' own (their task keeps them); with shared mode off, an orphan.
        if name == crate::model::shared::INSTANCE && Some(ns) == shared {
            continue;
        }
        if namespace.is_some_and(|watched| watched != ns) || resources.get(&ObjectRef::new(name).within(ns)).is_some() {
            continue;
        }
        // With a resource selector the store holds only this operator's share: ask whether
        // the owner exists at all (another operator's resource is not an orphan).
        if selective {
            let owners: Api<MonitoringServices> = Api::namespaced(api.clone().into_client(), ns);
            if !matches!(owners.get_opt(name).await, Ok(None)) {
                continue;
            }
        }
        // Only the object the cache saw: one re-created since is someone's live child.
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: obj.uid(), resource_version: None }),
            ..DeleteParams::background()
        };
        match api.delete(&obj.name_any(), &dp).await {
            Ok(_) => {
                info!(kind = K::kind(&()).as_ref(), name = %obj.name_any(), owner = %format!("{ns}/{name}"), "removed a cluster-scoped child whose resource is gone")
            }
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
            Err(e) => {
                warn!(kind = K::kind(&()).as_ref(), name = %obj.name_any(), error = %e, "could not remove an orphaned cluster-scoped child")
            }
        }
    }
}
