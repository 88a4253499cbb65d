//! Render the child objects of a `MonitoringServices` from its complete [`Model`]. Pure: no
//! I/O, deterministic output, one module per child kind. The controller applies exactly what
//! this returns and deletes the children it no longer returns. Touches: nothing but the model.

mod configmap;
mod daemonset;
pub use daemonset::FLOW_PORT;
mod env_secret;
pub mod meta;
mod network_policy;
mod pod;
mod rbac;
mod service_account;
pub mod shared;
mod traces;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde::Serialize;

pub use daemonset::host_data_dir;
pub use pod::config_hash;

use crate::model::Model;
use crate::vector;

/// Rendering can only fail if serialisation of our own types fails: a bug, reported as such
/// instead of panicking inside the reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("serialising {what}: {message}")]
    Serialise { what: &'static str, message: String },
}

fn serialise_err(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::Serialise { what, message: e.to_string() }
}

/// The kinds of child the operator manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ServiceAccount,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    Secret,
    ConfigMap,
    DaemonSet,
    Deployment,
    Service,
    NetworkPolicy,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::ServiceAccount,
        Kind::Role,
        Kind::RoleBinding,
        Kind::ClusterRole,
        Kind::ClusterRoleBinding,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::DaemonSet,
        Kind::Deployment,
        Kind::Service,
        Kind::NetworkPolicy,
    ];

    pub fn api_resource(self) -> ApiResource {
        let (g, v) = match self {
            Kind::ServiceAccount | Kind::Secret | Kind::ConfigMap | Kind::Service => ("", "v1"),
            Kind::DaemonSet | Kind::Deployment => ("apps", "v1"),
            Kind::NetworkPolicy => ("networking.k8s.io", "v1"),
            Kind::Role | Kind::RoleBinding | Kind::ClusterRole | Kind::ClusterRoleBinding => {
                ("rbac.authorization.k8s.io", "v1")
            }
        };
        ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, self.name()))
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
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::DaemonSet => "DaemonSet",
            Kind::Deployment => "Deployment",
            Kind::Service => "Service",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }
}

/// Everything a MonitoringServices should own, typed, one list per kind. A new kind is a new
/// field here: the applier destructures this without `..`, so it cannot be forgotten there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Children {
    pub service_accounts: Vec<ServiceAccount>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// The collectors' plain-text `environmentVariables` values.
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub daemon_sets: Vec<DaemonSet>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    /// Collector NetworkPolicies (the admin's `--collector-network-policy`).
    pub network_policies: Vec<NetworkPolicy>,
}

/// One rendered child, untyped: for listings, the `render` subcommand and tests.
#[derive(Debug, Clone)]
pub struct Child {
    pub kind: Kind,
    pub object: DynamicObject,
}

impl Child {
    fn new<T: Serialize + k8s_openapi::Resource>(kind: Kind, obj: &T) -> Result<Child, Error> {
        let mut value = serde_json::to_value(obj).map_err(|e| serialise_err(T::KIND)(&e))?;
        // Typed objects omit apiVersion/kind in their serialisation; SSA and readers need them.
        value["apiVersion"] = T::API_VERSION.into();
        value["kind"] = T::KIND.into();
        let object = serde_json::from_value(value).map_err(|e| serialise_err(T::KIND)(&e))?;
        Ok(Child { kind, object })
    }

    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

impl Children {
    /// All children in apply order (identity and RBAC before the config, the config before the
    /// workloads that mount it), untyped.
    pub fn to_list(&self) -> Result<Vec<Child>, Error> {
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
        } = self;
        let mut out = Vec::new();
        fn push<T: Serialize + k8s_openapi::Resource>(
            out: &mut Vec<Child>,
            kind: Kind,
            items: &[T],
        ) -> Result<(), Error> {
            for item in items {
                out.push(Child::new(kind, item)?);
            }
            Ok(())
        }
        push(&mut out, Kind::ServiceAccount, service_accounts)?;
        push(&mut out, Kind::Role, roles)?;
        push(&mut out, Kind::RoleBinding, role_bindings)?;
        push(&mut out, Kind::ClusterRole, cluster_roles)?;
        push(&mut out, Kind::ClusterRoleBinding, cluster_role_bindings)?;
        push(&mut out, Kind::Secret, secrets)?;
        push(&mut out, Kind::ConfigMap, config_maps)?;
        push(&mut out, Kind::DaemonSet, daemon_sets)?;
        push(&mut out, Kind::Deployment, deployments)?;
        push(&mut out, Kind::Service, services)?;
        push(&mut out, Kind::NetworkPolicy, network_policies)?;
        Ok(out)
    }
}

