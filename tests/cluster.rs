//! Integration tests against a real kube-apiserver + etcd + kube-controller-manager
//! (garbage collector, namespace, DaemonSet controllers) started by the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use monitoring_operator::api::{MonitoringServices, Phase};
use monitoring_operator::controller::{self, Context};
use monitoring_operator::model;
use monitoring_operator::render::{self, Kind};
use serde_json::{Value, json};
use support::*;

async fn create_raw(client: &Client, ns: &str, body: Value) -> kube::Result<Value> {
    let ar = kube::api::ApiResource::erase::<MonitoringServices>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: kube::api::DynamicObject = serde_json::from_value(body).unwrap();
    api.create(&PostParams::default(), &obj).await.map(|o| serde_json::to_value(o).unwrap())
}

/// Names of the namespaced children carrying the CR's instance label.
async fn child_names(client: &Client, ns: &str, name: &str) -> BTreeSet<(Kind, String)> {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"));
    let mut out = BTreeSet::new();
    macro_rules! collect {
        ($t:ty, $k:expr) => {
            for o in Api::<$t>::namespaced(client.clone(), ns).list(&lp).await.unwrap() {
                out.insert(($k, o.name_any()));
            }
        };
    }
    collect!(ServiceAccount, Kind::ServiceAccount);
    collect!(Role, Kind::Role);
    collect!(RoleBinding, Kind::RoleBinding);
    collect!(k8s_openapi::api::core::v1::Secret, Kind::Secret);
    collect!(ConfigMap, Kind::ConfigMap);
    collect!(DaemonSet, Kind::DaemonSet);
    let clp = ListParams::default().labels(&format!("e6data.io/owner-namespace={ns},e6data.io/owner-name={name}"));
    for o in Api::<ClusterRole>::all(client.clone()).list(&clp).await.unwrap() {
        out.insert((Kind::ClusterRole, o.name_any()));
    }
    for o in Api::<ClusterRoleBinding>::all(client.clone()).list(&clp).await.unwrap() {
        out.insert((Kind::ClusterRoleBinding, o.name_any()));
    }
    out
}

fn loki(loki: Value) -> Value {
    json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "loki": loki}})
}

fn rendered(ms: &MonitoringServices) -> Vec<render::Child> {
    render::render(&model::build(ms, &model::Dereferenced::default()).unwrap(), None).unwrap().to_list().unwrap()
}

#[tokio::test]
async fn crd_is_served_with_short_name_and_columns() {
    let out = env().kubectl(&["api-resources", "--api-group=e6data.io", "-o", "wide"]);
    assert!(out.contains("monitoringservices") && out.contains(" ms ") && out.contains("v1alpha2"), "{out}");
    // The OpenAPI document that `explain` reads is published a moment after the CRD.
    let explain = eventually("kubectl explain", SHORT, || async {
        env().kubectl_result(&["explain", "ms.spec.vectorLogs.s3Partition"]).ok()
    })
    .await;
    assert!(explain.contains("Time partitioning"), "{explain}");
}

/// Every seed example of section 4 applies unchanged with kubectl and gets exactly the
/// children the renderer promises, with owner references and the seed's labels.
#[tokio::test]
async fn seed_examples_apply_unchanged_and_get_their_children() {
    let client = env().client().await;
    for ns in ["workspace-prod", "e6-monitoring"] {
        support::create_namespace(&client, ns).await;
        start_controller(ns).await;
    }
    let examples = support::repo().join("examples/seed");
    for (file, ns) in [
        ("seed-4.1-0.yaml", "workspace-prod"),
        ("seed-4.2-0.yaml", "workspace-prod"),
        ("seed-4.2-1.yaml", "workspace-prod"),
        ("seed-4.2-2.yaml", "workspace-prod"),
        ("seed-4.3-0.yaml", "workspace-prod"),
        ("seed-4.4-0.yaml", "workspace-prod"),
        ("seed-4.5-0.yaml", "e6-monitoring"),
    ] {
        env().kubectl(&["apply", "-f", examples.join(file).to_str().unwrap()]);
        if file == "seed-4.2-1.yaml" {
            continue; // the Secret of 4.2's second variant
        }
        let ms = get_ms(&client, ns, "monitoring").await;
        let want: BTreeSet<(Kind, String)> = rendered(&ms).iter().map(|c| (c.kind, c.name().to_string())).collect();
        eventually(&format!("{file}: children {want:?}"), LONG, || async {
            (child_names(&client, ns, "monitoring").await == want).then_some(())
        })
        .await;
        let ms = wait_status(&client, ns, "monitoring", "status", |m| m.status.is_some()).await;
        assert_ne!(phase(&ms), Some(Phase::Failed), "{file}: {:?}", ms.status);
        // Config content is exactly what the renderer produces for the stored CR.
        for child in rendered(&ms).iter().filter(|c| c.kind == Kind::ConfigMap) {
            let cm = config_map(&client, ns, child.name()).await.unwrap();
            assert_eq!(serde_json::to_value(cm.data.as_ref().unwrap()).unwrap(), child.object.data["data"], "{file}");
            let owner = &cm.owner_references()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
                ("MonitoringServices", ms.uid().unwrap().as_str(), Some(true))
            );
        }
        let ds = Api::<DaemonSet>::namespaced(client.clone(), ns)
            .list(&ListParams::default().labels("app.kubernetes.io/instance=monitoring"))
            .await
            .unwrap();
        for d in ds {
            assert_eq!(d.owner_references()[0].uid, ms.uid().unwrap());
            let app = d.labels()["app.kubernetes.io/name"].clone();
            assert!(app == "vector-logs" || app == "vector-metrics");
        }
    }
    // 4.5 is cluster-scoped RBAC; the seed's command lists it by the instance label.
    let out = env().kubectl(&[
        "get",
        "ds",
        "-n",
        "e6-monitoring",
        "-l",
        "app.kubernetes.io/instance=monitoring",
        "-o",
        "name",
    ]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get("monitoringservices:e6-monitoring:monitoring-vector")
        .await
        .unwrap();
    assert_eq!(crb.subjects.unwrap()[0].name, "monitoring-vector");
}

