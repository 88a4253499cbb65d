//! The apply step: bring the cluster to the rendered [`Children`]. Server-side apply what is
//! missing or different, delete what is no longer rendered (orphans), and return the children
//! as they are now, typed. A child is "unchanged" when it carries the hash of what we would
//! apply, no other field manager owns one of our fields and every value we apply is still there
//! ([`drift`]); unchanged children are read from the controller's watch caches and cost no
//! request at all. A dry run of every changed child comes first where it protects what runs:
//! when more than one child changes and at least one of them already exists (a refusal midway
//! would leave a half-changed resource), and on every retry after a refusal (`careful`). When
//! every change is a creation, a refusal deletes what this sync created instead; a single
//! changed child is refused whole by its own apply.
//! Touches: the Kubernetes API (list, patch, delete of the child kinds).

use std::collections::BTreeMap;
use std::fmt::Debug;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use tracing::info;

use super::compact::{self, Cache, Cached};
use super::drift;
use super::traced::traced;
use super::watch::{Applied, ChildCaches};
use crate::error::Error;
use crate::render::meta::{self, MANAGER};
use crate::render::{Children, Kind};

/// Annotation holding the hash of the last applied desired state of a child.
pub const ANNOTATION_APPLIED_HASH: &str = "e6data.io/applied-hash";

/// What a sync did, and the children as they are after it.
#[derive(Debug, Default)]
pub struct Synced {
    pub live: Children,
    pub applied: usize,
    pub deleted: usize,
    /// ClusterRoles and ClusterRoleBindings written: they have no owner reference (a
    /// cluster-scoped object cannot be owned by a namespaced one), so the caller checks that
    /// their owner still exists.
    pub cluster_applied: usize,
    /// Children this sync created (they did not exist before it): what a refusal later in
    /// the same sync deletes again when no dry run preceded it.
    created: Vec<(Kind, String, String)>,
}

/// An apply the apiserver refused; nothing of the change was persisted.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {source}")]
pub struct Rejected {
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The apiserver will not take a rendered child: a problem of the spec (or of the
    /// operator's RBAC), reported in status; retrying unchanged would fail the same way.
    #[error("rejected by the apiserver: {0}")]
    Rejected(#[from] Rejected),
    /// Anything transient, retried with backoff.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// A child kind the applier handles.
trait ChildKind: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<K> ChildKind for K where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

/// Hash of the desired object, stamped on it as [`ANNOTATION_APPLIED_HASH`].
fn stamp_hash<K: ChildKind>(obj: &mut K) -> Result<String, Error> {
    let json = serde_json::to_vec(obj).map_err(|e| Error::Render(e.to_string()))?;
    let hash = hex::encode(&Sha256::digest(&json)[..16]);
    obj.annotations_mut().insert(ANNOTATION_APPLIED_HASH.into(), hash.clone());
    Ok(hash)
}

/// Errors that mean "the apiserver will not take this object": anything else (timeouts,
/// 5xx, throttling, conflicts) is transient and retried with backoff.
fn classify(kind: Kind, name: &str, e: kube::Error) -> SyncError {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422) => {
            SyncError::Rejected(Rejected { kind: kind.name(), name: name.into(), source: e })
        }
        _ => SyncError::Failed(Error::Apply { kind: kind.name(), name: name.into(), source: e }),
    }
}

/// One kind's part of a sync: the desired objects (hash-stamped), the live ones, and which
/// desired ones must be applied.
struct Plan<K: ChildKind> {
    api: Api<K>,
    kind: Kind,
    desired: Vec<K>,
    live: BTreeMap<String, K>,
    changed: Vec<bool>,
    cache: Option<(Cache<K>, Applied)>,
}

impl<K: ChildKind> Plan<K> {
    /// `cache`: the kind's watch cache (read instead of listing: an unchanged resource costs
    /// no request) and what this process applied that the cache may not show yet; None lists.
    async fn new(
        api: Api<K>,
        kind: Kind,
        selector: &str,
        desired: Vec<K>,
        cache: Option<(&Cache<K>, &Applied)>,
    ) -> Result<Plan<K>, SyncError> {
        let ns = api_namespace(&api).to_string();
        let listed: Vec<Cached<K>> = match cache.map(|(s, _)| s) {
            Some(cache) => {
                cache.select(&ns, selector).await.map_err(|why| Error::CacheNotReady { kind: kind.name(), why })?
            }
            None => {
                let lp = ListParams::default().labels(selector);
                traced("list", kind.name(), &ns, "", api.list(&lp))
                    .await
                    .map_err(|source| Error::ListChildren { kind: kind.name(), source })?
                    .items
                    .into_iter()
                    .map(|object| Cached { object, verified: None, digest: 0 })
                    .collect()
            }
        };
        let mut live: BTreeMap<String, Cached<K>> = listed.into_iter().map(|c| (c.object.name_any(), c)).collect();
        let mut desired = desired;
        let mut changed = Vec::with_capacity(desired.len());
        for obj in desired.iter_mut() {
            let hash = stamp_hash(obj)?;
            let hash_value = compact::hash_value(&hash);
            let name = obj.name_any();
            // Our own write of this very object, newer than the cached copy (its watch event
            // is still on the way): the apiserver's answer to it stands in for the cache.
            if let (Some((_, a)), Some(h)) = (cache, hash_value)
                && let Some(ours) =
                    a.newer_than(kind, &ns, &name, h, live.get(&name).and_then(|l| l.object.resource_version()))
            {
                live.insert(name.clone(), ours);
            }
            let same = live.get(&name).is_some_and(|l| {
                let o = &l.object;
                if o.annotations().get(ANNOTATION_APPLIED_HASH) != Some(&hash) {
                    return false;
                }
                let foreign = match o.annotations().get(compact::ANNOTATION_FOREIGN_OWNER) {
                    Some(v) => v == "true",
                    None => drift::foreign_owner(o.managed_fields()),
                };
                if foreign {
                    info!(kind = kind.name(), name = %name, "another field manager owns our fields: re-applying");
                    return false;
                }
                if l.verified.is_some() && l.verified == hash_value {
                    return true;
                }
                if let Some(path) = drift::difference(obj, o) {
                    info!(kind = kind.name(), name = %name, field = %path, "edited since we applied it: re-applying");
                    return false;
                }
                // Verified: the cache keeps only the skeleton from now on.
                if let (Some((c, _)), Some(h)) = (cache, hash_value) {
                    c.verify(&ns, &name, h, l.digest);
                }
                true
            });
            changed.push(!same);
        }
        let live = live.into_iter().map(|(n, c)| (n, c.object)).collect();
        Ok(Plan { api, kind, desired, live, changed, cache: cache.map(|(c, a)| (c.clone(), a.clone())) })
    }