/// Render every child of `m`. In the shared collection mode its collectors are its part of
/// the shared ones ([`shared`]): only the trace endpoint is its own.
pub fn render(m: &Model, owner: Option<&OwnerReference>) -> Result<Children, Error> {
    let mut out = Children::default();
    if m.shared.is_some() {
        traces_children(m, owner, &mut out)?;
        return Ok(out);
    }
    out.service_accounts.extend(service_account::render(m, owner));
    rbac::render(m, owner, &mut out);
    if let Some(logs) = &m.logs {
        let cfg = vector::logs::config(m, logs);
        let config = cfg.to_yaml().map_err(|e| serialise_err("logs config")(&e))?;
        let settings = serde_json::to_string_pretty(&vector::logs::settings(m, logs))
            .map_err(|e| serialise_err("logs discovery settings")(&e))?;
        let data = BTreeMap::from([
            (configmap::CONFIG_KEY.to_string(), config),
            (configmap::DISCOVERY_KEY.to_string(), settings),
        ]);
        let hash = config_hash(
            &data
                .clone()
                .into_iter()
                .chain(pod::secret_versions(&logs.secrets))
                .chain(env_hash_input(&logs.env))
                .collect(),
        );
        out.secrets.extend(env_secret::render(m, owner, meta::Component::Logs, &logs.env));
        out.config_maps.push(configmap::render(m, owner, meta::Component::Logs, data));
        out.daemon_sets.push(daemonset::render(m, owner, meta::Component::Logs, logs, hash, cfg.id));
        if m.network_policy {
            out.network_policies.push(network_policy::render(m, owner, meta::Component::Logs, logs, None));
        }
    }
    if let Some(metrics) = &m.metrics {
        let cfg = vector::metrics::config(m, metrics);
        let config = cfg.to_yaml().map_err(|e| serialise_err("metrics config")(&e))?;
        let settings = serde_json::to_string_pretty(&vector::metrics::settings(m, metrics))
            .map_err(|e| serialise_err("metrics discovery settings")(&e))?;
        let data = BTreeMap::from([
            (configmap::CONFIG_KEY.to_string(), config),
            (configmap::DISCOVERY_KEY.to_string(), settings),
        ]);
        let hash = config_hash(
            &data
                .clone()
                .into_iter()
                .chain(pod::secret_versions(&metrics.common.secrets))
                .chain(env_hash_input(&metrics.common.env))
                .collect(),
        );
        out.secrets.extend(env_secret::render(m, owner, meta::Component::Metrics, &metrics.common.env));
        out.config_maps.push(configmap::render(m, owner, meta::Component::Metrics, data));
        out.daemon_sets.push(daemonset::render(m, owner, meta::Component::Metrics, &metrics.common, hash, cfg.id));
        if m.network_policy {
            let rw = metrics.remote_write.as_ref().map(|r| r.endpoint.as_str());
            out.network_policies.push(network_policy::render(m, owner, meta::Component::Metrics, &metrics.common, rw));
        }
    }
    traces_children(m, owner, &mut out)?;
    Ok(out)
}

fn traces_children(m: &Model, owner: Option<&OwnerReference>, out: &mut Children) -> Result<(), Error> {
    if let Some(t) = &m.traces {
        let config = vector::traces::config(m, t).to_yaml().map_err(|e| serialise_err("traces config")(&e))?;
        let data = BTreeMap::from([(configmap::CONFIG_KEY.to_string(), config)]);
        let hash = config_hash(&data);
        out.config_maps.push(configmap::render(m, owner, meta::Component::Traces, data));
        out.deployments.push(traces::deployment(m, owner, t, hash));
        out.services.push(traces::service(m, owner));
    }
    Ok(())
}

/// The plain env values enter the pod template's hash (a changed value rolls the collectors,
/// which read env only at start), together with the whole configuration, never on their own.
fn env_hash_input(env: &[k8s_openapi::api::core::v1::EnvVar]) -> BTreeMap<String, String> {
    env_secret::plain_values(env).into_iter().map(|(k, v)| (format!("env {k}"), v)).collect()
}

/// The rendered children as a multi-document YAML stream (the `render` subcommand, golden files).
pub fn to_yaml(children: &Children) -> Result<String, Error> {
    let mut out = String::new();
    for c in children.to_list()? {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&c.object).map_err(|e| serialise_err("child")(&e))?);
    }
    Ok(out)
}
