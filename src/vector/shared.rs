//! The shared logs collector's Vector configuration: one `kubernetes_logs` source for every
//! tenant on the node, the documented record ([`super::logs`]), then a `route` with one output
//! per tenant (its namespaces and pod-label filters as a VRL condition), and per tenant its own
//! identity stamp and its own sinks with its own credentials. Pure.
//!
//! Isolation: a route sends an event only to the outputs it matches, so no tenant's pipeline
//! sees another's events. Fan-out in Vector waits for every downstream buffer, so each
//! tenant's S3 sink has a disk buffer that drops the newest events when full instead of
//! blocking: a tenant whose sink is down or slow loses its own data once its buffer (about
//! 256 MiB) is full, and never stalls the source the others read from. Component ids start
//! with the tenant's id ([`crate::model::shared::tenant_id`]), so buffer directories and
//! metrics are per tenant too.

use std::collections::BTreeMap;

use super::vrl::{stamp_identity, vrl_string};
use super::*;
use crate::discover::{Mode, Settings, TenantSettings};
use crate::model::Archive;
use crate::model::shared::{AwsCredentials, Namespaces, Selection, Tenant};

pub const SOURCE: &str = "pod_logs";
pub const RECORD_ID: &str = "record";
pub const ROUTE: &str = "tenants";
/// The secret backend holding every tenant's credentials (files of the config's Secret).
pub const BACKEND: &str = "tenants";

/// Secret key of one credential of tenant `id` (`aws_access_key_id`, …).
pub fn credential_key(id: &str, what: &str) -> String {
    format!("{id}_{what}")
}

/// The shared logs config for `tenants` (sorted by id by the caller or not: maps order it);
/// `secrets_dir` is where the config's Secret, with the credentials, is mounted.
pub fn logs_config(tenants: &[Tenant], secrets_dir: &str) -> Config {
    let mut cfg = base_config();
    let with_logs: Vec<&Tenant> = tenants.iter().filter(|t| t.logs.is_some()).collect();
    if !with_logs.is_empty() {
        cfg.sources.insert(SOURCE.into(), Source::KubernetesLogs(source(&with_logs)));
        cfg.transforms.insert(
            RECORD_ID.into(),
            Transform::Remap(Remap { inputs: vec![SOURCE.into()], source: logs::RECORD.into(), drop_on_error: false }),
        );
        let mut route = BTreeMap::new();
        for t in &with_logs {
            let Some(l) = &t.logs else { continue };
            route.insert(t.id.clone(), condition(&l.selection));
            tenant_pipeline(&mut cfg, t, secrets_dir);
        }
        cfg.transforms.insert(
            ROUTE.into(),
            Transform::Route(Route { inputs: vec![RECORD_ID.into()], route, reroute_unmatched: false }),
        );
        cfg.secret.insert(
            BACKEND.into(),
            SecretBackend::Directory { path: secrets_dir.into(), remove_trailing_whitespace: true },
        );
    }
    self_observability(&mut cfg);
    cfg
}

/// One tenant: stamp, S3 archive with its own credentials, Loki and GreptimeDB when it has
/// them (their credentials are its own too: files of the config Secret under its id).
fn tenant_pipeline(cfg: &mut Config, t: &Tenant, secrets_dir: &str) {
    let Some(l) = &t.logs else { return };
    let id = &t.id;
    let enrich = format!("{id}_enrich");
    cfg.transforms.insert(
        enrich.clone(),
        Transform::Remap(Remap {
            inputs: vec![format!("{ROUTE}.{id}")],
            source: stamp_identity(&t.workspace, &t.tenant),
            drop_on_error: false,
        }),
    );
    let prefix = key_prefix(&l.archive, "namespace={{ kubernetes.pod_namespace }}/");
    let sink = tenant_s3(id, vec![enrich.clone()], &l.archive, &l.credentials, prefix);
    cfg.sinks.insert(format!("{id}_{}", logs::S3_SINK), sink);
    if let Some(l) = &t.loki {
        let files = tenant_files(id, secrets_dir);
        let sink = logs::loki_sink(vec![enrich.clone()], (&t.workspace, &t.tenant), l, files);
        cfg.sinks.insert(format!("{id}_{}", logs::LOKI_SINK), Sink::Loki(Box::new(sink)));
    }
    if let Some(g) = t.greptime.as_ref().filter(|g| g.logs) {
        let flatten = format!("{id}_{}", logs::GREPTIME_FLATTEN);
        cfg.transforms.insert(
            flatten.clone(),
            Transform::Remap(Remap { inputs: vec![enrich], source: logs::FLATTEN.into(), drop_on_error: false }),
        );
        cfg.sinks.insert(format!("{id}_{}", logs::GREPTIME_SINK), logs::greptime_sink(vec![flatten], g));
    }
}

