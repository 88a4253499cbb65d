//! DaemonSets `{name}-vector-logs` / `{name}-vector-metrics`: one Vector pod per node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::configmap::{CONFIG_KEY, DISCOVERY_KEY};
use super::env_secret;
use super::meta::{self, Component};
use super::pod::{
    CONFIG_DIR, field_env, hardened, health_probe, host_path, mount, pod_security, pull_secrets, resources,
    secret_volumes,
};
use crate::model::{Collector, Model, Scope};
use crate::vector::{API_PORT, DATA_DIR, METRICS_PORT};

/// Host directory holding this collector's checkpoints and disk buffers: distinct per CR and
/// per component, so two collectors on one node never share checkpoint files or buffer locks.
pub fn host_data_dir(m: &Model, c: Component) -> String {
    format!("/var/lib/vector/monitoringservices/{}/{}/{}", m.namespace, m.name, c.short())
}

/// Where the discovery sidecar writes this node's scrape targets (an emptyDir shared with Vector).
const DISCOVERY_DIR: &str = "/vector-discovery";
const TARGETS_FILE: &str = "targets.yaml";

/// Where the discovery sidecar serves the flow summary of the pod's Vector (`GET /flow`).
pub const FLOW_PORT: i32 = 9599;

/// The flow window of a collector: longer than its batch timeout (a sink filling a batch sends
/// nothing meanwhile, which must not read as a stall), at least the admin's minimum.
pub fn flow_window_secs(m: &Model, c: &Collector) -> u64 {
    (2 * c.archive.batch_timeout_secs).max(m.flow_window_secs)
}