#[tokio::test]
async fn invalid_resources_are_rejected_by_the_apiserver() {
    let client = env().client().await;
    let ns = namespace(&client, "invalid").await;
    let cases = [
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Region": "us-east-1"}}),
            "s3Bucket and s3Region are required when vectorLogs is enabled",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorMetrics": {"s3Bucket": "bkt", "s3Region": "r", "scrapeInterval": 10, "scrapeTimeout": 10}}),
            "scrapeTimeout must be less than scrapeInterval",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "compression": "rar"}}),
            "compression",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "s3Endpoint": "minio:9000"}}),
            "s3Endpoint must be an absolute",
        ),
        (json!({"workspace": "bad workspace", "tenant": "t"}), "spec.workspace"),
        (json!({"tenant": "t"}), "spec.workspace: Required value"),
        (json!({"workspace": "w", "tenant": "t", "cloud": "IBM"}), "spec.cloud"),
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "s3Partition": "week"}}),
            "s3Partition",
        ),
        // Pass the CRD's pattern, fail the apiserver's quantity parser (once a 500 inside the
        // DaemonSet dry run, retried forever): refused on create by CEL.
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "resources": {"cpu": "1.2.3"}}}),
            "must be a non-negative Kubernetes quantity",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorMetrics": {"s3Bucket": "bkt", "s3Region": "r", "resources": {"memory": "5Ki5"}}}),
            "must be a non-negative Kubernetes quantity",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorLogs": {"s3Bucket": "bkt", "s3Region": "r", "resources": {"memory": "1e"}}}),
            "must be a non-negative Kubernetes quantity",
        ),
        // Outputs (issue 12): URLs, one auth kind, constant bounded labels, cert with key.
        (loki(json!({"endpoint": "loki:3100"})), "loki.endpoint must be an absolute"),
        (
            loki(
                json!({"endpoint": "http://l", "auth": {"basic": {"username": "u", "passwordSecretRef": {"name": "s", "key": "k"}},
                                                  "bearerTokenSecretRef": {"name": "s", "key": "t"}}}),
            ),
            "auth needs exactly one of basic and bearerTokenSecretRef",
        ),
        (loki(json!({"endpoint": "http://l", "extraLabels": {"trace-id": "x"}})), "Loki label names are"),
        (loki(json!({"endpoint": "http://l", "extraLabels": {"pod": "x"}})), "set on every stream already"),
        (loki(json!({"endpoint": "http://l", "extraLabels": {"host": "{{ host }}"}})), "label values are literal"),
        (
            loki(json!({"endpoint": "http://l", "tls": {"certSecretRef": {"name": "s", "key": "tls.crt"}}})),
            "certSecretRef and keySecretRef go together",
        ),
        (
            loki(json!({"endpoint": "http://l", "auth": {"bearerTokenSecretRef": {"name": "Not_A_Name", "key": "t"}}})),
            "bearerTokenSecretRef.name in body should match",
        ),
        (
            json!({"workspace": "w", "tenant": "t", "vectorMetrics": {"s3Bucket": "b", "s3Region": "r", "remoteWrite": {"endpoint": "thanos/api/v1/receive"}}}),
            "remoteWrite.endpoint must be an absolute",
        ),
    ];
    for (spec, expect) in cases {
        let err = create_raw(&client, &ns, ms_json("bad", spec.clone())).await.expect_err(&format!("{spec} accepted"));
        let kube::Error::Api(e) = err else { panic!("{err}") };
        assert_eq!(e.code, 422, "{spec}: {}", e.message);
        assert!(e.message.contains(expect), "{spec}: {:?} lacks {expect:?}", e.message);
    }
    let long = "m".repeat(48);
    let err = create(&client, &ns, ms_json(&long, basic_spec())).await.unwrap_err();
    assert!(err.to_string().contains("at most 47 characters"), "{err}");
}

