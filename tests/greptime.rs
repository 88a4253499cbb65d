//! GreptimeDB integration. No GreptimeDB server can be installed on the build machines, so
//! its HTTP pipeline API is played by a small local server implementing the documented
//! request/response shapes (`GET`/`POST /v1/pipelines/{name}`); everything on the Kubernetes
//! side (the GreptimeDBCluster CRD and objects, the operator, the children) is real.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use monitoring_operator::api::Phase;
use monitoring_operator::controller;
use monitoring_operator::greptime;
use monitoring_operator::greptime::client::PipelineClient;
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
struct FakeGreptime {
    pipelines: BTreeMap<String, String>,
    requests: Vec<(String, String, String)>, // method, path, content-type
}

/// Serve the pipeline API on 127.0.0.1; returns the base URL and the shared state.
async fn fake_greptime() -> (String, Arc<Mutex<FakeGreptime>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(FakeGreptime::default()));
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let st = st.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Read headers, then Content-Length bytes of body.
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        while buf.len() < i + 4 + len {
                            let n = sock.read(&mut chunk).await.unwrap();
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string());
                    }
                };
                let mut first = head.lines().next().unwrap().split(' ');
                let (method, path) = (first.next().unwrap().to_string(), first.next().unwrap().to_string());
                let ctype = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
                    .unwrap_or_default();
                let (code, reply) = {
                    let mut s = st.lock().unwrap();
                    s.requests.push((method.clone(), path.clone(), ctype));
                    let name = path.strip_prefix("/v1/pipelines/").unwrap_or("").to_string();
                    match (method.as_str(), s.pipelines.contains_key(&name)) {
                        ("GET", true) => (
                            200,
                            json!({"pipelines": [{"name": name, "version": "2026-11-22 00:00:00.000000000", "pipeline": s.pipelines[&name]}], "execution_time_ms": 1}),
                        ),
                        ("GET", false) => {
                            (404, json!({"error": format!("Pipeline not found, name: {name}"), "execution_time_ms": 1}))
                        }
                        ("POST", _) if !name.is_empty() && !body.is_empty() => {
                            s.pipelines.insert(name.clone(), body);
                            (
                                200,
                                json!({"pipelines": [{"name": name, "version": "2026-11-22 00:00:00.000000000"}], "execution_time_ms": 2}),
                            )
                        }
                        _ => (400, json!({"error": "bad request"})),
                    }
                };
                let body = reply.to_string();
                let resp = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (base, state)
}

#[tokio::test]
async fn pipeline_is_created_once_then_left_alone() {
    let (base, state) = fake_greptime().await;
    let client = PipelineClient::default();
    assert!(client.ensure_pipeline(&base).await.unwrap(), "first call creates");
    assert!(!client.ensure_pipeline(&base).await.unwrap(), "second call finds it");
    {
        let s = state.lock().unwrap();
        let path = format!("/v1/pipelines/{}", greptime::pipeline_name());
        let calls: Vec<(&str, &str)> = s.requests.iter().map(|(m, p, _)| (m.as_str(), p.as_str())).collect();
        assert_eq!(calls, vec![("GET", path.as_str()), ("POST", path.as_str()), ("GET", path.as_str())]);
        assert_eq!(s.requests[1].2, "application/x-yaml");
        assert_eq!(s.pipelines[&greptime::pipeline_name()], greptime::PIPELINE);
    }
    // An unreachable GreptimeDB is an error, not a hang.
    assert!(client.ensure_pipeline("http://127.0.0.1:1").await.is_err());
}

/// The GreptimeDBCluster CRD (greptime.io/v1alpha1, as the GreptimeDB operator installs it:
/// same group, kind, plural, short name, scope and status subresource; the schema here keeps
/// unknown fields instead of listing the operator's full spec).
fn greptime_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "greptimedbclusters.greptime.io"},
        "spec": {"group": "greptime.io", "scope": "Namespaced",
            "names": {"kind": "GreptimeDBCluster", "plural": "greptimedbclusters", "singular": "greptimedbcluster", "shortNames": ["gtc"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"httpPort": {"type": "integer"}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"clusterPhase": {"type": "string"}}}}}}}]}
    })
}

