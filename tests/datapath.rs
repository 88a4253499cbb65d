//! The data path with real parts: the operator's rendered logs configuration and the discovery
//! sidecar's file, run by the real Vector 0.57.0 on an emulated node (a test-owned pod-log root,
//! see `support::datapath`), shipping to a real S3-compatible server (moto). Asserts on what
//! arrives in the bucket, not on what was configured.
//!
//! When `../shared/vector/` is missing the tests say so loudly and stop; CI always has it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
// The serial guard is held across awaits on purpose: one data-path test at a time.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use monitoring_operator::api::MonitoringServices;
use monitoring_operator::discover::Settings;
use monitoring_operator::render::Kind;
use monitoring_operator::{model, render, vector};
use serde_json::{Value, json};

mod support;
use support::datapath::{
    Heartbeat, Prometheus, Proxy, S3, Target, Vector, append, counters, cri_lines, free_port, is_heartbeat, localise,
    log_file, received, sent,
};
use support::vector_bin;

const NODE: &str = "node-a";
const BUCKET: &str = "logs";

fn pod(ns: &str, name: &str, uid: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "busybox:1.36"}]},
        "status": {"phase": "Running", "podIP": "10.1.0.7"}
    }))
    .unwrap()
}

/// The logs collector's ConfigMap for `spec` in namespace `ws`: (vector.yaml as JSON,
/// discovery settings when namespace-scoped).
fn logs_config(spec: Value) -> (Value, Option<Settings>) {
    collector_config(spec, "mon-vector-logs-config", &model::Dereferenced::default())
}

fn collector_config(spec: Value, cm: &str, deref: &model::Dereferenced) -> (Value, Option<Settings>) {
    let ms: MonitoringServices = serde_json::from_value(json!({
        "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
        "metadata": {"name": "mon", "namespace": "ws", "uid": "u"}, "spec": spec,
    }))
    .unwrap();
    let m = model::build(&ms, deref).unwrap();
    let children = render::render(&m, None).unwrap().to_list().unwrap();
    let cm = children.iter().find(|c| c.kind == Kind::ConfigMap && c.name() == cm).unwrap();
    let data = &cm.object.data["data"];
    let cfg: Value = serde_norway::from_str(data["vector.yaml"].as_str().unwrap()).unwrap();
    let settings = data.get("discovery.json").map(|s| serde_json::from_str(s.as_str().unwrap()).unwrap());
    (cfg, settings)
}

fn write_yaml(path: &Path, v: &Value) {
    std::fs::write(path, serde_norway::to_string(v).unwrap()).unwrap();
}