    fn changed(&self) -> impl Iterator<Item = &K> {
        self.desired.iter().zip(&self.changed).filter(|(_, c)| **c).map(|(o, _)| o)
    }

    /// How many children change, and how many of those changes touch an existing child
    /// (updates, and deletions of orphans).
    fn counts(&self) -> (usize, usize) {
        let changed: Vec<&K> = self.changed().collect();
        let updates = changed.iter().filter(|o| self.live.contains_key(&o.name_any())).count();
        let orphans = self.live.keys().filter(|n| !self.desired.iter().any(|d| d.name_any() == **n)).count();
        (changed.len() + orphans, updates + orphans)
    }

    async fn dry_run(&self) -> Result<(), SyncError> {
        let pp = PatchParams { dry_run: true, ..PatchParams::apply(MANAGER).force() };
        for obj in self.changed() {
            let name = obj.name_any();
            let ns = api_namespace(&self.api);
            traced("dry-run apply", self.kind.name(), ns, &name, self.api.patch(&name, &pp, &Patch::Apply(obj)))
                .await
                .map_err(|e| classify(self.kind, &name, e))?;
        }
        Ok(())
    }

    /// Apply the changed objects, delete the stale ones; the objects as they are now.
    async fn apply(self, stats: &mut Synced) -> Result<Vec<K>, SyncError> {
        let pp = PatchParams::apply(MANAGER).force();
        let ns = api_namespace(&self.api).to_string();
        let Plan { api, kind, desired, mut live, changed, cache } = self;
        let memory = cache.map(|(_, a)| a);
        let mut out = Vec::with_capacity(desired.len());
        for (obj, changed) in desired.into_iter().zip(changed) {
            let name = obj.name_any();
            let current = live.remove(&name);
            match (changed, current) {
                (false, Some(current)) => out.push(current),
                (_, current) => {
                    if current.is_none() {
                        stats.created.push((kind, ns.clone(), name.clone()));
                    }
                    let applied = traced("apply", kind.name(), &ns, &name, api.patch(&name, &pp, &Patch::Apply(&obj)))
                        .await
                        .map_err(|e| classify(kind, &name, e))?;
                    stats.applied += 1;
                    if let Some(m) = &memory {
                        m.record(kind, &ns, &name, &applied, drift::difference(&obj, &applied).is_none());
                    }
                    out.push(applied);
                }
            }
        }
        // What is left was not rendered: an orphan of an earlier spec.
        for name in live.into_keys() {
            if let Some(m) = &memory {
                m.forget(kind, &ns, &name);
            }
            match traced("delete", kind.name(), &ns, &name, api.delete(&name, &DeleteParams::background())).await {
                Ok(_) => stats.deleted += 1,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => return Err(Error::Delete { kind: kind.name(), name, source }.into()),
            }
        }
        Ok(out)
    }
}

fn namespaced<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), namespace)
}

