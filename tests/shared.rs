//! The shared collection mode against the real control plane (Pod Security admission on):
//! tenant namespaces at `baseline` hold only their `MonitoringServices`; the shared collectors
//! run in the admin's namespace and serve every tenant; adding, changing and removing a tenant
//! changes the shared config Secret and never the pods; a tenant whose spec a shared collector
//! cannot serve is Failed by field and loses its part; every edit of a shared child is reverted.
//!
//! The operator here watches every namespace but reconciles only this test's resources (a
//! `--resource-selector`), so other tests' leftovers are not its tenants.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
// The serial guard is held across awaits on purpose: one test at a time.
#![allow(clippy::await_holding_lock)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use monitoring_operator::api::Phase;
use monitoring_operator::controller;
use monitoring_operator::render::shared::SharedSettings;
use serde_json::{Value, json};
use support::*;

const DS: &str = "monitoring-shared-vector-logs";
const CONFIG: &str = "monitoring-shared-vector-logs-config";
const PROMPT: Duration = Duration::from_secs(20);

async fn label_namespace(client: &kube::Client, ns: &str, level: &str) {
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
    Api::<Namespace>::all(client.clone()).patch(ns, &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
}

fn tenant_ms(name: &str, shard: &str, env: Value) -> Value {
    let mut ms = ms_json(
        name,
        json!({"workspace": format!("ws-{name}"), "tenant": name,
            "vectorLogs": {"s3Bucket": format!("bucket-{name}"), "s3Region": "us-east-1", "environmentVariables": env}}),
    );
    ms["metadata"]["labels"] = json!({"shard": shard});
    ms
}

async fn secret_data(secrets: &Api<Secret>) -> BTreeMap<String, String> {
    let s = secrets.get(CONFIG).await.unwrap();
    s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
}

/// Credential keys in the shared Secret, values by key suffix, for tenant namespace `ns`.
async fn wait_credentials(secrets: &Api<Secret>, what: &str, want: impl Fn(&BTreeMap<String, String>) -> bool) {
    eventually(what, PROMPT, || async {
        let data = match secrets.get_opt(CONFIG).await.unwrap() {
            Some(_) => secret_data(secrets).await,
            None => return None,
        };
        want(&data).then_some(())
    })
    .await
}

fn has_value(data: &BTreeMap<String, String>, value: &str) -> bool {
    data.iter().any(|(k, v)| k != "vector.yaml" && v == value)
}

#[tokio::test]
async fn baseline_tenants_run_on_the_shared_collectors() {
    let _serial = serial();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let client = env().client().await;
    let admin = namespace(&client, "shared-sys").await;
    label_namespace(&client, &admin, "privileged").await;
    let a = namespace(&client, "tenant-a").await;
    let b = namespace(&client, "tenant-b").await;
    for ns in [&a, &b] {
        label_namespace(&client, ns, "baseline").await;
    }
    let nodes = create_nodes(&client, &admin, 2).await;
    let mut shared = SharedSettings::new(&admin);
    shared.node_selector = BTreeMap::from([("pool".to_string(), admin.clone())]);
    start_controller_with(controller::Settings {
        resource_selector: Some(format!("shard={admin}")),
        shared: Some(shared),
        ..Default::default()
    })
    .await;

    // A: plain credentials. B: from its own Secret.
    create(
        &client,
        &a,
        tenant_ms("mon", &admin, json!({"AWS_ACCESS_KEY_ID": "AKIA-A", "AWS_SECRET_ACCESS_KEY": "sa"})),
    )
    .await
    .unwrap();
    let b_secrets = Api::<Secret>::namespaced(client.clone(), &b);
    let creds = |id: &str| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": "s3"}, "stringData": {"id": id, "secret": "sb"}})).unwrap()
    };
    b_secrets.create(&PostParams::default(), &creds("AKIA-B")).await.unwrap();
    let from_secret = |k: &str| json!({"valueFrom": {"secretKeyRef": {"name": "s3", "key": k}}});
    create(
        &client,
        &b,
        tenant_ms(
            "mon",
            &admin,
            json!({"AWS_ACCESS_KEY_ID": from_secret("id"), "AWS_SECRET_ACCESS_KEY": from_secret("secret")}),
        ),
    )
    .await
    .unwrap();

    let shared_secrets = Api::<Secret>::namespaced(client.clone(), &admin);
    wait_credentials(&shared_secrets, "both tenants' credentials in the shared Secret", |d| {
        has_value(d, "AKIA-A") && has_value(d, "AKIA-B")
    })
    .await;
    let dss = Api::<DaemonSet>::namespaced(client.clone(), &admin);
    let ds = eventually("the shared DaemonSet", PROMPT, || async { dss.get_opt(DS).await.unwrap() }).await;
    // The shared pods are admitted in the admin's (privileged) namespace, one per node.
    all_pods_ready(&client, &admin, "app.kubernetes.io/instance=monitoring-shared", 2).await;
    for ns in [&a, &b] {
        let ms =
            wait_status(&client, ns, "mon", "Running on the shared collectors", |m| phase(m) == Some(Phase::Running))
                .await;
        let logs = ms.status.unwrap().vector_logs_status.unwrap();
        assert_eq!(logs.workload.as_deref(), Some(format!("{admin}/{DS}").as_str()));
        assert_eq!((logs.replicas, logs.ready_replicas), (2, 2));
        // Nothing that runs or mounts anything in the tenant's namespace.
        let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
        assert!(pods.items.is_empty(), "{ns} has pods");
        let owned = env().kubectl(&[
            "-n",
            ns,
            "get",
            "all,configmaps,secrets,serviceaccounts,roles",
            "-l",
            "app.kubernetes.io/managed-by=monitoring-operator",
            "-o",
            "name",
        ]);
        assert_eq!(owned.trim(), "", "{ns} holds operator children");
    }
    let template = ds.spec.clone().unwrap().template;

    // A third tenant: the config Secret changes, the pods do not.
    let c = namespace(&client, "tenant-c").await;
    label_namespace(&client, &c, "baseline").await;
    // C also collects metrics: the first tenant with metrics brings the shared metrics collector.
    let mut body = tenant_ms("mon", &admin, json!({"AWS_ACCESS_KEY_ID": "AKIA-C", "AWS_SECRET_ACCESS_KEY": "sc"}));
    body["spec"]["vectorMetrics"] = json!({"s3Bucket": "metrics-c", "s3Region": "us-east-1",
        "environmentVariables": {"AWS_ACCESS_KEY_ID": "AKIA-CM", "AWS_SECRET_ACCESS_KEY": "scm"}});
    create(&client, &c, body).await.unwrap();
    wait_credentials(&shared_secrets, "tenant C added", |d| has_value(d, "AKIA-C")).await;
    assert_eq!(
        dss.get(DS).await.unwrap().spec.unwrap().template,
        template,
        "a new tenant never restarts the collectors"
    );
    assert!(secret_data(&shared_secrets).await["vector.yaml"].contains(&format!("includes([\"{c}\"]")));
    let metrics_config = eventually("the shared metrics config", PROMPT, || async {
        shared_secrets.get_opt("monitoring-shared-vector-metrics-config").await.unwrap()
    })
    .await;
    let keys: Vec<String> = metrics_config.data.unwrap().into_keys().collect();
    assert!(keys.contains(&"discovery.json".to_string()) && keys.len() == 4, "{keys:?}");
    all_pods_ready(&client, &admin, "app.kubernetes.io/name=vector-metrics", 2).await;
    let ms =
        wait_status(&client, &c, "mon", "C Running (logs and metrics)", |m| phase(m) == Some(Phase::Running)).await;
    let metrics = ms.status.unwrap().vector_metrics_status.unwrap();
    assert_eq!(metrics.workload.as_deref(), Some(format!("{admin}/monitoring-shared-vector-metrics").as_str()));

    // B rotates its credentials: the shared Secret follows (the Secret watch triggers it).
    let mut rotated = b_secrets.get("s3").await.unwrap();
    rotated.data = None;
    rotated.string_data = Some(BTreeMap::from([("id".into(), "AKIA-B2".into()), ("secret".into(), "sb".into())]));
    b_secrets.replace("s3", &PostParams::default(), &rotated).await.unwrap();
    wait_credentials(&shared_secrets, "B's rotated key", |d| has_value(d, "AKIA-B2") && !has_value(d, "AKIA-B")).await;

    // B asks for something one shared Vector cannot do per tenant: Failed by field, part removed.
    patch_spec(&client, &b, "mon", json!({"vectorLogs": {"environmentVariables": {"RUST_LOG": "debug"}}})).await;
    let ms = wait_status(&client, &b, "mon", "B Failed", |m| phase(m) == Some(Phase::Failed)).await;
    let message = ms.status.unwrap().message.unwrap();
    assert!(message.contains("spec.vectorLogs.environmentVariables.RUST_LOG"), "{message}");
    wait_credentials(&shared_secrets, "B's part removed", |d| !has_value(d, "AKIA-B2")).await;

    // A deleted: its part leaves at once (no resync waited for).
    Api::<monitoring_operator::api::MonitoringServices>::namespaced(client.clone(), &a)
        .delete("mon", &DeleteParams::default())
        .await
        .unwrap();
    wait_credentials(&shared_secrets, "A's part removed after deletion", |d| !has_value(d, "AKIA-A")).await;
    assert!(has_value(&secret_data(&shared_secrets).await, "AKIA-C"), "C untouched");

    // Edits of the shared children are reverted, whatever the verb.
    let evil = "sources:\n  everything:\n    type: file\n    include: [/var/log/pods/*/*/*.log]\n";
    let want = secret_data(&shared_secrets).await["vector.yaml"].clone();
    // stringData: the apiserver writes it into data.
    shared_secrets
        .patch(CONFIG, &PatchParams::default(), &Patch::Merge(json!({"stringData": {"vector.yaml": evil}})))
        .await
        .unwrap();
    eventually("shared config reverted after a merge patch", PROMPT, || async {
        (secret_data(&shared_secrets).await["vector.yaml"] == want).then_some(())
    })
    .await;
    env().kubectl(&["-n", &admin, "set", "image", &format!("daemonset/{DS}"), "vector=evil:latest"]);
    eventually("shared image reverted after kubectl set image", PROMPT, || async {
        let ds = dss.get(DS).await.unwrap();
        (ds.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref() != Some("evil:latest")).then_some(())
    })
    .await;
    delete_nodes(&client, &nodes).await;
}

