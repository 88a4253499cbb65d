//! Secrets `{name}-vector-logs-env` / `{name}-vector-metrics-env`: the plain-text values of a
//! collector's `environmentVariables` (seed example 4.2 puts AWS keys there), so the DaemonSet
//! references them with `secretKeyRef` and whoever may read DaemonSets and pods but not Secrets
//! never sees them. Values given as `valueFrom` stay as they are.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::meta::{self, Component};
use crate::model::Model;

pub fn name(m: &Model, c: Component) -> String {
    format!("{}-{}-env", m.name, c.app_name())
}

/// The user's plain values, by variable name (the Secret's keys).
pub fn plain_values(env: &[EnvVar]) -> BTreeMap<String, String> {
    env.iter().filter(|e| e.value_from.is_none()).filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect()
}

/// The Secret, when the collector has plain values.
pub fn render(m: &Model, owner: Option<&OwnerReference>, c: Component, env: &[EnvVar]) -> Option<Secret> {
    let values = plain_values(env);
    if values.is_empty() {
        return None;
    }
    Some(Secret {
        metadata: meta::namespaced(m, owner, name(m, c), c.app_name()),
        // `data`, not `stringData`: the apiserver stores only `data`, and drift detection
        // compares what we apply with what is stored.
        data: Some(values.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        type_: Some("Opaque".into()),
        ..Default::default()
    })
}

/// The user's env as the container gets it: plain values read from the Secret.
pub fn referenced(m: &Model, c: Component, env: &[EnvVar]) -> Vec<EnvVar> {
    env.iter()
        .map(|e| match (&e.value, &e.value_from) {
            (Some(_), None) => EnvVar {
                name: e.name.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name(m, c),
                        key: e.name.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            _ => e.clone(),
        })
        .collect()
}
