//! The logs and metrics collectors of the model: archive settings, selection, container.
//! Pure; failures name the field.

use k8s_openapi::api::core::v1::EnvVar;

use super::validate::{check_label, check_quantity, err, is_env_name, positive, substitute};
use super::{Archive, Collector, MetricsCollector, Scope, SpecError};
use crate::api::{
    ArchiveSpec, ContainerSpec, DEFAULT_IMAGE_TAG, EncodingCodec, EnvValue, MonitoringServicesSpec, ResourceSpec,
    SelectionSpec, VectorLogsSpec, VectorMetricsSpec,
};

/// Variables the DaemonSet sets itself.
/// Variables that change what Vector itself does rather than what a sink sends, refused in
/// `environmentVariables` (the README lists them). Not a CEL rule: the values are untyped
/// (string or valueFrom), and the apiserver cannot build CEL types for that map.
/// every `VECTOR_*` (which configuration is loaded, `--watch-config`, threads, log level, the
/// `VECTOR_SELF_*` values the operator sets), proxies that would redirect every request, and
/// the dynamic loader's code injection.
pub const REFUSED_ENV_PREFIXES: [&str; 1] = ["VECTOR_"];
pub const REFUSED_ENV: [&str; 10] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];

fn refused_env(name: &str) -> bool {
    REFUSED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) || REFUSED_ENV.contains(&name)
}

/// The parts of `spec.vectorLogs` / `spec.vectorMetrics` both collectors share.
struct Section<'a> {
    path: &'static str,
    prefix: &'a str,
    archive: &'a ArchiveSpec,
    selection: &'a SelectionSpec,
    container: &'a ContainerSpec,
}

pub fn logs(
    l: &VectorLogsSpec,
    spec: &MonitoringServicesSpec,
    scope: Scope,
    namespace: &str,
) -> Result<Collector, SpecError> {
    let section = Section {
        path: "spec.vectorLogs",
        prefix: &l.s3_prefix,
        archive: &l.archive,
        selection: &l.selection,
        container: &l.container,
    };
    collector(section, &spec.image_repository, scope, namespace)
}

pub fn metrics(
    m: &VectorMetricsSpec,
    spec: &MonitoringServicesSpec,
    scope: Scope,
    namespace: &str,
) -> Result<MetricsCollector, SpecError> {
    if m.scrape_timeout >= m.scrape_interval {
        return Err(err("spec.vectorMetrics.scrapeTimeout", "must be less than scrapeInterval"));
    }
    if m.archive.encoding_codec == EncodingCodec::Text {
        // Archived metrics are metric_to_log records without a `message`: `text` would write
        // one empty line per sample.
        return Err(err(
            "spec.vectorMetrics.encodingCodec",
            "text writes only a record's message, and metric records have none; use json or logfmt",
        ));
    }
    let section = Section {
        path: "spec.vectorMetrics",
        prefix: &m.s3_prefix,
        archive: &m.archive,
        selection: &m.selection,
        container: &m.container,
    };
    Ok(MetricsCollector {
        common: collector(section, &spec.image_repository, scope, namespace)?,
        scrape_interval_secs: positive("spec.vectorMetrics.scrapeInterval", m.scrape_interval.into())?,
        scrape_timeout_secs: positive("spec.vectorMetrics.scrapeTimeout", m.scrape_timeout.into())?,
        scrape_annotation: m.prometheus_pod_annotation.clone(),
        port_annotation: m.prometheus_port_annotation.clone(),
        path_annotation: m.prometheus_path_annotation.clone(),
        remote_write: None,
    })
}

fn collector(s: Section<'_>, image_repository: &str, scope: Scope, namespace: &str) -> Result<Collector, SpecError> {
    let path = s.path;
    let vars = &s.container.config_variables;
    for k in vars.keys() {
        if !is_env_name(k) {
            return Err(err(format!("{path}.configVariables"), format!("{k:?} is not a valid variable name")));
        }
    }
    check_selection(path, s.selection, scope, namespace)?;
    let resources = s.container.resources.clone().unwrap_or_default();
    check_resources(&format!("{path}.resources"), &resources)?;
    let image = s.container.image.clone().unwrap_or_default();
    let repo = image.repository.unwrap_or_else(|| image_repository.to_string());
    let tag = image.tag.unwrap_or_else(|| DEFAULT_IMAGE_TAG.to_string());
    Ok(Collector {
        image: format!("{repo}:{tag}"),
        pull_policy: image.pull_policy,
        resources,
        env: env(path, s.container)?,
        archive: archive(path, s.prefix, s.archive, vars)?,
        selection: s.selection.clone(),
        loki: None,
        secrets: Default::default(),
    })
}

