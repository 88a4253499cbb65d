//! Collector RBAC. Cluster scope: a ClusterRole + ClusterRoleBinding (named per CR, since
//! cluster-scoped names are shared by all namespaces) with read access to pods, namespaces
//! and nodes, which `kubernetes_logs` watches cluster-wide. Namespace scope: a Role +
//! RoleBinding `{name}-vector` with read access to this namespace's pods only; the logs
//! collector then needs no API access at all (it reads log files by path).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{Children, meta};
use crate::model::{Model, Scope};

fn read(resources: &[&str]) -> Vec<PolicyRule> {
    vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..Default::default()
    }]
}

fn subject(m: &Model) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: m.service_account.clone(),
        namespace: Some(m.namespace.clone()),
        ..Default::default()
    }]
}

/// Role + RoleBinding or ClusterRole + ClusterRoleBinding, into `out`.
pub fn render(m: &Model, owner: Option<&OwnerReference>, out: &mut Children) {
    if !m.create_rbac {
        return;
    }
    match m.scope {
        Scope::Namespace => {
            let name = meta::rbac_name(m);
            out.roles.push(Role {
                metadata: meta::namespaced(m, owner, name.clone(), "vector"),
                rules: Some(read(&["pods"])),
            });
            out.role_bindings.push(RoleBinding {
                metadata: meta::namespaced(m, owner, name.clone(), "vector"),
                role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Role".into(), name },
                subjects: Some(subject(m)),
            });
        }
        Scope::Cluster => {
            let name = meta::cluster_rbac_name(m);
            out.cluster_roles.push(ClusterRole {
                metadata: meta::cluster(m, name.clone()),
                rules: Some(read(&["namespaces", "nodes", "pods"])),
                ..Default::default()
            });
            out.cluster_role_bindings.push(ClusterRoleBinding {
                metadata: meta::cluster(m, name.clone()),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name,
                },
                subjects: Some(subject(m)),
            });
        }
    }
}
