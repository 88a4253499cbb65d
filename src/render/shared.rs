//! The shared collectors (the admin's `--collection-mode=shared`): one logs DaemonSet per node
//! in the admin's namespace serving every `MonitoringServices`, with its ServiceAccount and
//! cluster-wide read RBAC, and one Secret holding the Vector configuration and every tenant's
//! credentials. Pure: renders from the tenants' parts ([`Tenant`]) and the admin's settings.
//!
//! The configuration and the credentials are one Secret, mounted as one volume: the kubelet
//! swaps a volume's files atomically, so Vector (`--watch-config`) never reloads a config that
//! names a credential not there yet. A tenant added or removed changes that Secret only: the
//! pod template stays the same, so the collectors reload instead of restarting. The Secret
//! lives in the admin's namespace, which tenants cannot read (the README says so).
//!
//! The children reuse the per-resource renderers with a model of the shared collector itself
//! (`instance` [`INSTANCE`]), so both modes' pods are hardened the same way.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, SecretVolumeSource, Toleration};

use super::configmap::{CONFIG_KEY, DISCOVERY_KEY};
use super::meta::{self, Component};
use super::pod::CONFIG_DIR;
use super::{Children, Error, daemonset, network_policy, rbac, serialise_err, service_account};
use crate::api::{Compression, EncodingCodec, ResourceSpec, S3Partition, SelectionSpec};
use crate::discover::Mode;
use crate::model::shared::Tenant;
use crate::model::shared::TenantCollector;
use crate::model::{Archive, Collector, Model, PodSettings, Scope};
use crate::vector::shared::{credential_key, discovery_settings, logs_config, metrics_config};

pub use crate::model::shared::INSTANCE;

/// The admin's settings of the shared collectors.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSettings {
    /// Where they run: a namespace only the admin may read, at Pod Security `privileged`.
    pub namespace: String,
    /// Vector's image.
    pub image: String,
    /// CPU and memory of one collector pod (it serves every tenant on its node).
    pub resources: ResourceSpec,
    /// Nodes the shared collectors run on (default: every node, tainted ones included).
    pub node_selector: BTreeMap<String, String>,
    /// Image of the metrics collector's discovery sidecar (the operator's own).
    pub discovery_image: String,
    /// A NetworkPolicy per shared collector (the admin's `--collector-network-policy`).
    pub network_policy: bool,
    /// The admin's shortest flow window (`--flow-window-secs`); each tenant's is longer than
    /// its sinks' batch timeout.
    pub flow_window_secs: u64,
}

impl SharedSettings {
    pub fn new(namespace: &str) -> SharedSettings {
        SharedSettings {
            namespace: namespace.into(),
            image: format!("{}:{}", crate::api::DEFAULT_IMAGE_REPOSITORY, crate::api::DEFAULT_IMAGE_TAG),
            resources: ResourceSpec { cpu: Some("500m".into()), memory: Some("512Mi".into()) },
            node_selector: BTreeMap::new(),
            discovery_image: crate::model::DEFAULT_DISCOVERY_IMAGE.into(),
            network_policy: false,
            flow_window_secs: crate::model::DEFAULT_FLOW_WINDOW_SECS,
        }
    }

    /// Name of the shared DaemonSet of `c` (what each resource's status points at).
    pub fn workload(&self, c: Component) -> String {
        c.workload_name(INSTANCE)
    }
}

/// The model of the shared collector itself: cluster scope (it reads every tenant's
/// namespace), its own ServiceAccount and RBAC, on every node.
fn collector_model(s: &SharedSettings) -> (Model, Collector) {
    let collector = Collector {
        image: s.image.clone(),
        pull_policy: None,
        resources: s.resources.clone(),
        env: Vec::new(),
        // Not used by the shared pods (each tenant's archive is in its own sinks).
        archive: Archive {
            bucket: String::new(),
            region: String::new(),
            endpoint: None,
            prefix: String::new(),
            partition: S3Partition::Day,
            batch_max_bytes: 0,
            batch_timeout_secs: 0,
            compression: Compression::Gzip,
            codec: EncodingCodec::Json,
        },
        selection: SelectionSpec::default(),
        loki: None,
        secrets: BTreeMap::new(),
    };
    let model = Model {
        name: INSTANCE.into(),
        namespace: s.namespace.clone(),
        workspace: "shared".into(),
        tenant: "shared".into(),
        cloud: None,
        scope: Scope::Cluster,
        service_account: format!("{INSTANCE}-vector"),
        create_service_account: true,
        create_rbac: true,
        pod: PodSettings {
            tolerations: vec![Toleration { operator: Some("Exists".into()), ..Default::default() }],
            node_selector: s.node_selector.clone(),
            ..Default::default()
        },
        logs: Some(collector.clone()),
        metrics: None,
        traces: None,
        greptime: None,
        discovery_image: s.discovery_image.clone(),
        flow_window_secs: s.flow_window_secs,
        network_policy: false,
        shared: None,
    };
    (model, collector)
}

/// One tenant's part of collector `c`: its id, its collector, and the GreptimeDB endpoint it
/// also sends that kind to.
struct Part<'a> {
    id: &'a str,
    collector: &'a TenantCollector,
    greptime: Option<&'a str>,
    /// Its Loki or remote-write endpoint.
    output: Option<&'a str>,
}