/// How often each message arrived, heartbeats left out.
fn messages(objects: &[support::datapath::Object]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in objects {
        for r in o.records.iter().filter(|r| !is_heartbeat(r)) {
            *out.entry(r["message"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    out
}

/// Every line of `want` arrived (duplicates allowed).
fn assert_none_lost(seen: &BTreeMap<String, usize>, want: &[String], vector: &Vector) {
    let lost: Vec<&String> = want.iter().filter(|m| !seen.contains_key(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} lines lost, e.g. {:?}\n{}",
        lost.len(),
        want.len(),
        &lost[..lost.len().min(5)],
        vector.log_text()
    );
}

/// Every line of `want` arrived exactly once, and nothing else did.
fn assert_exactly_once(objects: &[support::datapath::Object], want: &[String], vector: &Vector) {
    let seen = messages(objects);
    let missing: Vec<&String> = want.iter().filter(|m| !seen.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "{} lines missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        vector.log_text()
    );
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "shipped more than once: {twice:?}");
    let unexpected: Vec<&String> = seen.keys().filter(|k| !want.contains(k)).collect();
    assert!(unexpected.is_empty(), "unexpected lines: {unexpected:?}");
}

/// The checks every archived log record of the `api`/`late` pods passes; its `kubernetes`
/// object and pod name for the mode-specific ones.
fn check_record<'a>(r: &'a Value, ns: &str, node: &str) -> (&'a Value, &'a str) {
    let k = &r["kubernetes"];
    let pod = k["pod_name"].as_str().unwrap();
    assert!(pod == "api" || pod == "late", "{r}");
    assert_eq!((k["pod_namespace"].as_str(), k["container_name"].as_str()), (Some(ns), Some("app")), "{r}");
    assert_eq!(k["pod_node_name"].as_str(), Some(node), "{r}");
    assert_eq!((r["workspace"].as_str(), r["tenant"].as_str()), (Some("analytics"), Some("acme")), "{r}");
    assert_eq!(r["stream"], "stdout", "{r}");
    assert!(r["timestamp"].as_str().is_some_and(|t| t.starts_with("20")), "{r}");
    assert_documented_layout(r);
    let labels = if pod == "api" { json!({"app": "api"}) } else { json!({"app": "worker"}) };
    assert_eq!(k["pod_labels"], labels, "{r}");
    (k, pod)
}

/// The record layout both collection modes write (README, "Log records").
fn assert_documented_layout(r: &Value) {
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(r), ["kubernetes", "message", "stream", "tenant", "timestamp", "workspace"], "{r}");
    assert_eq!(
        keys(&r["kubernetes"]),
        [
            "container_image",
            "container_name",
            "pod_ip",
            "pod_labels",
            "pod_name",
            "pod_namespace",
            "pod_node_name",
            "pod_uid"
        ],
        "{r}"
    );
}

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// Namespace-scoped collection (useClusterRole: false): the discovery sidecar's file source over
/// the selected pods' directories. Every line of the selected pods arrives exactly once, with
/// the documented fields, under the documented key layout, as typed NDJSON; the excluded pod
/// and other namespaces never appear; a pod started after the collector is read from its first
/// line.
#[test]
fn namespace_scoped_logs_arrive_exactly_once_in_s3() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("ns");
    let s3 = S3::with_bucket(BUCKET);

    let (mut base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1, "excludePodLabels": {"app": "debug"}},
        "vectorMetrics": {"enabled": false},
    }));
    let settings = settings.expect("namespace-scoped logs have discovery settings");
    localise(&mut base, &dir);
    let exporter = base["sinks"]["vector_metrics_exporter"]["address"].as_str().unwrap().to_string();
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);

    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    let debug = pod("ws", "debug", "uid-debug", json!({"app": "debug"}));
    let other = pod("other", "web", "uid-web", json!({"app": "api"}));
    append(&log_file(&var_log, &api), &cri_lines(&lines("api", 100)));
    append(&log_file(&var_log, &debug), &cri_lines(&lines("debug", 20)));
    append(&log_file(&var_log, &other), &cri_lines(&lines("other", 20)));
    // The sidecar's file, as it renders it for this node's pods (tests/discovery.rs runs the
    // sidecar itself against the apiserver).
    let targets = dir.join("targets.yaml");
    let fragment = |pods: &[&Pod]| vector::discovered(pods.iter().copied(), &settings, NODE).unwrap();
    std::fs::write(&targets, fragment(&[&api, &debug, &other])).unwrap();

    let mut vector = Vector::start(&bin, &[base_file, targets.clone()], &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
    let _heartbeat = Heartbeat::start(log_file(&var_log, &api));
    let objects = s3.wait_records(BUCKET, 100, Duration::from_secs(60));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_eq!(
        messages(&objects).len(),
        100,
        "first lines; vector's counters:\n{}\nmoto's last requests:\n{}\nvector:\n{}",
        counters(&exporter),
        s3.log_tail(10),
        vector.log_text()
    );

    // A pod started later, and more lines from the first one.
    let late = pod("ws", "late", "uid-late", json!({"app": "worker"}));
    append(&log_file(&var_log, &late), &cri_lines(&lines("late", 30)));
    std::fs::write(&targets, fragment(&[&api, &debug, &other, &late])).unwrap();
    append(&log_file(&var_log, &api), &cri_lines(&lines("api-more", 50)));
    let objects = s3.wait_records(BUCKET, 180, Duration::from_secs(90));

    let mut want: Vec<String> = lines("api", 100);
    want.extend(lines("late", 30));
    want.extend(lines("api-more", 50));
    assert_exactly_once(&objects, &want, &vector);

    let hour = k8s_openapi::jiff::Timestamp::now().strftime("date=%Y-%m-%d/hour=%H/").to_string();
    for o in &objects {
        assert!(o.key.starts_with(&format!("archive/namespace=ws/{hour}")), "{}", o.key);
        assert!(o.key.ends_with(".json.gz"), "{}", o.key);
        assert_eq!(o.content_type.as_deref(), Some("application/x-ndjson"), "{}", o.key);
        for r in o.records.iter().filter(|r| !is_heartbeat(r)) {
            let (k, pod) = check_record(r, "ws", NODE);
            assert!(r["message"].as_str().is_some_and(|m| !m.contains(" stdout F ")), "CRI prefix left: {r}");
            assert_eq!((k["container_image"].as_str(), k["pod_ip"].as_str()), (Some("busybox:1.36"), Some("10.1.0.7")));
            assert!(k["pod_uid"].as_str().is_some_and(|u| u == format!("uid-{pod}")), "{r}");
        }
    }
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// Cluster-wide collection (useClusterRole: true): Vector's kubernetes_logs source against the
/// real apiserver (the node's pods are real Pod objects bound to the emulated node), the
/// namespace and pod-label filters as API selectors. Same checks as the namespace-scoped mode.
#[tokio::test]
async fn cluster_wide_logs_arrive_exactly_once_in_s3() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let client = support::env().client().await;
    let ns = support::namespace(&client, "dp").await;
    let skipped = support::namespace(&client, "dp-skip").await;
    let node = support::create_nodes(&client, &ns, 1).await.remove(0);
    let (dir, var_log) = support::datapath::fresh_node("cluster");
    let s3 = S3::with_bucket(BUCKET);

    let (mut base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme", "useClusterRole": true,
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1, "excludePodLabels": {"app": "debug"},
                       "excludeNamespaces": [skipped.clone()]},
        "vectorMetrics": {"enabled": false},
    }));
    // Its sidecar only serves the flow summary: kubernetes_logs finds the pods, no file is written.
    assert!(settings.is_some_and(|s| s.namespace_scope.is_none()), "cluster-wide logs: a flow-only sidecar");
    localise(&mut base, &dir);
    // In a pod the in-cluster service account is used; here the test's kubeconfig.
    base["sources"]["pod_logs"]["kube_config_file"] = json!(support::env().kubeconfig);
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);

    let pods = |ns: &str| kube::Api::<Pod>::namespaced(client.clone(), ns);
    let create = |ns: String, name: &'static str, labels: Value| {
        let (api, node) = (pods(&ns), node.clone());
        async move {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}
            }))
            .unwrap();
            api.create(&kube::api::PostParams::default(), &p).await.unwrap()
        }
    };
    let api = create(ns.clone(), "api", json!({"app": "api"})).await;
    let debug = create(ns.clone(), "debug", json!({"app": "debug"})).await;
    let other = create(skipped.clone(), "web", json!({"app": "api"})).await;
    append(&log_file(&var_log, &api), &cri_lines(&lines("api", 100)));
    append(&log_file(&var_log, &debug), &cri_lines(&lines("debug", 20)));
    append(&log_file(&var_log, &other), &cri_lines(&lines("other", 20)));

    let mut vector = Vector::start(&bin, &[base_file], &var_log, &[("VECTOR_SELF_NODE_NAME", node.as_str())]);
    let _heartbeat = Heartbeat::start(log_file(&var_log, &api));
    let objects = s3.wait_records(BUCKET, 100, Duration::from_secs(90));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_eq!(messages(&objects).len(), 100, "first lines:\n{}", vector.log_text());

    let late = create(ns.clone(), "late", json!({"app": "worker"})).await;
    append(&log_file(&var_log, &late), &cri_lines(&lines("late", 30)));
    append(&log_file(&var_log, &api), &cri_lines(&lines("api-more", 50)));
    let objects = s3.wait_records(BUCKET, 180, Duration::from_secs(90));

    let mut want: Vec<String> = lines("api", 100);
    want.extend(lines("late", 30));
    want.extend(lines("api-more", 50));
    assert_exactly_once(&objects, &want, &vector);
    for o in &objects {
        assert!(o.key.starts_with(&format!("archive/namespace={ns}/date=")), "{}", o.key);
        assert!(o.key.ends_with(".json.gz"), "{}", o.key);
        assert_eq!(o.content_type.as_deref(), Some("application/x-ndjson"), "{}", o.key);
        for r in o.records.iter().filter(|r| !is_heartbeat(r)) {
            let (k, _) = check_record(r, &ns, &node);
            assert_eq!(k["container_image"], "busybox", "{r}");
        }
    }
    drop(vector);
    support::delete_nodes(&client, &[node]).await;
    std::fs::remove_dir_all(&dir).ok();
}

