//! ConfigMaps `{name}-vector-logs-config` / `{name}-vector-metrics-config` holding `vector.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::meta::{self, Component};
use crate::model::Model;

/// Key of the Vector config file in the ConfigMap.
pub const CONFIG_KEY: &str = "vector.yaml";
/// Key of the discovery sidecar's settings in the metrics ConfigMap.
pub const DISCOVERY_KEY: &str = "discovery.json";

pub fn render(m: &Model, owner: Option<&OwnerReference>, c: Component, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: meta::namespaced(m, owner, c.configmap_name(&m.name), c.app_name()),
        data: Some(data),
        ..Default::default()
    }
}
