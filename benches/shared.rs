//! The two collection modes side by side with 50 tenants on one node (not a test; figures, not
//! assertions): Vector processes and their memory on the node, shared (one Vector serving all
//! 50) against per-resource (one Vector per tenant), both running the operator's real configs
//! on real Vector 0.57 and shipping the same lines to a real S3-compatible server (moto); and
//! the time to render the shared configuration. The shared collector's `kubernetes_logs`
//! source reads the real apiserver (the pods are real Pod objects bound to an emulated node);
//! the per-resource collectors run the namespace-scoped mode's file source and the discovery
//! sidecar's file for their pod. Run with `cargo bench --bench shared` (`SHARED_TENANTS`,
//! default 50; `LINES`, lines per tenant, default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches fail loudly by design

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use monitoring_operator::api::MonitoringServices;
use monitoring_operator::model::{self, Model};
use monitoring_operator::render::shared::SharedSettings;
use monitoring_operator::render::{self, Kind};
use serde_json::{Value, json};
use support::datapath::{Heartbeat, S3, Vector, append, cri_lines, is_heartbeat, localise, log_file};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn resource(ns: &str, endpoint: &str, bucket: &str) -> MonitoringServices {
    serde_json::from_value(json!({
        "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
        "metadata": {"name": "mon", "namespace": ns, "uid": format!("uid-{ns}")},
        "spec": {"workspace": format!("ws-{ns}"), "tenant": ns,
            "vectorLogs": {"s3Bucket": bucket, "s3Region": "us-east-1", "s3Endpoint": endpoint, "s3Prefix": ns,
                "batchTimeoutSecs": 1,
                "environmentVariables": {"AWS_ACCESS_KEY_ID": format!("KEY{ns}"), "AWS_SECRET_ACCESS_KEY": "x"}}}}))
    .unwrap()
}

fn model(ms: &MonitoringServices, shared: bool) -> Model {
    let mut d = model::Dereferenced::default();
    d.operator.shared_namespace = shared.then(|| "monitoring-system".to_string());
    model::build(ms, &d).unwrap()
}

