//! Names, labels and object metadata shared by every child.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::model::Model;

pub const MANAGER: &str = "monitoring-operator";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_WORKSPACE: &str = "e6data.io/workspace";
pub const LABEL_TENANT: &str = "e6data.io/tenant";
/// On cluster-scoped children, which cannot carry an owner reference to a namespaced CR.
pub const LABEL_OWNER_NAMESPACE: &str = "e6data.io/owner-namespace";
pub const LABEL_OWNER_NAME: &str = "e6data.io/owner-name";
/// On the pod template: hash of the Vector config, so a config change rolls the pods.
pub const ANNOTATION_CONFIG_HASH: &str = "e6data.io/config-hash";
/// On collector pods: the id their Vector must report as `config_id` once it loaded this pod's
/// configuration (compare with the sidecar's `/flow` `configId`).
pub const ANNOTATION_CONFIG_ID: &str = "e6data.io/config-id";

/// A collector component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Logs,
    Metrics,
    /// The workload trace endpoint (a Deployment, not a DaemonSet).
    Traces,
}

impl Component {
    pub fn short(self) -> &'static str {
        match self {
            Component::Logs => "logs",
            Component::Metrics => "metrics",
            Component::Traces => "traces",
        }
    }
    /// `app.kubernetes.io/name` of the component's objects.
    pub fn app_name(self) -> &'static str {
        match self {
            Component::Logs => "vector-logs",
            Component::Metrics => "vector-metrics",
            Component::Traces => "vector-otlp",
        }
    }
    pub fn workload_name(self, cr: &str) -> String {
        format!("{cr}-{}", self.app_name())
    }
    pub fn configmap_name(self, cr: &str) -> String {
        format!("{cr}-{}-config", self.app_name())
    }
}

/// `{name}-vector`: ServiceAccount, Role and RoleBinding.
pub fn rbac_name(m: &Model) -> String {
    format!("{}-vector", m.name)
}

/// Cluster-scoped names must be unique per CR across namespaces.
pub fn cluster_rbac_name(m: &Model) -> String {
    format!("monitoringservices:{}:{}-vector", m.namespace, m.name)
}

/// Labels every child carries; `app_name` is the `app.kubernetes.io/name`.
pub fn labels(m: &Model, app_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_INSTANCE.into(), m.name.clone()),
        (LABEL_NAME.into(), app_name.into()),
        (LABEL_MANAGED_BY.into(), MANAGER.into()),
        (LABEL_PART_OF.into(), "monitoring-services".into()),
        (LABEL_WORKSPACE.into(), m.workspace.clone()),
        (LABEL_TENANT.into(), m.tenant.clone()),
    ])
}

/// The label selector that finds every namespaced child of a CR.
pub fn children_selector(cr_name: &str) -> String {
    format!("{LABEL_INSTANCE}={cr_name},{LABEL_MANAGED_BY}={MANAGER}")
}

/// The label selector that finds a CR's cluster-scoped children.
pub fn cluster_children_selector(namespace: &str, cr_name: &str) -> String {
    format!("{LABEL_OWNER_NAMESPACE}={namespace},{LABEL_OWNER_NAME}={cr_name},{LABEL_MANAGED_BY}={MANAGER}")
}

pub fn namespaced(m: &Model, owner: Option<&OwnerReference>, name: String, app_name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(m.namespace.clone()),
        labels: Some(labels(m, app_name)),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..Default::default()
    }
}

pub fn cluster(m: &Model, name: String) -> ObjectMeta {
    let mut l = labels(m, "vector");
    l.insert(LABEL_OWNER_NAMESPACE.into(), m.namespace.clone());
    l.insert(LABEL_OWNER_NAME.into(), m.name.clone());
    ObjectMeta { name: Some(name), labels: Some(l), ..Default::default() }
}