#[tokio::test]
async fn greptimedb_cluster_discovered_later_completes_the_integration() {
    let client = env().client().await;
    let crd_file = std::env::temp_dir().join(format!("greptime-crd-{}.json", std::process::id()));
    std::fs::write(&crd_file, greptime_crd().to_string()).unwrap();
    env().kubectl(&["apply", "--server-side", "-f", crd_file.to_str().unwrap()]);
    env().kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "crd/greptimedbclusters.greptime.io"]);

    let ns = namespace(&client, "gt").await;
    let gns = namespace(&client, "greptime-system").await;
    let (base, state) = fake_greptime().await;
    start_controller_with(controller::Settings {
        namespace: Some(ns.clone()),
        greptime_url: Some(base),
        ..Default::default()
    })
    .await;
    let nodes = create_nodes(&client, &ns, 1).await;

    let mut spec = basic_spec();
    spec["nodeSelector"] = json!({"pool": ns.clone()});
    spec["greptimeRef"] =
        json!({"name": "greptime-prod", "namespace": gns.clone(), "database": "analytics", "logsTable": "query_logs"});
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();
    for sel in ["app.kubernetes.io/name=vector-logs", "app.kubernetes.io/name=vector-metrics"] {
        all_pods_ready(&client, &ns, sel, 1).await;
    }
    // Collectors ready, archive running, GreptimeDB missing: Degraded, and says why.
    let ms =
        wait_status(&client, &ns, "mon", "Degraded without GreptimeDB", |m| phase(m) == Some(Phase::Degraded)).await;
    let st = ms.status.unwrap();
    let cond = st.conditions.iter().find(|c| c.type_ == "GreptimeDBReady").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "ClusterNotFound"));
    assert!(cond.message.contains("S3 archival continues"));
    assert!(!st.greptimedb_status.as_ref().unwrap().discovered);
    assert!(st.vector_logs_status.unwrap().ready);
    let logs_cfg =
        config_map(&client, &ns, "mon-vector-logs-config").await.unwrap().data.unwrap()["vector.yaml"].clone();
    assert!(logs_cfg.contains("s3_archive") && !logs_cfg.contains("greptimedb_logs"), "{logs_cfg}");

    // The cluster appears and becomes ready: the operator notices through its watch (well
    // before its 30 s retry), creates the pipeline and adds the real-time sinks.
    let ar = greptime::cluster_resource();
    let clusters: Api<DynamicObject> = Api::namespaced_with(client.clone(), &gns, &ar);
    let obj: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "greptime.io/v1alpha1", "kind": "GreptimeDBCluster",
        "metadata": {"name": "greptime-prod"}, "spec": {"httpPort": 4000}}))
        .unwrap();
    clusters.create(&PostParams::default(), &obj).await.unwrap();
    let set_phase = |phase: &'static str| {
        let clusters = clusters.clone();
        async move {
            let status = Patch::Merge(json!({"status": {"clusterPhase": phase}}));
            clusters.patch_status("greptime-prod", &PatchParams::default(), &status).await.unwrap();
        }
    };
    set_phase("Running").await;
    let started = std::time::Instant::now();
    let ms = wait_status(&client, &ns, "mon", "GreptimeDB integration ready", |m| {
        m.status.as_ref().unwrap().conditions.iter().any(|c| c.type_ == "GreptimeDBReady" && c.status == "True")
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}: the watch did not fire", started.elapsed());
    let g = ms.status.unwrap().greptimedb_status.unwrap();
    assert_eq!(
        serde_json::to_value(&g).unwrap(),
        json!({"discovered": true, "clusterName": "greptime-prod", "clusterNamespace": gns, "pipelineReady": true,
               "endpoint": format!("greptime-prod-frontend.{gns}.svc:4000"), "database": "analytics"})
    );
    assert!(state.lock().unwrap().pipelines.contains_key(&greptime::pipeline_name()));
    let logs_cfg =
        config_map(&client, &ns, "mon-vector-logs-config").await.unwrap().data.unwrap()["vector.yaml"].clone();
    assert!(logs_cfg.contains("type: greptimedb_logs") && logs_cfg.contains("table: query_logs"), "{logs_cfg}");
    let metrics_cfg =
        config_map(&client, &ns, "mon-vector-metrics-config").await.unwrap().data.unwrap()["vector.yaml"].clone();
    assert!(metrics_cfg.contains(&format!("greptime-prod-frontend.{gns}.svc:4000/v1/prometheus/write?db=analytics")));

    // The new config rolls the collectors; once the new pods are ready everything is Running.
    eventually("Running after the rollout", Duration::from_secs(60), || async {
        for sel in ["app.kubernetes.io/name=vector-logs", "app.kubernetes.io/name=vector-metrics"] {
            set_pods_ready(&client, &ns, sel, true, 10).await;
        }
        let ms = get_ms(&client, &ns, "mon").await;
        (phase(&ms) == Some(Phase::Running)).then_some(())
    })
    .await;

    // GreptimeDB trouble later: reported, but the collectors' config (and pods) stay as they are.
    let configs = || async {
        let mut out = Vec::new();
        for cm in ["mon-vector-logs-config", "mon-vector-metrics-config"] {
            out.push(config_map(&client, &ns, cm).await.unwrap().data.unwrap()["vector.yaml"].clone());
        }
        out
    };
    let before = configs().await;
    set_phase("Error").await;
    // Wait for the condition itself: the phase alone can be Degraded for another reason (a
    // collector pod the DaemonSet controller is still replacing after the rollout).
    let ms = wait_status(&client, &ns, "mon", "GreptimeDB error reported", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "GreptimeDBReady" && c.reason == "ClusterNotReady"))
    })
    .await;
    assert_eq!(phase(&ms), Some(Phase::Degraded));
    let after = configs().await;
    assert_eq!(before, after, "a GreptimeDB outage rewrote the collectors' config");
    delete_nodes(&client, &nodes).await;
}