fn write(path: &Path, v: &Value) -> PathBuf {
    std::fs::write(path, serde_norway::to_string(v).unwrap()).unwrap();
    path.to_path_buf()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn distinct(s3: &S3, bucket: &str) -> usize {
    s3.wait_records(bucket, 0, Duration::ZERO)
        .iter()
        .flat_map(|o| &o.records)
        .filter(|r| !is_heartbeat(r))
        .filter_map(|r| r["message"].as_str().map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[tokio::main]
async fn main() {
    let tenants = env_num("SHARED_TENANTS", 50);
    let lines = env_num("LINES", 200);
    let Some(bin) = support::vector_bin::vector() else { return };

    // Render time: the shared config for all tenants, against rendering them one by one.
    let s3 = S3::with_bucket("shared");
    s3.create_bucket("per-resource");
    let names: Vec<String> = (0..tenants).map(|i| format!("bench-t{i:02}")).collect();
    let shared_models: Vec<Model> =
        names.iter().map(|ns| model(&resource(ns, &s3.endpoint(), "shared"), true)).collect();
    let parts: Vec<_> = shared_models.iter().map(|m| m.shared.clone().unwrap().tenant).collect();
    let settings = SharedSettings::new("monitoring-system");
    let per_models: Vec<Model> =
        names.iter().map(|ns| model(&resource(ns, &s3.endpoint(), "per-resource"), false)).collect();
    let time = |f: &dyn Fn()| {
        median(
            (0..21)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let shared_ms = time(&|| {
        render::shared::render(&settings, &parts).unwrap();
    });
    let per_ms = time(&|| {
        for m in &per_models {
            render::render(m, None).unwrap();
        }
    });
    let shared_children = render::shared::render(&settings, &parts).unwrap();
    let config_bytes: usize =
        shared_children.secrets.iter().flat_map(|s| s.data.iter().flatten()).map(|(_, v)| v.0.len()).sum();

    // Processes per node, from the rendered pods: containers of the DaemonSets (each runs on every node).
    let containers = |children: &render::Children| -> usize {
        children
            .daemon_sets
            .iter()
            .map(|d| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers.len())
            .sum()
    };
    let per_containers: usize = per_models.iter().map(|m| containers(&render::render(m, None).unwrap())).sum();
    let shared_containers = containers(&shared_children);

    // The node: one pod per tenant namespace, `lines` lines each.
    let client = support::env().client().await;
    let node = support::create_nodes(&client, "bench-shared", 1).await.remove(0);
    let (dir, var_log) = support::datapath::fresh_node("bench-shared");
    let mut pods = Vec::new();
    let mut heartbeats = Vec::new();
    for ns in &names {
        support::create_namespace(&client, ns).await;
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "app", "labels": {"app": "app"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))
        .unwrap();
        let api = Api::<Pod>::namespaced(client.clone(), ns);
        let p = match api.create(&PostParams::default(), &p).await {
            Ok(p) => p,
            Err(_) => api.get("app").await.unwrap(),
        };
        let file = log_file(&var_log, &p);
        let msgs: Vec<String> = (0..lines).map(|j| format!("{ns}-line-{j:04}")).collect();
        append(&file, &cri_lines(&msgs));
        // A line a second, as a live pod writes (see support::datapath::Heartbeat); not counted.
        heartbeats.push(Heartbeat::start(file));
        pods.push(p);
    }
    let want = tenants * lines;

    // Shared: one Vector.
    let sdir = dir.join("shared");
    let secrets = sdir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for s in &shared_children.secrets {
        for (k, v) in s.data.iter().flatten() {
            if k != "vector.yaml" {
                std::fs::write(secrets.join(k), &v.0).unwrap();
            }
        }
    }
    let mut cfg =
        serde_json::to_value(monitoring_operator::vector::shared::logs_config(&parts, secrets.to_str().unwrap()))
            .unwrap();
    localise(&mut cfg, &sdir);
    cfg["sources"]["pod_logs"]["kube_config_file"] = json!(support::env().kubeconfig);
    let file = write(&sdir.join("vector.yaml"), &cfg);
    let start = Instant::now();
    let shared = Vector::start(&bin, &[file], &var_log, &[("VECTOR_SELF_NODE_NAME", node.as_str())]);
    while distinct(&s3, "shared") < want && start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let shared_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let shared_rss = rss_kib(shared.pid());
    let shared_got = distinct(&s3, "shared");
    drop(shared);

    // Per-resource: one Vector per tenant, each its own config and sidecar file.
    let mut vectors = Vec::new();
    for (i, (m, p)) in per_models.iter().zip(&pods).enumerate() {
        let d = dir.join(format!("per-{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        let children = render::render(m, None).unwrap().to_list().unwrap();
        let cm =
            children.iter().find(|c| c.kind == Kind::ConfigMap && c.name().ends_with("vector-logs-config")).unwrap();
        let data = &cm.object.data["data"];
        let mut base: Value = serde_norway::from_str(data["vector.yaml"].as_str().unwrap()).unwrap();
        localise(&mut base, &d);
        let settings: monitoring_operator::discover::Settings =
            serde_json::from_str(data["discovery.json"].as_str().unwrap()).unwrap();
        let targets = d.join("targets.yaml");
        std::fs::write(&targets, monitoring_operator::vector::discovered([p], &settings, &node).unwrap()).unwrap();
        let base = write(&d.join("vector.yaml"), &base);
        // Its own log next to its config (the log goes beside the node directory it is given).
        let link = d.join("var-log");
        std::os::unix::fs::symlink(&var_log, &link).unwrap();
        vectors.push(Vector::start(&bin, &[base, targets], &link, &[("VECTOR_SELF_NODE_NAME", node.as_str())]));
    }
    let start = Instant::now();
    while distinct(&s3, "per-resource") < want && start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let per_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let per_rss: u64 = vectors.iter().map(|v| rss_kib(v.pid())).sum();
    let per_got = distinct(&s3, "per-resource");
    let running = vectors.iter_mut().map(|v| v.running()).filter(|r| *r).count();
    for v in vectors.iter_mut() {
        if v.running() {
            continue;
        }
        let log = v.log_text();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        eprintln!("a per-resource Vector exited: {tail:?}");
    }
    drop(vectors);

    let mib = |k: u64| k as f64 / 1024.0;
    println!("{tenants} tenants on one node, {lines} lines each ({want} lines), 2 cores:");
    println!(
        "  Vector processes: shared 1, per-resource {running}; containers per node (all collectors' pods): shared {shared_containers}, per-resource {per_containers}"
    );
    println!(
        "  Vector RSS: shared {:.0} MiB, per-resource {:.0} MiB in total ({:.1} MiB each): {:.1}x",
        mib(shared_rss),
        mib(per_rss),
        mib(per_rss) / running.max(1) as f64,
        per_rss as f64 / shared_rss.max(1) as f64
    );
    println!(
        "  delivered: shared {shared_got}/{want} in {shared_secs:.1} s, per-resource {per_got}/{want} in {per_secs:.1} s (from start)"
    );
    println!(
        "  render: shared config for {tenants} tenants {shared_ms:.2} ms ({:.0} KiB of config and credentials); {tenants} per-resource renders {per_ms:.2} ms",
        config_bytes as f64 / 1024.0
    );
    drop(heartbeats);
    support::delete_nodes(&client, &[node]).await;
    std::fs::remove_dir_all(&dir).ok();
}