/// Where tenant `id`'s output credentials are: keys of the config Secret mounted at `dir`.
fn tenant_files<'a>(id: &'a str, dir: &'a str) -> SecretFiles<'a> {
    SecretFiles::Tenant { id, dir, backend: BACKEND }
}

/// A tenant's S3 archive: its own credentials (from the config Secret's files), and a disk
/// buffer that drops the newest events when full instead of blocking (see the module docs).
fn tenant_s3(id: &str, inputs: Vec<String>, archive: &Archive, c: &AwsCredentials, prefix: String) -> Sink {
    let mut sink = s3_sink(inputs, archive, prefix);
    if let Sink::AwsS3(s3) = &mut sink {
        let secret = |what: &str| format!("SECRET[{BACKEND}.{}]", credential_key(id, what));
        let mut auth = BTreeMap::from([
            ("access_key_id".to_string(), secret("aws_access_key_id")),
            ("secret_access_key".into(), secret("aws_secret_access_key")),
        ]);
        if c.session_token.is_some() {
            auth.insert("session_token".into(), secret("aws_session_token"));
        }
        s3.auth = Some(auth);
        s3.buffer = Buffer::Disk { max_size: MIN_DISK_BUFFER_BYTES, when_full: WhenFull::DropNewest };
    }
    sink
}

/// The shared metrics collector's base config: per tenant, what its targets' labelled
/// samples (the sidecar's file, components `<id>_pod_metrics_labeled_*`) go through: records
/// stamped with its identity to its S3 archive, and its GreptimeDB remote write.
pub fn metrics_config(tenants: &[Tenant], secrets_dir: &str) -> Config {
    let mut cfg = base_config();
    for t in tenants {
        let Some(mt) = &t.metrics else { continue };
        let id = &t.id;
        let all = format!("{id}_{}", metrics::LABELED_ALL);
        cfg.sources.insert(
            format!("{id}_{}", metrics::LABELED_NONE),
            Source::StaticMetrics(StaticMetrics { metrics: Vec::new(), interval_secs: 86_400 }),
        );
        let to_log = format!("{id}_{}", metrics::TO_LOG);
        cfg.transforms.insert(to_log.clone(), Transform::MetricToLog(MetricToLog { inputs: vec![all.clone()] }));
        let enrich = format!("{id}_{}", metrics::ENRICH);
        cfg.transforms.insert(
            enrich.clone(),
            Transform::Remap(Remap {
                inputs: vec![to_log],
                source: stamp_identity(&t.workspace, &t.tenant),
                drop_on_error: false,
            }),
        );
        let c = &mt.common;
        let prefix = key_prefix(&c.archive, "");
        cfg.sinks.insert(
            format!("{id}_{}", metrics::S3_SINK),
            tenant_s3(id, vec![enrich], &c.archive, &c.credentials, prefix),
        );
        if let Some(rw) = &mt.remote_write {
            let sink = metrics::remote_write_sink(vec![all.clone()], rw, tenant_files(id, secrets_dir));
            cfg.sinks.insert(format!("{id}_{}", metrics::REMOTE_WRITE_SINK), sink);
        }
        if let Some(g) = t.greptime.as_ref().filter(|g| g.metrics) {
            cfg.sinks.insert(format!("{id}_{}", metrics::GREPTIME_SINK), metrics::greptime_sink(vec![all], g));
        }
        cfg.secret.insert(
            BACKEND.into(),
            SecretBackend::Directory { path: secrets_dir.into(), remove_trailing_whitespace: true },
        );
    }
    self_observability(&mut cfg);
    cfg
}