/// A spec the schema accepts but that cannot work: Failed naming the field, and whatever was
/// running stays exactly as it was.
#[tokio::test]
async fn semantic_errors_fail_and_leave_children_untouched() {
    let client = env().client().await;
    let ns = namespace(&client, "semantic").await;
    start_controller(&ns).await;
    create(&client, &ns, ms_json("mon", basic_spec())).await.unwrap();
    let cm_name = "mon-vector-logs-config";
    let before = eventually("logs config", SHORT, || async { config_map(&client, &ns, cm_name).await }).await;
    wait_status(&client, &ns, "mon", "first status", |m| m.status.is_some()).await;

    patch_spec(&client, &ns, "mon", json!({"vectorLogs": {"includeNamespaces": ["someone-else"]}})).await;
    let ms = wait_status(&client, &ns, "mon", "Failed", |m| phase(m) == Some(Phase::Failed)).await;
    let st = ms.status.unwrap();
    assert!(st.message.as_deref().unwrap().contains("spec.vectorLogs.includeNamespaces"), "{:?}", st.message);
    let cond = st.conditions.iter().find(|c| c.type_ == "SpecValid").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InvalidSpec"));
    let after = config_map(&client, &ns, cm_name).await.unwrap();
    assert_eq!(before.resource_version(), after.resource_version(), "config was touched by an invalid spec");

    // Variables that change how Vector itself runs (which config it loads, a proxy for every
    // request, code injection): Failed naming the variable, nothing applied.
    for name in ["VECTOR_CONFIG_DIR", "VECTOR_WATCH_CONFIG", "HTTPS_PROXY", "LD_PRELOAD"] {
        let field = format!("spec.vectorLogs.environmentVariables.{name}");
        patch_spec(
            &client,
            &ns,
            "mon",
            json!({"vectorLogs": {"includeNamespaces": null, "environmentVariables": {name: "x"}}}),
        )
        .await;
        wait_status(&client, &ns, "mon", &format!("Failed on {name}"), |m| {
            m.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|msg| msg.starts_with(&format!("{field}:")))
        })
        .await;
        let after = config_map(&client, &ns, cm_name).await.unwrap();
        assert_eq!(before.resource_version(), after.resource_version(), "{name} touched the config");
        patch_spec(&client, &ns, "mon", json!({"vectorLogs": {"environmentVariables": {name: null}}})).await;
    }

    patch_spec(
        &client,
        &ns,
        "mon",
        json!({"vectorLogs": {"includeNamespaces": null, "s3Bucket": "${BUCKET}", "configVariables": {"OTHER": "x"}}}),
    )
    .await;
    let ms = wait_status(&client, &ns, "mon", "Failed on variable", |m| {
        m.status.as_ref().and_then(|s| s.message.as_deref()).is_some_and(|msg| msg.contains("${BUCKET}"))
    })
    .await;
    assert!(ms.status.unwrap().message.unwrap().starts_with("spec.vectorLogs.s3Bucket:"));

    // Fixing it (defining the variable) recovers, with the value substituted.
    patch_spec(&client, &ns, "mon", json!({"vectorLogs": {"configVariables": {"BUCKET": "from-var"}}})).await;
    wait_status(&client, &ns, "mon", "recovered", |m| phase(m) != Some(Phase::Failed)).await;
    let cm = config_map(&client, &ns, cm_name).await.unwrap();
    assert!(cm.data.unwrap()["vector.yaml"].contains("bucket: from-var"));
}

/// A ValidatingAdmissionPolicy (CEL in the apiserver, like a quota or a webhook would) that
/// refuses DaemonSets whose image names "refused", in namespace `ns` only; returns once the
/// apiserver enforces it.
async fn refuse_daemonsets_in(client: &Client, ns: &str) {
    let dynamic = |kind: &str| {
        let gvk = kube::core::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        Api::<kube::api::DynamicObject>::all_with(client.clone(), &kube::api::ApiResource::from_gvk(&gvk))
    };
    let name = format!("refuse-{ns}");
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["daemonsets"]}]},
            "validations": [{"expression": "!object.spec.template.spec.containers.exists(c, c.image.contains('refused'))",
                             "message": "images named refused are not allowed here"}]
        }
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}}
    });
    let pp = PostParams::default();
    dynamic("ValidatingAdmissionPolicy").create(&pp, &serde_json::from_value(policy).unwrap()).await.unwrap();
    dynamic("ValidatingAdmissionPolicyBinding").create(&pp, &serde_json::from_value(binding).unwrap()).await.unwrap();
    let probe: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                 "spec": {"containers": [{"name": "c", "image": "refused:1"}]}}}
    }))
    .unwrap();
    let dry = PostParams { dry_run: true, ..Default::default() };
    let api = Api::<DaemonSet>::namespaced(client.clone(), ns);
    eventually("the policy enforced", SHORT, || async { api.create(&dry, &probe).await.is_err().then_some(()) }).await;
}