fn scrape_pod(name: &str, port: u16) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ws", "uid": format!("uid-{name}"),
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string()}},
        "spec": {"nodeName": NODE, "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"}
    }))
    .unwrap()
}

/// Metrics: the annotated pods of the node are scraped, every series arrives in the S3 archive
/// and in a real Prometheus (remote write) labelled with namespace, pod, node, workspace and
/// tenant (a scraped `namespace` label kept as `exported_namespace`); and a steady target keeps
/// its cadence while other targets come and go (each target has its own scrape source).
#[test]
fn metrics_are_scraped_at_their_cadence_and_arrive_labelled() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let dir = support::datapath::fresh_dir("metrics");
    std::fs::create_dir_all(dir.join("var-log")).unwrap();
    let s3 = S3::start();
    s3.create_bucket("metrics");
    let prometheus = Prometheus::start(&dir);
    let interval = 4.0;
    let deref = model::Dereferenced {
        greptime: Some(model::GreptimeLookup::Found {
            endpoint: format!("127.0.0.1:{}", prometheus.port),
            phase: Some("Running".into()),
            pipeline: model::PipelineCheck::NotChecked,
        }),
        ..Default::default()
    };
    let (mut base, settings) = collector_config(
        json!({
            "workspace": "analytics", "tenant": "acme",
            "vectorLogs": {"enabled": false},
            "vectorMetrics": {"s3Bucket": "metrics", "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                              "batchTimeoutSecs": 1, "scrapeInterval": interval as i64, "scrapeTimeout": 2},
            "greptimeRef": {"name": "g", "logsEnabled": false},
        }),
        "mon-vector-metrics-config",
        &deref,
    );
    let settings = settings.unwrap();
    localise(&mut base, &dir);
    // GreptimeDB speaks Prometheus remote write under its own path; the real receiver here is
    // Prometheus, at /api/v1/write.
    let rw = &mut base["sinks"]["greptimedb_remote_write"];
    rw["endpoint"] = json!(format!("http://127.0.0.1:{}/api/v1/write", prometheus.port));
    rw["healthcheck"]["enabled"] = json!(false);
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);

    let steady = Target::start("steady_requests_total");
    let steady_pod = scrape_pod("steady", steady.port);
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, vector::discovered([&steady_pod], &settings, NODE).unwrap()).unwrap();
    let mut vector =
        Vector::start(&bin, &[base_file, targets.clone()], &dir.join("var-log"), &[("VECTOR_SELF_NODE_NAME", NODE)]);

    // Churn: a target comes every 2 s (faster than the scrape interval), six times.
    let mut others = Vec::new();
    let mut pods = vec![steady_pod];
    for i in 0..6 {
        std::thread::sleep(Duration::from_secs(2)); // the churn's pace, not a synchronisation
        let t = Target::start(&format!("churn_{i}_total"));
        pods.push(scrape_pod(&format!("churn-{i}"), t.port));
        others.push(t);
        std::fs::write(&targets, vector::discovered(pods.iter(), &settings, NODE).unwrap()).unwrap();
    }
    let objects = s3.wait_records("metrics", 1, Duration::from_secs(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while steady.intervals().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());

    let intervals = steady.intervals();
    eprintln!("steady target's scrape intervals under churn (interval {interval}s): {intervals:?}");
    assert!(intervals.len() >= 4, "steady target scraped {} times:\n{}", intervals.len() + 1, vector.log_text());
    for gap in &intervals {
        assert!(
            (gap - interval).abs() <= 0.25 * interval,
            "steady target re-scraped after {gap:.2}s (interval {interval}s): {intervals:?}"
        );
    }
    assert!(others.iter().all(|t| !t.scrapes.lock().unwrap().is_empty()), "a new target was never scraped");

    // The archive: metric records with our labels.
    let records: Vec<&Value> = objects.iter().flat_map(|o| &o.records).collect();
    let steady_rec = records.iter().find(|r| r["name"] == "steady_requests_total").expect("steady series archived");
    let tags = &steady_rec["tags"];
    assert_eq!(
        (tags["namespace"].as_str(), tags["pod"].as_str(), tags["node"].as_str()),
        (Some("ws"), Some("steady"), Some(NODE)),
        "{steady_rec}"
    );
    assert_eq!((tags["workspace"].as_str(), tags["tenant"].as_str()), (Some("analytics"), Some("acme")));
    assert_eq!(tags["exported_namespace"], "theirs", "{steady_rec}");
    assert!(objects.iter().all(|o| o.key.starts_with("vector-metrics-v1/date=") && o.key.ends_with(".json.gz")));

    // The real-time copy, as Prometheus stored it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let series = loop {
        let s = prometheus.query("steady_requests_total");
        if !s.is_empty() || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let labels = &series.first().expect("steady series in Prometheus")["metric"];
    assert_eq!(
        (labels["namespace"].as_str(), labels["pod"].as_str(), labels["node"].as_str()),
        (Some("ws"), Some("steady"), Some(NODE)),
        "{labels}"
    );
    assert_eq!(
        (labels["workspace"].as_str(), labels["tenant"].as_str()),
        (Some("analytics"), Some("acme")),
        "{labels}"
    );
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// Benchmark, not a test (`cargo test --test datapath -- --ignored --nocapture bench_`): on the
/// same 1,000,000 CRI lines of one pod (a real Pod on the local apiserver), alternating, median
/// of 3: bare Vector (file → blackhole, no parsing: the ceiling), the namespace-scoped pipeline
/// (the sidecar's file source and pod_logs_meta remap, then the identity remap) and the
/// cluster-wide pipeline (`kubernetes_logs`, then the RECORD/identity remap), each into a
/// blackhole. Throughput is taken from the first event to the last (the sources' glob cooldowns
/// differ: 5 s and 15 s), from Vector's own received-events counter.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_logs_pipelines_throughput() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    const LINES: usize = 1_000_000;
    let client = support::env().client().await;
    // `ws`: the namespace the rendered namespace-scoped config collects (see `logs_config`).
    let ns = "ws".to_string();
    support::create_namespace(&client, &ns).await;
    let node = support::create_nodes(&client, "bench", 1).await.remove(0);
    let api: Pod = serde_json::from_value(json!({
        "metadata": {"name": "api", "labels": {"app": "api"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1.36"}]}
    }))
    .unwrap();
    let api = kube::Api::<Pod>::namespaced(client.clone(), &ns).create(&Default::default(), &api).await.unwrap();
    let dir = support::datapath::fresh_dir("bench");
    let var_log = dir.join("var-log");
    let file = log_file(&var_log, &api);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut text = String::with_capacity(LINES * 90);
    for i in 0..LINES {
        text.push_str(&format!("{now} stdout F GET /api/v1/items/{i} 200 0.0042s user=alice trace=abcdef0123456789\n"));
    }
    std::fs::write(&file, text).unwrap();

    // Same input, same output stage: the archive replaced by a blackhole after the remaps.
    let to_blackhole = |mut cfg: Value| {
        cfg["sinks"].as_object_mut().unwrap().remove("s3_archive");
        cfg["sinks"]["bench_sink"] = json!({"type": "blackhole", "inputs": ["enrich"]});
        cfg
    };
    let spec = |cluster: bool| {
        json!({"workspace": "analytics", "tenant": "acme", "useClusterRole": cluster,
               "vectorLogs": {"s3Bucket": "b", "s3Region": "us-east-1"}, "vectorMetrics": {"enabled": false}})
    };
    let (pipeline, settings) = logs_config(spec(false));
    let pipeline = to_blackhole(pipeline);
    let mut cluster = to_blackhole(logs_config(spec(true)).0);
    cluster["sources"]["pod_logs"]["kube_config_file"] = json!(support::env().kubeconfig);
    let fragment: Value =
        serde_norway::from_str(&vector::discovered([&api], &settings.unwrap(), &node).unwrap()).unwrap();
    let bare = json!({"sources": {"pod_logs": fragment["sources"]["pod_logs"].clone(),
        "vector_internal_metrics": pipeline["sources"]["vector_internal_metrics"].clone()},
        "sinks": {"bench_sink": {"type": "blackhole", "inputs": ["pod_logs"]},
                  "vector_metrics_exporter": pipeline["sinks"]["vector_metrics_exporter"].clone()}});
    let run = |name: &str, configs: Vec<Value>| -> f64 {
        let run_dir = dir.join(format!("{name}-{}", free_port()));
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut files = Vec::new();
        for (i, mut c) in configs.into_iter().enumerate() {
            if i == 0 {
                localise(&mut c, &run_dir);
            }
            let f = run_dir.join(format!("{i}.yaml"));
            write_yaml(&f, &c);
            files.push((f, c));
        }
        let addr = files[0].1["sinks"]["vector_metrics_exporter"]["address"].as_str().unwrap().to_string();
        let paths: Vec<PathBuf> = files.iter().map(|(f, _)| f.clone()).collect();
        let start = std::time::Instant::now();
        let mut v = Vector::start(&bin, &paths, &var_log, &[("VECTOR_SELF_NODE_NAME", node.as_str())]);
        let mut first = None;
        loop {
            let n = received(&addr, "bench_sink");
            if n > 0 && first.is_none() {
                first = Some((std::time::Instant::now(), n));
            }
            if n >= LINES as u64 {
                break;
            }
            assert!(v.running(), "{}", v.log_text());
            assert!(start.elapsed() < Duration::from_secs(180), "{name}: stuck at {n}\n{}", v.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        let (t0, n0) = first.unwrap();
        let rate = (LINES as u64 - n0) as f64 / t0.elapsed().as_secs_f64().max(0.001);
        eprintln!(
            "{name}: {LINES} events, {rate:.0} lines/s after the first event ({:.2}s from start)",
            start.elapsed().as_secs_f64()
        );
        rate
    };
    let (mut bare_r, mut ns_r, mut cluster_r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        bare_r.push(run("bare", vec![bare.clone()]));
        ns_r.push(run("namespace-scoped", vec![pipeline.clone(), fragment.clone()]));
        cluster_r.push(run("cluster-wide", vec![cluster.clone()]));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (b, n, c) = (median(&mut bare_r), median(&mut ns_r), median(&mut cluster_r));
    eprintln!(
        "1,000,000 CRI lines, median of 3, lines/s: bare {b:.0}, namespace-scoped {n:.0}, cluster-wide (kubernetes_logs) {c:.0}; \
         namespace-scoped/cluster-wide {:.2}, namespace-scoped/bare {:.2}, cluster-wide/bare {:.2}",
        n / c,
        n / b,
        c / b
    );
    support::delete_nodes(&client, &[node]).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// A namespace-scoped logs collector for one pod (`ws/api`) on the emulated node, archiving
/// to `s3_endpoint` with a 1 s batch timeout: its configs (base and sidecar file), the pod's log
/// file, and the exporter address of Vector's own metrics. Nothing is started.
struct OnePodCollector {
    configs: [PathBuf; 2],
    file: PathBuf,
    exporter: String,
}

fn one_pod_collector(dir: &Path, var_log: &Path, s3_endpoint: &str) -> OnePodCollector {
    let (base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3_endpoint,
                       "s3Prefix": "archive", "batchTimeoutSecs": 1},
        "vectorMetrics": {"enabled": false},
    }));
    one_pod_files(base, settings, dir, var_log)
}

/// Writes a rendered logs-collector config (localised to `dir`) and the sidecar's file for one
/// pod (`ws/api`).
fn one_pod_files(mut base: Value, settings: Option<Settings>, dir: &Path, var_log: &Path) -> OnePodCollector {
    localise(&mut base, dir);
    let exporter = base["sinks"]["vector_metrics_exporter"]["address"].as_str().unwrap().to_string();
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);
    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, vector::discovered([&api], &settings.unwrap(), NODE).unwrap()).unwrap();
    OnePodCollector { configs: [base_file, targets], file: log_file(var_log, &api), exporter }
}

/// The archive is the durable copy: with S3 down while lines keep coming, nothing is lost once
/// it is back (the disk buffer blocks, the sink retries). S3 is reached through a proxy that
/// drops every connection during the outage (moto keeps its state in memory, so stopping it
/// would also lose the bucket). The outage lasts 20 s here, not a minute, to keep CI short;
/// what matters is that uploads fail and are retried.
#[test]
fn an_s3_outage_loses_nothing() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("outage");
    let s3 = S3::with_bucket(BUCKET);
    let proxy = Proxy::start(s3.port);
    let c = one_pod_collector(&dir, &var_log, &format!("http://127.0.0.1:{}", proxy.port));
    let file = c.file.clone();
    append(&file, &cri_lines(&lines("before", 50)));
    let mut vector = Vector::start(&bin, &c.configs, &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
    let _heartbeat = Heartbeat::start(file.clone());
    let before = messages(&s3.wait_records(BUCKET, 50, Duration::from_secs(120)));
    assert_eq!(
        before.len(),
        50,
        "before the outage; proxy: {}; moto's last requests:\n{}\nvector's counters:\n{}\nvector:\n{}",
        proxy.stats(),
        s3.log_tail(20),
        counters(&c.exporter),
        vector.log_text()
    );

    proxy.set_up(false);
    for i in 0..20 {
        // The pace of the application writing, not a synchronisation.
        append(&file, &cri_lines(&lines(&format!("during-{i:02}"), 10)));
        std::thread::sleep(Duration::from_secs(1));
    }
    // Lines written after the cut can only have reached S3 through a proxy that did not cut.
    let through: Vec<String> = messages(&s3.objects(BUCKET)).into_keys().filter(|m| m.starts_with("during-")).collect();
    assert!(through.is_empty(), "{} lines got through the outage: the proxy did not cut S3 off", through.len());
    proxy.set_up(true);
    append(&file, &cri_lines(&lines("after", 50)));
    let after = messages(&s3.wait_records(BUCKET, 300, Duration::from_secs(120)));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    let mut want = Vec::new();
    for i in 0..20 {
        want.extend(lines(&format!("during-{i:02}"), 10));
    }
    want.extend(lines("after", 50));
    assert_none_lost(&after, &want, &vector);
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// A collector crash (SIGKILL, as the OOM killer or a node problem ends it) while lines keep
/// coming, then a restart on the same data dir (the pod's hostPath): nothing is lost, and the
/// lines shipped twice are bounded by what was read since the file source's last checkpoint
/// (Vector is at-least-once; it checkpoints read positions about once a second). Namespace-scoped
/// mode, whose file source the sidecar's file defines.
#[test]
fn a_collector_crash_loses_nothing_and_duplicates_little() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("crash");
    let s3 = S3::with_bucket(BUCKET);
    let c = one_pod_collector(&dir, &var_log, &s3.endpoint());
    let (file, configs) = (c.file, c.configs);
    append(&file, &cri_lines(&lines("warmup", 10)));
    let env = [("VECTOR_SELF_NODE_NAME", NODE)];
    let mut vector = Vector::start(&bin, &configs, &var_log, &env);
    let _heartbeat = Heartbeat::start(file.clone());
    assert_eq!(messages(&s3.wait_records(BUCKET, 10, Duration::from_secs(60))).len(), 10, "{}", vector.log_text());

    // 50 lines every 100 ms for 8 s; the crash halfway, the restart 0.5 s later.
    let mut want = lines("warmup", 10);
    for i in 0..80 {
        let batch = lines(&format!("line-{i:02}"), 50);
        append(&file, &cri_lines(&batch));
        want.extend(batch);
        if i == 40 {
            vector.kill();
        }
        if i == 45 {
            vector = Vector::start(&bin, &configs, &var_log, &env);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let objects = s3.wait_records(BUCKET, want.len(), Duration::from_secs(120));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    let seen = messages(&objects);
    assert_none_lost(&seen, &want, &vector);
    let twice = seen.values().filter(|n| **n > 1).count();
    eprintln!("crash: {} lines, {twice} shipped more than once", want.len());
    // 2 s of writing (1,000 lines) is twice the checkpoint interval.
    assert!(twice <= 1_000, "{twice} lines shipped more than once after one crash");
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// Dual write: with the real-time endpoint (GreptimeDB) unreachable, the S3 archive still gets
/// every line (the real-time sink has its own drop-newest memory buffer, so it never
/// backpressures the shared source).
#[test]
fn an_unreachable_realtime_endpoint_never_stalls_the_archive() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("dual");
    let s3 = S3::with_bucket(BUCKET);
    let closed = free_port(); // nothing listens there
    let deref = model::Dereferenced {
        greptime: Some(model::GreptimeLookup::Found {
            endpoint: format!("127.0.0.1:{closed}"),
            phase: Some("Running".into()),
            pipeline: model::PipelineCheck::Ready,
        }),
        ..Default::default()
    };
    let (mut base, settings) = collector_config(
        json!({
            "workspace": "analytics", "tenant": "acme",
            "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                           "s3Prefix": "archive", "batchTimeoutSecs": 1},
            "vectorMetrics": {"enabled": false},
            "greptimeRef": {"name": "g", "metricsEnabled": false},
        }),
        "mon-vector-logs-config",
        &deref,
    );
    assert_eq!(base["sinks"]["greptimedb_logs"]["type"], "greptimedb_logs", "the real-time sink is rendered");
    localise(&mut base, &dir);
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);
    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    append(&log_file(&var_log, &api), &cri_lines(&lines("line", 20_000)));
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, vector::discovered([&api], &settings.unwrap(), NODE).unwrap()).unwrap();
    let mut vector = Vector::start(&bin, &[base_file, targets], &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
    let _heartbeat = Heartbeat::start(log_file(&var_log, &api));
    let objects = s3.wait_records(BUCKET, 20_000, Duration::from_secs(120));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_exactly_once(&objects, &lines("line", 20_000), &vector);
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// Benchmark, not a test (`cargo test --test datapath -- --ignored --nocapture bench_archive`):
/// the S3 archive's delivery rate with the real-time endpoint (GreptimeDB) unreachable, as a
/// ratio to the same collector without a real-time sink: 20,000 lines (twice the real-time
/// buffer), time until S3 has acknowledged them all (the archive sink's
/// `vector_component_sent_events_total`), alternating, median of 3.
#[test]
#[ignore]
fn bench_archive_rate_with_realtime_down() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    const LINES: usize = 20_000;
    let s3 = S3::with_bucket(BUCKET);
    let closed = free_port(); // nothing listens there
    let down = model::Dereferenced {
        greptime: Some(model::GreptimeLookup::Found {
            endpoint: format!("127.0.0.1:{closed}"),
            phase: Some("Running".into()),
            pipeline: model::PipelineCheck::Ready,
        }),
        ..Default::default()
    };
    let run = |name: &str, realtime: bool| -> f64 {
        let (dir, var_log) = support::datapath::fresh_node(&format!("rate-{name}"));
        let mut spec = json!({
            "workspace": "analytics", "tenant": "acme",
            "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                           "s3Prefix": name, "batchTimeoutSecs": 1},
            "vectorMetrics": {"enabled": false},
        });
        let deref = if realtime {
            spec["greptimeRef"] = json!({"name": "g", "metricsEnabled": false});
            down.clone()
        } else {
            model::Dereferenced::default()
        };
        let (mut base, settings) = collector_config(spec, "mon-vector-logs-config", &deref);
        assert_eq!(base["sinks"].get("greptimedb_logs").is_some(), realtime);
        localise(&mut base, &dir);
        let exporter = base["sinks"]["vector_metrics_exporter"]["address"].as_str().unwrap().to_string();
        let base_file = dir.join("vector.yaml");
        write_yaml(&base_file, &base);
        let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
        append(&log_file(&var_log, &api), &cri_lines(&lines("line", LINES)));
        let targets = dir.join("targets.yaml");
        std::fs::write(&targets, vector::discovered([&api], &settings.unwrap(), NODE).unwrap()).unwrap();
        let start = std::time::Instant::now();
        let mut v = Vector::start(&bin, &[base_file, targets], &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
        let _heartbeat = Heartbeat::start(log_file(&var_log, &api));
        while sent(&exporter, "s3_archive") < LINES as u64 {
            assert!(v.running(), "{}", v.log_text());
            assert!(start.elapsed() < Duration::from_secs(180), "{name}: stuck\n{}", v.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = start.elapsed().as_secs_f64();
        eprintln!("{name}: {LINES} lines archived in {took:.2}s");
        drop(v);
        std::fs::remove_dir_all(&dir).ok();
        took
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(run("archive-only", false));
        with.push(run("realtime-down", true));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (a, b) = (median(&mut without), median(&mut with));
    eprintln!(
        "20,000 lines, median of 3: archive only {a:.2}s, real-time endpoint down {b:.2}s; archive rate ratio {:.2}",
        a / b
    );
}

/// The collector pod's hardening, with the real binary: Vector as root with no capability at
/// all, `no_new_privs` and a read-only root filesystem (what `capabilities.drop: [ALL]`,
/// `allowPrivilegeEscalation: false` and `readOnlyRootFilesystem: true` give it) still reads
/// the kubelet's root-owned 0640 log files and writes only its data dir (a separate writable
/// mount, as the hostPath is). The namespace-scoped file source as the sidecar renders it.
#[test]
fn hardened_vector_reads_pod_logs_without_capabilities_on_a_read_only_root() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    // /dev/shm: a writable mount of its own that stays writable when / is remounted read-only.
    let dir = PathBuf::from(format!("/dev/shm/datapath-hardened-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let var_log = dir.join("var-log");
    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    let file = log_file(&var_log, &api);
    append(&file, &cri_lines(&lines("line", 100)));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, settings) = logs_config(json!({"workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1"}, "vectorMetrics": {"enabled": false}}));
    let fragment: Value =
        serde_norway::from_str(&vector::discovered([&api], &settings.unwrap(), NODE).unwrap()).unwrap();
    let out = dir.join("out.log");
    let cfg = json!({
        "data_dir": dir.join("data"),
        "sources": {"pod_logs": fragment["sources"]["pod_logs"]},
        "sinks": {"out": {"type": "file", "inputs": ["pod_logs"], "path": out, "encoding": {"codec": "text"}}},
    });
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("vector.yaml");
    write_yaml(&config, &cfg);
    let script = r#"mount --bind "$0" /var/log && mount -o remount,bind,ro / && exec setpriv --bounding-set=-all --inh-caps=-all --no-new-privs sh -c 'touch /probe 2>/dev/null && echo ROOT-WRITABLE; grep CapEff /proc/self/status; exec "$0" --config "$1"' "$1" "$2""#;
    let mut child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(&var_log)
        .arg(&bin)
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("vector.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let read =
        || std::fs::read_to_string(&out).unwrap_or_default().lines().filter(|l| l.contains(" stdout F line-")).count();
    while read() < 100 && std::time::Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "vector exited:\n{}",
            std::fs::read_to_string(dir.join("vector.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(!stdout.contains("ROOT-WRITABLE"), "the root filesystem was writable");
    assert!(stdout.contains("CapEff:\t0000000000000000"), "capabilities left: {stdout}");
    assert_eq!(read(), 100, "{}", std::fs::read_to_string(dir.join("vector.log")).unwrap_or_default());
    std::fs::remove_dir_all(&dir).ok();
}

/// `user:password` as HTTP basic authentication sends it.
fn basic(user: &str, password: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// The Secrets of a test, as the dereference step reports them and as the pod mounts them:
/// `dir/secrets/<name>/<file>` with the config's secret backends pointed there.
fn mount_secrets(cfg: &mut Value, dir: &Path, secrets: &[(&str, &str, &str)]) -> model::Dereferenced {
    let mut found: BTreeMap<String, Option<model::SecretInfo>> = BTreeMap::new();
    for (name, key, value) in secrets {
        let d = dir.join("secrets").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(key.replace('-', "_")), format!("{value}\n")).unwrap();
        let info = found.entry(name.to_string()).or_insert_with(|| Some(Default::default())).as_mut().unwrap();
        info.keys.insert(key.to_string());
        info.resource_version = "1".into();
        if let Some(backend) = cfg.get_mut("secret").and_then(|s| s.get_mut(model::backend_name(name))) {
            backend["path"] = json!(d);
        }
    }
    model::Dereferenced { secrets: found, ..Default::default() }
}

/// Logs to Loki with the archive beside it: while Loki is down for a minute the S3 archive
/// still gets every line on time (the Loki sink's buffer drops, it never backpressures); once
/// Loki is up it receives the lines as streams labelled only with bounded values, as the
/// resource's tenant, with the password read from the mounted Secret.
#[test]
fn loki_down_a_minute_leaves_the_archive_whole_then_gets_labelled_streams() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("loki");
    let s3 = S3::with_bucket(BUCKET);
    let loki_port = free_port(); // nothing listens there until Loki "comes back"
    let spec = json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1,
                       "loki": {"endpoint": format!("http://127.0.0.1:{loki_port}"),
                                "extraLabels": {"cluster": "test"},
                                "auth": {"basic": {"username": "grafana",
                                         "passwordSecretRef": {"name": "loki-auth", "key": "pass-word"}}}}},
        "vectorMetrics": {"enabled": false},
    });
    let secrets = [("loki-auth", "pass-word", "s3cret")];
    let deref = mount_secrets(&mut json!({}), &dir, &secrets);
    let (mut base, settings) = collector_config(spec, "mon-vector-logs-config", &deref);
    assert_eq!(base["sinks"]["loki"]["auth"]["password"], "SECRET[secret_loki_auth.pass_word]");
    mount_secrets(&mut base, &dir, &secrets);
    let (mut vector, file, exporter) = run_logs_collector(&bin, base, settings, &dir, &var_log);
    let _heartbeat = Heartbeat::start(file.clone());

    let mut during = Vec::new();
    for i in 0..60 {
        // The pace of the application writing, not a synchronisation.
        let batch = lines(&format!("during-{i:02}"), 10);
        append(&file, &cri_lines(&batch));
        during.extend(batch);
        std::thread::sleep(Duration::from_secs(1));
    }
    // The archive, with Loki unreachable all along: every line, within its batch timeout and a
    // margin, not after the outage.
    let archived = messages(&s3.wait_records(BUCKET, during.len(), Duration::from_secs(30)));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_none_lost(&archived, &during, &vector);

    let loki = support::loki::Loki::start(loki_port);
    let after = lines("after", 20);
    append(&file, &cri_lines(&after));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let got = loop {
        let got: Vec<_> = loki.lines().into_iter().filter(|l| l.line.starts_with("after-")).collect();
        if got.len() >= after.len() || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let seen: std::collections::BTreeSet<&str> = got.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(
        seen.len(),
        after.len(),
        "lines in Loki: {seen:?}\nvector's counters:\n{}\nvector:\n{}",
        counters(&exporter),
        vector.log_text()
    );
    let want_labels: BTreeMap<String, String> = [
        ("namespace", "ws"),
        ("pod", "api"),
        ("container", "app"),
        ("workspace", "analytics"),
        ("tenant", "acme"),
        ("cluster", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for l in &got {
        assert_eq!(l.labels, want_labels, "stream labels");
        assert_eq!(l.tenant.as_deref(), Some("acme"), "X-Scope-OrgID");
        assert_eq!(l.authorization.as_deref(), Some(basic("grafana", "s3cret").as_str()), "trailing newline trimmed");
        assert_eq!(l.metadata.get("node").map(String::as_str), Some(NODE));
        assert_eq!(l.metadata.get("pod_uid").map(String::as_str), Some("uid-api"));
        assert_eq!(l.metadata.get("stream").map(String::as_str), Some("stdout"));
    }
    // And the archive still has everything, the lines after the outage included.
    let all = messages(&s3.wait_records(BUCKET, during.len() + after.len(), Duration::from_secs(30)));
    assert_none_lost(&all, &after, &vector);
}

/// Metrics to a Prometheus remote-write receiver (the real Prometheus; Thanos Receive and Mimir
/// speak the same protocol) as the resource's tenant with a bearer token from the mounted
/// Secret. Prometheus ignores X-Scope-OrgID, so a proxy in front of it shows the test what
/// Vector sent.
#[test]
fn remote_write_reaches_prometheus_as_the_tenant() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let dir = support::datapath::fresh_dir("remote-write");
    std::fs::create_dir_all(dir.join("var-log")).unwrap();
    let s3 = S3::with_bucket("metrics");
    let prometheus = Prometheus::start(&dir);
    let proxy = Proxy::start(prometheus.port);
    let spec = json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"enabled": false},
        "vectorMetrics": {"s3Bucket": "metrics", "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                          "batchTimeoutSecs": 1, "scrapeInterval": 2, "scrapeTimeout": 1,
                          "remoteWrite": {"endpoint": format!("http://127.0.0.1:{}/api/v1/write", proxy.port),
                                          "auth": {"bearerTokenSecretRef": {"name": "thanos", "key": "token"}}}},
    });
    let secrets = [("thanos", "token", "t0ken")];
    let deref = mount_secrets(&mut json!({}), &dir, &secrets);
    let (mut base, settings) = collector_config(spec, "mon-vector-metrics-config", &deref);
    mount_secrets(&mut base, &dir, &secrets);
    localise(&mut base, &dir);
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);
    let target = Target::start("tenant_requests_total");
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, vector::discovered([&scrape_pod("app", target.port)], &settings.unwrap(), NODE).unwrap())
        .unwrap();
    let mut vector =
        Vector::start(&bin, &[base_file, targets], &dir.join("var-log"), &[("VECTOR_SELF_NODE_NAME", NODE)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let series = loop {
        let s = prometheus.query(r#"tenant_requests_total{tenant="acme",workspace="analytics",pod="app"}"#);
        if !s.is_empty() || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert!(!series.is_empty(), "nothing in Prometheus; proxy: {}\nvector:\n{}", proxy.stats(), vector.log_text());
    let tenants = proxy.header_values("x-scope-orgid");
    assert!(!tenants.is_empty() && tenants.iter().all(|t| t == "acme"), "X-Scope-OrgID sent: {tenants:?}");
    let auth = proxy.header_values("authorization");
    assert!(!auth.is_empty() && auth.iter().all(|a| a == "Bearer t0ken"), "Authorization sent: {auth:?}");
}

/// Flow health read from real Vector's own metrics (`monitoring_operator::flow`): with the
/// archive healthy (moto) and Loki's port closed, two scrapes a window apart name `loki` as
/// stalled (Vector counts no error while it retries) and `s3_archive` as healthy; the config
/// id Vector reports is the one the operator stamped; once Loki is up the verdict turns
/// healthy. The times to each verdict are printed for the notes, not asserted.
#[test]
fn flow_health_names_the_stalled_sink_and_the_loaded_config() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let (dir, var_log) = support::datapath::fresh_node("flow");
    let s3 = S3::with_bucket(BUCKET);
    let loki_port = free_port();
    let spec = json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "batchTimeoutSecs": 1, "loki": {"endpoint": format!("http://127.0.0.1:{loki_port}")}},
        "vectorMetrics": {"enabled": false},
    });
    let (base, settings) = collector_config(spec, "mon-vector-logs-config", &model::Dereferenced::default());
    let stamp = base["transforms"][vector::CONFIG_ID_TRANSFORM]["source"].as_str().unwrap().to_string();
    let stamped = stamp.split('"').nth(1).unwrap().to_string();
    let (mut vector, file, exporter) = run_logs_collector(&bin, base, settings, &dir, &var_log);
    let started = std::time::Instant::now();

    // The sidecar's flow summary as it runs in the pod: a 5 s window (longer than the 1 s
    // batch timeout), the local Vector scraped every second, served on /flow.
    let flow_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_selected, selected_rx) =
        tokio::sync::watch::channel(monitoring_operator::sidecar::flow::Selected { total: 1, ..Default::default() });
    runtime.spawn(monitoring_operator::sidecar::flow::run(
        format!("http://{exporter}/metrics"),
        flow_addr,
        Duration::from_secs(5),
        Duration::from_secs(1),
        selected_rx,
    ));
    let summary = |want: &str, deadline: Duration| -> (Value, Duration) {
        let until = std::time::Instant::now() + deadline;
        loop {
            append(&file, &cri_lines(&lines("flow", 5)));
            let got = http_get_json(flow_addr, "/flow");
            if got["reason"] == want || std::time::Instant::now() > until {
                return (got, started.elapsed());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let (down, after) = summary("SinkStalled", Duration::from_secs(60));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_eq!(down["reason"], "SinkStalled", "{down:#}");
    let latest = &down["latest"];
    let by_sink: BTreeMap<String, String> = latest["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["sink"].as_str().unwrap().to_string(), s["reason"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeMap<String, String> =
        [("loki", "SinkStalled"), ("s3_archive", "Healthy")].map(|(a, b)| (a.to_string(), b.to_string())).into();
    assert_eq!(by_sink, want, "{down:#}");
    assert!(latest["message"].as_str().unwrap().starts_with("sink loki: "), "{down:#}");
    assert_eq!(down["configId"], stamped.as_str(), "Vector reports the config it loaded");
    eprintln!("flow: loki unreachable from the start -> /flow says SinkStalled after {after:?} (5 s window, damped)");

    let _loki = support::loki::Loki::start(loki_port);
    let up_at = started.elapsed();
    let (up, after) = summary("Healthy", Duration::from_secs(120));
    assert_eq!(up["reason"], "Healthy", "{up:#}\n{}", counters(&exporter));
    eprintln!(
        "flow: loki up -> /flow says Healthy after {:?} (Vector's retry backoff and damping included)",
        after - up_at
    );
    // The cost figure of issue 11: what the operator would read per collector, full page vs summary.
    let page = support::datapath::vector_metrics(&exporter).len();
    let summary_bytes = serde_json::to_string(&up).unwrap().len();
    eprintln!("flow: Vector metrics page {page} bytes, /flow summary {summary_bytes} bytes");
}

/// Runs a rendered logs-collector config on the emulated node with one pod (`ws/api`) to read:
/// the Vector process, the pod's log file, and the address of Vector's own metrics.
fn run_logs_collector(
    bin: &Path,
    base: Value,
    settings: Option<Settings>,
    dir: &Path,
    var_log: &Path,
) -> (Vector, PathBuf, String) {
    let c = one_pod_files(base, settings, dir, var_log);
    let vector = Vector::start(bin, &c.configs, var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
    (vector, c.file, c.exporter)
}

/// GET `path` on `addr` and parse the body as JSON (Null when nothing answers yet).
fn http_get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return Value::Null };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok()).unwrap_or(Value::Null)
}
