//! Rendering without a cluster: every seed example (section 4) renders the seed's child set,
//! and every generated Vector config passes Vector's own JSON Schema, compiles its VRL, and
//! follows the Vector 0.57 rules in docs/vector-notes.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

use std::collections::{BTreeMap, BTreeSet};

use monitoring_operator::api::MonitoringServices;
use monitoring_operator::discover::Settings;
use monitoring_operator::render::{self, Child, Kind};
use monitoring_operator::{api, model, vector};
use serde_json::Value;

mod support;
use support::files::{encode_refs, example_files, examples, repo};
use support::rendered::{children, vector_configs};

/// The seed examples as checked into the repository (identical to ../shared/examples).
fn seed_examples() -> Vec<(String, MonitoringServices)> {
    let out: Vec<_> =
        examples().into_iter().filter_map(|(f, ms)| Some((f.strip_prefix("seed/")?.to_string(), ms))).collect();
    assert_eq!(out.len(), 6, "six MonitoringServices manifests in section 4");
    out
}

fn names(children: &[Child]) -> BTreeSet<(Kind, String)> {
    children.iter().map(|c| (c.kind, c.name().to_string())).collect()
}

#[test]
fn shared_examples_are_unchanged_copies() {
    // ../shared is beside every clone (CI included): a missing copy is a failure, not a skip.
    let shared = repo().join("../shared/examples");
    assert!(shared.is_dir(), "{} is missing: the copy check cannot run", shared.display());
    let mut checked = 0;
    for e in std::fs::read_dir(&shared).unwrap() {
        checked += 1;
        let p = e.unwrap().path();
        let ours = repo().join("examples/seed").join(p.file_name().unwrap());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&ours).unwrap(),
            "{} differs from the seed",
            ours.display()
        );
    }
    assert_eq!(checked, 7, "seven manifests in section 4 of the seed");
}

