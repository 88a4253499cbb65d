//! The shared collection mode without a cluster: what a tenant resource renders (nothing with
//! a pod), the shared collectors' children, and their Vector configuration: each tenant's
//! route, selectors, identity, sinks and credentials its own, never another's. The route
//! conditions are run with VRL on sample records, so "never mix" is checked on events, not on
//! text.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;

use monitoring_operator::api::MonitoringServices;
use monitoring_operator::model::{self, shared::Tenant};
use monitoring_operator::render::shared::{SharedSettings, render};
use monitoring_operator::render::{self as r, Kind};
use serde_json::{Value, json};

mod support;
use support::files::repo;

const SHARED_NS: &str = "monitoring-system";

fn ms(ns: &str, name: &str, spec: Value) -> MonitoringServices {
    serde_json::from_value(json!({
        "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")}, "spec": spec,
    }))
    .unwrap()
}

fn deref(values: &[(&str, &str, &str)]) -> model::Dereferenced {
    let mut d = model::Dereferenced::default();
    d.operator.shared_namespace = Some(SHARED_NS.into());
    for (secret, key, value) in values {
        d.secret_values.entry(secret.to_string()).or_default().insert(key.to_string(), value.to_string());
    }
    d
}

/// Tenant A (`team-a`): only `app=api` pods, plain credentials. Tenant B (`team-b`): every pod
/// but `app=debug`, credentials from its own Secret, GreptimeDB for real time.
fn two_tenants() -> (model::Model, model::Model) {
    let a = ms(
        "team-a",
        "mon",
        json!({"workspace": "ws-a", "tenant": "acme",
            "vectorLogs": {"s3Bucket": "bucket-a", "s3Region": "us-east-1", "s3Prefix": "a-logs",
                "includePodLabels": {"app": "api"},
                "environmentVariables": {"AWS_ACCESS_KEY_ID": "AKIA-A", "AWS_SECRET_ACCESS_KEY": "secret-a"}}}),
    );
    let b = ms(
        "team-b",
        "mon",
        json!({"workspace": "ws-b", "tenant": "globex",
            "vectorLogs": {"s3Bucket": "bucket-b", "s3Region": "eu-west-1", "s3Prefix": "b-logs",
                "excludePodLabels": {"app": "debug"},
                "environmentVariables": {
                    "AWS_ACCESS_KEY_ID": {"valueFrom": {"secretKeyRef": {"name": "s3", "key": "id"}}},
                    "AWS_SECRET_ACCESS_KEY": {"valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}}}},
            "greptimeRef": {"name": "g", "metricsEnabled": false}}),
    );
    let ma = model::build(&a, &deref(&[])).unwrap();
    let mut db = deref(&[("s3", "id", "AKIA-B"), ("s3", "secret", "secret-b")]);
    db.greptime = Some(model::GreptimeLookup::Found {
        endpoint: "g-frontend.team-b.svc:4000".into(),
        phase: Some("Running".into()),
        pipeline: model::PipelineCheck::Ready,
    });
    let mb = model::build(&b, &db).unwrap();
    (ma, mb)
}

fn tenant(m: &model::Model) -> Tenant {
    m.shared.as_ref().unwrap().tenant.clone()
}

fn shared_config(tenants: &[Tenant]) -> (Value, BTreeMap<String, String>) {
    let children = render(&SharedSettings::new(SHARED_NS), tenants).unwrap();
    let secret =
        children.secrets.iter().find(|s| s.metadata.name.as_deref() == Some("monitoring-shared-vector-logs-config"));
    let data: BTreeMap<String, String> =
        secret.unwrap().data.clone().unwrap().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect();
    (serde_norway::from_str(&data["vector.yaml"]).unwrap(), data)
}

#[test]
fn a_tenant_resource_renders_nothing_that_runs_a_pod() {
    let (ma, _) = two_tenants();
    let children = r::render(&ma, None).unwrap();
    assert_eq!(children, r::Children::default(), "no ServiceAccount, RBAC, config or DaemonSet of its own");
    // With the trace endpoint it keeps that (a Deployment with no host access) in its namespace.
    let mut with_traces = ms(
        "team-a",
        "mon",
        json!({"workspace": "w", "tenant": "t",
        "vectorLogs": {"s3Bucket": "b", "s3Region": "r",
            "environmentVariables": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}}}),
    );
    with_traces.spec.traces = serde_json::from_value(json!({"tempoEndpoint": "http://tempo:4318"})).unwrap();
    let children = r::render(&model::build(&with_traces, &deref(&[])).unwrap(), None).unwrap().to_list().unwrap();
    let kinds: Vec<Kind> = children.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![Kind::ConfigMap, Kind::Deployment, Kind::Service]);
}

#[test]
fn the_shared_children_live_in_the_admin_namespace() {
    let (ma, mb) = two_tenants();
    let children = render(&SharedSettings::new(SHARED_NS), &[tenant(&ma), tenant(&mb)]).unwrap();
    for c in children.to_list().unwrap() {
        if c.kind.namespaced() {
            assert_eq!(c.object.metadata.namespace.as_deref(), Some(SHARED_NS), "{:?} {}", c.kind, c.name());
        }
        assert!(c.name().contains("monitoring-shared"), "{}", c.name());
    }
    let ds = &children.daemon_sets[0];
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let config = pod.volumes.as_ref().unwrap().iter().find(|v| v.name == "config").unwrap();
    assert_eq!(
        config.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
        Some("monitoring-shared-vector-logs-config"),
        "config and credentials are one Secret volume (swapped atomically)"
    );
    let args = pod.containers[0].args.as_ref().unwrap();
    assert!(args.contains(&"--watch-config".to_string()), "{args:?}");
    // Hardened like the per-resource collectors.
    let sc = pod.containers[0].security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
}

#[test]
fn adding_a_tenant_changes_the_config_not_the_pods() {
    let (ma, mb) = two_tenants();
    let s = SharedSettings::new(SHARED_NS);
    let one = render(&s, &[tenant(&ma)]).unwrap();
    let two = render(&s, &[tenant(&mb), tenant(&ma)]).unwrap();
    assert_eq!(one.daemon_sets, two.daemon_sets, "the pod template must not change: Vector reloads");
    assert_ne!(one.secrets, two.secrets);
    // Order of the parts does not matter (deterministic bytes).
    assert_eq!(two, render(&s, &[tenant(&ma), tenant(&mb)]).unwrap());
}

#[test]
fn routes_sinks_and_credentials_never_mix() {
    let (ma, mb) = two_tenants();
    let (ta, tb) = (tenant(&ma), tenant(&mb));
    assert_ne!(ta.id, tb.id);
    let (cfg, data) = shared_config(&[ta.clone(), tb.clone()]);

    // Source: only the tenants' namespaces are tailed at all.
    assert_eq!(
        cfg["sources"]["pod_logs"]["extra_namespace_label_selector"],
        "kubernetes.io/metadata.name in (team-a,team-b)"
    );
    for (t, other, bucket, ws) in [(&ta, &tb, "bucket-a", "ws-a"), (&tb, &ta, "bucket-b", "ws-b")] {
        let id = &t.id;
        let enrich = &cfg["transforms"][format!("{id}_enrich")];
        assert_eq!(enrich["inputs"], json!([format!("tenants.{id}")]), "{id} reads only its own route");
        assert!(enrich["source"].as_str().unwrap().contains(&format!(".workspace = \"{ws}\"")));
        let s3 = &cfg["sinks"][format!("{id}_s3_archive")];
        assert_eq!(s3["inputs"], json!([format!("{id}_enrich")]));
        assert_eq!(s3["bucket"], bucket);
        assert_eq!(s3["auth"]["access_key_id"], format!("SECRET[tenants.{id}_aws_access_key_id]"));
        assert_eq!(s3["auth"]["secret_access_key"], format!("SECRET[tenants.{id}_aws_secret_access_key]"));
        assert_eq!(s3["buffer"]["when_full"], "drop_newest", "a dead sink must never stall the others");
        // Nothing of this tenant names the other's components.
        for section in ["transforms", "sinks"] {
            for (cid, c) in cfg[section].as_object().unwrap() {
                if cid.starts_with(id.as_str()) {
                    assert!(!c.to_string().contains(other.id.as_str()), "{cid} mentions {}", other.id);
                }
            }
        }
    }
    // The credentials Secret holds each tenant's own values under its own keys, nothing else.
    let creds: BTreeMap<&str, &str> = data
        .iter()
        .filter(|(k, _)| !k.ends_with(".yaml") && !k.ends_with(".json"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let want = BTreeMap::from([
        (format!("{}_aws_access_key_id", ta.id), "AKIA-A"),
        (format!("{}_aws_secret_access_key", ta.id), "secret-a"),
        (format!("{}_aws_access_key_id", tb.id), "AKIA-B"),
        (format!("{}_aws_secret_access_key", tb.id), "secret-b"),
    ]);
    assert_eq!(creds, want.iter().map(|(k, v)| (k.as_str(), *v)).collect());
    assert!(
        !data["vector.yaml"].contains("secret-a") && !data["vector.yaml"].contains("AKIA"),
        "no value in the config"
    );
    // Only B has GreptimeDB, to its own database.
    let gb = &cfg["sinks"][format!("{}_greptimedb_logs", tb.id)];
    assert_eq!(gb["dbname"], "public");
    assert!(cfg["sinks"].get(format!("{}_greptimedb_logs", ta.id)).is_none());
}

/// The route conditions, run by VRL on records as the `record` remap writes them.
#[test]
fn each_record_reaches_exactly_the_tenants_whose_selectors_match() {
    let (ma, mb) = two_tenants();
    let (ta, tb) = (tenant(&ma), tenant(&mb));
    let (cfg, _) = shared_config(&[ta.clone(), tb.clone()]);
    let route = cfg["transforms"]["tenants"]["route"].as_object().unwrap().clone();
    assert_eq!(cfg["transforms"]["tenants"]["reroute_unmatched"], false);
    let matches = |ns: &str, labels: Value| -> Vec<String> {
        let event = json!({"message": "m", "kubernetes": {"pod_namespace": ns, "pod_labels": labels}});
        let mut out: Vec<String> = route
            .iter()
            .filter(|(_, cond)| run_condition(cond.as_str().unwrap(), &event))
            .map(|(id, _)| id.clone())
            .collect();
        out.sort();
        out
    };
    assert_eq!(matches("team-a", json!({"app": "api"})), vec![ta.id.clone()]);
    assert_eq!(matches("team-a", json!({"app": "web"})), Vec::<String>::new(), "A includes only app=api");
    assert_eq!(matches("team-b", json!({"app": "api"})), vec![tb.id.clone()], "B never gets A's pods, nor A B's");
    assert_eq!(matches("team-b", json!({"app": "debug"})), Vec::<String>::new(), "B excludes app=debug");
    assert_eq!(matches("team-b", json!({})), vec![tb.id.clone()], "an exclude also matches pods without the label");
    assert_eq!(matches("team-c", json!({"app": "api"})), Vec::<String>::new(), "nobody's namespace");
    // A label key with dots and slashes.
    let odd = ms(
        "team-c",
        "m",
        json!({"workspace": "w", "tenant": "t",
        "vectorLogs": {"s3Bucket": "b", "s3Region": "r", "includePodLabels": {"app.kubernetes.io/name": "x.y_z-1"},
            "environmentVariables": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}}}),
    );
    let to = tenant(&model::build(&odd, &deref(&[])).unwrap());
    let (cfg, _) = shared_config(std::slice::from_ref(&to));
    let cond = cfg["transforms"]["tenants"]["route"][&to.id].as_str().unwrap().to_string();
    let ev = |v: &str| json!({"kubernetes": {"pod_namespace": "team-c", "pod_labels": {"app.kubernetes.io/name": v}}});
    assert!(run_condition(&cond, &ev("x.y_z-1")));
    assert!(!run_condition(&cond, &ev("x")));
}

fn run_condition(source: &str, event: &Value) -> bool {
    use vrl::compiler::runtime::Runtime;
    use vrl::compiler::state::RuntimeState;
    use vrl::compiler::{TargetValue, TimeZone};
    use vrl::value::{Secrets, Value as V};
    let program = vrl::compiler::compile(source, &vrl::stdlib::all())
        .unwrap_or_else(|d| panic!("{source}: {}", vrl::diagnostic::Formatter::new(source, d)))
        .program;
    let mut target = TargetValue {
        value: V::from(event.clone()),
        metadata: V::Object(Default::default()),
        secrets: Secrets::default(),
    };
    let out = Runtime::new(RuntimeState::default()).resolve(&mut target, &program, &TimeZone::default()).unwrap();
    out == V::Boolean(true)
}

#[test]
fn the_shared_config_passes_the_vector_schema_and_its_vrl_compiles() {
    let (ma, mb) = two_tenants();
    let text = std::fs::read_to_string(repo().join("../shared/vector/vector-0.57-config-schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    support::files::encode_refs(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let none = render(&SharedSettings::new(SHARED_NS), &[]).unwrap();
    assert_eq!(none, r::Children::default(), "no tenant: nothing runs, nothing is granted");
    for tenants in [vec![tenant(&ma)], vec![tenant(&ma), tenant(&mb)]] {
        let (cfg, _) = shared_config(&tenants);
        let errors: Vec<String> =
            validator.iter_errors(&cfg).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{} tenants:\n{}", tenants.len(), errors.join("\n"));
        for (id, t) in cfg["transforms"].as_object().unwrap() {
            if t["type"] == "remap" {
                let src = t["source"].as_str().unwrap();
                if let Err(d) = vrl::compiler::compile(src, &vrl::stdlib::all()) {
                    panic!("{id}: {}", vrl::diagnostic::Formatter::new(src, d));
                }
            }
        }
    }
}

#[test]
fn what_a_shared_collector_cannot_do_per_tenant_is_refused_by_field() {
    let field = |spec: Value| model::build(&ms("team-a", "mon", spec), &deref(&[])).unwrap_err().field;
    let creds = json!({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"});
    let logs = |extra: Value| {
        let mut l = json!({"s3Bucket": "b", "s3Region": "r", "environmentVariables": creds});
        support::rendered::merge(&mut l, extra);
        json!({"workspace": "w", "tenant": "t", "vectorLogs": l})
    };
    assert_eq!(
        field(logs(json!({"environmentVariables": {"RUST_LOG": "debug"}}))),
        "spec.vectorLogs.environmentVariables.RUST_LOG"
    );
    assert_eq!(
        field(json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "b", "s3Region": "r"}})),
        "spec.vectorLogs.environmentVariables",
        "no credentials of its own: refused, never the shared collectors' identity"
    );
    assert_eq!(
        field(logs(
            json!({"environmentVariables": {"AWS_SECRET_ACCESS_KEY": {"valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}}})
        )),
        "spec.vectorLogs.environmentVariables.AWS_SECRET_ACCESS_KEY.valueFrom.secretKeyRef"
    );
    let reserved = model::build(&ms(SHARED_NS, "monitoring-shared", logs(json!({}))), &deref(&[])).unwrap_err();
    assert_eq!(reserved.field, "metadata.name", "the shared collectors' own name is theirs");
}

/// Metrics on the shared collector: the sidecar's settings carry each tenant's own filters,
/// its file gives each tenant only its own targets (under its id), and each tenant's archive
/// consumes only its own (its wildcard).
#[test]
fn each_tenant_scrapes_and_archives_only_its_own_targets() {
    let with_metrics = |ns: &str, labels: Value, key: &str| {
        let spec = json!({"workspace": format!("ws-{ns}"), "tenant": ns,
            "vectorMetrics": {"s3Bucket": format!("m-{ns}"), "s3Region": "us-east-1", "includePodLabels": labels,
                "environmentVariables": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "s"}}});
        tenant(&model::build(&ms(ns, "mon", spec), &deref(&[])).unwrap())
    };
    let ta = with_metrics("workspace-prod", json!({"app": "api"}), "KA");
    let tb = with_metrics("workspace-dev", json!({}), "KB");
    let children = render(&SharedSettings::new(SHARED_NS), &[ta.clone(), tb.clone()]).unwrap();
    let names: Vec<&str> = children.daemon_sets.iter().map(|d| d.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, vec!["monitoring-shared-vector-metrics"], "no logs collector without a tenant collecting logs");
    let secret = &children.secrets[0];
    let data: BTreeMap<String, String> =
        secret.data.clone().unwrap().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect();
    let settings: monitoring_operator::discover::Settings = serde_json::from_str(&data["discovery.json"]).unwrap();
    assert_eq!(settings.tenants.len(), 2);
    let pods = support::rendered::sample_pods();
    let file = monitoring_operator::vector::discovered(pods.iter(), &settings, "node-1").unwrap();
    let fragment: Value = serde_norway::from_str(file.lines().skip(1).collect::<Vec<_>>().join("\n").as_str()).unwrap();
    let sources: Vec<&String> = fragment["sources"].as_object().unwrap().keys().collect();
    // Prod's api-1 (app=api) for A; dev's db-0 for B; nobody scrapes another's namespace.
    assert_eq!(sources.len(), 2, "{sources:?}");
    let for_a: Vec<&Value> = fragment["sources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(&ta.id))
        .map(|(_, v)| v)
        .collect();
    let for_b: Vec<&Value> = fragment["sources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(&tb.id))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(for_a.len(), 1);
    assert_eq!(for_a[0]["endpoints"], json!(["http://10.0.0.7:9100/metrics"]));
    assert_eq!(for_b.len(), 1);
    assert_eq!(for_b[0]["endpoints"], json!(["https://10.0.0.8:8443/stats"]));
    // Each labelled stream carries its tenant's identity; each archive reads its own wildcard.
    for (id, t) in fragment["transforms"].as_object().unwrap() {
        let ws = if id.starts_with(&ta.id) { "ws-workspace-prod" } else { "ws-workspace-dev" };
        assert!(t["source"].as_str().unwrap().contains(&format!(".tags.workspace = \"{ws}\"")), "{id}");
    }
    let mut cfg: Value = serde_norway::from_str(&data["vector.yaml"]).unwrap();
    for t in [&ta, &tb] {
        let to_log = &cfg["transforms"][format!("{}_metrics_to_logs", t.id)];
        assert_eq!(to_log["inputs"], json!([format!("{}_pod_metrics_labeled_*", t.id)]));
        let s3 = &cfg["sinks"][format!("{}_s3_archive", t.id)];
        assert_eq!(s3["auth"]["access_key_id"], format!("SECRET[tenants.{}_aws_access_key_id]", t.id));
    }
    // Base and targets file together pass Vector's schema.
    support::rendered::merge(&mut cfg, fragment);
    let text = std::fs::read_to_string(repo().join("../shared/vector/vector-0.57-config-schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    support::files::encode_refs(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&cfg).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// `--collector-network-policy` covers the shared collectors too: egress to DNS, the apiserver
/// and every tenant's sink ports, ingress only to the metrics and flow ports.
#[test]
fn shared_collectors_get_the_admins_network_policy() {
    let (ma, mb) = two_tenants();
    let mut a = tenant(&ma);
    a.logs.as_mut().unwrap().archive.endpoint = Some("http://minio.storage.svc:9000".into());
    let mut s = SharedSettings::new(SHARED_NS);
    assert!(render(&s, &[a.clone(), tenant(&mb)]).unwrap().network_policies.is_empty(), "off by default");
    s.network_policy = true;
    let children = render(&s, &[a, tenant(&mb)]).unwrap();
    assert_eq!(children.network_policies.len(), 1, "logs only: no tenant collects metrics");
    let np = serde_json::to_value(&children.network_policies[0]).unwrap();
    assert_eq!(np["metadata"]["namespace"], SHARED_NS);
    assert_eq!(np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"], "monitoring-shared");
    let ports: Vec<i64> =
        np["spec"]["egress"][1]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect();
    // apiserver 443/6443, A's MinIO 9000, B's S3 (443) and its GreptimeDB 4000.
    assert_eq!(ports, vec![443, 4000, 6443, 9000]);
}

/// Loki and remote-write outputs on the shared collectors: each tenant's credentials are the
/// values of its own Secret keys, carried as files of the config Secret under its id; its
/// sinks read only those; the other tenant's components name none of them; no value is in the
/// config; and the config passes Vector's schema.
#[test]
fn each_tenant_keeps_its_own_output_credentials() {
    let (_, mb) = two_tenants();
    let a = ms(
        "team-a",
        "mon",
        json!({"workspace": "ws-a", "tenant": "acme",
            "vectorLogs": {"s3Bucket": "bucket-a", "s3Region": "us-east-1",
                "environmentVariables": {"AWS_ACCESS_KEY_ID": "AKIA-A", "AWS_SECRET_ACCESS_KEY": "secret-a"},
                "loki": {"endpoint": "https://loki.example:3100",
                         "auth": {"basic": {"username": "a", "passwordSecretRef": {"name": "loki-auth", "key": "password"}}},
                         "tls": {"caSecretRef": {"name": "loki.ca", "key": "ca.crt"}}}},
            "vectorMetrics": {"s3Bucket": "bucket-a", "s3Region": "us-east-1",
                "environmentVariables": {"AWS_ACCESS_KEY_ID": "AKIA-A", "AWS_SECRET_ACCESS_KEY": "secret-a"},
                "remoteWrite": {"endpoint": "http://thanos.example:19291/api/v1/receive",
                                "auth": {"bearerTokenSecretRef": {"name": "thanos", "key": "token"}}}}}),
    );
    let mut d =
        deref(&[("loki-auth", "password", "pw-a"), ("loki.ca", "ca.crt", "CA-A"), ("thanos", "token", "tok-a")]);
    for (secret, key) in [("loki-auth", "password"), ("loki.ca", "ca.crt"), ("thanos", "token")] {
        d.secrets
            .insert(secret.into(), Some(model::SecretInfo { resource_version: "1".into(), keys: [key.into()].into() }));
    }
    let ta = tenant(&model::build(&a, &d).unwrap());
    let tb = tenant(&mb);
    let children = render(&SharedSettings::new(SHARED_NS), &[ta.clone(), tb.clone()]).unwrap();
    let secret = |name: &str| -> BTreeMap<String, String> {
        let s = children.secrets.iter().find(|s| s.metadata.name.as_deref() == Some(name)).unwrap();
        s.data.clone().unwrap().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
    };
    let (logs, metrics) =
        (secret("monitoring-shared-vector-logs-config"), secret("monitoring-shared-vector-metrics-config"));
    let id = &ta.id;
    assert_eq!(logs[&format!("{id}.secret_loki_auth.password")], "pw-a");
    assert_eq!(logs[&format!("{id}.secret_loki_ca.ca.crt")], "CA-A");
    assert_eq!(metrics[&format!("{id}.secret_thanos.token")], "tok-a");
    assert!(!logs.keys().chain(metrics.keys()).any(|k| k.starts_with(&format!("{}.", tb.id))), "B has no output files");

    let cfg: Value = serde_norway::from_str(&logs["vector.yaml"]).unwrap();
    let loki = &cfg["sinks"][format!("{id}_loki")];
    assert_eq!(loki["inputs"], json!([format!("{id}_enrich")]), "A's Loki reads only A's route");
    assert_eq!(loki["auth"]["password"], format!("SECRET[tenants.{id}.secret_loki_auth.password]"));
    assert_eq!(loki["tls"]["ca_file"], format!("/etc/vector/{id}.secret_loki_ca.ca.crt"));
    assert_eq!((loki["tenant_id"].as_str(), loki["labels"]["workspace"].as_str()), (Some("acme"), Some("ws-a")));
    assert_eq!(loki["buffer"]["when_full"], "drop_newest", "a dead Loki must never stall the others");
    assert!(cfg["sinks"].get(format!("{}_loki", tb.id)).is_none());
    let mcfg: Value = serde_norway::from_str(&metrics["vector.yaml"]).unwrap();
    let rw = &mcfg["sinks"][format!("{id}_remote_write")];
    assert_eq!(rw["auth"]["token"], format!("SECRET[tenants.{id}.secret_thanos.token]"));
    assert_eq!(rw["inputs"], json!([format!("{id}_pod_metrics_labeled_*")]));
    for (text, value) in
        [(&logs["vector.yaml"], "pw-a"), (&logs["vector.yaml"], "CA-A"), (&metrics["vector.yaml"], "tok-a")]
    {
        assert!(!text.contains(value), "a credential value in the config");
    }
    // B's components never name A's files.
    for c in [&cfg, &mcfg] {
        for section in ["transforms", "sinks"] {
            for (cid, comp) in c[section].as_object().unwrap() {
                if cid.starts_with(tb.id.as_str()) {
                    assert!(!comp.to_string().contains(id.as_str()), "{cid} mentions {id}");
                }
            }
        }
    }
    // The admin's egress policy opens the outputs' ports (Loki 3100, Thanos 19291).
    let mut with_policy = SharedSettings::new(SHARED_NS);
    with_policy.network_policy = true;
    let policies = render(&with_policy, &[ta.clone(), tb.clone()]).unwrap().network_policies;
    let ports = |name: &str| -> Vec<i64> {
        let np = policies.iter().find(|p| p.metadata.name.as_deref() == Some(name)).unwrap();
        let np = serde_json::to_value(np).unwrap();
        np["spec"]["egress"][1]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect()
    };
    assert!(ports("monitoring-shared-vector-logs").contains(&3100));
    assert!(ports("monitoring-shared-vector-metrics").contains(&19291));
    let text = std::fs::read_to_string(repo().join("../shared/vector/vector-0.57-config-schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    support::files::encode_refs(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    for c in [&cfg, &mcfg] {
        let errors: Vec<String> = validator.iter_errors(c).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }
}
