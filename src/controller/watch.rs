//! The operator's watches and their caches: every watch restarts itself with a fresh list
//! when the apiserver says its resourceVersion is gone, and the child kinds' watches keep
//! stores the apply step reads instead of listing. Touches: the Kubernetes API (list and
//! watch only).

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::Lookup;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::compact::{self, Cache, Cached, ContentDigest};
use crate::render::Kind;
use tracing::warn;

/// A watch of `api` that lists again from scratch when its resourceVersion expired.
///
/// kube's watcher relists when a watch *event* says 410 Gone, but not when the watch request
/// itself is answered 410: then it retries the same resourceVersion forever (measured: after
/// a 30 s apiserver outage a new resource stayed unseen for 11 minutes, the log repeating
/// `too old resource version`). Every other error is retried with [`WatchBackoff`], reset by
/// the next success, for this watch alone.
pub fn watch<K>(api: Api<K>, config: watcher::Config) -> Events<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let url = api.resource_url().to_string();
    let fresh = move || watcher::watcher(api.clone(), config.clone()).backoff(WatchBackoff::default()).boxed();
    let first = fresh();
    futures::stream::unfold((first, fresh), |(mut inner, fresh)| async move {
        let item = inner.next().await?;
        if let Err(e) = &item
            && expired(e)
        {
            inner = fresh();
        }
        Some((item, (inner, fresh)))
    })
    // Errors end here, logged: each watch already backs off on its own (above). Passed on, a
    // controller would pause *all* its triggers for every error of any of them (measured:
    // after a 15 s apiserver stop its 11 watches' errors added up to a 57 s pause, and a
    // new resource waited minutes).
    .filter_map(move |item| {
        let kept = match item {
            Ok(event) => Some(Ok(event)),
            Err(e) => {
                warn!(watch = %url, error = %e, relist = expired(&e), "watch failed; retrying with backoff");
                None
            }
        };
        futures::future::ready(kept)
    })
    .boxed()
}

/// First and longest wait between a watch's retries. client-go's 30 s cap means a watch may
/// wait half a minute after the apiserver is back (measured: 25.6 s after a 15 s outage); at
/// most 3 s here (up to 6 s with jitter) costs a request per watch every few seconds while the
/// apiserver is away.
const WATCH_RETRY_MIN: Duration = Duration::from_millis(500);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(3);

/// Exponential, jittered, reset by the watch's next success.
struct WatchBackoff {
    current: backon::ExponentialBackoff,
}

impl WatchBackoff {
    fn fresh() -> backon::ExponentialBackoff {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::new()
            .with_min_delay(WATCH_RETRY_MIN)
            .with_max_delay(WATCH_RETRY_MAX)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { current: WatchBackoff::fresh() }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.current.next().unwrap_or(WATCH_RETRY_MAX))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.current = WatchBackoff::fresh();
    }
}

/// The apiserver no longer has the resourceVersion this watch would resume from.
fn expired(e: &watcher::Error) -> bool {
    let status = match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        // kube relists after this one itself, but only after a backoff pause: a fresh watch
        // lists at once.
        | watcher::Error::WatchError(s) => s,
        _ => return false,
    };
    status.code == 410 || status.reason == "Expired" || status.reason == "Gone"
}

/// A watch's events.
pub type Events<K> = BoxStream<'static, watcher::Result<Event<K>>>;

/// A reflector over [`watch`]: the store, and the events after they reached it (for a
/// controller trigger). The events must be polled for the store to fill.
pub fn cached<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Events<K>)
where
    K: Resource + Lookup + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    <K as Lookup>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer: Writer<K> = Writer::default();
    let store = writer.as_reader();
    // managedFields and kubectl's copy of the last applied object (as large as the object)
    // are never read from these objects: not kept.
    let slim = watch(api, config).modify(|o| {
        o.managed_fields_mut().clear();
        o.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
    });
    (store, reflector::reflector(writer, slim).boxed())
}

/// Every cache the reconcile reads (set once the controller's watches exist; a context
/// without them, as in tests calling `reconcile` directly, reads from the API).
#[derive(Clone)]
pub struct Caches {
    pub children: ChildCaches,
    /// Metadata of the Secrets in the watched namespaces.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// GreptimeDBClusters, when their CRD was installed at start-up.
    pub greptime: Option<Store<DynamicObject>>,
}

/// What this process applied, per child, until the watch cache shows it: the apiserver's
/// answer, reduced (resourceVersion, skeleton, content digest). A reconcile right after an
/// apply (triggered by the watch event of another child of the same apply) would otherwise
/// see the older cached copy and apply again (measured: 24 writes per new resource instead of
/// 17); and the cache, seeing exactly this answer arrive, knows it verified.
#[derive(Clone, Default)]
pub struct Applied(std::sync::Arc<std::sync::Mutex<AppliedMap>>);