/// A child the apiserver refuses leaves nothing of the change behind. A new resource is created
/// without dry runs (half the writes), so the children created before the refusal are deleted
/// again; a running resource's change is stopped by the dry run before anything is written.
#[tokio::test]
async fn a_refused_child_leaves_nothing_half_applied() {
    let client = env().client().await;
    let ns = namespace(&client, "refused").await;
    refuse_daemonsets_in(&client, &ns).await;
    start_controller(&ns).await;

    let mut spec = basic_spec();
    spec["imageRepository"] = json!("registry.example/refused-vector");
    create(&client, &ns, ms_json("new", spec)).await.unwrap();
    let ms = wait_status(&client, &ns, "new", "Failed", |m| phase(m) == Some(Phase::Failed)).await;
    let message = ms.status.unwrap().message.unwrap_or_default();
    assert!(message.contains("DaemonSet") && message.contains("images named refused"), "{message}");
    assert_eq!(child_names(&client, &ns, "new").await, BTreeSet::new(), "children of a refused creation left behind");

    // A running resource: the change would rewrite the logs config and both DaemonSets; the
    // DaemonSets are refused, so the config stays as it was.
    create(&client, &ns, ms_json("running", basic_spec())).await.unwrap();
    let cm_name = "running-vector-logs-config";
    let before = eventually("logs config", SHORT, || async { config_map(&client, &ns, cm_name).await }).await;
    wait_status(&client, &ns, "running", "first status", |m| m.status.is_some()).await;
    let children = child_names(&client, &ns, "running").await;
    patch_spec(
        &client,
        &ns,
        "running",
        json!({"imageRepository": "registry.example/refused-vector", "vectorLogs": {"s3Prefix": "moved"}}),
    )
    .await;
    let ms = wait_status(&client, &ns, "running", "Failed", |m| phase(m) == Some(Phase::Failed)).await;
    assert!(ms.status.unwrap().message.unwrap_or_default().contains("images named refused"));
    let after = config_map(&client, &ns, cm_name).await.unwrap();
    assert_eq!(before.resource_version(), after.resource_version(), "the config changed though the change was refused");
    assert_eq!(child_names(&client, &ns, "running").await, children);

    // The refusal lifted by a spec change: applied as usual.
    patch_spec(&client, &ns, "running", json!({"imageRepository": "timberio/vector"})).await;
    wait_status(&client, &ns, "running", "recovered", |m| phase(m) != Some(Phase::Failed)).await;
    let cm = config_map(&client, &ns, cm_name).await.unwrap();
    assert!(cm.data.unwrap()["vector.yaml"].contains("moved"));
}

