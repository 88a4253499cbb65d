//! The cluster admin's tenancy policy: what a `MonitoringServices` may reach beyond its own
//! namespace. Set by operator flags (Helm values once there is a chart), never by a custom
//! resource, so a tenant who may create one cannot grant itself more. Pure: checks a resource
//! against the policy, touches nothing.
//!
//! `open` (the default) is the seed's behaviour, for single-organisation clusters. Under
//! `restricted`, a resource collects only its own namespace unless the admin listed that
//! namespace as a cluster collector (the "administrative purposes" of a shared cluster), and
//! references a GreptimeDB in another namespace only where the admin listed it as shared.
//!
//! Tenant ids (`spec.tenant`, and the X-Scope-OrgID the Loki and remote-write outputs send as):
//! a namespace the admin pinned to a tenant may use only that tenant, under either policy;
//! under `restricted`, an output's `tenantId` must be the resource's own `spec.tenant`.

use std::collections::{BTreeMap, BTreeSet};

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
    /// Namespace → the only tenant its resources may use (stamp and send as).
    pub pinned_tenants: BTreeMap<String, String>,
}

/// A field the policy does not allow; `Display` names the field, the policy and the way out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message} (tenancy policy: {policy})")]
pub struct Violation {
    pub field: String,
    pub message: String,
    /// Which rule: `restricted` or `pinned tenant`.
    pub policy: &'static str,
}

fn violation(field: &str, message: String) -> Violation {
    Violation { field: field.into(), message, policy: "restricted" }
}

impl Policy {
    /// The first field of `ms` the policy refuses, if any.
    pub fn check(&self, ms: &MonitoringServices) -> Result<(), Violation> {
        self.check_tenants(ms)?;
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

    /// The tenant rules: a pinned namespace uses only its tenant; under `restricted` an output
    /// sends as the resource's own tenant.
    fn check_tenants(&self, ms: &MonitoringServices) -> Result<(), Violation> {
        let own = ms.metadata.namespace.as_deref().unwrap_or_default();
        let spec = &ms.spec;
        let outputs = [
            (
                "spec.vectorLogs.loki.tenantId",
                spec.vector_logs.as_ref().and_then(|l| l.loki.as_ref()?.tenant_id.as_deref()),
            ),
            (
                "spec.vectorMetrics.remoteWrite.tenantId",
                spec.vector_metrics.as_ref().and_then(|m| m.remote_write.as_ref()?.tenant_id.as_deref()),
            ),
        ];
        if let Some(pin) = self.pinned_tenants.get(own) {
            let pinned = |field: &str, used: &str| Violation {
                field: field.into(),
                message: format!(
                    "{used:?} is not {pin:?}, the only tenant the cluster admin allows in namespace {own:?}"
                ),
                policy: "pinned tenant",
            };
            if spec.tenant != *pin {
                return Err(pinned("spec.tenant", &spec.tenant));
            }
            if let Some((field, used)) = outputs.iter().find_map(|(f, t)| t.filter(|t| t != pin).map(|t| (f, t))) {
                return Err(pinned(field, used));
            }
        }
        if self.restricted
            && let Some((field, used)) =
                outputs.iter().find_map(|(f, t)| t.filter(|t| *t != spec.tenant).map(|t| (f, t)))
        {
            return Err(violation(
                field,
                format!("{used:?} is not spec.tenant {:?}: a resource sends only as its own tenant", spec.tenant),
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
            ..Default::default()
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

    #[test]
    fn outputs_send_only_as_the_allowed_tenant() {
        let loki = |tenant: Option<&str>| {
            let mut l = serde_json::json!({"endpoint": "http://loki:3100"});
            if let Some(t) = tenant {
                l["tenantId"] = t.into();
            }
            serde_json::json!({"workspace": "w", "tenant": "t",
                "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "loki": l}})
        };
        let restricted = Policy { restricted: true, ..Default::default() };
        assert_eq!(field(&restricted, "a", loki(Some("other"))).as_deref(), Some("spec.vectorLogs.loki.tenantId"));
        assert_eq!(field(&restricted, "a", loki(Some("t"))), None);
        assert_eq!(field(&restricted, "a", loki(None)), None);
        assert_eq!(field(&Policy::default(), "a", loki(Some("other"))), None);
        // A pin holds under either policy, for spec.tenant and for every output.
        let pinned = Policy { pinned_tenants: [("a".to_string(), "t".to_string())].into(), ..Default::default() };
        assert_eq!(field(&pinned, "a", loki(Some("other"))).as_deref(), Some("spec.vectorLogs.loki.tenantId"));
        let mut other = loki(None);
        other["tenant"] = "u".into();
        assert_eq!(field(&pinned, "a", other.clone()).as_deref(), Some("spec.tenant"));
        assert_eq!(field(&pinned, "b", other), None);
        let rw = serde_json::json!({"workspace": "w", "tenant": "t",
            "vectorMetrics": {"s3Bucket": "b", "s3Region": "r", "remoteWrite": {"endpoint": "http://x/api/v1/push", "tenantId": "z"}}});
        let err = pinned.check(&ms("a", rw)).unwrap_err();
        assert_eq!(err.field, "spec.vectorMetrics.remoteWrite.tenantId");
        assert!(err.to_string().contains("pinned tenant"), "{err}");
    }
}