/// CPU and memory must be quantities the apiserver can parse.
pub fn check_resources(path: &str, r: &ResourceSpec) -> Result<(), SpecError> {
    if let Some(cpu) = &r.cpu {
        check_quantity(&format!("{path}.cpu"), cpu)?;
    }
    if let Some(memory) = &r.memory {
        check_quantity(&format!("{path}.memory"), memory)?;
    }
    Ok(())
}

fn archive(
    path: &str,
    prefix: &str,
    archive: &ArchiveSpec,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<Archive, SpecError> {
    let sub =
        |field: &str, v: &str| substitute(&format!("{path}.{field}"), v, vars, &format!("{path}.configVariables"));
    let required = |field: &str, v: &Option<String>| -> Result<String, SpecError> {
        let v = v.as_deref().ok_or_else(|| err(format!("{path}.{field}"), "required when the component is enabled"))?;
        let v = sub(field, v)?;
        if v.trim().is_empty() {
            return Err(err(format!("{path}.{field}"), "must not be empty"));
        }
        Ok(v)
    };
    let bucket = required("s3Bucket", &archive.s3_bucket)?;
    if bucket.contains('/') || bucket.starts_with("s3:") {
        return Err(err(format!("{path}.s3Bucket"), "must be a bucket name without s3:// or /"));
    }
    let region = required("s3Region", &archive.s3_region)?;
    let endpoint = archive.s3_endpoint.as_deref().map(|e| sub("s3Endpoint", e)).transpose()?;
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(err(format!("{path}.s3Endpoint"), "must be an absolute http:// or https:// URL"));
    }
    let prefix = sub("s3Prefix", prefix)?;
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.is_empty() || prefix.contains("{{") || prefix.contains('%') || prefix.contains("..") {
        return Err(err(format!("{path}.s3Prefix"), "must be a non-empty literal key prefix without {{, % or .."));
    }
    Ok(Archive {
        bucket,
        region,
        endpoint,
        prefix,
        partition: archive.s3_partition,
        batch_max_bytes: positive(&format!("{path}.batchMaxBytes"), archive.batch_max_bytes)?,
        batch_timeout_secs: positive(&format!("{path}.batchTimeoutSecs"), archive.batch_timeout_secs.into())?,
        compression: archive.compression,
        codec: archive.encoding_codec,
    })
}

fn check_selection(path: &str, selection: &SelectionSpec, scope: Scope, namespace: &str) -> Result<(), SpecError> {
    for (k, v) in selection.include_pod_labels.iter() {
        check_label(&format!("{path}.includePodLabels"), k, v)?;
    }
    for (k, v) in selection.exclude_pod_labels.iter() {
        check_label(&format!("{path}.excludePodLabels"), k, v)?;
    }
    if scope == Scope::Cluster {
        return Ok(());
    }
    if let Some(other) = selection.include_namespaces.iter().find(|n| n.as_str() != namespace) {
        return Err(err(
            format!("{path}.includeNamespaces"),
            format!(
                "namespace {other:?} is outside {namespace:?}; collecting from other namespaces needs spec.useClusterRole: true"
            ),
        ));
    }
    if selection.exclude_namespaces.iter().any(|n| n == namespace) {
        return Err(err(
            format!("{path}.excludeNamespaces"),
            format!(
                "excludes {namespace:?}, the only namespace a namespace-scoped collector (useClusterRole: false) can read"
            ),
        ));
    }
    Ok(())
}

fn env(path: &str, container: &ContainerSpec) -> Result<Vec<EnvVar>, SpecError> {
    let mut env = Vec::new();
    for (k, v) in &container.environment_variables {
        if !is_env_name(k) {
            return Err(err(format!("{path}.environmentVariables"), format!("{k:?} is not a valid variable name")));
        }
        if refused_env(k) {
            return Err(err(
                format!("{path}.environmentVariables.{k}"),
                "changes how Vector itself runs (VECTOR_*, proxies, LD_*): not allowed; see the README's list",
            ));
        }
        env.push(match v {
            EnvValue::Plain(s) => EnvVar { name: k.clone(), value: Some(s.clone()), value_from: None },
            EnvValue::Invalid(_) => {
                return Err(err(
                    format!("{path}.environmentVariables.{k}"),
                    "must be a string or an object with exactly one key, valueFrom",
                ));
            }
            EnvValue::From { value_from } => {
                let set = [
                    value_from.secret_key_ref.is_some(),
                    value_from.config_map_key_ref.is_some(),
                    value_from.field_ref.is_some(),
                    value_from.resource_field_ref.is_some(),
                ];
                if set.iter().filter(|b| **b).count() != 1 {
                    return Err(err(
                        format!("{path}.environmentVariables.{k}.valueFrom"),
                        "must set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef",
                    ));
                }
                EnvVar { name: k.clone(), value: None, value_from: Some((**value_from).clone()) }
            }
        });
    }
    Ok(env)
}