fn api_namespace<K: ChildKind>(api: &Api<K>) -> &str {
    api.namespace().unwrap_or_default()
}

/// Apply `children` of CR `cr` in `namespace` and delete its stale children. The live
/// children are read from `caches` when given (the controller's watches), else listed.
/// `careful`: dry-run every change first, whatever it is (the last sync of these children was
/// refused: creating and deleting them again on every retry would churn).
pub async fn sync(
    client: &Client,
    caches: Option<&ChildCaches>,
    namespace: &str,
    cr: &str,
    children: Children,
    careful: bool,
) -> Result<Synced, SyncError> {
    let Children {
        service_accounts,
        roles,
        role_bindings,
        cluster_roles,
        cluster_role_bindings,
        secrets,
        config_maps,
        daemon_sets,
        deployments,
        services,
        network_policies,
    } = children;
    let ns_sel = meta::children_selector(cr);
    let cluster_sel = meta::cluster_children_selector(namespace, cr);
    // Plans for every kind first (lists only), then every dry run, then the writes: a refusal
    // of any child leaves every kind untouched.
    let c = caches;
    let sa = Plan::new(
        namespaced(client, namespace),
        Kind::ServiceAccount,
        &ns_sel,
        service_accounts,
        c.map(|c| (&c.service_accounts, &c.applied)),
    )
    .await?;
    let role =
        Plan::new(namespaced(client, namespace), Kind::Role, &ns_sel, roles, c.map(|c| (&c.roles, &c.applied))).await?;
    let rb = Plan::new(
        namespaced(client, namespace),
        Kind::RoleBinding,
        &ns_sel,
        role_bindings,
        c.map(|c| (&c.role_bindings, &c.applied)),
    )
    .await?;
    let cr_ = Plan::new(
        Api::all(client.clone()),
        Kind::ClusterRole,
        &cluster_sel,
        cluster_roles,
        c.map(|c| (&c.cluster_roles, &c.applied)),
    )
    .await?;
    let crb = Plan::new(
        Api::all(client.clone()),
        Kind::ClusterRoleBinding,
        &cluster_sel,
        cluster_role_bindings,
        c.map(|c| (&c.cluster_role_bindings, &c.applied)),
    )
    .await?;
    let secret =
        Plan::new(namespaced(client, namespace), Kind::Secret, &ns_sel, secrets, c.map(|c| (&c.secrets, &c.applied)))
            .await?;
    let cm = Plan::new(
        namespaced(client, namespace),
        Kind::ConfigMap,
        &ns_sel,
        config_maps,
        c.map(|c| (&c.config_maps, &c.applied)),
    )
    .await?;
    let ds = Plan::new(
        namespaced(client, namespace),
        Kind::DaemonSet,
        &ns_sel,
        daemon_sets,
        c.map(|c| (&c.daemon_sets, &c.applied)),
    )
    .await?;
    let deploy = Plan::new(
        namespaced(client, namespace),
        Kind::Deployment,
        &ns_sel,
        deployments,
        c.map(|c| (&c.deployments, &c.applied)),
    )
    .await?;
    let svc = Plan::new(
        namespaced(client, namespace),
        Kind::Service,
        &ns_sel,
        services,
        c.map(|c| (&c.services, &c.applied)),
    )
    .await?;
    let netpol = Plan::new(
        namespaced(client, namespace),
        Kind::NetworkPolicy,
        &ns_sel,
        network_policies,
        c.map(|c| (&c.network_policies, &c.applied)),
    )
    .await?;

    // A dry run of every changed child first protects what runs: a refusal of one child
    // would otherwise leave others of the same change applied. It protects nothing when one
    // child changes (its refusal changes nothing), or when every change is a creation: then a
    // refusal deletes what this sync created. Skipped there, which halves the writes of a new
    // resource. After a refusal every retry dry-runs (`careful`), so nothing is created until
    // the apiserver takes all of it.
    let counts = [
        sa.counts(),
        role.counts(),
        rb.counts(),
        cr_.counts(),
        crb.counts(),
        secret.counts(),
        cm.counts(),
        ds.counts(),
        deploy.counts(),
        svc.counts(),
        netpol.counts(),
    ];
    let (changed, updates) = counts.iter().fold((0, 0), |(c, u), (c2, u2)| (c + c2, u + u2));
    let dry = careful || (changed > 1 && updates > 0);
    if dry {
        sa.dry_run().await?;
        role.dry_run().await?;
        rb.dry_run().await?;
        cr_.dry_run().await?;
        crb.dry_run().await?;
        secret.dry_run().await?;
        cm.dry_run().await?;
        ds.dry_run().await?;
        deploy.dry_run().await?;
        svc.dry_run().await?;
        netpol.dry_run().await?;
    }

    let mut out = Synced::default();
    let applied = async {
        // Identity and RBAC before the config, the config before the workloads that mount it;
        // workloads last, so a refused child of a new resource never started a pod.
        let service_accounts = sa.apply(&mut out).await?;
        let roles = role.apply(&mut out).await?;
        let role_bindings = rb.apply(&mut out).await?;
        let before_cluster = out.applied;
        let cluster_roles = cr_.apply(&mut out).await?;
        let cluster_role_bindings = crb.apply(&mut out).await?;
        out.cluster_applied = out.applied - before_cluster;
        let secrets = secret.apply(&mut out).await?;
        let config_maps = cm.apply(&mut out).await?;
        let services = svc.apply(&mut out).await?;
        let network_policies = netpol.apply(&mut out).await?;
        let daemon_sets = ds.apply(&mut out).await?;
        let deployments = deploy.apply(&mut out).await?;
        Ok::<_, SyncError>(Children {
            service_accounts,
            roles,
            role_bindings,
            cluster_roles,
            cluster_role_bindings,
            secrets,
            config_maps,
            daemon_sets,
            deployments,
            services,
            network_policies,
        })
    }
    .await;
    match applied {
        Ok(live) => {
            out.live = live;
            Ok(out)
        }
        Err(SyncError::Rejected(r)) if !dry => {
            undo(client, caches, &out.created).await?;
            Err(r.into())
        }
        Err(e) => Err(e),
    }
}