#[tokio::test]
async fn spec_changes_roll_config_and_disabling_deletes_children() {
    let client = env().client().await;
    let ns = namespace(&client, "update").await;
    start_controller(&ns).await;
    create(&client, &ns, ms_json("mon", basic_spec())).await.unwrap();
    let dss = Api::<DaemonSet>::namespaced(client.clone(), &ns);
    let hash = |d: &DaemonSet| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["e6data.io/config-hash"]
            .clone()
    };
    let first = eventually("logs DaemonSet", SHORT, || async { dss.get_opt("mon-vector-logs").await.unwrap() }).await;

    patch_spec(&client, &ns, "mon", json!({"vectorLogs": {"s3Prefix": "changed-prefix"}})).await;
    let second = eventually("config hash change", SHORT, || async {
        let d = dss.get("mon-vector-logs").await.unwrap();
        (hash(&d) != hash(&first)).then_some(d)
    })
    .await;
    let cm = config_map(&client, &ns, "mon-vector-logs-config").await.unwrap();
    assert!(cm.data.unwrap()["vector.yaml"].contains("key_prefix: changed-prefix/"));
    assert!(second.metadata.generation > first.metadata.generation);

    patch_spec(&client, &ns, "mon", json!({"vectorMetrics": {"enabled": false}})).await;
    eventually("metrics children deleted", SHORT, || async {
        let gone = dss.get_opt("mon-vector-metrics").await.unwrap().is_none()
            && config_map(&client, &ns, "mon-vector-metrics-config").await.is_none();
        gone.then_some(())
    })
    .await;
    let ms = wait_status(&client, &ns, "mon", "metrics status dropped", |m| {
        m.status.as_ref().unwrap().vector_metrics_status.is_none()
    })
    .await;
    assert!(ms.status.unwrap().vector_logs_status.is_some());

    // Switching RBAC scope swaps Role for ClusterRole.
    patch_spec(&client, &ns, "mon", json!({"useClusterRole": true})).await;
    let cluster_name = format!("monitoringservices:{ns}:mon-vector");
    eventually("ClusterRole instead of Role", SHORT, || async {
        let names = child_names(&client, &ns, "mon").await;
        (names.contains(&(Kind::ClusterRole, cluster_name.clone())) && !names.iter().any(|(k, _)| *k == Kind::Role))
            .then_some(())
    })
    .await;
    let cm = config_map(&client, &ns, "mon-vector-logs-config").await.unwrap();
    assert!(cm.data.unwrap()["vector.yaml"].contains("type: kubernetes_logs"));

    // Deleting the CR removes everything, cluster-scoped objects included.
    Api::<MonitoringServices>::namespaced(client.clone(), &ns).delete("mon", &DeleteParams::default()).await.unwrap();
    eventually("all children gone", LONG, || async { child_names(&client, &ns, "mon").await.is_empty().then_some(()) })
        .await;
    eventually("CR gone", SHORT, || async {
        Api::<MonitoringServices>::namespaced(client.clone(), &ns).get_opt("mon").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn daemonset_readiness_drives_phase_and_ready() {
    let client = env().client().await;
    let ns = namespace(&client, "ready").await;
    start_controller(&ns).await;
    let nodes = create_nodes(&client, &ns, 2).await;
    let mut spec = basic_spec();
    spec["nodeSelector"] = json!({"pool": ns.clone()});
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();
    let ms = wait_status(&client, &ns, "mon", "Creating with 2 desired", |m| {
        m.status.as_ref().unwrap().vector_logs_status.as_ref().is_some_and(|c| c.replicas == 2)
    })
    .await;
    assert_eq!(phase(&ms), Some(Phase::Creating));
    assert!(!ms.status.as_ref().unwrap().ready);

    for sel in ["app.kubernetes.io/name=vector-logs", "app.kubernetes.io/name=vector-metrics"] {
        all_pods_ready(&client, &ns, sel, 2).await;
    }
    let ms = wait_status(&client, &ns, "mon", "Running", |m| phase(m) == Some(Phase::Running)).await;
    let st = ms.status.unwrap();
    assert!(st.ready);
    let logs = st.vector_logs_status.unwrap();
    assert_eq!((logs.ready, logs.replicas, logs.ready_replicas), (true, 2, 2));
    assert_eq!(logs.message.as_deref(), Some("All nodes collecting logs"));
    assert_eq!(st.vector_metrics_status.unwrap().message.as_deref(), Some("All nodes scraping metrics"));
    assert_eq!(st.cloud.as_deref(), Some("AWS"));
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", ms.metadata.generation));

    support::set_pods_ready(&client, &ns, "app.kubernetes.io/name=vector-metrics", false, 1).await;
    let ms = wait_status(&client, &ns, "mon", "Degraded", |m| phase(m) == Some(Phase::Degraded)).await;
    let st = ms.status.unwrap();
    assert!(!st.ready);
    assert_eq!(st.vector_metrics_status.unwrap().ready_replicas, 1);
    assert!(st.message.unwrap().contains("metrics: 1/2 nodes scraping metrics"));

    // Phase changes are reported as Events on the resource.
    let events = env().kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=mon",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("Running") && events.contains("Degraded"), "{events}");
    delete_nodes(&client, &nodes).await;
}

#[tokio::test]
async fn same_name_in_two_namespaces_do_not_interfere() {
    let client = env().client().await;
    let a = namespace(&client, "tenant-a").await;
    let b = namespace(&client, "tenant-b").await;
    for ns in [&a, &b] {
        start_controller(ns).await;
        let mut spec = basic_spec();
        spec["useClusterRole"] = json!(true);
        create(&client, ns, ms_json("monitoring", spec)).await.unwrap();
    }
    let crs = Api::<ClusterRoleBinding>::all(client.clone());
    for ns in [&a, &b] {
        let name = format!("monitoringservices:{ns}:monitoring-vector");
        let crb = eventually("ClusterRoleBinding", SHORT, || async { crs.get_opt(&name).await.unwrap() }).await;
        let subject = &crb.subjects.unwrap()[0];
        assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("monitoring-vector", Some(ns.as_str())));
    }
    // The ClusterRoleBinding is applied before the ConfigMaps and DaemonSets: wait for all seven.
    let before_b = eventually("b's seven children", SHORT, || async {
        let names = child_names(&client, &b, "monitoring").await;
        (names.len() == 7).then_some(names)
    })
    .await;
    assert_eq!(before_b.len(), 7);
    Api::<MonitoringServices>::namespaced(client.clone(), &a)
        .delete("monitoring", &DeleteParams::default())
        .await
        .unwrap();
    eventually("tenant-a cluster objects gone", SHORT, || async {
        crs.get_opt(&format!("monitoringservices:{a}:monitoring-vector")).await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(child_names(&client, &b, "monitoring").await, before_b);
}

/// A reconcile of an unchanged resource issues no API request at all (children, Secrets and
/// GreptimeDBClusters come from the watch caches; nothing changed, so nothing is written). A
/// reconcile without the caches (`reconcile` called directly) reads but writes nothing either.
#[tokio::test]
async fn unchanged_reconcile_makes_no_requests() {
    let client = env().client().await;
    let ns = namespace(&client, "noop").await;
    let (counted, counter) = controller::client::counted(env().config().await).unwrap();
    let settings = controller::Settings {
        namespace: Some(ns.clone()),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let operator = controller::build(counted, settings, Some(counter.clone())).await.unwrap();
    let metrics = format!("http://{}/metrics", operator.metrics_addr.unwrap());
    tokio::spawn(operator.run());
    let http = monitoring_operator::http_get::client();
    let reconciles = || async {
        let body =
            monitoring_operator::http_get::body(&http, &metrics, std::time::Duration::from_secs(5), 64 << 20).await?;
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("monitoring_operator_reconciles_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let mut spec = basic_spec();
    // Pinned cloud and a node selector no test node matches: nothing outside this test can
    // legitimately change the status. An output naming a Secret: its read is cached too.
    spec["cloud"] = json!("GCP");
    spec["nodeSelector"] = json!({"pool": "none-such"});
    spec["vectorLogs"]["loki"] = json!({"endpoint": "http://loki.invalid", "auth": {"basic": {"username": "u",
        "passwordSecretRef": {"name": "loki", "key": "password"}}}});
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "loki"}, "stringData": {"password": "p"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();
    // Settled: both DaemonSets observed by their controller (no node eligible), which is the
    // last change that makes the running controller write the status.
    let settled = |m: &MonitoringServices| {
        let st = m.status.as_ref();
        let eligible = |c: Option<&monitoring_operator::api::ComponentStatus>| {
            c.and_then(|c| c.message.as_deref()).is_some_and(|msg| msg.starts_with("No node is eligible"))
        };
        st.is_some_and(|s| eligible(s.vector_logs_status.as_ref()) && eligible(s.vector_metrics_status.as_ref()))
    };
    let ms = wait_status(&client, &ns, "mon", "settled", settled).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    // Requests other than the long-running watches.
    let requests = |c: &controller::client::RequestCounter| {
        c.by_verb().into_iter().filter(|((verb, _), _)| verb != "watch").collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = requests(&counter);
    let runs = reconciles().await.unwrap();
    // Someone else's annotation on a child: a watch event, a reconcile, and nothing to do.
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .patch(
            "mon-vector-logs",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"example.com/touched": "1"}}})),
        )
        .await
        .unwrap();
    eventually("a reconcile after the annotation", SHORT, || async { reconciles().await.filter(|n| *n > runs) }).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after = requests(&counter);
    assert_eq!(before, after, "an unchanged reconcile made API requests");

    // Without the caches: reads, but still no write; and the same counter sees writes once
    // something changed.
    let (direct, direct_counter) = controller::client::counted(env().config().await).unwrap();
    let ctx = Context::new(direct);
    controller::reconcile(Arc::new(ms.clone()), ctx.clone()).await.unwrap();
    let calls = direct_counter.snapshot();
    assert!(calls.get("GET").copied().unwrap_or(0) > 0, "the counter saw no requests: {calls:?}");
    assert_eq!(direct_counter.writes(), 0, "unchanged reconcile wrote: {calls:?}");
    let mut changed = ms.clone();
    changed.spec.vector_logs.as_mut().unwrap().archive.s3_bucket = Some("another-bucket".into());
    controller::reconcile(Arc::new(changed), ctx).await.unwrap();
    assert!(direct_counter.writes() > 0, "{:?}", direct_counter.snapshot());
}

/// spec.traces deploys the OTLP endpoint (Deployment + Service) and reports it; turning it off
/// removes both.
#[tokio::test]
async fn trace_endpoint_lifecycle() {
    let client = env().client().await;
    let ns = namespace(&client, "traces").await;
    start_controller(&ns).await;
    let mut spec = basic_spec();
    spec["traces"] = json!({"tempoEndpoint": "http://tempo.monitoring.svc:4318", "replicas": 1});
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns);
    let services = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &ns);
    eventually("OTLP Deployment and Service", SHORT, || async {
        (deployments.get_opt("mon-vector-otlp").await.unwrap().is_some()
            && services.get_opt("mon-vector-otlp").await.unwrap().is_some())
        .then_some(())
    })
    .await;
    let ms = wait_status(&client, &ns, "mon", "traces status", |m| {
        m.status.as_ref().unwrap().vector_traces_status.is_some()
    })
    .await;
    let t = ms.status.unwrap().vector_traces_status.unwrap();
    assert_eq!((t.ready, t.replicas), (false, 1)); // no kubelet: never ready here
    let invalid =
        create_raw(&client, &ns, ms_json("bad", json!({"workspace": "w", "tenant": "t", "traces": {"enabled": true}})))
            .await;
    assert!(invalid.unwrap_err().to_string().contains("tempoEndpoint is required"));

    patch_spec(&client, &ns, "mon", json!({"traces": {"enabled": false}})).await;
    eventually("OTLP children removed", SHORT, || async {
        (deployments.get_opt("mon-vector-otlp").await.unwrap().is_none()
            && services.get_opt("mon-vector-otlp").await.unwrap().is_none())
        .then_some(())
    })
    .await;
}

