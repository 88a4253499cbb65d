//! Per-node scrape-target discovery against a real apiserver: two discovery loops (one per
//! node) watch the same cluster; each node's file holds exactly that node's annotated,
//! running, in-scope pods, and follows changes quickly. Prints the measured latency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use monitoring_operator::discover::{self, Settings};
use monitoring_operator::sidecar;
use serde_json::json;
use support::*;

fn settings(exclude: &str) -> Settings {
    Settings {
        exclude_namespaces: vec![exclude.to_string()],
        scrape_annotation: "prometheus.io/scrape".into(),
        port_annotation: "prometheus.io/port".into(),
        path_annotation: "prometheus.io/path".into(),
        scrape_interval_secs: 30,
        scrape_timeout_secs: 10,
        workspace: "analytics-prod".into(),
        tenant: "my-company".into(),
        ..Default::default()
    }
}

/// A running pod on `node` with IP `ip` (as a kubelet would report it).
async fn running_pod(client: &Client, ns: &str, name: &str, node: &str, ip: &str, annotations: serde_json::Value) {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "example/app", "ports": [{"containerPort": 8080}]}]}});
    pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Time until `pred(file)` holds, polling every 5 ms.
async fn until(p: &Path, what: &str, pred: impl Fn(&str) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if pred(&read(p)) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}; file:\n{}", read(p));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn each_node_scrapes_exactly_its_annotated_pods() {
    let client = env().client().await;
    let ns = namespace(&client, "disc").await;
    let excluded = namespace(&client, "disc-excl").await;
    let dir = std::env::temp_dir().join(format!("discovery-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (node_a, node_b) = (format!("{ns}-a"), format!("{ns}-b"));
    let s = settings(&excluded);
    let (file_a, file_b) = (dir.join("a.yaml"), dir.join("b.yaml"));

    // The init container's job: a valid file even with no targets.
    sidecar::once(client.clone(), &node_a, &s, &file_a).await.unwrap();
    assert!(read(&file_a).contains(": 0 target(s)") && read(&file_a).contains("sources: {}"), "{}", read(&file_a));
    for (node, file) in [(node_a.clone(), file_a.clone()), (node_b.clone(), file_b.clone())] {
        let (c, s) = (client.clone(), s.clone());
        tokio::spawn(async move {
            sidecar::watch(c, &node, &s, Some(&file), tokio::sync::watch::channel(Default::default()).0).await
        });
    }
    until(&file_b, "node b's first file", |f| f.contains("sources: {}")).await;

    let scrape = json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "prometheus.io/path": "/stats"});
    running_pod(&client, &ns, "annotated", &node_a, "10.1.0.1", scrape.clone()).await;
    running_pod(&client, &ns, "plain", &node_a, "10.1.0.2", json!({})).await;
    running_pod(&client, &excluded, "excluded", &node_a, "10.1.0.3", scrape.clone()).await;
    running_pod(&client, &ns, "on-b", &node_b, "10.1.0.4", json!({"prometheus.io/scrape": "true"})).await;

    until(&file_a, "annotated pod on node a", |f| f.contains("http://10.1.0.1:9100/stats")).await;
    until(&file_b, "pod on node b (declared port)", |f| f.contains("http://10.1.0.4:8080/metrics")).await;
    let (a, b) = (read(&file_a), read(&file_b));
    assert!(!a.contains("10.1.0.2") && !a.contains("10.1.0.3") && !a.contains("10.1.0.4"), "{a}");
    assert!(!b.contains("10.1.0.1"), "{b}");
    assert!(a.contains(&format!(".tags.namespace = \"{ns}\"")) && a.contains(".tags.pod = \"annotated\""), "{a}");
    assert!(a.contains(&format!(".tags.node = \"{node_a}\"")));

    // Add and remove the annotation on a pod repeatedly; measure until node a's file follows.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let mut samples = Vec::new();
    for _ in 0..25 {
        let t0 = Instant::now();
        pods.patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"prometheus.io/scrape": "true"}}})),
        )
        .await
        .unwrap();
        until(&file_a, "annotation added", |f| f.contains("http://10.1.0.2:8080/metrics")).await;
        samples.push(t0.elapsed());
        let t0 = Instant::now();
        pods.patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"prometheus.io/scrape": null}}})),
        )
        .await
        .unwrap();
        until(&file_a, "annotation removed", |f| !f.contains("10.1.0.2")).await;
        samples.push(t0.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "discovery latency over {} add/remove changes: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(0.5),
        pct(0.99),
        samples.last().unwrap()
    );
    // Generous bound (the target is 2 s p99; this guards against a broken watch, not speed).
    assert!(pct(0.99) < Duration::from_secs(5), "p99 {:?}", pct(0.99));

    // A pod that stops running or is deleted leaves the file.
    pods.patch_status("annotated", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Succeeded"}})))
        .await
        .unwrap();
    until(&file_a, "finished pod removed", |f| !f.contains("10.1.0.1")).await;
    pods.delete("on-b", &DeleteParams::default().grace_period(0)).await.unwrap();
    until(&file_b, "deleted pod removed", |f| f.contains("sources: {}")).await;
}