#[test]
fn seed_examples_render_the_seed_child_set() {
    for (file, ms) in seed_examples() {
        let got = names(&children(&ms));
        let k = |kind, n: &str| (kind, n.to_string());
        let mut want = BTreeSet::new();
        // Plain-text environmentVariables values go into a Secret of the operator's.
        let plain = |env: &BTreeMap<String, monitoring_operator::api::EnvValue>| {
            env.values().any(|v| matches!(v, monitoring_operator::api::EnvValue::Plain(_)))
        };
        if let Some(logs) = &ms.spec.vector_logs {
            want.insert(k(Kind::ConfigMap, "monitoring-vector-logs-config"));
            want.insert(k(Kind::DaemonSet, "monitoring-vector-logs"));
            if plain(&logs.container.environment_variables) {
                want.insert(k(Kind::Secret, "monitoring-vector-logs-env"));
            }
        }
        if let Some(metrics) = &ms.spec.vector_metrics {
            want.insert(k(Kind::ConfigMap, "monitoring-vector-metrics-config"));
            want.insert(k(Kind::DaemonSet, "monitoring-vector-metrics"));
            if plain(&metrics.container.environment_variables) {
                want.insert(k(Kind::Secret, "monitoring-vector-metrics-env"));
            }
        }
        if ms.spec.service_account.is_none() {
            want.insert(k(Kind::ServiceAccount, "monitoring-vector"));
        }
        if ms.spec.use_cluster_role {
            let n = format!("monitoringservices:{}:monitoring-vector", ms.metadata.namespace.as_deref().unwrap());
            want.insert(k(Kind::ClusterRole, &n));
            want.insert(k(Kind::ClusterRoleBinding, &n));
        } else {
            want.insert(k(Kind::Role, "monitoring-vector"));
            want.insert(k(Kind::RoleBinding, "monitoring-vector"));
        }
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn labels_and_service_accounts() {
    for (file, ms) in seed_examples() {
        for c in children(&ms) {
            let labels = &c.object.metadata.labels.as_ref().unwrap();
            assert_eq!(labels["app.kubernetes.io/instance"], "monitoring", "{file} {}", c.name());
            if c.kind == Kind::DaemonSet {
                let app = if c.name().ends_with("logs") { "vector-logs" } else { "vector-metrics" };
                assert_eq!(labels["app.kubernetes.io/name"], app);
                let tpl = &c.object.data["spec"]["template"];
                assert_eq!(tpl["metadata"]["labels"]["app.kubernetes.io/name"], app);
                assert_eq!(tpl["metadata"]["labels"]["app.kubernetes.io/instance"], "monitoring");
                assert_eq!(tpl["metadata"]["labels"]["vector.dev/exclude"], "true");
                let sa = ms.spec.service_account.clone().unwrap_or("monitoring-vector".into());
                assert_eq!(tpl["spec"]["serviceAccountName"], sa.as_str(), "{file}");
                // Collectors run on every node unless told otherwise.
                assert_eq!(tpl["spec"]["tolerations"], serde_json::json!([{"operator": "Exists"}]));
                assert!(tpl["metadata"]["annotations"]["e6data.io/config-hash"].as_str().unwrap().len() >= 16);
            }
        }
    }
}

#[test]
fn environment_variables_plain_and_value_from() {
    let all = seed_examples();
    let env_of = |file: &str| -> Value {
        let (_, ms) = all.iter().find(|(f, _)| f == file).unwrap();
        let ds = children(ms).into_iter().find(|c| c.name() == "monitoring-vector-logs").unwrap();
        ds.object.data["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    };
    // Plain values are read from the operator's Secret: the DaemonSet never holds them.
    let plain = env_of("seed-4.2-0.yaml");
    let id = plain.as_array().unwrap().iter().find(|e| e["name"] == "AWS_ACCESS_KEY_ID").unwrap();
    assert_eq!(
        id["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "monitoring-vector-logs-env", "key": "AWS_ACCESS_KEY_ID", "optional": false})
    );
    let (_, ms) = all.iter().find(|(f, _)| f == "seed-4.2-0.yaml").unwrap();
    let rendered = children(ms);
    let ds_text = serde_json::to_string(
        &rendered.iter().filter(|c| c.kind == Kind::DaemonSet).map(|c| &c.object).collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !ds_text.contains("YOUR_SECRET_KEY") && !ds_text.contains("YOUR_ACCESS_KEY"),
        "a plain value in a DaemonSet"
    );
    let secret = rendered.iter().find(|c| c.kind == Kind::Secret && c.name() == "monitoring-vector-logs-env").unwrap();
    let data = &secret.object.data["data"];
    let decoded = |k: &str| String::from_utf8(base64_decode(data[k].as_str().unwrap())).unwrap();
    assert_eq!(
        (decoded("AWS_ACCESS_KEY_ID"), decoded("AWS_SECRET_ACCESS_KEY")),
        ("YOUR_ACCESS_KEY".into(), "YOUR_SECRET_KEY".into())
    );
    // A changed value rolls the collectors (they read env at start only).
    let mut changed = ms.clone();
    let env = &mut changed.spec.vector_logs.as_mut().unwrap().container.environment_variables;
    env.insert("AWS_SECRET_ACCESS_KEY".into(), monitoring_operator::api::EnvValue::Plain("rotated".into()));
    let hash = |ms: &MonitoringServices| {
        let ds = children(ms).into_iter().find(|c| c.name() == "monitoring-vector-logs").unwrap();
        ds.object.data["spec"]["template"]["metadata"]["annotations"]["e6data.io/config-hash"].clone()
    };
    assert_ne!(hash(ms), hash(&changed));
    let secret = env_of("seed-4.2-2.yaml");
    let key = secret.as_array().unwrap().iter().find(|e| e["name"] == "AWS_SECRET_ACCESS_KEY").unwrap();
    assert_eq!(
        key["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"})
    );
    assert!(secret.as_array().unwrap().iter().any(|e| e["name"] == "VECTOR_SELF_NODE_NAME"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn resources_are_requests_and_limits() {
    let (_, ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.1-0.yaml").unwrap();
    let ds = children(&ms).into_iter().find(|c| c.name() == "monitoring-vector-logs").unwrap();
    let r = &ds.object.data["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(r["requests"], serde_json::json!({"cpu": "200m", "memory": "256Mi"}));
    assert_eq!(r["limits"], r["requests"]);
    assert_eq!(
        ds.object.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "timberio/vector:0.57.0-distroless-libc"
    );
}

#[test]
fn vector_rules_from_the_notes() {
    for (file, ms) in seed_examples() {
        let kids = children(&ms);
        let mut data_dirs = BTreeSet::new();
        for ds in kids.iter().filter(|c| c.kind == Kind::DaemonSet) {
            let vols = ds.object.data["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
            let data = vols.iter().find(|v| v["name"] == "data").unwrap();
            assert!(
                data_dirs.insert(data["hostPath"]["path"].as_str().unwrap().to_string()),
                "{file}: shared data dir"
            );
        }
        assert_eq!(data_dirs.len(), kids.iter().filter(|c| c.kind == Kind::DaemonSet).count());
        for (cm, cfg) in vector_configs(&kids) {
            for (id, sink) in cfg["sinks"].as_object().unwrap() {
                if sink["type"] == "aws_s3" {
                    // JSON objects must be newline-delimited, not a JSON array.
                    assert_eq!(sink["framing"]["method"], "newline_delimited", "{file} {cm} {id}");
                    let prefix = sink["key_prefix"].as_str().unwrap();
                    let literal = prefix.split(['{', '%']).next().unwrap();
                    assert!(
                        literal.len() > 1 && literal.contains('/'),
                        "{file} {cm}: key_prefix {prefix:?} lacks a literal prefix"
                    );
                    assert!(prefix.ends_with('/'));
                    assert_eq!(sink["bucket"].as_str().unwrap(), sink["bucket"].as_str().unwrap().trim_matches('/'));
                }
                for input in sink["inputs"].as_array().unwrap() {
                    let i = input.as_str().unwrap();
                    let ids =
                        cfg["sources"].as_object().unwrap().keys().chain(cfg["transforms"].as_object().unwrap().keys());
                    let found = match i.strip_suffix('*') {
                        Some(prefix) => ids.filter(|k| k.starts_with(prefix)).count() > 0,
                        None => ids.filter(|k| *k == i).count() > 0,
                    };
                    assert!(found, "{cm}: unknown input {i}");
                }
            }
            // No ${VAR}: Vector 0.57 would pass it through literally.
            assert!(!serde_json::to_string(&cfg).unwrap().contains("${"), "{file} {cm}");
            assert_eq!(cfg["api"]["enabled"], true);
        }
    }
}

#[test]
fn prefixes_and_selectors_follow_the_spec() {
    let all = seed_examples();
    let cfg_of = |file: &str, cm: &str| -> Value {
        let (_, ms) = all.iter().find(|(f, _)| f == file).unwrap();
        vector_configs(&children(ms)).into_iter().find(|(n, _)| n == cm).unwrap().1
    };
    let logs = cfg_of("seed-4.1-0.yaml", "monitoring-vector-logs-config + two targets");
    assert!(logs["sinks"]["s3_archive"]["key_prefix"].as_str().unwrap().starts_with("e6data-logs/"));
    let metrics = cfg_of("seed-4.3-0.yaml", "monitoring-vector-metrics-config + two targets");
    assert!(
        metrics["sinks"]["s3_archive"]["key_prefix"]
            .as_str()
            .unwrap()
            .starts_with("vector-metrics-v1/date=%Y-%m-%d/hour=%H/")
    );
    // One scrape source and one labelling remap per target (a target's neighbours coming or
    // going never restart its scraping).
    let scrapes = |cfg: &Value| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = cfg["sources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, s)| s["type"] == "prometheus_scrape")
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by_key(|(_, s)| s["endpoints"][0].as_str().unwrap().to_string());
        v
    };
    let ns_scrapes = scrapes(&metrics);
    assert_eq!(ns_scrapes.len(), 1);
    let (id, src) = &ns_scrapes[0];
    assert_eq!((src["scrape_interval_secs"].as_u64(), src["scrape_timeout_secs"].as_f64()), (Some(30), Some(10.0)));
    // 4.3 is namespace-scoped: only its own namespace's pods are scraped.
    assert_eq!(src["endpoints"], serde_json::json!(["http://10.0.0.7:9100/metrics"]));
    assert_eq!(id, &format!("pod_metrics_{}", vector::metrics::target_id("http://10.0.0.7:9100/metrics")));
    // 4.5 is cluster-scoped over three namespaces.
    let cross_metrics = cfg_of("seed-4.5-0.yaml", "monitoring-vector-metrics-config + two targets");
    let cross_scrapes = scrapes(&cross_metrics);
    let endpoints: Vec<&Value> = cross_scrapes.iter().map(|(_, s)| &s["endpoints"][0]).collect();
    assert_eq!(endpoints, ["http://10.0.0.7:9100/metrics", "https://10.0.0.8:8443/stats"]);
    let db = vector::metrics::target_id("https://10.0.0.8:8443/stats");
    let labeled = &cross_metrics["transforms"][format!("pod_metrics_labeled_{db}")];
    assert_eq!(labeled["inputs"], serde_json::json!([format!("pod_metrics_{db}")]));
    let labels = labeled["source"].as_str().unwrap();
    assert!(
        labels.contains(".tags.namespace = \"workspace-dev\"") && labels.contains(".tags.pod = \"db-0\""),
        "{labels}"
    );
    assert!(labels.contains(".tags.node = \"node-a\""));
    assert_eq!(cross_metrics["transforms"]["metrics_to_logs"]["inputs"], serde_json::json!(["pod_metrics_labeled_*"]));
    // 4.5: cluster scope, selectors go to the apiserver.
    let cross = cfg_of("seed-4.5-0.yaml", "monitoring-vector-logs-config");
    let src = &cross["sources"]["pod_logs"];
    assert_eq!(src["type"], "kubernetes_logs");
    assert_eq!(
        src["extra_namespace_label_selector"],
        "kubernetes.io/metadata.name in (workspace-dev,workspace-staging,workspace-prod),kubernetes.io/metadata.name notin (kube-system)"
    );
    // 4.4: namespace scope reads its own namespace's pod directories only, minus the debug pod
    // (excludePodLabels app=debug); the source is the same whichever selected pods run, so a
    // pod coming or going never rebuilds it (only the metadata remap changes).
    let ns = cfg_of("seed-4.4-0.yaml", "monitoring-vector-logs-config + two targets");
    let src = &ns["sources"]["pod_logs"];
    assert_eq!(src["type"], "file");
    assert_eq!(src["include"], serde_json::json!(["/var/log/pods/workspace-prod_*/*/*.log"]));
    assert_eq!(src["exclude"], serde_json::json!(["/var/log/pods/workspace-prod_debug-1_u3/*/*.log"]));
    let meta = ns["transforms"]["pod_logs_meta"]["source"].as_str().unwrap();
    assert!(
        meta.contains(r#""workspace-prod_api-1_u1": {"selected": true, "ip": "10.0.0.7", "labels": {"app": "api"}"#),
        "{meta}"
    );
    assert!(!meta.contains("db-0"), "another namespace's pod in the table: {meta}");
    let empty = cfg_of("seed-4.4-0.yaml", "monitoring-vector-logs-config + no targets");
    assert_eq!(empty["sources"]["pod_logs"]["include"], src["include"]);
    assert!(empty["sources"]["pod_logs"].get("exclude").is_none());
    // Identity stamped on every event.
    let vrl = logs["transforms"]["enrich"]["source"].as_str().unwrap();
    assert!(vrl.contains(".workspace = \"analytics-prod\"") && vrl.contains(".tenant = \"my-company\""));
}

#[test]
fn every_vector_config_passes_the_vector_schema() {
    let schema_path = repo().join("../shared/vector/vector-0.57-config-schema.json");
    let text = std::fs::read_to_string(&schema_path).expect("shared/vector schema beside the repo");
    // Vector names definitions after Rust types ("Inputs<String>"); `<` and `>` are not
    // valid in a URI fragment, so percent-encode them in the $refs (and only there: the
    // definition keys are looked up after percent-decoding).
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    encode_refs(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut checked = 0;
    for (file, ms) in seed_examples() {
        for (cm, cfg) in vector_configs(&children(&ms)) {
            let errors: Vec<String> =
                validator.iter_errors(&cfg).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{file} {cm}:\n{}", errors.join("\n"));
            checked += 1;
        }
    }
    assert_eq!(checked, 21);
    // And a config with the trace endpoint.
    let (_, mut ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.3-0.yaml").unwrap();
    ms.spec.traces = serde_json::from_value(serde_json::json!({"tempoEndpoint": "http://tempo:4318"})).unwrap();
    let (name, cfg) = vector_configs(&children(&ms)).into_iter().find(|(n, _)| n.contains("otlp")).unwrap();
    let errors: Vec<String> = validator.iter_errors(&cfg).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    // The schema really rejects mistakes (so a pass above means something).
    let (_, ms) = seed_examples().remove(0);
    let (_, mut cfg) = vector_configs(&children(&ms)).remove(0);
    cfg["sinks"]["s3_archive"]["bukket"] = "x".into();
    assert!(!validator.is_valid(&cfg));
}

#[test]
fn every_remap_program_compiles() {
    let fns = vrl::stdlib::all();
    let mut compiled = 0;
    for (file, ms) in seed_examples() {
        for (cm, cfg) in vector_configs(&children(&ms)) {
            for (id, t) in cfg["transforms"].as_object().unwrap() {
                if t["type"] == "remap" {
                    let src = t["source"].as_str().unwrap();
                    if let Err(diags) = vrl::compiler::compile(src, &fns) {
                        panic!("{file} {cm} {id}: {}", vrl::diagnostic::Formatter::new(src, diags));
                    }
                    compiled += 1;
                }
            }
        }
    }
    assert!(compiled >= 21);
}

/// Golden files: the children every example renders (as `render -f` prints them), checked in
/// under tests/golden/ and reviewed in diffs. `UPDATE_GOLDEN=1 scripts/test.sh --test render`
/// rewrites them. Rendering in a fresh process must give the same bytes (determinism).
#[test]
fn every_example_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    let files = example_files();
    assert!(!files.is_empty());
    for (name, path) in files {
        let mut rendered = String::new();
        for v in support::files::yaml_documents(&path) {
            if v["kind"] != "MonitoringServices" {
                continue;
            }
            let ms: MonitoringServices = serde_json::from_value(v).unwrap();
            let m = model::build(&ms, &model::Dereferenced::assumed(&ms)).unwrap();
            rendered.push_str(&render::to_yaml(&render::render(&m, None).unwrap()).unwrap());
        }
        if rendered.is_empty() {
            continue; // a Secret, not a MonitoringServices
        }
        let golden = repo().join("tests/golden").join(&name);
        if update {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(golden.display().to_string());
        }
    }
    assert!(stale.is_empty(), "golden files differ (review, then UPDATE_GOLDEN=1 to rewrite): {stale:?}");
}

#[test]
fn crd_yaml_is_checked_in() {
    let checked_in = std::fs::read_to_string(repo().join("deploy/crd.yaml")).unwrap();
    assert!(
        checked_in == api::crd_yaml().unwrap(),
        "deploy/crd.yaml is stale: regenerate with `cargo run -q -- crd > deploy/crd.yaml`"
    );
}

/// Seed 4.3: logs to S3 and GreptimeDB, metrics to S3 and GreptimeDB remote write; the
/// real-time sinks can never stall the archive.
#[test]
fn greptimedb_dual_write_is_isolated() {
    let (_, ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.3-0.yaml").unwrap();
    let configs = vector_configs(&children(&ms));
    let get = |n: &str| configs.iter().find(|(name, _)| name == n).unwrap().1.clone();
    let logs = get("monitoring-vector-logs-config + two targets");
    let g = &logs["sinks"]["greptimedb_logs"];
    assert_eq!(g["endpoint"], "http://greptime-prod-frontend.greptime-system.svc:4000");
    assert_eq!((g["dbname"].as_str(), g["table"].as_str()), (Some("analytics"), Some("query_logs")));
    assert_eq!(g["pipeline_name"], monitoring_operator::greptime::pipeline_name().as_str());
    let metrics = get("monitoring-vector-metrics-config + no targets");
    let rw = &metrics["sinks"]["greptimedb_remote_write"];
    assert_eq!(
        rw["endpoint"],
        "http://greptime-prod-frontend.greptime-system.svc:4000/v1/prometheus/write?db=analytics"
    );
    for cfg in [&logs, &metrics] {
        let sinks = cfg["sinks"].as_object().unwrap();
        assert_eq!(
            sinks["s3_archive"]["buffer"],
            serde_json::json!({"type": "disk", "max_size": 268435488, "when_full": "block"})
        );
        for (id, sink) in sinks {
            if id.starts_with("greptimedb") {
                assert_eq!(sink["buffer"]["when_full"], "drop_newest", "{id} could stall the archive");
            }
        }
    }
    // Without greptimeRef there are no real-time sinks.
    let (_, basic) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.1-0.yaml").unwrap();
    for (_, cfg) in vector_configs(&children(&basic)) {
        assert!(!cfg["sinks"].as_object().unwrap().keys().any(|k| k.starts_with("greptimedb")));
    }
}

/// The metrics pod: discovery init container and sidecar, Vector reloading the targets file.
#[test]
fn metrics_pods_run_discovery() {
    let (_, ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.5-0.yaml").unwrap();
    let ds = children(&ms).into_iter().find(|c| c.name() == "monitoring-vector-metrics").unwrap();
    let spec = &ds.object.data["spec"]["template"]["spec"];
    let vector_args = spec["containers"][0]["args"].as_array().unwrap();
    assert!(
        vector_args.contains(&"--watch-config".into())
            && vector_args.contains(&"/vector-discovery/targets.yaml".into())
    );
    assert_eq!(spec["initContainers"][0]["args"].as_array().unwrap().last().unwrap(), "--once");
    assert_eq!(spec["containers"][1]["name"], "discover");
    assert_eq!(spec["containers"][1]["args"][0], "discover");
    let cm = children(&ms).into_iter().find(|c| c.name() == "monitoring-vector-metrics-config").unwrap();
    let settings: Settings = serde_json::from_str(cm.object.data["data"]["discovery.json"].as_str().unwrap()).unwrap();
    assert_eq!(settings.include_namespaces, vec!["workspace-dev", "workspace-staging", "workspace-prod"]);
    assert_eq!(settings.namespace_scope, None);
    // Namespace scope (4.4) discovers only in its own namespace.
    let (_, ns_scoped) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.4-0.yaml").unwrap();
    let cm = children(&ns_scoped).into_iter().find(|c| c.name() == "monitoring-vector-metrics-config").unwrap();
    let settings: Settings = serde_json::from_str(cm.object.data["data"]["discovery.json"].as_str().unwrap()).unwrap();
    assert_eq!(settings.namespace_scope.as_deref(), Some("workspace-prod"));
}

/// spec.traces: an OTLP endpoint (Deployment + Service) forwarding to Tempo, and to GreptimeDB.
#[test]
fn trace_endpoint_forwards_to_tempo_and_greptimedb() {
    let (_, mut ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.3-0.yaml").unwrap();
    ms.spec.traces =
        serde_json::from_value(serde_json::json!({"tempoEndpoint": "http://tempo.monitoring.svc:4318"})).unwrap();
    let kids = children(&ms);
    let got = names(&kids);
    for (k, n) in [
        (Kind::ConfigMap, "monitoring-vector-otlp-config"),
        (Kind::Deployment, "monitoring-vector-otlp"),
        (Kind::Service, "monitoring-vector-otlp"),
    ] {
        assert!(got.contains(&(k, n.to_string())), "{n} missing");
    }
    let svc = kids.iter().find(|c| c.kind == Kind::Service).unwrap();
    let ports: Vec<i64> =
        svc.object.data["spec"]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect();
    assert_eq!(ports, vec![4317, 4318]);
    let deploy = kids.iter().find(|c| c.kind == Kind::Deployment).unwrap();
    assert_eq!(deploy.object.data["spec"]["replicas"], 2);
    let cfg = vector_configs(&kids).into_iter().find(|(n, _)| n == "monitoring-vector-otlp-config").unwrap().1;
    assert_eq!(cfg["sources"]["otlp"]["use_otlp_decoding"]["traces"], true);
    assert_eq!(cfg["sinks"]["tempo"]["protocol"]["uri"], "http://tempo.monitoring.svc:4318/v1/traces");
    assert_eq!(cfg["sinks"]["tempo"]["protocol"]["encoding"]["codec"], "otlp");
    assert_eq!(cfg["sinks"]["tempo"]["inputs"], serde_json::json!(["otlp.traces"]));
    let g = &cfg["sinks"]["greptimedb_traces"];
    assert_eq!(g["protocol"]["uri"], "http://greptime-prod-frontend.greptime-system.svc:4000/v1/otlp/v1/traces");
    assert_eq!(g["protocol"]["request"]["headers"]["x-greptime-db-name"], "analytics");
    assert_eq!(g["buffer"]["when_full"], "drop_newest");
}

/// S3-compatible stores (4.2): the endpoint and the region (Vector signs with it) both go to Vector.
#[test]
fn custom_endpoint_keeps_the_region() {
    let (_, ms) = seed_examples().into_iter().find(|(f, _)| f == "seed-4.2-0.yaml").unwrap();
    for (name, cfg) in vector_configs(&children(&ms)) {
        let s3 = &cfg["sinks"]["s3_archive"];
        assert_eq!(s3["endpoint"], "https://us-east-1.linodeobjects.com", "{name}");
        assert_eq!(s3["region"], "us-east-1", "{name}");
    }
}

/// Archived objects say what they hold: NDJSON is `application/x-ndjson` named `.json.gz`, not
/// Vector's default `text/x-log` `.log.gz`, so Athena, Spark and S3 Select recognise it.
#[test]
fn s3_objects_carry_the_content_type_and_extension_of_their_encoding() {
    let mut sinks = 0;
    for (_, ms) in seed_examples() {
        for (name, cfg) in vector_configs(&children(&ms)) {
            for sink in cfg["sinks"].as_object().unwrap().values().filter(|s| s["type"] == "aws_s3") {
                sinks += 1;
                assert_eq!(sink["encoding"]["codec"], "json", "{name}");
                assert_eq!(sink["content_type"], "application/x-ndjson", "{name}");
                assert_eq!(sink["filename_extension"], "json.gz", "{name}");
            }
        }
    }
    assert!(sinks >= 6);
    use monitoring_operator::api::{Compression, EncodingCodec};
    use monitoring_operator::vector::{content_type, filename_extension};
    assert_eq!(filename_extension(EncodingCodec::Logfmt, Compression::Zstd), "log.zst");
    assert_eq!(filename_extension(EncodingCodec::Json, Compression::None), "json");
    assert_eq!(content_type(EncodingCodec::Text), "text/plain");
}

/// Every collector and trace-endpoint container of every example runs hardened: no privilege
/// escalation, read-only root filesystem, every capability dropped, none added, RuntimeDefault
/// seccomp; the node's log directories are mounted read-only; the sidecar never runs as root.
#[test]
fn every_container_is_hardened() {
    for (file, ms) in seed_examples() {
        for child in children(&ms).iter().filter(|c| matches!(c.kind, Kind::DaemonSet | Kind::Deployment)) {
            let pod = &child.object.data["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{file} {}", child.name());
            let containers = pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["initContainers"].as_array().into_iter().flatten());
            for c in containers {
                let sc = &c["securityContext"];
                let at = format!("{file} {} {}", child.name(), c["name"]);
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]), "{at}");
                assert!(sc["capabilities"].get("add").is_none() && sc.get("privileged").is_none(), "{at}");
                assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{at}");
                if c["name"] != "vector" {
                    assert_eq!(sc["runAsNonRoot"], true, "{at}");
                }
                for m in c["volumeMounts"].as_array().into_iter().flatten() {
                    if m["mountPath"] == "/var/log" || m["mountPath"] == "/var/lib" {
                        assert_eq!(m["readOnly"], true, "{at}: {m}");
                    }
                }
            }
        }
    }
}

/// The outputs of the multi-tenant example: fixed bounded labels, the tenant as X-Scope-OrgID,
/// credentials only as references to files of the mounted Secret (no value anywhere in a
/// ConfigMap), both configs valid for Vector, and a changed Secret rolls the pods.
#[test]
fn outputs_send_as_the_tenant_with_credentials_from_mounted_secrets() {
    let (_, ms) = examples().into_iter().find(|(f, _)| f == "multi-tenant/loki-thanos.yaml").unwrap();
    let rendered = children(&ms);
    let configs = vector_configs(&rendered);
    let logs = &configs.iter().find(|(n, _)| n.starts_with("team-a-vector-logs-config")).unwrap().1;
    let loki = &logs["sinks"]["loki"];
    let labels: BTreeSet<&str> = loki["labels"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(labels, BTreeSet::from(["cluster", "container", "namespace", "pod", "tenant", "workspace"]));
    assert_eq!(loki["labels"]["tenant"], "team-a");
    assert_eq!(loki["tenant_id"], "team-a");
    assert_eq!(
        loki["auth"],
        serde_json::json!({"strategy": "basic", "user": "team-a", "password": "SECRET[secret_team_a_telemetry.loki_password]"})
    );
    assert_eq!(loki["buffer"]["when_full"], "drop_newest", "Loki never stalls the archive");
    assert_eq!(logs["secret"]["secret_team_a_telemetry"]["path"], "/vector-secrets/team-a-telemetry");
    let (_, metrics) = configs.iter().find(|(n, _)| n.starts_with("team-a-vector-metrics-config")).unwrap();
    let rw = &metrics["sinks"]["remote_write"];
    assert_eq!(rw["tenant_id"], "team-a");
    assert_eq!(rw["auth"]["token"], "SECRET[secret_team_a_telemetry.thanos_token]");
    assert_eq!(rw["endpoint"], "http://thanos-receive.thanos.svc:19291/api/v1/receive");
    // The pods mount exactly the named keys, read-only.
    let ds = rendered.iter().find(|c| c.kind == Kind::DaemonSet && c.name() == "team-a-vector-logs").unwrap();
    let spec = &ds.object.data["spec"]["template"]["spec"];
    let vol = spec["volumes"].as_array().unwrap().iter().find(|v| v.get("secret").is_some()).unwrap();
    assert_eq!(vol["secret"]["secretName"], "team-a-telemetry");
    assert_eq!(vol["secret"]["items"], serde_json::json!([{"key": "loki-password", "path": "loki_password"}]));
    let mount = spec["containers"][0]["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == vol["name"]);
    assert_eq!(mount.unwrap()["readOnly"], true);
    // Both configs pass Vector's schema.
    let text = std::fs::read_to_string(repo().join("../shared/vector/vector-0.57-config-schema.json")).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    encode_refs(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (name, cfg) in &configs {
        let errors: Vec<String> =
            validator.iter_errors(cfg).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    }
    // A new Secret version changes the pod template (a rollout), nothing else about the config.
    let hash = |rv: &str| {
        let mut deref = model::Dereferenced::assumed(&ms);
        for s in deref.secrets.values_mut().flatten() {
            s.resource_version = rv.into();
        }
        let children = render::render(&model::build(&ms, &deref).unwrap(), None).unwrap();
        let ds =
            children.daemon_sets.iter().find(|d| d.metadata.name.as_deref() == Some("team-a-vector-logs")).unwrap();
        let annotations = ds.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.clone().unwrap();
        (annotations, children.config_maps)
    };
    let (a, cm_a) = hash("1");
    let (b, cm_b) = hash("2");
    assert_ne!(a, b);
    assert_eq!(cm_a, cm_b);
    // A missing Secret or key is refused naming the field, before anything is applied.
    let mut deref = model::Dereferenced::assumed(&ms);
    deref.secrets.insert("team-a-telemetry".into(), None);
    let e = model::build(&ms, &deref).unwrap_err();
    assert_eq!(e.field, "spec.vectorLogs.loki.auth.basic.passwordSecretRef");
    assert!(e.message.contains("not found in namespace \"team-a\""), "{e}");
    let mut deref = model::Dereferenced::assumed(&ms);
    deref.secrets.values_mut().flatten().for_each(|s| s.keys.clear());
    assert!(model::build(&ms, &deref).unwrap_err().message.contains("has no key \"loki-password\""));
}

/// Loaded-config proof: every collector pod template names the id its Vector will stamp on
/// its own metrics, and it is the id in that collector's ConfigMap; a spec change changes it.
#[test]
fn collector_pods_name_the_config_id_their_vector_reports() {
    for (file, ms) in examples() {
        let rendered = children(&ms);
        for ds in rendered.iter().filter(|c| c.kind == Kind::DaemonSet) {
            let template = &ds.object.data["spec"]["template"];
            let id = template["metadata"]["annotations"]["e6data.io/config-id"].as_str().unwrap();
            let cm_name = format!("{}-config", ds.name());
            let cm = rendered.iter().find(|c| c.kind == Kind::ConfigMap && c.name() == cm_name).unwrap();
            let yaml = cm.object.data["data"]["vector.yaml"].as_str().unwrap();
            assert!(
                yaml.contains(&format!(".tags.config_id = \"{id}\"")),
                "{file} {}: {id} not in its config",
                ds.name()
            );
        }
    }
    let (_, mut ms) = examples().into_iter().next().unwrap();
    let id = |ms: &MonitoringServices| {
        let c = children(ms);
        let ds = c.iter().find(|c| c.kind == Kind::DaemonSet).unwrap();
        ds.object.data["spec"]["template"]["metadata"]["annotations"]["e6data.io/config-id"].clone()
    };
    let before = id(&ms);
    ms.spec.workspace = "another-workspace".into();
    assert_ne!(id(&ms), before);
}

/// With the admin's `--collector-network-policy`, each collector gets a NetworkPolicy: ingress
/// only on its metrics and flow ports, egress to DNS, the apiserver, its sinks' ports, and
/// (metrics) the pods of the namespaces it scrapes — all namespaces only when cluster-wide.
#[test]
fn collector_network_policies_follow_the_configuration() {
    let policies = |file: &str, edit: &dyn Fn(&mut MonitoringServices)| -> BTreeMap<String, Value> {
        let (_, mut ms) = seed_examples().into_iter().find(|(f, _)| f == file).unwrap();
        edit(&mut ms);
        let mut deref = model::Dereferenced::assumed(&ms);
        deref.operator.network_policy = true;
        let m = model::build(&ms, &deref).unwrap();
        let out = render::render(&m, None).unwrap().to_list().unwrap();
        out.into_iter()
            .filter(|c| c.kind == Kind::NetworkPolicy)
            .map(|c| (c.name().to_string(), c.object.data["spec"].clone()))
            .collect()
    };
    let ports = |spec: &Value, rule: usize| -> Vec<(String, i64)> {
        spec["egress"][rule]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["protocol"].as_str().unwrap().to_string(), p["port"].as_i64().unwrap()))
            .collect()
    };
    // Namespace-scoped (4.1): metrics scrape only its own namespace.
    let ns_scoped = policies("seed-4.1-0.yaml", &|_| {});
    assert_eq!(ns_scoped.keys().collect::<Vec<_>>(), ["monitoring-vector-logs", "monitoring-vector-metrics"]);
    let logs = &ns_scoped["monitoring-vector-logs"];
    assert_eq!(logs["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "vector-logs");
    assert_eq!(logs["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress: Vec<i64> =
        logs["ingress"][0]["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()).collect();
    assert_eq!(ingress, [9598, 9599]);
    assert_eq!(ports(logs, 0), [("UDP".into(), 53), ("TCP".into(), 53)]);
    assert_eq!(ports(logs, 1), [("TCP".into(), 443), ("TCP".into(), 6443)]);
    assert_eq!(logs["egress"].as_array().unwrap().len(), 2, "the logs collector scrapes nothing");
    let metrics = &ns_scoped["monitoring-vector-metrics"];
    assert_eq!(
        metrics["egress"][2]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        ms_namespace("seed-4.1-0.yaml")
    );
    // Cluster-wide (4.5): scrape targets in every namespace.
    let cluster = policies("seed-4.5-0.yaml", &|_| {});
    assert_eq!(cluster["monitoring-vector-metrics"]["egress"][2]["to"][0]["namespaceSelector"], serde_json::json!({}));
    // A Loki output on its own port and a custom S3 endpoint open exactly those ports.
    let loki = policies("seed-4.1-0.yaml", &|ms| {
        let logs = ms.spec.vector_logs.as_mut().unwrap();
        logs.archive.s3_endpoint = Some("http://minio.storage.svc:9000".into());
        logs.loki = Some(serde_json::from_value(serde_json::json!({"endpoint": "http://loki.loki.svc:3100"})).unwrap());
    });
    let tcp: Vec<i64> = ports(&loki["monitoring-vector-logs"], 1).into_iter().map(|(_, p)| p).collect();
    assert_eq!(tcp, [443, 3100, 6443, 9000]);
}

fn ms_namespace(file: &str) -> String {
    let (_, ms) = seed_examples().into_iter().find(|(f, _)| f == file).unwrap();
    ms.metadata.namespace.unwrap()
}
