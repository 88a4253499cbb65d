//! The cache of one child kind, compact. Each object is kept as a [`Skeleton`] (uid,
//! versions, the selection labels, the two annotations the apply step reads, and for
//! workloads `spec.replicas` and `status`: what status and the sweep read) and a digest of the
//! rest. The whole object is kept only until a reconcile has *verified* it, i.e. found every
//! value it applies in it ([`Cache::verify`], or at arrival when the object is exactly this
//! process's own apply): from then on a change of the digest (someone edited the object) is
//! what brings the whole object back for the next comparison. Status updates (a DaemonSet's
//! pods) leave the digest alone.
//!
//! Measured before: typed k8s-openapi objects are wide (a collector DaemonSet decodes to 37 KB
//! against 4.3 KB of JSON), and even as JSON 1,000 resources' children held ~20 MB; as
//! skeletons they hold under 2 MB.
//! Touches: nothing (fed by a watch stream).

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::PartialObjectMeta;
use kube::core::PartialObjectMetaExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::apply::ANNOTATION_APPLIED_HASH;
use super::watch::Applied;
use crate::render::Kind;
use crate::render::meta;

/// On a cached child: whether another field manager owns one of our fields, computed when the
/// object arrived (`drift::foreign_owner`), so the cache need not keep managedFields.
pub const ANNOTATION_FOREIGN_OWNER: &str = "monitoring-operator.internal/foreign-owner";

/// How long a reconcile waits for the cache's first list.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Digest of an object's content: everything but its status and what changes on every write.
pub type ContentDigest = u128;

/// The labels the operator selects its children by (the rest are not kept): interned, as
/// every child of a resource carries the same values.
const KEPT_LABELS: [&str; 4] =
    [meta::LABEL_INSTANCE, meta::LABEL_MANAGED_BY, meta::LABEL_OWNER_NAMESPACE, meta::LABEL_OWNER_NAME];

/// An applied hash (`e6data.io/applied-hash`: 32 hex digits) as a number.
pub fn hash_value(h: &str) -> Option<u128> {
    (h.len() == 32).then(|| u128::from_str_radix(h, 16).ok()).flatten()
}