/// The discovery containers of a collector pod: an init container writes the first targets
/// file (so Vector starts with a complete config), a sidecar keeps it current and serves the
/// flow summary. `writes`: false for a `kubernetes_logs` collector, which finds its pods
/// itself: its sidecar only serves the flow summary (and no init container is needed).
fn discovery_containers(m: &Model, c: &Collector, writes: bool) -> (Container, Container) {
    let args = |once: bool| {
        let mut a = vec![
            "discover".to_string(),
            "--node".into(),
            "$(NODE_NAME)".into(),
            "--settings".into(),
            format!("{CONFIG_DIR}/{DISCOVERY_KEY}"),
        ];
        if writes {
            a.extend(["--output".into(), format!("{DISCOVERY_DIR}/{TARGETS_FILE}")]);
        }
        if once {
            a.push("--once".into());
        } else {
            a.extend([
                "--flow-addr".into(),
                format!("0.0.0.0:{FLOW_PORT}"),
                "--flow-window-secs".into(),
                flow_window_secs(m, c).to_string(),
            ]);
        }
        a
    };
    let small =
        BTreeMap::from([("cpu".to_string(), Quantity("10m".into())), ("memory".to_string(), Quantity("32Mi".into()))]);
    let base = Container {
        image: Some(m.discovery_image.clone()),
        env: Some(vec![field_env("NODE_NAME", "spec.nodeName")]),
        resources: Some(ResourceRequirements {
            requests: Some(small),
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity("128Mi".into()))])),
            ..Default::default()
        }),
        volume_mounts: Some(if writes {
            vec![mount("config", CONFIG_DIR, true), mount("discovery", DISCOVERY_DIR, false)]
        } else {
            vec![mount("config", CONFIG_DIR, true)]
        }),
        security_context: Some(hardened(true)),
        ..Default::default()
    };
    (
        Container { name: "discover-init".into(), args: Some(args(true)), ..base.clone() },
        Container {
            name: "discover".into(),
            args: Some(args(false)),
            ports: Some(vec![ContainerPort {
                name: Some("flow".into()),
                container_port: FLOW_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..base
        },
    )
}

pub fn render(
    m: &Model,
    owner: Option<&OwnerReference>,
    comp: Component,
    c: &Collector,
    config_hash: String,
    config_id: String,
) -> DaemonSet {
    let selector = BTreeMap::from([
        (meta::LABEL_INSTANCE.to_string(), m.name.clone()),
        (meta::LABEL_NAME.to_string(), comp.app_name().to_string()),
    ]);
    let mut pod_labels = meta::labels(m, comp.app_name());
    pod_labels.insert(meta::LABEL_COMPONENT.into(), comp.short().into());
    // Vector's kubernetes_logs never tails pods labelled like this: collectors skip each other.
    pod_labels.insert("vector.dev/exclude".into(), "true".into());

    let mut env = vec![
        field_env("VECTOR_SELF_NODE_NAME", "spec.nodeName"),
        field_env("VECTOR_SELF_POD_NAME", "metadata.name"),
        field_env("VECTOR_SELF_POD_NAMESPACE", "metadata.namespace"),
        EnvVar { name: "VECTOR_LOG".into(), value: Some("info".into()), ..Default::default() },
    ];
    // A user value replaces ours (e.g. VECTOR_LOG=debug): env names must be unique.
    env.retain(|e| !c.env.iter().any(|u| u.name == e.name));
    env.extend(env_secret::referenced(m, comp, &c.env));

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: comp.configmap_name(&m.name), ..Default::default() }),
            ..Default::default()
        },
        host_path("data", &host_data_dir(m, comp), Some("DirectoryOrCreate")),
    ];
    let mut mounts = vec![mount("config", CONFIG_DIR, true), mount("data", DATA_DIR, false)];
    if comp == Component::Logs {
        volumes.push(host_path("var-log", "/var/log", None));
        mounts.push(mount("var-log", "/var/log", true));
        if m.scope == Scope::Cluster {
            // /var/log/pods entries may be symlinks into /var/lib (docker runtime).
            volumes.push(host_path("var-lib", "/var/lib", None));
            mounts.push(mount("var-lib", "/var/lib", true));
        }
    }

    let (secret_vols, secret_mounts) = secret_volumes(&c.secrets);
    volumes.extend(secret_vols);
    mounts.extend(secret_mounts);

    let mut args = vec!["--config".to_string(), format!("{CONFIG_DIR}/{CONFIG_KEY}")];
    let mut init_containers = None;
    let mut sidecars = Vec::new();
    // Discovery sidecar: scrape targets for metrics; for a namespace-scoped logs collector, the
    // pods (after label filters) whose log directories it reads. Every collector's sidecar
    // serves the flow summary; a cluster-wide logs collector's does only that.
    if comp == Component::Metrics || (comp == Component::Logs && m.scope == Scope::Namespace) {
        volumes.push(Volume { name: "discovery".into(), empty_dir: Some(Default::default()), ..Default::default() });
        mounts.push(mount("discovery", DISCOVERY_DIR, true));
        // The discovered file changes while running: Vector reloads it (only the changed
        // components are rebuilt).
        args.extend(["--config".to_string(), format!("{DISCOVERY_DIR}/{TARGETS_FILE}"), "--watch-config".into()]);
        let (init, sidecar) = discovery_containers(m, c, true);
        init_containers = Some(vec![init]);
        sidecars.push(sidecar);
    } else if comp == Component::Logs {
        sidecars.push(discovery_containers(m, c, false).1);
    }
    let container = Container {
        name: "vector".into(),
        image: Some(c.image.clone()),
        image_pull_policy: c.pull_policy.map(|p| format!("{p:?}")),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("api".into()),
                container_port: API_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ]),
        readiness_probe: Some(health_probe()),
        resources: Some(resources(&c.resources)),
        volume_mounts: Some(mounts),
        security_context: Some(hardened(false)),
        ..Default::default()
    };

    DaemonSet {
        metadata: meta::namespaced(m, owner, comp.workload_name(&m.name), comp.app_name()),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        (meta::ANNOTATION_CONFIG_HASH.to_string(), config_hash),
                        (meta::ANNOTATION_CONFIG_ID.to_string(), config_id),
                    ])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(m.service_account.clone()),
                    containers: std::iter::once(container).chain(sidecars).collect(),
                    init_containers,
                    volumes: Some(volumes),
                    tolerations: Some(m.pod.tolerations.clone()),
                    node_selector: (!m.pod.node_selector.is_empty()).then(|| m.pod.node_selector.clone()),
                    affinity: m.pod.affinity.clone(),
                    image_pull_secrets: pull_secrets(m),
                    security_context: Some(pod_security()),
                    // Matches Vector's default graceful shutdown limit, so buffers flush.
                    termination_grace_period_seconds: Some(60),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