/// Real Vector 0.57 running the shared config for two tenants on an emulated node (pods are
/// real Pod objects; `kubernetes_logs` against the real apiserver), shipping to a real
/// S3-compatible server (moto), each tenant through its own TCP proxy. Tenant A's S3 is cut
/// off for 60 s while both keep writing: B's lines all arrive, on time, during the outage; A's
/// arrive once its S3 is back (its disk buffer held them). Each proxy saw only its own
/// tenant's access key.
#[tokio::test]
async fn a_dead_tenant_sink_never_delays_another_tenant() {
    let _serial = serial();
    use support::datapath::{Heartbeat, Proxy, S3, Vector, append, cri_lines, is_heartbeat, localise, log_file};
    let Some(bin) = support::vector_bin::vector() else { return };
    let client = env().client().await;
    let na = namespace(&client, "iso-a").await;
    let nb = namespace(&client, "iso-b").await;
    let node = create_nodes(&client, &na, 1).await.remove(0);
    let (dir, var_log) = support::datapath::fresh_node("shared-isolation");
    let s3 = S3::with_bucket("bucket-a");
    s3.create_bucket("bucket-b");
    let (pa, pb) = (Proxy::start(s3.port), Proxy::start(s3.port));

    let tenant = |ns: &str, bucket: &str, key: &str, proxy: &Proxy| {
        let ms: monitoring_operator::api::MonitoringServices = serde_json::from_value(json!({
            "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
            "metadata": {"name": "mon", "namespace": ns, "uid": "u"},
            "spec": {"workspace": format!("ws-{ns}"), "tenant": ns,
                "vectorLogs": {"s3Bucket": bucket, "s3Region": "us-east-1", "s3Prefix": "logs", "batchTimeoutSecs": 1,
                    "s3Endpoint": format!("http://127.0.0.1:{}", proxy.port),
                    "environmentVariables": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "x"}}}}))
        .unwrap();
        let mut d = monitoring_operator::model::Dereferenced::default();
        d.operator.shared_namespace = Some("monitoring-system".into());
        monitoring_operator::model::build(&ms, &d).unwrap().shared.unwrap().tenant
    };
    let (ta, tb) = (tenant(&na, "bucket-a", "AKIATENANTA", &pa), tenant(&nb, "bucket-b", "AKIATENANTB", &pb));
    // The credentials as the config Secret's files.
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let creds = monitoring_operator::render::shared::render(
        &SharedSettings::new("monitoring-system"),
        &[ta.clone(), tb.clone()],
    )
    .unwrap()
    .secrets
    .remove(0);
    for (k, v) in creds.data.unwrap() {
        if k != "vector.yaml" {
            std::fs::write(secrets.join(&k), v.0).unwrap();
        }
    }
    let cfg = monitoring_operator::vector::shared::logs_config(&[ta.clone(), tb.clone()], secrets.to_str().unwrap());
    let mut cfg: Value = serde_json::to_value(&cfg).unwrap();
    localise(&mut cfg, &dir);
    cfg["sources"]["pod_logs"]["kube_config_file"] = json!(env().kubeconfig);
    let file = dir.join("vector.yaml");
    std::fs::write(&file, serde_norway::to_string(&cfg).unwrap()).unwrap();

    let pod = |ns: &str| {
        let (api, node) = (Api::<Pod>::namespaced(client.clone(), ns), node.clone());
        async move {
            let p: Pod = serde_json::from_value(json!({"metadata": {"name": "app", "labels": {"app": "app"}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))
            .unwrap();
            api.create(&PostParams::default(), &p).await.unwrap()
        }
    };
    let (fa, fb) = (log_file(&var_log, &pod(&na).await), log_file(&var_log, &pod(&nb).await));
    let lines = |p: &str, n: usize| (0..n).map(|i| format!("{p}-{i:03}")).collect::<Vec<_>>();
    append(&fa, &cri_lines(&lines("a-before", 20)));
    append(&fb, &cri_lines(&lines("b-before", 20)));
    let mut vector = Vector::start(&bin, &[file], &var_log, &[("VECTOR_SELF_NODE_NAME", node.as_str())]);
    let (_ha, _hb) = (Heartbeat::start(fa.clone()), Heartbeat::start(fb.clone()));
    let messages = |bucket: &str| -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for o in s3.objects(bucket) {
            for r in o.records.iter().filter(|r| !is_heartbeat(r)) {
                *out.entry(r["message"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
            }
        }
        out
    };
    s3.wait_records("bucket-a", 20, Duration::from_secs(90));
    s3.wait_records("bucket-b", 20, Duration::from_secs(90));
    assert_eq!(messages("bucket-a").len(), 20, "A before: {}", vector.log_text());
    assert_eq!(messages("bucket-b").len(), 20, "B before: {}", vector.log_text());

    // A's S3 down for 60 s; both tenants write 10 lines a second.
    pa.set_up(false);
    let start = std::time::Instant::now();
    let mut b_lag = Vec::new();
    for i in 0..60u64 {
        append(&fa, &cri_lines(&lines(&format!("a-during-{i:02}"), 10)));
        append(&fb, &cri_lines(&lines(&format!("b-during-{i:02}"), 10)));
        if i % 15 == 14 {
            // Mid-outage: B's lines written up to 5 s ago are all in its bucket already.
            let seen = messages("bucket-b");
            let due = i.saturating_sub(5);
            let missing = (0..=due)
                .flat_map(|j| lines(&format!("b-during-{j:02}"), 10))
                .filter(|l| !seen.contains_key(l))
                .count();
            b_lag.push((i, missing));
        }
        let next = Duration::from_secs(i + 1);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let b_want: Vec<String> = (0..60).flat_map(|j| lines(&format!("b-during-{j:02}"), 10)).collect();
    let written = std::time::Instant::now();
    let b_done = loop {
        let seen = messages("bucket-b");
        if b_want.iter().all(|l| seen.contains_key(l)) {
            break Some(written.elapsed());
        }
        if written.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let a_during = messages("bucket-a").keys().filter(|m| m.starts_with("a-during")).count();
    assert_eq!(a_during, 0, "A's lines got through its outage: the proxy did not cut ({})", pa.stats());
    eprintln!(
        "B during A's outage: missing lines 5 s after writing at checks {b_lag:?}; all 600 within {b_done:?} of the last write"
    );
    assert!(
        b_lag.iter().all(|(_, missing)| *missing == 0),
        "B was delayed by A's dead sink: {b_lag:?}\n{}",
        vector.log_text()
    );
    assert!(b_done.is_some(), "B incomplete 30 s after the outage's last line\n{}", vector.log_text());

    // A back: its disk buffer held everything.
    pa.set_up(true);
    let a_want: Vec<String> = (0..60).flat_map(|j| lines(&format!("a-during-{j:02}"), 10)).collect();
    s3.wait_records("bucket-a", 620, Duration::from_secs(120));
    let seen = messages("bucket-a");
    let lost: Vec<&String> = a_want.iter().filter(|l| !seen.contains_key(*l)).collect();
    assert!(lost.is_empty(), "A lost {} lines across its outage\n{}", lost.len(), vector.log_text());
    assert!(vector.running());
    // Each tenant's requests were signed with its own key only.
    let keys = |p: &Proxy| p.header_values("authorization").join(" ");
    let (ka, kb) = (keys(&pa), keys(&pb));
    assert!(ka.contains("Credential=AKIATENANTA/") && !ka.contains("AKIATENANTB"), "A's proxy saw: {ka:.300}");
    assert!(kb.contains("Credential=AKIATENANTB/") && !kb.contains("AKIATENANTA"), "B's proxy saw: {kb:.300}");
    // And never each other's records.
    assert!(messages("bucket-b").keys().all(|m| !m.starts_with("a-")));
    assert!(messages("bucket-a").keys().all(|m| !m.starts_with("b-")));
    drop(vector);
    delete_nodes(&client, &[node]).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Back to per-resource collectors: the shared collectors an earlier shared-mode run left
/// (their Secret holds tenants' credentials) are removed at start.
#[tokio::test]
async fn per_resource_mode_removes_leftover_shared_collectors() {
    let _serial = serial();
    let client = env().client().await;
    let admin = namespace(&client, "shared-old").await;
    // As an earlier shared-mode run left them.
    let mut d = monitoring_operator::model::Dereferenced::default();
    d.operator.shared_namespace = Some(admin.clone());
    let ms: monitoring_operator::api::MonitoringServices = serde_json::from_value(json!({
        "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
        "metadata": {"name": "gone", "namespace": "somewhere", "uid": "u"},
        "spec": {"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "b", "s3Region": "r",
            "environmentVariables": {"AWS_ACCESS_KEY_ID": "AKIA-OLD", "AWS_SECRET_ACCESS_KEY": "x"}}}}))
    .unwrap();
    let part = monitoring_operator::model::build(&ms, &d).unwrap().shared.unwrap().tenant;
    let children = monitoring_operator::render::shared::render(&SharedSettings::new(&admin), &[part]).unwrap();
    monitoring_operator::controller::apply::sync(&client, None, &admin, "monitoring-shared", children, false)
        .await
        .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), &admin);
    assert!(secrets.get_opt(CONFIG).await.unwrap().is_some());
    // A resource that is itself named `monitoring-shared`, with a child: not a leftover.
    let own = namespace(&client, "named-shared").await;
    create(&client, &own, ms_json("monitoring-shared", basic_spec())).await.unwrap();
    let own_secrets = Api::<Secret>::namespaced(client.clone(), &own);
    let child: Secret = serde_json::from_value(json!({"metadata": {"name": "monitoring-shared-vector-logs-env",
        "labels": {"app.kubernetes.io/instance": "monitoring-shared", "app.kubernetes.io/managed-by": "monitoring-operator"}},
        "stringData": {"K": "v"}}))
    .unwrap();
    own_secrets.create(&PostParams::default(), &child).await.unwrap();

    // A per-resource operator over every namespace (reconciling none of the resources here).
    start_controller_with(controller::Settings {
        resource_selector: Some("nothing-has=this-label".into()),
        ..Default::default()
    })
    .await;
    eventually("the leftover shared collectors removed", PROMPT, || async {
        let ds = Api::<DaemonSet>::namespaced(client.clone(), &admin).get_opt(DS).await.unwrap();
        (secrets.get_opt(CONFIG).await.unwrap().is_none() && ds.is_none()).then_some(())
    })
    .await;
    assert!(
        own_secrets.get_opt("monitoring-shared-vector-logs-env").await.unwrap().is_some(),
        "the child of a resource named monitoring-shared was taken for a leftover"
    );
}

/// One test at a time: a per-resource operator over every namespace removes every shared
/// collector it finds, and the data-path test's timing must not share 2 cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Real Vector 0.57 running the shared metrics config with the shared sidecar's file for two
/// tenants' pods on one node: each tenant's bucket gets exactly its own targets' series,
/// stamped with its own identity, and nothing of the other's. Tenant A also remote-writes to
/// Prometheus (behind a proxy that shows what was sent) with a bearer token from its own
/// Secret, which reaches the shared collector as a file of its config Secret: only A's series
/// arrive there, as A, with A's token.
#[tokio::test]
async fn shared_metrics_reach_each_tenant_and_only_it() {
    use support::datapath::{Prometheus, Proxy, S3, Target, Vector, localise};
    let _serial = serial();
    let Some(bin) = support::vector_bin::vector() else { return };
    let dir = support::datapath::fresh_dir("shared-metrics");
    std::fs::create_dir_all(dir.join("var-log")).unwrap();
    let s3 = S3::with_bucket("metrics-a");
    s3.create_bucket("metrics-b");
    let prometheus = Prometheus::start(&dir);
    let proxy = Proxy::start(prometheus.port);
    let part = |ns: &str, bucket: &str, remote_write: Option<Value>| {
        let mut metrics = json!({"s3Bucket": bucket, "s3Region": "us-east-1", "s3Endpoint": s3.endpoint(),
            "batchTimeoutSecs": 1, "scrapeInterval": 2, "scrapeTimeout": 1,
            "environmentVariables": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}});
        if let Some(rw) = remote_write {
            metrics["remoteWrite"] = rw;
        }
        let ms: monitoring_operator::api::MonitoringServices = serde_json::from_value(json!({
            "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
            "metadata": {"name": "mon", "namespace": ns, "uid": "u"},
            "spec": {"workspace": format!("ws-{ns}"), "tenant": ns, "vectorMetrics": metrics}}))
        .unwrap();
        let mut d = monitoring_operator::model::Dereferenced::default();
        d.operator.shared_namespace = Some("monitoring-system".into());
        let info =
            monitoring_operator::model::SecretInfo { resource_version: "1".into(), keys: ["token".into()].into() };
        d.secrets.insert("thanos".into(), Some(info));
        d.secret_values.insert("thanos".into(), [("token".to_string(), format!("token-{ns}"))].into());
        monitoring_operator::model::build(&ms, &d).unwrap().shared.unwrap().tenant
    };
    let rw = json!({"endpoint": format!("http://127.0.0.1:{}/api/v1/write", proxy.port),
                    "auth": {"bearerTokenSecretRef": {"name": "thanos", "key": "token"}}});
    let parts = [part("team-a", "metrics-a", Some(rw)), part("team-b", "metrics-b", None)];
    let children =
        monitoring_operator::render::shared::render(&SharedSettings::new("monitoring-system"), &parts).unwrap();
    let data: BTreeMap<String, Vec<u8>> =
        children.secrets[0].data.clone().unwrap().into_iter().map(|(k, v)| (k, v.0)).collect();
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (k, v) in &data {
        std::fs::write(secrets.join(k), v).unwrap();
    }
    let mut cfg: Value = serde_norway::from_slice(&data["vector.yaml"]).unwrap();
    cfg["secret"]["tenants"]["path"] = json!(secrets);
    localise(&mut cfg, &dir);
    let base = dir.join("vector.yaml");
    std::fs::write(&base, serde_norway::to_string(&cfg).unwrap()).unwrap();

    let (ta, tb) = (Target::start("a_requests_total"), Target::start("b_requests_total"));
    let pod = |ns: &str, name: &str, port: u16| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string()}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1"}}))
        .unwrap()
    };
    let pods = [pod("team-a", "api", ta.port), pod("team-b", "web", tb.port)];
    let settings: monitoring_operator::discover::Settings = serde_json::from_slice(&data["discovery.json"]).unwrap();
    let targets = dir.join("targets.yaml");
    std::fs::write(&targets, monitoring_operator::vector::discovered(pods.iter(), &settings, "node-a").unwrap())
        .unwrap();
    let mut vector =
        Vector::start(&bin, &[base, targets], &dir.join("var-log"), &[("VECTOR_SELF_NODE_NAME", "node-a")]);

    for (bucket, metric, other, ns) in [
        ("metrics-a", "a_requests_total", "b_requests_total", "team-a"),
        ("metrics-b", "b_requests_total", "a_requests_total", "team-b"),
    ] {
        let objects = s3.wait_records(bucket, 1, Duration::from_secs(60));
        let records: Vec<&Value> = objects.iter().flat_map(|o| &o.records).collect();
        assert!(!records.is_empty(), "{bucket} got nothing:\n{}", vector.log_text());
        for r in &records {
            assert_eq!(r["name"], metric, "{bucket} got {r}");
            assert_ne!(r["name"], other);
            assert_eq!(
                (r["tags"]["namespace"].as_str(), r["tags"]["workspace"].as_str()),
                (Some(ns), Some(format!("ws-{ns}").as_str())),
                "{r}"
            );
            assert_eq!(r["workspace"], format!("ws-{ns}"), "{r}");
        }
    }
    // A's remote write: its series only, as A, with A's own token.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let series = loop {
        let s = prometheus.query(r#"a_requests_total{tenant="team-a",workspace="ws-team-a"}"#);
        if !s.is_empty() || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(!series.is_empty(), "nothing in Prometheus; proxy: {}\nvector:\n{}", proxy.stats(), vector.log_text());
    assert!(prometheus.query("b_requests_total").is_empty(), "B's series reached A's remote write");
    let tenants = proxy.header_values("x-scope-orgid");
    assert!(!tenants.is_empty() && tenants.iter().all(|t| t == "team-a"), "X-Scope-OrgID sent: {tenants:?}");
    let auth = proxy.header_values("authorization");
    assert!(!auth.is_empty() && auth.iter().all(|a| a == "Bearer token-team-a"), "Authorization sent: {auth:?}");
    assert!(!String::from_utf8_lossy(&data["vector.yaml"]).contains("token-team"), "a token in the config");
    assert!(vector.running(), "{}", vector.log_text());
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}