/// What status, the sweep and the apply step's first checks read of a child, without its
/// content. Its name and namespace are the cache's keys.
#[derive(Clone, Default)]
pub struct Skeleton {
    uid: Option<Box<str>>,
    resource_version: Option<u64>,
    generation: Option<i64>,
    /// Of [`KEPT_LABELS`], those it carries.
    labels: Box<[(&'static str, Arc<str>)]>,
    applied_hash: Option<u128>,
    foreign: Option<bool>,
    /// Workloads: `{"spec": {"replicas": …}, "status": …}` as JSON.
    workload: Option<Box<str>>,
}

impl Skeleton {
    /// `ns/name` as an object of kind `K` with only what the skeleton holds.
    pub fn decode<K: Resource<DynamicType = ()> + DeserializeOwned>(&self, ns: &str, name: &str) -> Option<K> {
        let mut annotations = serde_json::Map::new();
        if let Some(h) = self.applied_hash {
            annotations.insert(ANNOTATION_APPLIED_HASH.into(), Value::String(format!("{h:032x}")));
        }
        if let Some(f) = self.foreign {
            annotations.insert(ANNOTATION_FOREIGN_OWNER.into(), Value::String(f.to_string()));
        }
        let labels: serde_json::Map<String, Value> =
            self.labels.iter().map(|(k, v)| ((*k).to_string(), Value::String(v.to_string()))).collect();
        let mut metadata = serde_json::json!({"name": name, "annotations": annotations, "labels": labels});
        if !ns.is_empty() {
            metadata["namespace"] = Value::String(ns.into());
        }
        if let Some(uid) = &self.uid {
            metadata["uid"] = Value::String(uid.to_string());
        }
        if let Some(rv) = self.resource_version {
            metadata["resourceVersion"] = Value::String(rv.to_string());
        }
        if let Some(g) = self.generation {
            metadata["generation"] = g.into();
        }
        let mut obj = match &self.workload {
            Some(w) => serde_json::from_str(w).ok()?,
            None => serde_json::json!({}),
        };
        obj["apiVersion"] = Value::String(K::api_version(&()).into_owned());
        obj["kind"] = Value::String(K::kind(&()).into_owned());
        obj["metadata"] = metadata;
        serde_json::from_value(obj).ok()
    }
}

struct Entry {
    skeleton: Skeleton,
    digest: ContentDigest,
    /// The whole object (JSON) while its content is not verified.
    body: Option<Box<str>>,
    /// The applied hash and the content digest a reconcile found to carry every value it applies.
    verified: Option<(u128, ContentDigest)>,
}

impl Entry {
    fn is_verified(&self) -> bool {
        self.verified.is_some_and(|(_, d)| d == self.digest)
    }
}

/// Objects by namespace ("" for cluster-scoped), then name: a reconcile reads one namespace.
type Objects = HashMap<Box<str>, BTreeMap<Box<str>, Entry>>;

#[derive(Default)]
struct State {
    objects: Objects,
    /// Filled during a (re)list, swapped in when it is complete.
    relist: Option<Objects>,
    /// Label values, each kept once; pruned of unused ones as objects go.
    interned: std::collections::HashSet<Arc<str>>,
    deletes: usize,
}

impl State {
    fn intern(&mut self, v: &str) -> Arc<str> {
        if let Some(s) = self.interned.get(v) {
            return s.clone();
        }
        let s: Arc<str> = v.into();
        self.interned.insert(s.clone());
        s
    }

    /// Forget label values no object carries any more (now and then: a scan).
    fn prune(&mut self) {
        self.deletes += 1;
        if self.deletes.is_multiple_of(1024) {
            self.interned.retain(|s| Arc::strong_count(s) > 1);
        }
    }
}

/// One kind's cache; cheap to clone.
pub struct Cache<K> {
    state: Arc<RwLock<State>>,
    ready: tokio::sync::watch::Receiver<bool>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache { state: self.state.clone(), ready: self.ready.clone(), _kind: PhantomData }
    }
}

/// A cached object as a reconcile reads it.
pub struct Cached<K> {
    /// The whole object while it is not verified, else its skeleton.
    pub object: K,
    /// The applied hash its content was verified for (then `object` is the skeleton).
    pub verified: Option<u128>,
    pub digest: ContentDigest,
}

/// `o` without managedFields, which are reduced to the foreign-owner annotation.
pub fn slim<K: Resource + Clone>(o: &K) -> K {
    let mut o = o.clone();
    let foreign = super::drift::foreign_owner(o.meta().managed_fields.as_deref().unwrap_or_default());
    o.meta_mut().managed_fields = None;
    o.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_FOREIGN_OWNER.into(), foreign.to_string());
    o
}

/// The skeleton and the content digest of `o` (as [`slim`] leaves it); `intern` keeps each
/// label value once.
pub fn reduce<K: Resource + Serialize>(
    o: &K,
    intern: &mut dyn FnMut(&str) -> Arc<str>,
) -> Option<(Skeleton, ContentDigest)> {
    let m = o.meta();
    let annotations = m.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k));
    let labels = m.labels.as_ref();
    let skeleton = Skeleton {
        uid: m.uid.as_deref().map(Into::into),
        resource_version: m.resource_version.as_deref().and_then(|v| v.parse().ok()),
        generation: m.generation,
        labels: KEPT_LABELS.iter().filter_map(|k| Some((*k, intern(labels?.get(*k)?)))).collect(),
        applied_hash: annotation(ANNOTATION_APPLIED_HASH).and_then(|h| hash_value(h)),
        foreign: annotation(ANNOTATION_FOREIGN_OWNER).map(|f| f == "true"),
        workload: None,
    };
    let mut v = serde_json::to_value(o).ok()?;
    let obj = v.as_object_mut()?;
    let status = obj.remove("status");
    let replicas = obj.get("spec").and_then(|s| s.get("replicas")).cloned();
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    for volatile in ["managedFields", "resourceVersion", "generation"] {
        meta.remove(volatile);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
        a.remove(ANNOTATION_FOREIGN_OWNER);
    }
    let digest = {
        let d = Sha256::digest(serde_json::to_vec(&v).ok()?);
        u128::from_le_bytes(d[..16].try_into().ok()?)
    };
    let workload = match (replicas, status) {
        (None, None) => None,
        (replicas, status) => {
            let mut w = serde_json::Map::new();
            if let Some(r) = replicas {
                w.insert("spec".into(), serde_json::json!({ "replicas": r }));
            }
            if let Some(s) = status {
                w.insert("status".into(), s);
            }
            Some(serde_json::to_string(&w).ok()?.into_boxed_str())
        }
    };
    Some((Skeleton { workload, ..skeleton }, digest))
}

