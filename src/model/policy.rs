//! The cluster admin's tenancy policy: what a `MonitoringServices` may reach beyond its own
//! namespace. Set by operator flags (Helm values once there is a chart), never by a custom
//! resource, so a tenant who may create one cannot grant itself more. Pure: checks a resource
//! against the policy, touches nothing.
//!
//! `open` (the default) is the seed's behaviour, for single-organisation clusters. Under
//! `restricted`, a resource collects only its own namespace unless the admin listed that
//! namespace as a cluster collector (the "administrative purposes" of a shared cluster), and
//! references a GreptimeDB in another namespace only where the admin listed it as shared.

use std::collections::BTreeSet;

use crate::api::MonitoringServices;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// On: the rules below apply. Off: everything the spec asks for is allowed.
    pub restricted: bool,
    /// Namespaces whose resources may collect beyond themselves (`useClusterRole: true`,
    /// `includeNamespaces` naming others).
    pub cluster_collector_namespaces: BTreeSet<String>,
    /// Namespaces whose GreptimeDB clusters any resource may reference (`greptimeRef.namespace`).
    pub shared_greptime_namespaces: BTreeSet<String>,
}

/// A field the policy does not allow; `Display` names the field, the policy and the way out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message} (tenancy policy: restricted)")]
pub struct Violation {
    pub field: String,
    pub message: String,
}

fn violation(field: &str, message: String) -> Violation {
    Violation { field: field.into(), message }
}

impl Policy {
    /// The first field of `ms` the policy refuses, if any.
    pub fn check(&self, ms: &MonitoringServices) -> Result<(), Violation> {
        if !self.restricted {
            return Ok(());
        }
        let own = ms.metadata.namespace.as_deref().unwrap_or_default();
        let spec = &ms.spec;
        if !self.cluster_collector_namespaces.contains(own) {
            let hint = format!(
                "namespace {own:?} may collect only itself; the cluster admin can list it in --cluster-collector-namespaces"
            );
            if spec.use_cluster_role {
                return Err(violation(
                    "spec.useClusterRole",
                    format!("cluster-wide collection is not allowed: {hint}"),
                ));
            }
            let sections = [
                ("spec.vectorLogs", spec.vector_logs.as_ref().map(|l| &l.selection)),
                ("spec.vectorMetrics", spec.vector_metrics.as_ref().map(|m| &m.selection)),
            ];
            for (path, selection) in sections {
                if let Some(other) = selection.and_then(|s| s.include_namespaces.iter().find(|n| n.as_str() != own)) {
                    return Err(violation(
                        &format!("{path}.includeNamespaces"),
                        format!("names {other:?}, another namespace: {hint}"),
                    ));
                }
            }
        }
        if let Some(target) = spec.greptime_ref.as_ref().and_then(|g| g.namespace.as_deref())
            && target != own
            && !self.shared_greptime_namespaces.contains(target)
        {
            return Err(violation(
                "spec.greptimeRef.namespace",
                format!(
                    "{target:?} is another namespace and not a shared GreptimeDB namespace; the cluster admin can list it in --shared-greptime-namespaces"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ns: &str, spec: serde_json::Value) -> MonitoringServices {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
            "metadata": {"name": "m", "namespace": ns, "uid": "u"}, "spec": spec,
        }))
        .unwrap()
    }

    fn field(p: &Policy, ns: &str, spec: serde_json::Value) -> Option<String> {
        p.check(&ms(ns, spec)).err().map(|v| v.field)
    }

    #[test]
    fn restricted_policy_keeps_tenants_to_their_namespace() {
        let p = Policy {
            restricted: true,
            cluster_collector_namespaces: ["platform".to_string()].into(),
            shared_greptime_namespaces: ["greptime-system".to_string()].into(),
        };
        let base = serde_json::json!({"workspace": "w", "tenant": "t"});
        let with = |extra: serde_json::Value| {
            let mut s = base.clone();
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            s
        };
        assert_eq!(
            field(&p, "team-a", with(serde_json::json!({"useClusterRole": true}))).as_deref(),
            Some("spec.useClusterRole")
        );
        assert_eq!(
            field(&p, "team-a", with(serde_json::json!({"vectorMetrics": {"s3Bucket": "b", "s3Region": "r", "includeNamespaces": ["team-b"]}})))
                .as_deref(),
            Some("spec.vectorMetrics.includeNamespaces")
        );
        assert_eq!(
            field(&p, "team-a", with(serde_json::json!({"greptimeRef": {"name": "g", "namespace": "team-b"}})))
                .as_deref(),
            Some("spec.greptimeRef.namespace")
        );
        // Allowed: own namespace, the shared GreptimeDB, the admin's namespace collecting all.
        assert_eq!(
            field(
                &p,
                "team-a",
                with(
                    serde_json::json!({"vectorLogs": {"s3Bucket": "b", "s3Region": "r", "includeNamespaces": ["team-a"]}})
                )
            ),
            None
        );
        assert_eq!(
            field(
                &p,
                "team-a",
                with(serde_json::json!({"greptimeRef": {"name": "g", "namespace": "greptime-system"}}))
            ),
            None
        );
        assert_eq!(field(&p, "platform", with(serde_json::json!({"useClusterRole": true}))), None);
        // Open (the default): the seed's behaviour.
        assert_eq!(field(&Policy::default(), "team-a", with(serde_json::json!({"useClusterRole": true}))), None);
    }
}
