//! The traces component (the workload trace endpoint): Deployment and Service
//! `{name}-vector-otlp`, OTLP gRPC 4317 and HTTP 4318. The child name keeps `otlp`, the
//! protocol workloads address it by; everything else calls the component "traces".
//! Stateless, so a Deployment with several replicas behind one Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, Service, ServicePort,
    ServiceSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::CONFIG_KEY;
use super::meta::{self, Component};
use super::pod::{CONFIG_DIR, field_env, hardened, health_probe, mount, pod_security, pull_secrets, resources};
use crate::model::{Model, Traces};
use crate::vector::traces::{GRPC_PORT, HTTP_PORT};
use crate::vector::{API_PORT, DATA_DIR, METRICS_PORT};

const C: Component = Component::Traces;

fn selector(m: &Model) -> BTreeMap<String, String> {
    BTreeMap::from([
        (meta::LABEL_INSTANCE.to_string(), m.name.clone()),
        (meta::LABEL_NAME.to_string(), C.app_name().to_string()),
    ])
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: port, protocol: Some("TCP".into()), ..Default::default() }
}

pub fn deployment(m: &Model, owner: Option<&OwnerReference>, t: &Traces, config_hash: String) -> Deployment {
    let name = C.workload_name(&m.name);
    let mut labels = meta::labels(m, C.app_name());
    labels.insert(meta::LABEL_COMPONENT.into(), C.short().into());
    let container = Container {
        name: "vector".into(),
        image: Some(t.image.clone()),
        image_pull_policy: t.pull_policy.map(|p| format!("{p:?}")),
        args: Some(vec!["--config".into(), format!("{CONFIG_DIR}/{CONFIG_KEY}")]),
        env: Some(vec![
            field_env("VECTOR_SELF_POD_NAME", "metadata.name"),
            EnvVar { name: "VECTOR_LOG".into(), value: Some("info".into()), ..Default::default() },
        ]),
        ports: Some(vec![
            port("otlp-grpc", GRPC_PORT),
            port("otlp-http", HTTP_PORT),
            port("api", API_PORT),
            port("metrics", METRICS_PORT),
        ]),
        readiness_probe: Some(health_probe()),
        resources: Some(resources(&t.resources)),
        volume_mounts: Some(vec![mount("config", CONFIG_DIR, true), mount("data", DATA_DIR, false)]),
        security_context: Some(hardened(false)),
        ..Default::default()
    };
    Deployment {
        metadata: meta::namespaced(m, owner, name, C.app_name()),
        spec: Some(DeploymentSpec {
            replicas: Some(t.replicas),
            selector: LabelSelector { match_labels: Some(selector(m)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(meta::ANNOTATION_CONFIG_HASH.to_string(), config_hash)])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(m.service_account.clone()),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: C.configmap_name(&m.name),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume { name: "data".into(), empty_dir: Some(Default::default()), ..Default::default() },
                    ]),
                    node_selector: (!m.pod.node_selector.is_empty()).then(|| m.pod.node_selector.clone()),
                    affinity: m.pod.affinity.clone(),
                    image_pull_secrets: pull_secrets(m),
                    termination_grace_period_seconds: Some(60),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn service(m: &Model, owner: Option<&OwnerReference>) -> Service {
    let p = |name: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: meta::namespaced(m, owner, C.workload_name(&m.name), C.app_name()),
        spec: Some(ServiceSpec {
            selector: Some(selector(m)),
            ports: Some(vec![p("otlp-grpc", GRPC_PORT), p("otlp-http", HTTP_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