struct AppliedEntry {
    hash: u128,
    rv: u64,
    skeleton: compact::Skeleton,
    digest: ContentDigest,
    /// The answer carried every value applied (no mutating admission changed one).
    covering: bool,
    at: std::time::Instant,
}

/// (kind, namespace, name) → what was applied last.
type AppliedMap = HashMap<(Kind, String, String), AppliedEntry>;

/// A watch event lags an apply by milliseconds to seconds: an entry older than this is
/// dropped (measured: all 7,000 children of 1,000 resources stayed in memory otherwise).
const APPLIED_KEEP: Duration = Duration::from_secs(60);

impl Applied {
    fn lock(&self) -> std::sync::MutexGuard<'_, AppliedMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `obj`: the apiserver's answer to our apply; `covering`: it carries every value applied.
    pub fn record<K: Resource + Clone + serde::Serialize>(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        obj: &K,
        covering: bool,
    ) {
        let (Some(hash), Some(rv)) = (
            obj.annotations().get(super::apply::ANNOTATION_APPLIED_HASH).and_then(|h| compact::hash_value(h)),
            ResourceExt::resource_version(obj).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            return;
        };
        let Some((skeleton, digest)) = compact::reduce(&compact::slim(obj), &mut |v| v.into()) else { return };
        let now = std::time::Instant::now();
        let mut map = self.lock();
        // Pruned now and then, not on every apply (a scan of the map).
        if map.len().is_multiple_of(256) {
            map.retain(|_, e| now.duration_since(e.at) < APPLIED_KEEP);
        }
        let entry = AppliedEntry { hash, rv, skeleton, digest, covering, at: now };
        map.insert((kind, ns.to_string(), name.to_string()), entry);
    }

    pub fn forget(&self, kind: Kind, ns: &str, name: &str) {
        self.lock().remove(&(kind, ns.to_string(), name.to_string()));
    }

    /// The applied hash and content digest, when the object at `rv` is exactly our covering
    /// apply's answer.
    pub fn verified_at(&self, kind: Kind, ns: &str, name: &str, rv: u64) -> Option<(u128, ContentDigest)> {
        let map = self.lock();
        let e = map.get(&(kind, ns.to_string(), name.to_string()))?;
        (e.rv == rv && e.covering).then_some((e.hash, e.digest))
    }

    /// Our applied copy with `hash`, when the cache's (`cached_rv`; None: not there yet) is
    /// older. resourceVersions are compared as etcd revisions; one that is not a number never
    /// counts as older. Forgotten once the cache has caught up.
    pub fn newer_than<K: Resource<DynamicType = ()> + DeserializeOwned>(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        hash: u128,
        cached_rv: Option<String>,
    ) -> Option<Cached<K>> {
        let key = (kind, ns.to_string(), name.to_string());
        let mut map = self.lock();
        let e = map.get(&key)?;
        let cached = match cached_rv {
            None => None,
            Some(c) => Some(c.parse::<u64>().ok()?),
        };
        if cached.is_some_and(|c| c >= e.rv) {
            map.remove(&key);
            return None;
        }
        if e.hash != hash {
            return None;
        }
        Some(Cached { object: e.skeleton.decode(ns, name)?, verified: e.covering.then_some(e.hash), digest: e.digest })
    }
}

/// The caches of the child kinds (watched with the operator's managed-by label).
#[derive(Clone)]
pub struct ChildCaches {
    pub service_accounts: Cache<ServiceAccount>,
    pub roles: Cache<Role>,
    pub role_bindings: Cache<RoleBinding>,
    pub cluster_roles: Cache<ClusterRole>,
    pub cluster_role_bindings: Cache<ClusterRoleBinding>,
    /// The operator's own Secrets (plain env values) only: selected by label.
    pub secrets: Cache<Secret>,
    pub config_maps: Cache<ConfigMap>,
    pub daemon_sets: Cache<DaemonSet>,
    pub deployments: Cache<Deployment>,
    pub services: Cache<Service>,
    pub network_policies: Cache<NetworkPolicy>,
    /// Our writes the caches may not show yet.
    pub applied: Applied,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_resource_version_relists() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure("too old resource version: 5 (90)", reason).with_code(code).boxed(),
            )
        };
        assert!(expired(&watcher::Error::WatchStartFailed(status(410, "Expired"))));
        assert!(expired(&watcher::Error::InitialListFailed(status(410, "Gone"))));
        assert!(!expired(&watcher::Error::WatchStartFailed(status(500, "InternalError"))));
        assert!(!expired(&watcher::Error::WatchFailed(status(403, "Forbidden"))));
        let gone = kube::core::Status::failure("too old resource version: 206 (217)", "Expired").with_code(410);
        assert!(expired(&watcher::Error::WatchError(gone.boxed())));
    }
}