/// A namespace-scoped logs collector reads exactly its namespace's selected pods on its node:
/// pod-label filters applied, other namespaces and the collectors themselves left out.
#[tokio::test]
async fn namespace_scoped_logs_follow_label_filters() {
    let client = env().client().await;
    let ns = namespace(&client, "nslogs").await;
    let other = namespace(&client, "nslogs-other").await;
    let node = format!("{ns}-node");
    let s = Settings {
        mode: discover::Mode::Logs,
        namespace_scope: Some(ns.clone()),
        exclude_pod_labels: [("app".to_string(), "debug".to_string())].into(),
        workspace: "w".into(),
        tenant: "t".into(),
        ..Default::default()
    };
    let file = std::env::temp_dir().join(format!("logs-discovery-{ns}.yaml"));
    let (c, s2, n, f) = (client.clone(), s.clone(), node.clone(), file.clone());
    tokio::spawn(async move {
        sidecar::watch(c, &n, &s2, Some(&f), tokio::sync::watch::channel(Default::default()).0).await
    });
    let include = format!("/var/log/pods/{ns}_*/*/*.log");
    until(&file, "first file", |f| f.contains(&include) && f.contains("0 pod(s) selected")).await;

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let make = |name: &str, labels: serde_json::Value| {
        serde_json::from_value::<Pod>(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "example/app"}]}}),
        )
        .unwrap()
    };
    // The pods to leave out first, the one to read last: one watch delivers events in order,
    // so once the file names the api pod, the sidecar has seen the others too.
    pods.create(&PostParams::default(), &make("debug", json!({"app": "debug"}))).await.unwrap();
    pods.create(&PostParams::default(), &make("collector", json!({"vector.dev/exclude": "true"}))).await.unwrap();
    Api::<Pod>::namespaced(client.clone(), &other)
        .create(&PostParams::default(), &make("elsewhere", json!({})))
        .await
        .unwrap();
    let api = pods.create(&PostParams::default(), &make("api", json!({"app": "api"}))).await.unwrap();

    let uid = api.metadata.uid.unwrap();
    let want = format!(r#""{ns}_api_{uid}": {{"selected": true"#);
    until(&file, "the api pod in the table", |f| f.contains(&want)).await;
    let text = read(&file);
    // The include glob is the namespace's, the rejected pods are excluded (and marked in the
    // table, so lines read before the exclusion are dropped), other namespaces absent.
    let fragment: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let src = &fragment["sources"]["pod_logs"];
    assert_eq!(src["include"], json!([include]), "{text}");
    let excluded: Vec<&str> = src["exclude"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(excluded.len(), 2, "{text}");
    assert!(excluded.iter().any(|e| e.contains("_debug_")) && excluded.iter().any(|e| e.contains("_collector_")));
    assert!(!text.contains("elsewhere") && !text.contains(&other), "{text}");
    assert!(text.contains("\"images\": {\"app\": \"example/app\"}"), "{text}");

    pods.delete("api", &DeleteParams::default().grace_period(0)).await.unwrap();
    until(&file, "deleted pod dropped", |f| !f.contains(&want)).await;
    assert_eq!(
        serde_norway::from_str::<serde_json::Value>(&read(&file)).unwrap()["sources"]["pod_logs"],
        *src,
        "a selected pod going away changed the file source"
    );
}
