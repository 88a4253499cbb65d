//! Bring the cluster to the rendered children: server-side apply what is missing or
//! different, delete what is no longer rendered. A child is "unchanged" when it carries the
//! hash of what we would apply and no other field manager has written it since our last
//! apply; unchanged children cost one list per kind and no write.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use sha2::{Digest, Sha256};

use super::traced::traced;
use crate::render::meta::{self, MANAGER};
use crate::render::{Child, Kind};

/// Annotation holding the hash of the last applied desired state of a child.
pub const ANNOTATION_APPLIED_HASH: &str = "e6data.io/applied-hash";

fn api(client: &Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    let ar = kind.api_resource();
    if kind.namespaced() {
        Api::namespaced_with(client.clone(), namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

fn selector(kind: Kind, namespace: &str, cr: &str) -> String {
    if kind.namespaced() { meta::children_selector(cr) } else { meta::cluster_children_selector(namespace, cr) }
}

/// Hash of the desired object, stamped on it as [`ANNOTATION_APPLIED_HASH`].
pub fn stamp_hash(child: &mut Child) -> String {
    let json = serde_json::to_vec(&child.object).expect("object serialises");
    let hash = hex::encode(&Sha256::digest(&json)[..16]);
    child.object.annotations_mut().insert(ANNOTATION_APPLIED_HASH.into(), hash.clone());
    hash
}

/// Leaf paths of a managedFields `fieldsV1` trie (`f:spec/f:template/...`).
fn leaves(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                if k == "." {
                    out.insert(prefix.to_string());
                } else {
                    leaves(child, &format!("{prefix}/{k}"), out);
                }
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// True when another manager owns (so has written) a field we apply, outside status. A forced
/// re-apply takes those fields back, after which this is false again: no re-apply loop, and
/// fields others add next to ours (an IRSA annotation, `kubectl rollout restart`) are left alone.
fn drifted(live: &DynamicObject) -> bool {
    let fields = live.metadata.managed_fields.as_deref().unwrap_or_default();
    let main = |f: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        f.subresource.as_deref().unwrap_or("").is_empty()
    };
    let set = |f: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        let mut out = BTreeSet::new();
        if let Some(v) = &f.fields_v1 {
            leaves(&v.0, "", &mut out);
        }
        out
    };
    let Some(ours) = fields.iter().filter(main).find(|f| f.manager.as_deref() == Some(MANAGER)).map(set) else {
        return true; // never applied by us (or our ownership was removed)
    };
    fields.iter().filter(main).filter(|f| f.manager.as_deref() != Some(MANAGER)).any(|f| !set(f).is_disjoint(&ours))
}

/// Errors that mean "the apiserver will not take this object": anything else (timeouts,
/// 5xx, throttling) is transient and retried with backoff instead of failing the resource.
fn rejected(kind: Kind, name: &str, e: kube::Error) -> SyncError {
    match &e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422) => {
            SyncError::Rejected(Rejected { kind: kind.name(), name: name.into(), source: e })
        }
        _ => SyncError::Kube(e),
    }
}

/// Outcome of a sync.
#[derive(Debug, Default)]
pub struct Synced {
    /// Live objects after the sync, by kind and name (applied ones as returned by the apply).
    pub live: BTreeMap<(Kind, String), DynamicObject>,
    pub applied: usize,
    pub deleted: usize,
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
    #[error("rejected by the apiserver: {0}")]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Apply `children` (hash-stamped here) for CR `cr` in `namespace`, then delete stale ones.
/// Every changed child is first applied as a server-side dry run, so a child the apiserver
/// would reject leaves everything that was running untouched.
pub async fn sync(client: &Client, namespace: &str, cr: &str, mut children: Vec<Child>) -> Result<Synced, SyncError> {
    let mut live: BTreeMap<(Kind, String), DynamicObject> = BTreeMap::new();
    for kind in Kind::ALL {
        let lp = ListParams::default().labels(&selector(kind, namespace, cr));
        let a = api(client, kind, namespace);
        let listed = traced("list", kind.name(), namespace, "", a.list(&lp)).await?;
        for obj in listed {
            live.insert((kind, obj.name_any()), obj);
        }
    }

    let mut changed = Vec::new();
    for child in children.iter_mut() {
        let hash = stamp_hash(child);
        let key = (child.kind, child.name().to_string());
        let current = live.get(&key);
        let same = current.is_some_and(|l| l.annotations().get(ANNOTATION_APPLIED_HASH) == Some(&hash) && !drifted(l));
        if !same {
            changed.push(child.clone());
        }
    }

    let pp = PatchParams::apply(MANAGER).force();
    if !changed.is_empty() {
        let dry = PatchParams { dry_run: true, ..pp.clone() };
        for child in &changed {
            let (a, patch) = (api(client, child.kind, namespace), Patch::Apply(&child.object));
            traced("dry-run apply", child.kind.name(), namespace, child.name(), a.patch(child.name(), &dry, &patch))
                .await
                .map_err(|e| rejected(child.kind, child.name(), e))?;
        }
    }
    let mut out = Synced::default();
    for child in &changed {
        let (a, patch) = (api(client, child.kind, namespace), Patch::Apply(&child.object));
        let obj = traced("apply", child.kind.name(), namespace, child.name(), a.patch(child.name(), &pp, &patch))
            .await
            .map_err(|e| rejected(child.kind, child.name(), e))?;
        out.applied += 1;
        live.insert((child.kind, child.name().to_string()), obj);
    }

    let wanted: BTreeSet<(Kind, String)> = children.iter().map(|c| (c.kind, c.name().to_string())).collect();
    let stale: Vec<(Kind, String)> = live.keys().filter(|k| !wanted.contains(*k)).cloned().collect();
    for (kind, name) in stale {
        let dp = DeleteParams::background();
        let a = api(client, kind, namespace);
        match traced("delete", kind.name(), namespace, &name, a.delete(&name, &dp)).await {
            Ok(_) => out.deleted += 1,
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        live.remove(&(kind, name));
    }
    out.live = live;
    Ok(out)
}

/// Delete the cluster-scoped children of a CR (namespaced ones go with it through owner
/// references). Used by the finalizer.
pub async fn delete_cluster_children(client: &Client, namespace: &str, cr: &str) -> kube::Result<()> {
    for kind in Kind::ALL.into_iter().filter(|k| !k.namespaced()) {
        let a = api(client, kind, namespace);
        let lp = ListParams::default().labels(&selector(kind, namespace, cr));
        for obj in a.list_metadata(&lp).await? {
            match a.delete(&obj.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(entries: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "x", "managedFields": entries}}))
        .unwrap()
    }

    fn entry(manager: &str, fields: serde_json::Value) -> serde_json::Value {
        json!({"manager": manager, "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn drift_is_a_foreign_owner_of_our_fields() {
        let ours = json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:automountServiceAccountToken": {}});
        // Someone added an annotation next to our fields: not drift.
        let annotated = obj(json!([
            entry(MANAGER, ours.clone()),
            entry("kubectl-annotate", json!({"f:metadata": {"f:annotations": {"f:eks.amazonaws.com/role-arn": {}}}}))
        ]));
        assert!(!drifted(&annotated));
        // Someone changed a field we own: drift.
        let edited = obj(json!([
            entry(MANAGER, ours.clone()),
            entry("kubectl-edit", json!({"f:automountServiceAccountToken": {}}))
        ]));
        assert!(drifted(&edited));
        // Never applied by us.
        assert!(drifted(&obj(json!([entry("someone", ours)]))));
    }
}