fn verified_before(objects: &Objects, ns: &str, name: &str) -> Option<(u128, ContentDigest)> {
    objects.get(ns)?.get(name)?.verified
}

fn key<K: Resource>(o: &K) -> (Box<str>, Box<str>) {
    let m = o.meta();
    (m.namespace.as_deref().unwrap_or_default().into(), m.name.as_deref().unwrap_or_default().into())
}

/// The cache, and the stream that fills it: the changed objects' metadata (a controller
/// trigger: owner references and labels are all it needs). The stream must be polled.
/// `applied`: this process's own applies, so an object arriving exactly as we applied it is
/// verified at once and never kept whole.
pub fn cache<K>(
    (kind, applied): (Kind, Applied),
    events: super::watch::Events<K>,
) -> (Cache<K>, futures::stream::BoxStream<'static, watcher::Result<PartialObjectMeta<K>>>)
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let state = Arc::new(RwLock::new(State::default()));
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let writer = state.clone();
    let stream = events
        .map(move |item| {
            let mut touched = Vec::new();
            let Ok(event) = item else { return touched };
            let mut st = writer.write().unwrap_or_else(|p| p.into_inner());
            // `previous`: what a reconcile verified of the object before this event.
            let entry = |st: &mut State, o: &K, previous: Option<(u128, ContentDigest)>| -> Option<Entry> {
                let o = slim(o);
                let (skeleton, digest) = reduce(&o, &mut |v| st.intern(v))?;
                let (ns, name) = key(&o);
                // Our own apply, exactly: verified when the apply found it covering.
                let verified =
                    skeleton.resource_version.and_then(|rv| applied.verified_at(kind, &ns, &name, rv)).or(previous);
                let keep = verified.is_none_or(|(_, d)| d != digest);
                let body = if keep { Some(serde_json::to_string(&o).ok()?.into_boxed_str()) } else { None };
                Some(Entry { skeleton, digest, body, verified })
            };
            match event {
                Event::Init => st.relist = Some(HashMap::new()),
                Event::InitApply(o) => {
                    let (ns, name) = key(&o);
                    let previous = verified_before(&st.objects, &ns, &name);
                    if let Some(e) = entry(&mut st, &o, previous)
                        && let Some(relist) = st.relist.as_mut()
                    {
                        relist.entry(ns).or_default().insert(name, e);
                    }
                    touched.push(o.meta().clone().into_request_partial::<K>());
                }
                Event::InitDone => {
                    if let Some(relist) = st.relist.take() {
                        st.objects = relist;
                    }
                    let _ = ready_tx.send(true);
                }
                Event::Apply(o) => {
                    let (ns, name) = key(&o);
                    let previous = verified_before(&st.objects, &ns, &name);
                    if let Some(e) = entry(&mut st, &o, previous) {
                        st.objects.entry(ns).or_default().insert(name, e);
                    }
                    touched.push(o.meta().clone().into_request_partial::<K>());
                }
                Event::Delete(o) => {
                    let (ns, name) = key(&o);
                    if let Some(m) = st.objects.get_mut(&ns) {
                        m.remove(&name);
                        if m.is_empty() {
                            st.objects.remove(&ns);
                        }
                    }
                    st.prune();
                    touched.push(o.meta().clone().into_request_partial::<K>());
                }
            }
            touched
        })
        .flat_map(|touched| futures::stream::iter(touched.into_iter().map(Ok)))
        .boxed();
    (Cache { state, ready, _kind: PhantomData }, stream)
}

