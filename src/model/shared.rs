//! The shared collection mode's part of the model: what one resource contributes to the shared
//! collectors (one logs and one metrics DaemonSet per node, in the admin's namespace, serving
//! every `MonitoringServices`). Pure: checks the spec against what a shared collector can do
//! per tenant and resolves the tenant's credentials from what the dereference step read.
//!
//! A shared Vector is one process for every tenant: anything process-wide (environment,
//! image, resources, scheduling, the ServiceAccount's identity) belongs to the admin. So a
//! tenant's `environmentVariables` may hold only its own S3 credentials, which become
//! per-sink `auth` (the shared collectors never write with an identity of their own: a tenant
//! without credentials could otherwise write wherever the admin's identity may). Its Loki and
//! remote-write outputs keep their own credentials too: the values of the Secret keys they
//! name become files of the shared collector's config Secret, named for the tenant.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::EnvVar;

use super::outputs::{Loki, RemoteWrite, SecretFile, output_files};
use super::validate::err;
use super::{Archive, Collector, GreptimeTarget, Model, Scope, SpecError};
use crate::api::{EnvValue, MonitoringServicesSpec, SelectionSpec};

/// `app.kubernetes.io/instance` of the shared collectors' children (their names start with it).
pub const INSTANCE: &str = "monitoring-shared";

/// The variables a tenant may set in shared mode: its archive credentials.
pub const SHARED_ENV: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// Values of the Secret keys the `environmentVariables` name (`secretKeyRef`), by Secret name
/// then key; read only in shared mode, where the values go into the shared collectors' Secret.
pub type SecretValues = BTreeMap<String, BTreeMap<String, String>>;

/// Static AWS credentials for one tenant's S3 sink.
#[derive(Clone, PartialEq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    // Never print a credential (the model is logged at debug level in places).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials").field("access_key_id", &"…").finish_non_exhaustive()
    }
}

/// Which namespaces a tenant's pipeline takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Exactly these (a namespace-scoped resource: its own).
    Only(BTreeSet<String>),
    /// Every namespace but these (cluster-wide, as the policy allowed).
    AllExcept(BTreeSet<String>),
}

/// Which pods of which namespaces a tenant collects.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub namespaces: Namespaces,
    pub include_pod_labels: BTreeMap<String, String>,
    pub exclude_pod_labels: BTreeMap<String, String>,
}

/// One tenant's collector on the shared collectors.
#[derive(Clone, PartialEq)]
pub struct TenantCollector {
    pub archive: Archive,
    pub selection: Selection,
    pub credentials: AwsCredentials,
    /// The values of the Secret keys its outputs name, by their name in the shared config
    /// Secret ([`SecretFile::shared_name`]).
    pub files: BTreeMap<String, String>,
}

impl std::fmt::Debug for TenantCollector {
    // Never print a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCollector")
            .field("archive", &self.archive)
            .field("selection", &self.selection)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One tenant's metrics on the shared collectors.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantMetrics {
    pub common: TenantCollector,
    pub remote_write: Option<RemoteWrite>,
    pub scrape_interval_secs: u64,
    pub scrape_timeout_secs: u64,
    pub scrape_annotation: String,
    pub port_annotation: String,
    pub path_annotation: String,
}

/// What one resource contributes to the shared collectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Component-id prefix of this resource in the shared configuration: `t` and 12 hex
    /// digits of its namespace/name, stable (it names the sinks' buffer directories).
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub workspace: String,
    pub tenant: String,
    pub logs: Option<TenantCollector>,
    /// Its logs' Loki output.
    pub loki: Option<Loki>,
    pub metrics: Option<TenantMetrics>,
    pub greptime: Option<GreptimeTarget>,
}

/// The id of resource `namespace/name` in the shared configuration.
pub fn tenant_id(namespace: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("t{}", hex::encode(&Sha256::digest(format!("{namespace}/{name}").as_bytes())[..6]))
}

/// The tenant part of `m` for the shared collectors, or the field a shared collector cannot
/// serve for one tenant.
pub fn tenant(m: &Model, values: &SecretValues) -> Result<Tenant, SpecError> {
    let id = tenant_id(&m.namespace, &m.name);
    let logs = match &m.logs {
        Some(c) => {
            let files = c.loki.as_ref().map(|l| output_files(l.auth.as_ref(), l.tls.as_ref())).unwrap_or_default();
            Some(collector("spec.vectorLogs", &id, m, c, values, ("spec.vectorLogs.loki", &files))?)
        }
        None => None,
    };
    let metrics = match &m.metrics {
        Some(mc) => {
            let rw = mc.remote_write.as_ref();
            let files = rw.map(|r| output_files(r.auth.as_ref(), r.tls.as_ref())).unwrap_or_default();
            let field = "spec.vectorMetrics.remoteWrite";
            Some(TenantMetrics {
                common: collector("spec.vectorMetrics", &id, m, &mc.common, values, (field, &files))?,
                remote_write: mc.remote_write.clone(),
                scrape_interval_secs: mc.scrape_interval_secs,
                scrape_timeout_secs: mc.scrape_timeout_secs,
                scrape_annotation: mc.scrape_annotation.clone(),
                port_annotation: mc.port_annotation.clone(),
                path_annotation: mc.path_annotation.clone(),
            })
        }
        None => None,
    };
    Ok(Tenant {
        id,
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        workspace: m.workspace.clone(),
        tenant: m.tenant.clone(),
        loki: m.logs.as_ref().and_then(|c| c.loki.clone()),
        logs,
        metrics,
        greptime: m.greptime_target().cloned(),
    })
}

