//! Pod-spec pieces shared by the collector DaemonSets and the trace Deployment: config
//! hash, env from pod fields, volumes and mounts, resources, the readiness probe, the
//! hardened security contexts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource, KeyToPath, LocalObjectReference,
    ObjectFieldSelector, PodSecurityContext, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use crate::api::ResourceSpec;
use crate::model::{Model, MountedSecret, SECRETS_DIR, SecretFile};

/// Where the component's ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/vector";

/// Every container: no privilege escalation, a read-only root filesystem (Vector writes only
/// its data dir, the sidecar only its emptyDir), no capability at all, the runtime's default
/// seccomp profile. Vector keeps running as root (its image's user) because the kubelet writes
/// pod log files as root with mode 0640: root reads them as their owner, which needs no
/// capability (not even DAC_READ_SEARCH). `non_root`: the discovery sidecar (the operator's
/// image runs as uid 65532) must not run as root.
pub fn hardened(non_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        run_as_non_root: non_root.then_some(true),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// The pod-level part: the runtime's default seccomp profile for every container.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext { seccomp_profile: Some(runtime_default()), ..Default::default() }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

/// `imagePullSecrets` of the pods, when any.
pub fn pull_secrets(m: &Model) -> Option<Vec<LocalObjectReference>> {
    (!m.pod.image_pull_secrets.is_empty())
        .then(|| m.pod.image_pull_secrets.iter().map(|s| LocalObjectReference { name: s.clone() }).collect())
}

/// Hash of everything in the component's ConfigMap: the pod template carries it, so any
/// config change rolls the pods.
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in data {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// What of the mounted Secrets goes into the config hash: their names, versions and keys. A
/// changed Secret rolls the pods, so Vector loads the new value; the values themselves never
/// enter the hash, which the pod template shows (a short password could be guessed from it).
pub fn secret_versions(secrets: &BTreeMap<String, MountedSecret>) -> BTreeMap<String, String> {
    secrets
        .iter()
        .map(|(name, s)| {
            let keys: Vec<&str> = s.keys.iter().map(String::as_str).collect();
            (format!("secret {name}"), format!("{} {}", s.resource_version, keys.join(",")))
        })
        .collect()
}

/// The volumes and read-only mounts of the Secrets an output names: each Secret's keys
/// projected under [`SECRETS_DIR`]`/<secret>/`, readable by the container's user only.
pub fn secret_volumes(secrets: &BTreeMap<String, MountedSecret>) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (name, s) in secrets {
        // A DNS label whatever the Secret's name (up to 253 characters, dots allowed).
        let volume = format!("secret-{}", hex::encode(&Sha256::digest(name.as_bytes())[..6]));
        let items = s
            .keys
            .iter()
            .map(|key| KeyToPath {
                key: key.clone(),
                path: SecretFile { secret: name.clone(), key: key.clone() }.file_name(),
                mode: None,
            })
            .collect();
        volumes.push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.clone()),
                items: Some(items),
                default_mode: Some(0o400),
                optional: None,
            }),
            ..Default::default()
        });
        mounts.push(mount(&volume, &format!("{SECRETS_DIR}/{name}"), true));
    }
    (volumes, mounts)
}

pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn host_path(name: &str, path: &str, kind: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: kind.map(str::to_string) }),
        ..Default::default()
    }
}

pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(read_only), ..Default::default() }
}

/// `cpu`/`memory` as request and limit; unset, the seed's "light" profile as a request only.
pub fn resources(r: &ResourceSpec) -> ResourceRequirements {
    let mut set = BTreeMap::new();
    if let Some(cpu) = &r.cpu {
        set.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(mem) = &r.memory {
        set.insert("memory".to_string(), Quantity(mem.clone()));
    }
    if set.is_empty() {
        // Seed section 9.1 "light" profile as a request; no limit the user did not ask for.
        let light = BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("128Mi".into())),
        ]);
        return ResourceRequirements { requests: Some(light), ..Default::default() };
    }
    ResourceRequirements { requests: Some(set.clone()), limits: Some(set), ..Default::default() }
}

/// Readiness from Vector's API (`/health` on the `api` port).
pub fn health_probe() -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health".into()),
            port: IntOrString::String("api".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Default::default()
    }
}