impl<K: Resource<DynamicType = ()> + DeserializeOwned> Cache<K> {
    /// Once the first list is in (or after [`READY_TIMEOUT`], an error naming why).
    async fn wait_ready(&self) -> Result<(), &'static str> {
        let mut ready = self.ready.clone();
        match tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("its watch stopped"),
            Err(_) => Err("its watch has not listed yet (RBAC or the apiserver)"),
        }
    }

    /// The entries in `namespace` ("" for cluster-scoped) carrying every label of `selector`
    /// (`k=v,k=v`), each decoded by `read`.
    async fn matching<T>(
        &self,
        namespace: &str,
        selector: &str,
        read: impl Fn(&str, &Entry) -> Option<T>,
    ) -> Result<Vec<T>, &'static str> {
        self.wait_ready().await?;
        let wanted: Vec<(&str, &str)> = selector.split(',').filter_map(|kv| kv.split_once('=')).collect();
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        let Some(objects) = st.objects.get(namespace) else { return Ok(Vec::new()) };
        Ok(objects
            .iter()
            .filter(|(_, e)| {
                wanted.iter().all(|(k, v)| e.skeleton.labels.iter().any(|(lk, lv)| lk == k && &**lv == *v))
            })
            .filter_map(|(name, e)| read(name, e))
            .collect())
    }

    /// The objects in `namespace` matching `selector`, for the apply step: whole while not
    /// verified, else their skeletons.
    pub async fn select(&self, namespace: &str, selector: &str) -> Result<Vec<Cached<K>>, &'static str> {
        self.matching(namespace, selector, |name, e| {
            let verified = e.is_verified();
            let object = match (&e.body, verified) {
                (Some(body), false) => serde_json::from_str(body).ok()?,
                _ => e.skeleton.decode(namespace, name)?,
            };
            Some(Cached { object, verified: e.verified.filter(|_| verified).map(|(h, _)| h), digest: e.digest })
        })
        .await
    }

    /// The skeletons of the objects in `namespace` matching `selector` (for status).
    pub async fn skeletons(&self, namespace: &str, selector: &str) -> Result<Vec<K>, &'static str> {
        self.matching(namespace, selector, |name, e| e.skeleton.decode(namespace, name)).await
    }

    /// Every object's skeleton (for the sweep of cluster-scoped children and leftovers: labels,
    /// names and uids).
    pub async fn all(&self) -> Result<Vec<K>, &'static str> {
        self.wait_ready().await?;
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        Ok(st
            .objects
            .iter()
            .flat_map(|(ns, m)| m.iter().map(move |(name, e)| (ns, name, e)))
            .filter_map(|(ns, name, e)| e.skeleton.decode(ns, name))
            .collect())
    }

    /// A reconcile found every value it applies (`hash`) in `namespace/name` as it was at
    /// `digest`: keep only the skeleton from now on (until the content changes).
    pub fn verify(&self, namespace: &str, name: &str, hash: u128, digest: ContentDigest) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = st.objects.get_mut(namespace).and_then(|m| m.get_mut(name))
            && e.digest == digest
        {
            e.verified = Some((hash, digest));
            e.body = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
    use serde_json::json;

    const H1: &str = "0123456789abcdef0123456789abcdef";

    fn ds(image: &str, rv: &str, ready: i32) -> DaemonSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "resourceVersion": rv, "generation": 1,
                         "labels": {"app.kubernetes.io/instance": "ms"},
                         "annotations": {"e6data.io/applied-hash": H1, "other": "x"}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "v", "image": image}]}}},
            "status": {"numberReady": ready, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0}
        }))
        .unwrap()
    }

    #[test]
    fn the_digest_ignores_status_and_versions_but_not_content() {
        let intern = &mut |v: &str| Arc::from(v);
        let (skel, a) = reduce(&ds("v:1", "5", 0), intern).unwrap();
        let (_, b) = reduce(&ds("v:1", "9", 2), intern).unwrap();
        let (_, c) = reduce(&ds("evil:1", "9", 2), intern).unwrap();
        assert_eq!(a, b, "a status update or a new resourceVersion is not a content change");
        assert_ne!(a, c);
        // The skeleton: what status and the sweep read, none of the content.
        let skel: DaemonSet = skel.decode("ns", "c").unwrap();
        assert_eq!(skel.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(skel.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(skel.metadata.annotations.unwrap().get("e6data.io/applied-hash").map(String::as_str), Some(H1));
        assert_eq!(skel.metadata.labels.unwrap().len(), 1, "only the selection labels");
        assert_eq!(skel.status.map(|s| s.desired_number_scheduled), Some(2));
        assert!(skel.spec.is_none());
    }

    #[tokio::test]
    async fn a_verified_object_is_kept_as_its_skeleton_until_its_content_changes() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (cache, stream) = cache::<DaemonSet>((Kind::DaemonSet, Applied::default()), rx.map(Ok).boxed());
        tokio::spawn(stream.for_each(|_| async {}));
        let send = |e: Event<DaemonSet>| tx.unbounded_send(e).unwrap();
        send(Event::Init);
        send(Event::InitApply(ds("v:1", "5", 0)));
        send(Event::InitDone);
        let sel = "app.kubernetes.io/instance=ms";
        let first = cache.select("ns", sel).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].verified.is_none(), "nothing verified yet: the whole object");
        assert!(first[0].object.spec.is_some());
        let h1 = hash_value(H1).unwrap();
        cache.verify("ns", "c", h1, first[0].digest);
        let again = cache.select("ns", sel).await.unwrap();
        assert_eq!(again[0].verified, Some(h1));
        assert!(again[0].object.spec.is_none(), "only the skeleton is kept");
        // The DaemonSet controller updates the status: still verified, the new status shows.
        send(Event::Apply(ds("v:1", "6", 2)));
        tokio::task::yield_now().await;
        let status = cache.select("ns", sel).await.unwrap();
        assert_eq!(status[0].verified, Some(h1));
        assert_eq!(status[0].object.status.as_ref().map(|s: &DaemonSetStatus| s.number_ready), Some(2));
        // Someone edits the image: the whole object is back for the next comparison.
        send(Event::Apply(ds("evil:1", "7", 2)));
        tokio::task::yield_now().await;
        let edited = cache.select("ns", sel).await.unwrap();
        assert!(edited[0].verified.is_none());
        let image = edited[0]
            .object
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers[0].image.clone());
        assert_eq!(image.flatten().as_deref(), Some("evil:1"));
        // The skeletons (status) never carry the content.
        assert!(cache.skeletons("ns", sel).await.unwrap()[0].spec.is_none());
    }

    #[tokio::test]
    async fn our_own_apply_arriving_unchanged_is_verified_at_once() {
        let applied = Applied::default();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (cache, stream) = cache::<DaemonSet>((Kind::DaemonSet, applied.clone()), rx.map(Ok).boxed());
        tokio::spawn(stream.for_each(|_| async {}));
        tx.unbounded_send(Event::Init).unwrap();
        tx.unbounded_send(Event::InitDone).unwrap();
        applied.record(Kind::DaemonSet, "ns", "c", &ds("v:1", "5", 0), true);
        tx.unbounded_send(Event::Apply(ds("v:1", "5", 0))).unwrap();
        tokio::task::yield_now().await;
        let got = cache.select("ns", "app.kubernetes.io/instance=ms").await.unwrap();
        assert_eq!(got[0].verified, hash_value(H1));
    }
}
