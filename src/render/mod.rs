//! Render the child objects of a `MonitoringServices` from its validated [`Model`]. Pure:
//! no I/O, deterministic output, one module per child kind. The controller applies exactly
//! what this returns and deletes the children it no longer returns.

mod configmap;
pub mod daemonset;
pub mod meta;
mod otlp;
mod rbac;
mod service_account;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde::Serialize;

use crate::model::{Model, Scope};
use crate::vector;

/// The kinds of child the operator manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ServiceAccount,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    ConfigMap,
    DaemonSet,
    Deployment,
    Service,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::ServiceAccount,
        Kind::Role,
        Kind::RoleBinding,
        Kind::ClusterRole,
        Kind::ClusterRoleBinding,
        Kind::ConfigMap,
        Kind::DaemonSet,
        Kind::Deployment,
        Kind::Service,
    ];

    pub fn api_resource(self) -> ApiResource {
        let (g, v, k) = match self {
            Kind::ServiceAccount => ("", "v1", "ServiceAccount"),
            Kind::ConfigMap => ("", "v1", "ConfigMap"),
            Kind::DaemonSet => ("apps", "v1", "DaemonSet"),
            Kind::Deployment => ("apps", "v1", "Deployment"),
            Kind::Service => ("", "v1", "Service"),
            Kind::Role => ("rbac.authorization.k8s.io", "v1", "Role"),
            Kind::RoleBinding => ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            Kind::ClusterRole => ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            Kind::ClusterRoleBinding => ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        };
        ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k))
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::ClusterRole | Kind::ClusterRoleBinding)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRole => "ClusterRole",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
            Kind::ConfigMap => "ConfigMap",
            Kind::DaemonSet => "DaemonSet",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
        }
    }
}

/// One rendered child.
#[derive(Debug, Clone)]
pub struct Child {
    pub kind: Kind,
    pub object: DynamicObject,
}

impl Child {
    fn new<T: Serialize + k8s_openapi::Resource>(kind: Kind, obj: &T) -> Child {
        let mut value = serde_json::to_value(obj).expect("k8s object serialises");
        // Typed objects omit apiVersion/kind in their serialisation; SSA needs them.
        value["apiVersion"] = T::API_VERSION.into();
        value["kind"] = T::KIND.into();
        Child { kind, object: serde_json::from_value(value).expect("k8s object is a DynamicObject") }
    }

    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Everything a MonitoringServices should own, in apply order (identity and RBAC before the
/// config, the config before the DaemonSets that mount it).
pub fn render(m: &Model, owner: Option<&OwnerReference>) -> Vec<Child> {
    let mut out = Vec::new();
    if let Some(sa) = service_account::render(m, owner) {
        out.push(Child::new(Kind::ServiceAccount, &sa));
    }
    out.extend(rbac::render(m, owner));
    if let Some(logs) = &m.logs {
        let mut data = BTreeMap::from([(configmap::CONFIG_KEY.to_string(), vector::logs::config(m, logs).to_yaml())]);
        if m.scope == Scope::Namespace {
            let settings = serde_json::to_string_pretty(&vector::logs::settings(m, logs)).expect("settings serialise");
            data.insert(configmap::DISCOVERY_KEY.to_string(), settings);
        }
        let hash = daemonset::config_hash(&data);
        out.push(Child::new(Kind::ConfigMap, &configmap::render(m, owner, meta::Component::Logs, data)));
        out.push(Child::new(Kind::DaemonSet, &daemonset::render(m, owner, meta::Component::Logs, logs, hash)));
    }
    if let Some(metrics) = &m.metrics {
        let settings =
            serde_json::to_string_pretty(&vector::metrics::settings(m, metrics)).expect("settings serialise");
        let data = BTreeMap::from([
            (configmap::CONFIG_KEY.to_string(), vector::metrics::config(m, metrics).to_yaml()),
            (configmap::DISCOVERY_KEY.to_string(), settings),
        ]);
        let hash = daemonset::config_hash(&data);
        out.push(Child::new(Kind::ConfigMap, &configmap::render(m, owner, meta::Component::Metrics, data)));
        out.push(Child::new(
            Kind::DaemonSet,
            &daemonset::render(m, owner, meta::Component::Metrics, &metrics.common, hash),
        ));
    }
    if let Some(traces) = &m.traces {
        let data = BTreeMap::from([(configmap::CONFIG_KEY.to_string(), vector::traces::config(m, traces).to_yaml())]);
        let hash = daemonset::config_hash(&data);
        out.push(Child::new(Kind::ConfigMap, &configmap::render(m, owner, meta::Component::Traces, data)));
        out.push(Child::new(Kind::Deployment, &otlp::deployment(m, owner, traces, hash)));
        out.push(Child::new(Kind::Service, &otlp::service(m, owner)));
    }
    out
}

/// The rendered children as a multi-document YAML stream (the `render` subcommand).
pub fn to_yaml(children: &[Child]) -> String {
    let mut out = String::new();
    for c in children {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&c.object).expect("object serialises"));
    }
    out
}
