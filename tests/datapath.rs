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
use support::datapath::{Prometheus, Proxy, S3, Target, Vector, append, cri_lines, free_port};
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

fn log_file(var_log: &Path, p: &Pod) -> PathBuf {
    let m = &p.metadata;
    var_log.join(format!(
        "pods/{}_{}_{}/app/0.log",
        m.namespace.as_deref().unwrap(),
        m.name.as_deref().unwrap(),
        m.uid.as_deref().unwrap()
    ))
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

/// What the DaemonSet changes by its mounts and what two Vectors on one machine must not
/// share: the data dir (a hostPath in the pod) and the API and metrics ports.
fn localise(cfg: &mut Value, dir: &Path) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    cfg["data_dir"] = json!(data);
    cfg["api"]["address"] = json!(format!("127.0.0.1:{}", free_port()));
    cfg["sinks"]["vector_metrics_exporter"]["address"] = json!(format!("127.0.0.1:{}", free_port()));
}

fn write_yaml(path: &Path, v: &Value) {
    std::fs::write(path, serde_norway::to_string(v).unwrap()).unwrap();
}

fn messages(objects: &[support::datapath::Object]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in objects {
        for r in &o.records {
            *out.entry(r["message"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    out
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
    let dir = std::env::temp_dir().join(format!("datapath-ns-{}", std::process::id()));
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(var_log.join("pods")).unwrap();
    let s3 = S3::start();
    s3.create_bucket(BUCKET);

    let (mut base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1, "excludePodLabels": {"app": "debug"}},
        "vectorMetrics": {"enabled": false},
    }));
    let settings = settings.expect("namespace-scoped logs have discovery settings");
    localise(&mut base, &dir);
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
    let objects = s3.wait_records(BUCKET, 100, Duration::from_secs(60));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_eq!(messages(&objects).len(), 100, "first lines:\n{}", vector.log_text());

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
        for r in &o.records {
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
    let dir = std::env::temp_dir().join(format!("datapath-cluster-{}", std::process::id()));
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(var_log.join("pods")).unwrap();
    let s3 = S3::start();
    s3.create_bucket(BUCKET);

    let (mut base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme", "useClusterRole": true,
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1, "excludePodLabels": {"app": "debug"},
                       "excludeNamespaces": [skipped.clone()]},
        "vectorMetrics": {"enabled": false},
    }));
    assert!(settings.is_none(), "cluster-wide logs need no sidecar");
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
        for r in &o.records {
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
    let dir = std::env::temp_dir().join(format!("datapath-metrics-{}", std::process::id()));
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

/// Events `component` received so far, from the Vector's own Prometheus exporter at `addr`.
fn received(addr: &str, component: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return 0 };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("vector_component_received_events_total{"))
        .filter(|l| l.contains(&format!("component_id=\"{component}\"")))
        // `name{labels} value [timestamp]`
        .filter_map(|l| l.rsplit_once('}')?.1.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Benchmark, not a test (`cargo test --test datapath -- --ignored --nocapture`): the
/// namespace-scoped logs pipeline (the sidecar's file source and pod_logs_meta remap, then the
/// RECORD/identity remap) against bare Vector (file → blackhole, no parsing: the ceiling) on
/// the same 1,000,000 CRI lines, alternating, median of 3. Prints the figures and the ratio.
#[test]
#[ignore]
fn bench_namespace_scoped_logs_pipeline_throughput() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    const LINES: usize = 1_000_000;
    let dir = std::env::temp_dir().join(format!("datapath-bench-{}", std::process::id()));
    let var_log = dir.join("var-log");
    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    let file = log_file(&var_log, &api);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut text = String::with_capacity(LINES * 90);
    for i in 0..LINES {
        text.push_str(&format!("{now} stdout F GET /api/v1/items/{i} 200 0.0042s user=alice trace=abcdef0123456789\n"));
    }
    std::fs::write(&file, text).unwrap();

    let (mut pipeline, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": "b", "s3Region": "us-east-1"}, "vectorMetrics": {"enabled": false},
    }));
    let settings = settings.unwrap();
    // Same input, same output stage: the archive replaced by a blackhole after the remaps.
    pipeline["sinks"].as_object_mut().unwrap().remove("s3_archive");
    pipeline["sinks"]["bench_sink"] = json!({"type": "blackhole", "inputs": ["enrich"]});
    let fragment: Value = serde_norway::from_str(&vector::discovered([&api], &settings, NODE).unwrap()).unwrap();
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
        let mut v = Vector::start(&bin, &paths, &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
        while received(&addr, "bench_sink") < LINES as u64 {
            assert!(v.running(), "{}", v.log_text());
            assert!(start.elapsed() < Duration::from_secs(600), "{name}: stuck");
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = start.elapsed().as_secs_f64();
        eprintln!("{name}: {} events in {took:.2}s", received(&addr, "bench_sink"));
        took
    };
    let mut bare_t = Vec::new();
    let mut pipe_t = Vec::new();
    for _ in 0..3 {
        bare_t.push(run("bare", vec![bare.clone()]));
        pipe_t.push(run("pipeline", vec![pipeline.clone(), fragment.clone()]));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (b, p) = (median(&mut bare_t), median(&mut pipe_t));
    eprintln!(
        "1,000,000 CRI lines, median of 3 (startup included): bare file->blackhole {b:.2}s ({:.0} lines/s), namespace-scoped pipeline {p:.2}s ({:.0} lines/s); pipeline/bare throughput {:.2}",
        LINES as f64 / b,
        LINES as f64 / p,
        b / p
    );
    std::fs::remove_dir_all(&dir).ok();
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
    let dir = std::env::temp_dir().join(format!("datapath-outage-{}", std::process::id()));
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(var_log.join("pods")).unwrap();
    let s3 = S3::start();
    s3.create_bucket(BUCKET);
    let proxy = Proxy::start(s3.port);
    let (mut base, settings) = logs_config(json!({
        "workspace": "analytics", "tenant": "acme",
        "vectorLogs": {"s3Bucket": BUCKET, "s3Region": "us-east-1", "s3Endpoint": format!("http://127.0.0.1:{}", proxy.port),
                       "s3Prefix": "archive", "batchTimeoutSecs": 1},
        "vectorMetrics": {"enabled": false},
    }));
    localise(&mut base, &dir);
    let base_file = dir.join("vector.yaml");
    write_yaml(&base_file, &base);
    let api = pod("ws", "api", "uid-api", json!({"app": "api"}));
    let file = log_file(&var_log, &api);
    append(&file, &cri_lines(&lines("before", 50)));
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, vector::discovered([&api], &settings.unwrap(), NODE).unwrap()).unwrap();
    let mut vector = Vector::start(&bin, &[base_file, targets], &var_log, &[("VECTOR_SELF_NODE_NAME", NODE)]);
    let before = messages(&s3.wait_records(BUCKET, 50, Duration::from_secs(60)));
    assert_eq!(before.len(), 50, "{}", vector.log_text());

    proxy.set_up(false);
    for i in 0..20 {
        // The pace of the application writing, not a synchronisation.
        append(&file, &cri_lines(&lines(&format!("during-{i:02}"), 10)));
        std::thread::sleep(Duration::from_secs(1));
    }
    let during: usize = s3.objects(BUCKET).iter().map(|o| o.records.len()).sum();
    assert_eq!(during, 50, "records got through the outage: the proxy did not cut S3 off");
    proxy.set_up(true);
    append(&file, &cri_lines(&lines("after", 50)));
    let after = messages(&s3.wait_records(BUCKET, 300, Duration::from_secs(120)));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    let mut want = Vec::new();
    for i in 0..20 {
        want.extend(lines(&format!("during-{i:02}"), 10));
    }
    want.extend(lines("after", 50));
    let lost: Vec<&String> = want.iter().filter(|m| !after.contains_key(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} lines lost, e.g. {:?}\n{}",
        lost.len(),
        want.len(),
        &lost[..lost.len().min(5)],
        vector.log_text()
    );
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
    let dir = std::env::temp_dir().join(format!("datapath-dual-{}", std::process::id()));
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(var_log.join("pods")).unwrap();
    let s3 = S3::start();
    s3.create_bucket(BUCKET);
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
    let objects = s3.wait_records(BUCKET, 20_000, Duration::from_secs(120));
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    assert_exactly_once(&objects, &lines("line", 20_000), &vector);
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}