/// The tenants' parts of collector `c` (logs or metrics).
fn collectors_of(tenants: &[Tenant], c: Component) -> Vec<Part<'_>> {
    tenants
        .iter()
        .filter_map(|t| {
            let (collector, greptime, output) = match c {
                Component::Logs => (
                    t.logs.as_ref()?,
                    t.greptime.as_ref().filter(|g| g.logs),
                    t.loki.as_ref().map(|l| l.endpoint.as_str()),
                ),
                Component::Metrics => {
                    let m = t.metrics.as_ref()?;
                    let rw = m.remote_write.as_ref().map(|r| r.endpoint.as_str());
                    (&m.common, t.greptime.as_ref().filter(|g| g.metrics), rw)
                }
                Component::Traces => return None,
            };
            Some(Part { id: &t.id, collector, greptime: greptime.map(|g| g.endpoint.as_str()), output })
        })
        .collect()
}

/// One component's config Secret (config, discovery settings, every tenant's credentials),
/// DaemonSet, and (the admin's `--collector-network-policy`) NetworkPolicy with egress to
/// every tenant's sink ports.
fn component(
    s: &SharedSettings,
    m: &Model,
    collector: &Collector,
    c: Component,
    mut data: BTreeMap<String, String>,
    parts: &[Part<'_>],
    out: &mut Children,
) {
    for p in parts {
        let (id, cred) = (p.id, &p.collector.credentials);
        data.insert(credential_key(id, "aws_access_key_id"), cred.access_key_id.clone());
        data.insert(credential_key(id, "aws_secret_access_key"), cred.secret_access_key.clone());
        if let Some(token) = &cred.session_token {
            data.insert(credential_key(id, "aws_session_token"), token.clone());
        }
        // Its outputs' credentials, under names no other tenant's can take (they start with its id).
        data.extend(p.collector.files.clone());
    }
    if s.network_policy {
        let endpoints = parts.iter().flat_map(|p| {
            [p.collector.archive.endpoint.as_deref()].into_iter().chain(p.greptime.map(Some)).chain(p.output.map(Some))
        });
        // The metrics collector scrapes any namespace's pods (cluster scope): tenants vary.
        out.network_policies.push(network_policy::policy(m, None, c, network_policy::shared_sink_ports(endpoints)));
    }
    let secret_name = c.configmap_name(INSTANCE);
    out.secrets.push(Secret {
        metadata: meta::namespaced(m, None, secret_name.clone(), c.app_name()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        type_: Some("Opaque".into()),
        ..Default::default()
    });
    // A constant template: what changes is the Secret, which Vector reloads.
    let mut ds = daemonset::render(m, None, c, collector, "hot-reload".into(), String::new());
    if let Some(pod) = ds.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        for v in pod.volumes.iter_mut().flatten().filter(|v| v.name == "config") {
            v.config_map = None;
            v.secret = Some(SecretVolumeSource { secret_name: Some(secret_name.clone()), ..Default::default() });
        }
        for v in pod.containers.iter_mut().filter(|v| v.name == "vector") {
            let args = v.args.get_or_insert_with(Vec::new);
            if !args.iter().any(|a| a == "--watch-config") {
                args.push("--watch-config".into());
            }
        }
    }
    if let Some(a) = ds.spec.as_mut().and_then(|s| s.template.metadata.as_mut()).and_then(|m| m.annotations.as_mut()) {
        // The loaded config's id changes with every tenant; the pods do not.
        a.remove(meta::ANNOTATION_CONFIG_ID);
    }
    out.daemon_sets.push(ds);
}

/// Every shared child for `tenants` (any order: the output is sorted by tenant id).
pub fn render(s: &SharedSettings, tenants: &[Tenant]) -> Result<Children, Error> {
    let mut tenants = tenants.to_vec();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    let (m, collector) = collector_model(s);
    let mut out = Children::default();
    if tenants.iter().all(|t| t.logs.is_none() && t.metrics.is_none()) {
        // Nobody to serve: nothing runs, nothing is granted.
        return Ok(out);
    }
    out.service_accounts.extend(service_account::render(&m, None));
    rbac::render(&m, None, &mut out);

    let logs = collectors_of(&tenants, Component::Logs);
    if !logs.is_empty() {
        let cfg = logs_config(&tenants, CONFIG_DIR);
        let config = cfg.to_yaml().map_err(|e| serialise_err("shared logs config")(&e))?;
        // The sidecar counts each tenant's pods on its node and judges each tenant's flow.
        let settings = serde_json::to_string_pretty(&discovery_settings(&tenants, Mode::Logs, s.flow_window_secs))
            .map_err(|e| serialise_err("shared logs sidecar settings")(&e))?;
        let data = BTreeMap::from([(CONFIG_KEY.to_string(), config), (DISCOVERY_KEY.to_string(), settings)]);
        component(s, &m, &collector, Component::Logs, data, &logs, &mut out);
    }
    let metrics = collectors_of(&tenants, Component::Metrics);
    if !metrics.is_empty() {
        let cfg = metrics_config(&tenants, CONFIG_DIR);
        let config = cfg.to_yaml().map_err(|e| serialise_err("shared metrics config")(&e))?;
        let settings = serde_json::to_string_pretty(&discovery_settings(&tenants, Mode::Metrics, s.flow_window_secs))
            .map_err(|e| serialise_err("shared discovery settings")(&e))?;
        let data = BTreeMap::from([(CONFIG_KEY.to_string(), config), (DISCOVERY_KEY.to_string(), settings)]);
        component(s, &m, &collector, Component::Metrics, data, &metrics, &mut out);
    }
    Ok(out)
}