/// Flow health of the shared collectors, end to end: the operator in shared mode renders the
/// shared config for two tenants; real Vector 0.57 runs that config (taken from the operator's
/// Secret on the apiserver) on an emulated node, with the real sidecar (pod watch on the
/// apiserver, flow summary of the local Vector) beside it, and a collector pod object in the
/// admin namespace standing for the pod (no kubelet here: the test plays its IP). Tenant A's S3
/// is unreachable: A's resource says `FlowHealthy=False SinkStalled` naming only its own sink,
/// while B's says `Healthy`; A's S3 back, A turns healthy too.
#[tokio::test]
async fn each_tenant_reads_its_own_flow_verdict_from_the_shared_collector() {
    use k8s_openapi::api::core::v1::Pod;
    use monitoring_operator::api::MonitoringServices;
    use support::datapath::{Heartbeat, Proxy, S3, Vector, append, cri_lines, free_port, localise, log_file};
    let _serial = serial();
    let Some(bin) = support::vector_bin::vector() else { return };
    let client = env().client().await;
    let admin = namespace(&client, "shared-flow").await;
    let (a, b) = (namespace(&client, "flow-a").await, namespace(&client, "flow-b").await);
    let node = create_nodes(&client, &admin, 1).await.remove(0);
    let s3 = S3::with_bucket("bucket-a");
    s3.create_bucket("bucket-b");
    let (pa, pb) = (Proxy::start(s3.port), Proxy::start(s3.port));
    pa.set_up(false);
    let flow_port = free_port();
    let mut shared = SharedSettings::new(&admin);
    // No Node matches: the DaemonSet controller makes no pods; the test's pod object stands in.
    shared.node_selector = BTreeMap::from([("pool".to_string(), "nowhere".to_string())]);
    shared.flow_window_secs = 5;
    start_controller_with(controller::Settings {
        resource_selector: Some(format!("shard={admin}")),
        shared: Some(shared),
        flow_interval: Some(Duration::from_secs(1)),
        flow_port,
        ..Default::default()
    })
    .await;
    for (ns, proxy) in [(&a, &pa), (&b, &pb)] {
        let mut ms =
            tenant_ms("mon", &admin, json!({"AWS_ACCESS_KEY_ID": format!("AKIA-{ns}"), "AWS_SECRET_ACCESS_KEY": "x"}));
        ms["spec"]["vectorLogs"]["s3Bucket"] = json!(if ns == &a { "bucket-a" } else { "bucket-b" });
        ms["spec"]["vectorLogs"]["s3Endpoint"] = json!(format!("http://127.0.0.1:{}", proxy.port));
        ms["spec"]["vectorLogs"]["batchTimeoutSecs"] = json!(1);
        create(&client, ns, ms).await.unwrap();
    }
    let secrets = Api::<Secret>::namespaced(client.clone(), &admin);
    wait_credentials(&secrets, "both tenants in the shared Secret", |d| {
        has_value(d, &format!("AKIA-{a}")) && has_value(d, &format!("AKIA-{b}"))
    })
    .await;

    // The Secret as the kubelet would mount it, the config pointed at it and at this machine.
    let (dir, var_log) = support::datapath::fresh_node("shared-flow");
    let mounted = dir.join("secret");
    std::fs::create_dir_all(&mounted).unwrap();
    let data = secret_data(&secrets).await;
    for (k, v) in &data {
        std::fs::write(mounted.join(k), v).unwrap();
    }
    let mut cfg: Value = serde_norway::from_str(&data["vector.yaml"]).unwrap();
    localise(&mut cfg, &dir);
    cfg["sources"]["pod_logs"]["kube_config_file"] = json!(env().kubeconfig);
    cfg["secret"]["tenants"]["path"] = json!(mounted);
    let file = dir.join("vector.yaml");
    std::fs::write(&file, serde_norway::to_string(&cfg).unwrap()).unwrap();

    let mut files = Vec::new();
    for ns in [&a, &b] {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "app", "labels": {"app": "app"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}))
        .unwrap();
        let p = Api::<Pod>::namespaced(client.clone(), ns).create(&PostParams::default(), &p).await.unwrap();
        let f = log_file(&var_log, &p);
        append(&f, &cri_lines(&(0..20).map(|i| format!("{ns}-{i}")).collect::<Vec<_>>()));
        files.push(f);
    }
    let mut vector = Vector::start(&bin, &[file], &var_log, &[("VECTOR_SELF_NODE_NAME", node.as_str())]);
    let _beats: Vec<Heartbeat> = files.iter().cloned().map(Heartbeat::start).collect();

    // The sidecar, from the settings the operator rendered (flow only: no output file).
    let settings: monitoring_operator::discover::Settings = serde_json::from_str(&data["discovery.json"]).unwrap();
    let (selected_tx, selected_rx) = tokio::sync::watch::channel(Default::default());
    let (watch_client, watch_node) = (client.clone(), node.clone());
    tokio::spawn(async move {
        monitoring_operator::sidecar::watch(watch_client, &watch_node, &settings, None, selected_tx).await
    });
    let exporter = cfg["sinks"]["vector_metrics_exporter"]["address"].as_str().unwrap().to_string();
    tokio::spawn(monitoring_operator::sidecar::flow::run(
        format!("http://{exporter}/metrics"),
        format!("127.0.0.1:{flow_port}").parse().unwrap(),
        Duration::from_secs(5),
        Duration::from_secs(1),
        selected_rx,
    ));
    // The shared collector pod, without the DaemonSet's selector label (the DaemonSet
    // controller would adopt and delete it).
    let pods = Api::<Pod>::namespaced(client.clone(), &admin);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "monitoring-shared-vector-logs-x1", "labels": {
            "app.kubernetes.io/instance": "monitoring-shared", "app.kubernetes.io/component": "logs",
            "app.kubernetes.io/managed-by": "monitoring-operator"}},
        "spec": {"nodeName": node, "containers": [{"name": "vector", "image": "v"}, {"name": "discover", "image": "d"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = json!({"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}});
    pods.patch_status("monitoring-shared-vector-logs-x1", &PatchParams::default(), &Patch::Merge(running))
        .await
        .unwrap();
    let since = std::time::Instant::now();

    let flow = |m: &MonitoringServices| {
        m.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "FlowHealthy").cloned())
    };
    let (ida, idb) = (
        monitoring_operator::model::shared::tenant_id(&a, "mon"),
        monitoring_operator::model::shared::tenant_id(&b, "mon"),
    );
    let verdicts = || async {
        let (ma, mb) = (get_ms(&client, &a, "mon").await, get_ms(&client, &b, "mon").await);
        (flow(&ma), flow(&mb))
    };
    // Polled by hand: a timeout says what each side showed and what the sidecar answered.
    let (fa, fb) = loop {
        let (fa, fb) = verdicts().await;
        if fa.as_ref().is_some_and(|c| c.reason == "SinkStalled") && fb.as_ref().is_some_and(|c| c.reason == "Healthy")
        {
            break (fa.unwrap(), fb.unwrap());
        }
        if since.elapsed() > LONG {
            // Async: the sidecar serving /flow runs on this test's own (single-threaded) runtime.
            let url = format!("http://127.0.0.1:{flow_port}/flow");
            let http = monitoring_operator::http_get::client();
            let body = monitoring_operator::http_get::body(&http, &url, Duration::from_secs(2), 1 << 20).await;
            let summary = body.map(|b| String::from_utf8_lossy(&b).to_string());
            panic!(
                "after {LONG:?}: A {fa:?}\nB {fb:?}\n/flow: {summary:?}\nA's proxy: {}\nvector:\n{}",
                pa.stats(),
                vector.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("shared flow: A SinkStalled and B Healthy in status {:?} after the pod ran", since.elapsed());
    assert_eq!((fa.status.as_str(), fb.status.as_str()), ("False", "True"));
    assert!(fa.message.contains(&format!("sink {ida}_s3_archive")), "A's message: {}", fa.message);
    assert!(!fa.message.contains(&idb), "A's message names B's components: {}", fa.message);
    assert!(!fb.message.contains(&ida), "B's message names A's components: {}", fb.message);
    let b_flow = get_ms(&client, &b, "mon").await.status.unwrap().vector_logs_status.unwrap().flow.unwrap();
    assert_eq!((b_flow.pods_reporting, b_flow.pods), (1, 1));

    // A's S3 back: its disk buffer drains and its verdict turns healthy.
    pa.set_up(true);
    let back = std::time::Instant::now();
    eventually("A Healthy once its S3 is back", LONG, || async {
        verdicts().await.0.is_some_and(|c| c.reason == "Healthy").then_some(())
    })
    .await;
    eprintln!("shared flow: A Healthy in status {:?} after its S3 came back", back.elapsed());
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    // B's data went only to B: each proxy saw its own tenant's key.
    let keys = |p: &Proxy| p.header_values("authorization").join(" ");
    assert!(!keys(&pb).contains(&format!("AKIA-{a}")));
    delete_nodes(&client, &[node]).await;
    std::fs::remove_dir_all(&dir).ok();
}
