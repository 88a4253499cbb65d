//! Why a collector has no pods: when a DaemonSet wants pods on more nodes than have one, read
//! its `FailedCreate` Events, where the DaemonSet controller records the apiserver's answer
//! (Pod Security admission, a quota, a webhook). DaemonSets have no status condition for it.
//! Read only while pods are missing, so a healthy cluster pays nothing.
//! Touches: the Kubernetes API (list Events in the resource's namespace).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use super::traced::traced;
use crate::status::pods_missing;

/// The latest refusal per DaemonSet name, for those missing pods. A failed read leaves a
/// DaemonSet out (its status still says how many pods exist), never fails the reconcile.
pub async fn pod_refusals(client: &Client, namespace: &str, daemon_sets: &[DaemonSet]) -> BTreeMap<String, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for ds in daemon_sets.iter().filter(|d| pods_missing(d)) {
        let name = ds.name_any();
        let fields = format!("involvedObject.kind=DaemonSet,involvedObject.name={name},reason=FailedCreate");
        match traced("list", "Event", namespace, &name, api.list(&ListParams::default().fields(&fields))).await {
            Ok(list) => {
                let uid = ds.uid();
                let latest = list
                    .items
                    .into_iter()
                    // Events of an earlier DaemonSet of the same name do not count.
                    .filter(|e| uid.is_none() || e.involved_object.uid == uid)
                    .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
                if let Some(message) = latest.and_then(|e| e.message) {
                    // The event recorder's aggregation prefix says nothing to a user.
                    let message = message.strip_prefix("(combined from similar events): ").unwrap_or(&message);
                    out.insert(name, message.to_string());
                }
            }
            Err(e) => warn!(%namespace, daemonset = %name, error = %e, "cannot read the DaemonSet's events"),
        }
    }
    out
}