/// Delete what a refused sync created, so a refusal leaves nothing of its change behind.
async fn undo(client: &Client, caches: Option<&ChildCaches>, created: &[(Kind, String, String)]) -> Result<(), Error> {
    for (kind, ns, name) in created.iter().rev() {
        let ar = kind.api_resource();
        let api: Api<kube::api::DynamicObject> = if kind.namespaced() {
            Api::namespaced_with(client.clone(), ns, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        if let Some(c) = caches {
            c.applied.forget(*kind, ns, name);
        }
        match traced("delete", kind.name(), ns, name, api.delete(name, &DeleteParams::background())).await {
            Ok(_) => {
                info!(kind = kind.name(), %ns, %name, "removed again: a later child of the same change was refused")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(Error::Delete { kind: kind.name(), name: name.clone(), source }),
        }
    }
    Ok(())
}

/// Delete the cluster-scoped children of a CR (namespaced ones go with it through owner
/// references). Used by the finalizer.
pub async fn delete_cluster_children(client: &Client, namespace: &str, cr: &str) -> Result<(), Error> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let sel = meta::cluster_children_selector(namespace, cr);
    delete_all(Api::<ClusterRoleBinding>::all(client.clone()), Kind::ClusterRoleBinding, &sel).await?;
    delete_all(Api::<ClusterRole>::all(client.clone()), Kind::ClusterRole, &sel).await
}

async fn delete_all<K: ChildKind>(api: Api<K>, kind: Kind, selector: &str) -> Result<(), Error> {
    let listed = traced("list", kind.name(), "", "", api.list_metadata(&ListParams::default().labels(selector)))
        .await
        .map_err(|source| Error::ListChildren { kind: kind.name(), source })?;
    for obj in listed {
        let name = obj.name_any();
        match traced("delete", kind.name(), "", &name, api.delete(&name, &DeleteParams::background())).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(Error::Delete { kind: kind.name(), name, source }),
        }
    }
    Ok(())
}