/// The operator works with exactly the RBAC shipped in deploy/operator.yaml (not as admin):
/// creating both Role and ClusterRole collectors, their bindings, Events, and cleaning up.
#[tokio::test]
async fn shipped_operator_rbac_is_sufficient() {
    let client = env().client().await;
    let manifest = support::repo().join("deploy/operator.yaml");
    env().kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    let ns = namespace(&client, "rbac").await;
    let mut config = env().config().await;
    config.auth_info.impersonate = Some("system:serviceaccount:monitoring-operator:monitoring-operator".into());
    start_controller_as(
        config,
        monitoring_operator::controller::Settings { namespace: Some(ns.clone()), ..Default::default() },
    )
    .await;

    create(&client, &ns, ms_json("scoped", basic_spec())).await.unwrap();
    let mut cluster = basic_spec();
    cluster["useClusterRole"] = json!(true);
    cluster["traces"] = json!({"tempoEndpoint": "http://tempo:4318"});
    create(&client, &ns, ms_json("wide", cluster)).await.unwrap();
    for name in ["scoped", "wide"] {
        let ms =
            wait_status(&client, &ns, name, "status as the operator's ServiceAccount", |m| m.status.is_some()).await;
        let st = ms.status.unwrap();
        assert_ne!(st.phase, Some(Phase::Failed), "{name}: {:?}", st.message);
    }
    let names = child_names(&client, &ns, "wide").await;
    assert!(names.contains(&(Kind::ClusterRoleBinding, format!("monitoringservices:{ns}:wide-vector"))), "{names:?}");
    assert!(child_names(&client, &ns, "scoped").await.contains(&(Kind::RoleBinding, "scoped-vector".into())));
    Api::<MonitoringServices>::namespaced(client.clone(), &ns).delete("wide", &DeleteParams::default()).await.unwrap();
    eventually("cluster-scoped children removed by the operator", SHORT, || async {
        let left = child_names(&client, &ns, "wide").await;
        (!left.iter().any(|(k, _)| matches!(k, Kind::ClusterRole | Kind::ClusterRoleBinding))).then_some(())
    })
    .await;
}