/// `files`: the output's field and the Secret files it reads, whose values the shared config
/// Secret carries.
fn collector(
    path: &str,
    id: &str,
    m: &Model,
    c: &Collector,
    values: &SecretValues,
    (output, files): (&str, &[SecretFile]),
) -> Result<TenantCollector, SpecError> {
    let mut found = BTreeMap::new();
    for e in &c.env {
        let field = format!("{path}.environmentVariables.{}", e.name);
        if !SHARED_ENV.contains(&e.name.as_str()) {
            return Err(err(
                field,
                "the shared collectors (the cluster admin's --collection-mode=shared) run one Vector for every \
                 tenant: only AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are per tenant",
            ));
        }
        found.insert(e.name.as_str(), value(&field, e, values)?);
    }
    let (Some(key_id), Some(secret)) = (found.get("AWS_ACCESS_KEY_ID"), found.get("AWS_SECRET_ACCESS_KEY")) else {
        return Err(err(
            format!("{path}.environmentVariables"),
            "the shared collectors need this resource's own S3 credentials (AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, plain or from a Secret of this namespace): they never write with an identity of their own",
        ));
    };
    let mut out = BTreeMap::new();
    for f in files {
        let Some(v) = values.get(&f.secret).and_then(|keys| keys.get(&f.key)) else {
            return Err(err(
                output,
                format!("Secret {:?} key {:?} could not be read (it changed while being read?)", f.secret, f.key),
            ));
        };
        out.insert(f.shared_name(id), v.clone());
    }
    Ok(TenantCollector {
        archive: c.archive.clone(),
        selection: selection(m, &c.selection),
        credentials: AwsCredentials {
            access_key_id: key_id.clone(),
            secret_access_key: secret.clone(),
            session_token: found.get("AWS_SESSION_TOKEN").cloned(),
        },
        files: out,
    })
}

fn value(field: &str, e: &EnvVar, values: &SecretValues) -> Result<String, SpecError> {
    if let Some(v) = &e.value {
        return Ok(v.clone());
    }
    let Some(r) = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) else {
        return Err(err(
            format!("{field}.valueFrom"),
            "only a plain value or a secretKeyRef in the shared collection mode",
        ));
    };
    values.get(&r.name).and_then(|keys| keys.get(&r.key)).cloned().ok_or_else(|| {
        err(
            format!("{field}.valueFrom.secretKeyRef"),
            format!("Secret {:?} has no key {:?} in this namespace (or does not exist yet)", r.name, r.key),
        )
    })
}

/// The namespaces and pods a tenant collects: its own namespace when namespace-scoped;
/// cluster-wide (what the tenancy policy let through) its include list, else all but its
/// exclude list.
fn selection(m: &Model, s: &SelectionSpec) -> Selection {
    let namespaces = match m.scope {
        Scope::Namespace => Namespaces::Only(BTreeSet::from([m.namespace.clone()])),
        Scope::Cluster if !s.include_namespaces.is_empty() => {
            let exclude: BTreeSet<&String> = s.exclude_namespaces.iter().collect();
            Namespaces::Only(s.include_namespaces.iter().filter(|n| !exclude.contains(n)).cloned().collect())
        }
        Scope::Cluster => Namespaces::AllExcept(s.exclude_namespaces.iter().cloned().collect()),
    };
    Selection {
        namespaces,
        include_pod_labels: s.include_pod_labels.clone(),
        exclude_pod_labels: s.exclude_pod_labels.clone(),
    }
}

/// Secret names and keys whose values the shared collectors carry for `spec`: its
/// `environmentVariables`' `secretKeyRef`s and its outputs' credentials (what the dereference
/// step reads in shared mode).
pub fn value_refs(spec: &MonitoringServicesSpec) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = env_secret_refs(spec);
    for (name, keys) in super::referenced_secrets(spec) {
        out.entry(name).or_default().extend(keys);
    }
    out
}

/// Secret names and keys the `environmentVariables` of `spec` name (`secretKeyRef`).
pub fn env_secret_refs(spec: &MonitoringServicesSpec) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let containers = [
        spec.vector_logs.as_ref().filter(|l| l.enabled).map(|l| &l.container),
        spec.vector_metrics.as_ref().filter(|m| m.enabled).map(|m| &m.container),
    ];
    for c in containers.into_iter().flatten() {
        for v in c.environment_variables.values() {
            if let EnvValue::From { value_from } = v
                && let Some(r) = &value_from.secret_key_ref
            {
                out.entry(r.name.clone()).or_default().insert(r.key.clone());
            }
        }
    }
    out
}