/// The settings of a shared collector's sidecar (`mode`: which collector): one entry per
/// tenant it serves, with that tenant's selection. For metrics the sidecar finds each tenant's
/// targets; for logs it counts each tenant's pods. Each tenant's flow is judged over its own
/// window: longer than its sinks' batch timeout, at least `min_window_secs` (the admin's).
pub fn discovery_settings(tenants: &[Tenant], mode: Mode, min_window_secs: u64) -> Settings {
    let tenants = tenants
        .iter()
        .filter_map(|t| {
            let (collector, metrics) = match mode {
                Mode::Metrics => (&t.metrics.as_ref()?.common, t.metrics.as_ref()),
                Mode::Logs => (t.logs.as_ref()?, None),
            };
            let sel = &collector.selection;
            let window = (2 * collector.archive.batch_timeout_secs).max(min_window_secs);
            let (scope, include, exclude) = match &sel.namespaces {
                Namespaces::Only(n) if n.is_empty() => return None,
                Namespaces::Only(n) if n.len() == 1 => (n.iter().next().cloned(), Vec::new(), Vec::new()),
                Namespaces::Only(n) => (None, n.iter().cloned().collect(), Vec::new()),
                Namespaces::AllExcept(n) => (None, Vec::new(), n.iter().cloned().collect()),
            };
            let mut settings = Settings {
                mode,
                namespace_scope: scope,
                include_namespaces: include,
                exclude_namespaces: exclude,
                include_pod_labels: sel.include_pod_labels.clone(),
                exclude_pod_labels: sel.exclude_pod_labels.clone(),
                workspace: t.workspace.clone(),
                tenant: t.tenant.clone(),
                ..Default::default()
            };
            if let Some(m) = metrics {
                settings.scrape_annotation = m.scrape_annotation.clone();
                settings.port_annotation = m.port_annotation.clone();
                settings.path_annotation = m.path_annotation.clone();
                settings.scrape_interval_secs = m.scrape_interval_secs;
                settings.scrape_timeout_secs = m.scrape_timeout_secs;
            }
            Some(TenantSettings { id: t.id.clone(), settings, flow_window_secs: window })
        })
        .collect();
    Settings { mode, workspace: "shared".into(), tenant: "shared".into(), tenants, ..Default::default() }
}

/// The source reads only the namespaces some tenant collects, when every tenant names its
/// namespaces (an API selector: other namespaces' pods are never tailed).
fn source(tenants: &[&Tenant]) -> KubernetesLogs {
    let mut names = std::collections::BTreeSet::new();
    let mut all = false;
    for t in tenants {
        match t.logs.as_ref().map(|l| &l.selection.namespaces) {
            Some(Namespaces::Only(n)) => names.extend(n.iter().cloned()),
            Some(Namespaces::AllExcept(_)) => all = true,
            None => {}
        }
    }
    let selector = if all || names.is_empty() {
        String::new()
    } else {
        format!("kubernetes.io/metadata.name in ({})", names.into_iter().collect::<Vec<_>>().join(","))
    };
    KubernetesLogs {
        extra_label_selector: String::new(),
        extra_namespace_label_selector: selector,
        extra_field_selector: String::new(),
        use_apiserver_cache: true,
        glob_minimum_cooldown_ms: 15_000,
    }
}

/// The VRL condition of one tenant's route: its namespaces, then its pod-label filters
/// (an exclude `k: v` also matches pods without `k`, as the selectors of the other modes).
pub fn condition(s: &Selection) -> String {
    let list = |names: &std::collections::BTreeSet<String>| {
        format!("[{}]", names.iter().map(|n| vrl_string(n)).collect::<Vec<_>>().join(", "))
    };
    let mut parts = vec![match &s.namespaces {
        Namespaces::Only(n) if n.is_empty() => "false".to_string(),
        Namespaces::Only(n) => format!("includes({}, .kubernetes.pod_namespace)", list(n)),
        Namespaces::AllExcept(n) if n.is_empty() => "true".to_string(),
        Namespaces::AllExcept(n) => format!("!includes({}, .kubernetes.pod_namespace)", list(n)),
    }];
    let label = |k: &str| format!("(string(get(.kubernetes.pod_labels, [{}]) ?? null) ?? \"\")", vrl_string(k));
    for (k, v) in &s.include_pod_labels {
        parts.push(format!("{} == {}", label(k), vrl_string(v)));
    }
    for (k, v) in &s.exclude_pod_labels {
        parts.push(format!("{} != {}", label(k), vrl_string(v)));
    }
    parts.join(" && ")
}