/// An output's credentials: a missing Secret fails the resource naming the field and applies
/// nothing (a same-named Secret in another namespace does not count); creating it completes the
/// install without any change to the resource (the Secret watch); rotating it rolls the
/// collectors; its value is nowhere in the ConfigMap or the status.
#[tokio::test]
async fn output_secrets_gate_the_install_and_roll_the_collectors() {
    use k8s_openapi::api::core::v1::Secret;
    let client = env().client().await;
    let ns = namespace(&client, "outputs").await;
    let other = namespace(&client, "outputs-other").await;
    start_controller(&ns).await;
    let secret = |ns: &str, value: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "loki-auth", "namespace": ns},
            "stringData": {"password": value},
        }))
        .unwrap()
    };
    Api::<Secret>::namespaced(client.clone(), &other)
        .create(&PostParams::default(), &secret(&other, "x"))
        .await
        .unwrap();
    let mut spec = basic_spec();
    spec["vectorLogs"]["loki"] = json!({
        "endpoint": "http://loki.loki.svc",
        "auth": {"basic": {"username": "u", "passwordSecretRef": {"name": "loki-auth", "key": "password"}}},
    });
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();
    let ms = wait_status(&client, &ns, "mon", "Failed", |m| phase(m) == Some(Phase::Failed)).await;
    let message = ms.status.unwrap().message.unwrap();
    assert!(
        message.starts_with("spec.vectorLogs.loki.auth.basic.passwordSecretRef: Secret \"loki-auth\" not found"),
        "{message}"
    );
    assert!(child_names(&client, &ns, "mon").await.is_empty(), "nothing is applied for a missing Secret");

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets.create(&PostParams::default(), &secret(&ns, "first-value")).await.unwrap();
    let dss = Api::<DaemonSet>::namespaced(client.clone(), &ns);
    let ds = eventually("logs DaemonSet after the Secret appeared", SHORT, || async {
        dss.get_opt("mon-vector-logs").await.unwrap()
    })
    .await;
    let template = ds.spec.unwrap().template;
    let hash = template.metadata.unwrap().annotations.unwrap()["e6data.io/config-hash"].clone();
    let volumes = template.spec.unwrap().volumes.unwrap();
    let vol = volumes.iter().find_map(|v| v.secret.as_ref()).expect("secret volume");
    assert_eq!(vol.secret_name.as_deref(), Some("loki-auth"));
    let cm = config_map(&client, &ns, "mon-vector-logs-config").await.unwrap();
    let yaml = &cm.data.unwrap()["vector.yaml"];
    assert!(yaml.contains("SECRET[secret_loki_auth.password]") && !yaml.contains("first-value"), "{yaml}");
    let ms = wait_status(&client, &ns, "mon", "outputs in status", |m| {
        m.status.as_ref().is_some_and(|s| !s.outputs.is_empty() && s.phase != Some(Phase::Failed))
    })
    .await;
    let status = serde_json::to_string(&ms.status).unwrap();
    assert!(status.contains("loki-auth") && !status.contains("first-value"), "{status}");

    // Rotation: a new value (same keys) rolls the pods through the pod template's hash.
    let mut rotated = secret(&ns, "second-value");
    rotated.metadata.resource_version = None;
    secrets.replace("loki-auth", &PostParams::default(), &rotated).await.unwrap();
    eventually("pod template changed after rotation", SHORT, || async {
        let d = dss.get("mon-vector-logs").await.unwrap();
        let h = d.spec.unwrap().template.metadata.unwrap().annotations.unwrap()["e6data.io/config-hash"].clone();
        (h != hash).then_some(())
    })
    .await;
}

/// Flow health end to end: a real Vector whose sink cannot reach its endpoint, the real
/// sidecar summary (`sidecar::flow::run`) beside it, and a collector pod object pointing at it
/// (the local control plane has no kubelet: the test plays the pod's IP). The operator reads
/// the summary and the resource says `FlowHealthy=False SinkStalled` naming node and sink; a
/// pod given another configuration than its Vector reports is `ConfigOutdated`; without a
/// readable pod the answer is `Unknown`, never a guess.
#[tokio::test]
async fn flow_health_reaches_the_status_from_the_collectors_own_measurements() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};
    let Some(bin) = vector_bin::vector() else { return };
    let client = env().client().await;
    let ns = namespace(&client, "flow").await;
    let flow_port = datapath::free_port();
    start_controller_with(controller::Settings {
        namespace: Some(ns.clone()),
        flow_interval: Some(std::time::Duration::from_secs(1)),
        flow_port,
        ..Default::default()
    })
    .await;
    let mut spec = basic_spec();
    spec["vectorMetrics"] = json!({"enabled": false});
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();

    // The collector: logs to an HTTP endpoint nothing listens on, its own metrics stamped
    // with a config id, as the operator renders them.
    let dir = datapath::fresh_dir("flow-status");
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(&var_log).unwrap();
    let metrics = format!("127.0.0.1:{}", datapath::free_port());
    let config = format!(
        r#"data_dir: {data}
api: {{enabled: false}}
sources:
  app: {{type: demo_logs, format: shuffle, lines: ["hello"], interval: 0.05}}
  vector_internal_metrics: {{type: internal_metrics}}
transforms:
  vector_config_id: {{type: remap, inputs: [vector_internal_metrics], source: '.tags.config_id = "c-test"'}}
sinks:
  broken:
    type: http
    inputs: [app]
    uri: http://127.0.0.1:{closed}/push
    encoding: {{codec: json}}
    healthcheck: {{enabled: false}}
  vector_metrics_exporter: {{type: prometheus_exporter, inputs: [vector_config_id], address: "{metrics}"}}
"#,
        data = dir.display(),
        closed = datapath::free_port(),
    );
    let file = dir.join("vector.yaml");
    std::fs::write(&file, config).unwrap();
    let mut vector = datapath::Vector::start(&bin, &[file], &var_log, &[]);
    let (_selected, selected) =
        tokio::sync::watch::channel(monitoring_operator::sidecar::flow::Selected { total: 1, ..Default::default() });
    tokio::spawn(monitoring_operator::sidecar::flow::run(
        format!("http://{metrics}/metrics"),
        format!("127.0.0.1:{flow_port}").parse().unwrap(),
        std::time::Duration::from_secs(3),
        std::time::Duration::from_secs(1),
        selected,
    ));

    // Without the DaemonSet's selector label (`app.kubernetes.io/name`): the DaemonSet
    // controller would adopt this pod and delete it (node-a is no Node here).
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "mon-vector-logs-x1", "labels": {
            "app.kubernetes.io/instance": "mon", "app.kubernetes.io/component": "logs",
            "app.kubernetes.io/managed-by": "monitoring-operator"},
            "annotations": {"e6data.io/config-id": "c-test"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "vector", "image": "v"}, {"name": "discover", "image": "d"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = json!({"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}});
    pods.patch_status("mon-vector-logs-x1", &PatchParams::default(), &Patch::Merge(running)).await.unwrap();
    let since = std::time::Instant::now();

    let flow_condition = |m: &MonitoringServices| {
        m.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "FlowHealthy").cloned())
    };
    let ms = wait_status(&client, &ns, "mon", "FlowHealthy=False SinkStalled", |m| {
        flow_condition(m).is_some_and(|c| c.reason == "SinkStalled")
    })
    .await;
    // For the notes: sink failing from the start to the status saying so (3 s window, 1 s
    // sidecar and operator intervals).
    eprintln!("flow: pod running -> FlowHealthy=False SinkStalled in status after {:?}", since.elapsed());
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    let c = flow_condition(&ms).unwrap();
    assert_eq!(c.status, "False");
    assert!(c.message.starts_with("logs: SinkStalled: node node-a: sink broken: "), "{}", c.message);
    let flow = ms.status.unwrap().vector_logs_status.unwrap().flow.unwrap();
    assert_eq!((flow.pods_reporting, flow.pods), (1, 1));

    // The pod was given another configuration than its Vector reports.
    let other = json!({"metadata": {"annotations": {"e6data.io/config-id": "c-new"}}});
    pods.patch("mon-vector-logs-x1", &PatchParams::default(), &Patch::Merge(other)).await.unwrap();
    let ms = wait_status(&client, &ns, "mon", "ConfigOutdated", |m| {
        flow_condition(m).is_some_and(|c| c.reason == "ConfigOutdated")
    })
    .await;
    let flow = ms.status.unwrap().vector_logs_status.unwrap().flow.unwrap();
    assert_eq!(flow.outdated_nodes, ["node-a"]);
    assert_eq!(flow.message.as_deref(), Some("node node-a: runs config c-test, was given c-new"));

    // Vector gone: the sidecar answers Unknown and so does the resource.
    vector.kill();
    wait_status(&client, &ns, "mon", "Unknown", |m| flow_condition(m).is_some_and(|c| c.status == "Unknown")).await;
}

/// Without --discovery-image the operator uses the image it runs, read from its own Pod.
#[tokio::test]
async fn own_image_is_read_from_the_operators_pod() {
    let client = env().client().await;
    let ns = namespace(&client, "own-image").await;
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "monitoring-operator-abc"},
        "spec": {"containers": [{"name": "proxy", "image": "proxy:1"}, {"name": "operator", "image": "registry.example/mo:1.2.3"}]},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let own = controller::own_pod::own_image(&client, &ns, "monitoring-operator-abc").await;
    assert_eq!(own.as_deref(), Some("registry.example/mo:1.2.3"));
    assert_eq!(controller::own_pod::own_image(&client, &ns, "not-there").await, None);
}

/// `--collector-network-policy`: the apiserver takes the collectors' NetworkPolicies, and a
/// collector turned off loses its policy with it.
#[tokio::test]
async fn collector_network_policies_are_applied_and_removed() {
    let client = env().client().await;
    let ns = namespace(&client, "netpol").await;
    start_controller_with(controller::Settings {
        namespace: Some(ns.clone()),
        network_policy: true,
        ..Default::default()
    })
    .await;
    create(&client, &ns, ms_json("mon", basic_spec())).await.unwrap();
    let policies = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(client.clone(), &ns);
    let names = || async {
        let list = policies.list(&ListParams::default()).await.unwrap();
        list.items.iter().map(|p| p.name_any()).collect::<BTreeSet<_>>()
    };
    eventually("both collectors' NetworkPolicies", SHORT, || async {
        (names().await == BTreeSet::from(["mon-vector-logs".to_string(), "mon-vector-metrics".to_string()]))
            .then_some(())
    })
    .await;
    patch_spec(&client, &ns, "mon", json!({"vectorMetrics": {"enabled": false}})).await;
    eventually("the metrics collector's policy removed", SHORT, || async {
        (names().await == BTreeSet::from(["mon-vector-logs".to_string()])).then_some(())
    })
    .await;
}
