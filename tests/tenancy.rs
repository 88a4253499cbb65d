//! Shared clusters, against the real control plane (Pod Security admission is on there):
//! - whatever verb edits one of the operator's children (merge, strategic or JSON patch, a PUT,
//!   `kubectl set image`, a forced apply by another manager), the operator puts its own values
//!   back, promptly (the edit's watch event triggers the reconcile; no resync is waited for);
//! - collector pods the apiserver refuses (a tenant namespace at Pod Security `baseline`) show
//!   in the resource's status with the apiserver's answer, not as an endless `Creating`;
//! - under the admin's restricted tenancy policy, cross-namespace access is refused (and taken
//!   back from resources that had it), while the admin's own namespace collects everything.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use monitoring_operator::{controller, model};
use serde_json::json;
use support::*;

/// Well under the 600 s resync: only the watch can make it in time.
const PROMPT: Duration = Duration::from_secs(20);

fn image(ds: &DaemonSet, container: &str) -> String {
    let spec = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    spec.containers.iter().find(|c| c.name == container).unwrap().image.clone().unwrap()
}

#[tokio::test]
async fn every_edit_of_a_child_is_reverted() {
    let client = env().client().await;
    let ns = namespace(&client, "drift").await;
    start_controller(&ns).await;
    create(&client, &ns, ms_json("mon", basic_spec())).await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let dss = Api::<DaemonSet>::namespaced(client.clone(), &ns);
    let roles = Api::<Role>::namespaced(client.clone(), &ns);
    let cm_name = "mon-vector-logs-config";
    let ds_name = "mon-vector-logs";
    let config = |cm: &ConfigMap| cm.data.as_ref().unwrap()["vector.yaml"].clone();
    let original_cm = eventually("logs ConfigMap", SHORT, || async { cms.get_opt(cm_name).await.unwrap() }).await;
    let want_config = config(&original_cm);
    let ds = eventually("logs DaemonSet", SHORT, || async { dss.get_opt(ds_name).await.unwrap() }).await;
    let want_image = image(&ds, "vector");
    let role = eventually("Role", SHORT, || async { roles.get_opt("mon-vector").await.unwrap() }).await;
    let want_rules = role.rules.clone();

    let config_back = |verb: &'static str| {
        let (cms, want) = (cms.clone(), want_config.clone());
        async move {
            eventually(&format!("vector.yaml reverted after {verb}"), PROMPT, || async {
                (config(&cms.get(cm_name).await.unwrap()) == want).then_some(())
            })
            .await
        }
    };
    let image_back = |verb: &'static str| {
        let (dss, want) = (dss.clone(), want_image.clone());
        async move {
            eventually(&format!("image reverted after {verb}"), PROMPT, || async {
                (image(&dss.get(ds_name).await.unwrap(), "vector") == want).then_some(())
            })
            .await
        }
    };
    let evil = "sources:\n  everything:\n    type: file\n    include: [/var/log/pods/*/*/*.log]\n";

    // ConfigMap data: merge patch, JSON patch, PUT, forced apply by another manager.
    let pp = PatchParams::default();
    cms.patch(cm_name, &pp, &Patch::Merge(json!({"data": {"vector.yaml": evil}}))).await.unwrap();
    config_back("merge patch").await;
    let ops = json!([{"op": "replace", "path": "/data/vector.yaml", "value": evil}]).to_string();
    env().kubectl(&["-n", &ns, "patch", "configmap", cm_name, "--type=json", "-p", &ops]);
    config_back("JSON patch (kubectl patch --type=json)").await;
    let mut cm = cms.get(cm_name).await.unwrap();
    cm.data.as_mut().unwrap().insert("vector.yaml".into(), evil.into());
    cms.replace(cm_name, &PostParams::default(), &cm).await.unwrap();
    config_back("update (PUT)").await;
    let other = PatchParams::apply("someone-else").force();
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm_name}, "data": {"vector.yaml": evil}});
    cms.patch(cm_name, &other, &Patch::Apply(body)).await.unwrap();
    config_back("apply by another manager").await;

    // DaemonSet image: strategic merge patch, kubectl set image, JSON patch.
    let strategic = json!({"spec": {"template": {"spec": {"containers": [{"name": "vector", "image": "evil:1"}]}}}});
    dss.patch(ds_name, &pp, &Patch::Strategic(strategic)).await.unwrap();
    image_back("strategic merge patch").await;
    env().kubectl(&["-n", &ns, "set", "image", &format!("daemonset/{ds_name}"), "vector=evil:2"]);
    image_back("kubectl set image").await;
    let ds = dss.get(ds_name).await.unwrap();
    let index = ds.spec.unwrap().template.spec.unwrap().containers.iter().position(|c| c.name == "vector").unwrap();
    let path = format!("/spec/template/spec/containers/{index}/image");
    let ops = json!([{"op": "replace", "path": path, "value": "evil:3"}]).to_string();
    env().kubectl(&["-n", &ns, "patch", "daemonset", ds_name, "--type=json", "-p", &ops]);
    image_back("JSON patch (kubectl patch --type=json)").await;

    // RBAC: a rule added to the collector's Role (merge patch replaces the list).
    let mut rules = serde_json::to_value(&want_rules).unwrap();
    rules.as_array_mut().unwrap().push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}));
    roles.patch("mon-vector", &pp, &Patch::Merge(json!({"rules": rules}))).await.unwrap();
    eventually("Role rules reverted", PROMPT, || async {
        (roles.get("mon-vector").await.unwrap().rules == want_rules).then_some(())
    })
    .await;

    // The values stay ours (that reverting settles without further writes is
    // cluster.rs's unchanged_reconcile_makes_no_writes).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(config(&cms.get(cm_name).await.unwrap()), want_config);
    assert_eq!(image(&dss.get(ds_name).await.unwrap(), "vector"), want_image);
}

#[tokio::test]
async fn collector_pods_refused_by_pod_security_are_reported() {
    let client = env().client().await;
    let ns = namespace(&client, "baseline").await;
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    Api::<Namespace>::all(client.clone()).patch(&ns, &PatchParams::default(), &Patch::Merge(label)).await.unwrap();
    let nodes = create_nodes(&client, &ns, 2).await;
    start_controller(&ns).await;
    let mut spec = basic_spec();
    spec["nodeSelector"] = json!({"pool": ns.clone()});
    create(&client, &ns, ms_json("mon", spec)).await.unwrap();

    let ms = wait_status(&client, &ns, "mon", "logs collector reported as refused", |m| {
        m.status.as_ref().and_then(|s| s.vector_logs_status.as_ref()).and_then(|c| c.reason.as_deref())
            == Some("PodsRefused")
    })
    .await;
    let st = ms.status.unwrap();
    let logs = st.vector_logs_status.unwrap();
    let message = logs.message.unwrap();
    assert!(message.starts_with("0/2 collector pods created; the apiserver refused the others:"), "{message}");
    assert!(message.contains("violates PodSecurity \"baseline:latest\"") && message.contains("hostPath"), "{message}");
    let cond = st.conditions.iter().find(|c| c.type_ == "LogsReady").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "PodsRefused"));
    assert!(st.message.unwrap().contains("PodSecurity"), "the resource's own message names the cause");
    delete_nodes(&client, &nodes).await;
}

fn restricted(namespace: Option<&str>, admin: &str) -> controller::Settings {
    controller::Settings {
        namespace: namespace.map(str::to_string),
        policy: model::Policy {
            restricted: true,
            cluster_collector_namespaces: [admin.to_string()].into(),
            shared_greptime_namespaces: ["greptime-shared".to_string()].into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// One reconcile pass as the controller would run it (the first adds the finalizer).
async fn reconcile_twice(client: &kube::Client, ns: &str, name: &str, ctx: &std::sync::Arc<controller::Context>) {
    for _ in 0..2 {
        let ms = get_ms(client, ns, name).await;
        controller::reconcile(std::sync::Arc::new(ms), ctx.clone()).await.unwrap();
    }
}

/// The admin's policy (`--tenancy-policy restricted`): a tenant's resource asking for more than
/// its namespace is Failed naming the field and gets no children; one that got them under the
/// open policy loses them when the policy is tightened; the admin's namespace may collect all.
#[tokio::test]
async fn restricted_policy_refuses_cross_tenant_access_and_removes_what_it_had() {
    let client = env().client().await;
    let tenant = namespace(&client, "tenant").await;
    let other = namespace(&client, "other-tenant").await;
    let admin = namespace(&client, "platform").await;
    let cluster_role = |ns: &str, name: &str| format!("monitoringservices:{ns}:{name}-vector");
    let crs = Api::<ClusterRole>::all(client.clone());
    let dss = Api::<DaemonSet>::namespaced(client.clone(), &tenant);

    // Under the open policy (the seed's behaviour) a tenant may collect cluster-wide.
    let mut wide = basic_spec();
    wide["useClusterRole"] = json!(true);
    create(&client, &tenant, ms_json("wide", wide.clone())).await.unwrap();
    reconcile_twice(&client, &tenant, "wide", &controller::Context::new(client.clone())).await;
    assert!(crs.get_opt(&cluster_role(&tenant, "wide")).await.unwrap().is_some(), "open policy: ClusterRole created");

    // Tightened: the restricted controller removes it and says why.
    start_controller_with(restricted(Some(&tenant), &admin)).await;
    let ms = wait_status(&client, &tenant, "wide", "Failed by policy", |m| {
        m.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason == "PolicyViolation")
    })
    .await;
    assert!(
        ms.status.unwrap().message.unwrap().starts_with("spec.useClusterRole: cluster-wide collection is not allowed")
    );
    eventually("ClusterRole and collectors of the tightened resource removed", SHORT, || async {
        let gone = crs.get_opt(&cluster_role(&tenant, "wide")).await.unwrap().is_none()
            && dss.list(&Default::default()).await.unwrap().items.iter().all(|d| !d.name_any().starts_with("wide-"));
        gone.then_some(())
    })
    .await;

    // Cross-tenant attempts: each Failed naming its field, nothing applied.
    let section = |key: &str, extra: serde_json::Value| {
        let mut s = basic_spec();
        let mut c = json!({"s3Bucket": "bucket", "s3Region": "us-east-1"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s[key] = c;
        s
    };
    let mut greptime = basic_spec();
    greptime["greptimeRef"] = json!({"name": "g", "namespace": other.clone()});
    let mut wide_metrics = section("vectorMetrics", json!({"includeNamespaces": [other.clone()]}));
    wide_metrics["useClusterRole"] = json!(true);
    let attempts = [
        (
            "logs-other",
            section("vectorLogs", json!({"includeNamespaces": [other.clone()]})),
            "spec.vectorLogs.includeNamespaces",
        ),
        (
            "logs-two",
            section("vectorLogs", json!({"includeNamespaces": [tenant.clone(), admin.clone()]})),
            "spec.vectorLogs.includeNamespaces",
        ),
        (
            "metrics-other",
            section("vectorMetrics", json!({"includeNamespaces": [other.clone()]})),
            "spec.vectorMetrics.includeNamespaces",
        ),
        ("metrics-wide", wide_metrics, "spec.useClusterRole"),
        ("greptime-other", greptime, "spec.greptimeRef.namespace"),
        // Sending as another tenant into a shared Loki or Thanos (issue 12).
        (
            "loki-other",
            section("vectorLogs", json!({"loki": {"endpoint": "http://loki.loki.svc", "tenantId": "someone-else"}})),
            "spec.vectorLogs.loki.tenantId",
        ),
        (
            "rw-other",
            section(
                "vectorMetrics",
                json!({"remoteWrite": {"endpoint": "http://thanos/api/v1/receive", "tenantId": "x"}}),
            ),
            "spec.vectorMetrics.remoteWrite.tenantId",
        ),
    ];
    for (name, spec, _) in &attempts {
        create(&client, &tenant, ms_json(name, spec.clone())).await.unwrap();
    }
    for (name, _, field) in &attempts {
        let ms = wait_status(&client, &tenant, name, &format!("{name} Failed by policy"), |m| {
            m.status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .is_some_and(|msg| msg.starts_with(&format!("{field}:")))
        })
        .await;
        let cond = ms.status.unwrap().conditions.into_iter().find(|c| c.type_ == "SpecValid").unwrap();
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "PolicyViolation"), "{name}");
        assert!(crs.get_opt(&cluster_role(&tenant, name)).await.unwrap().is_none(), "{name}: ClusterRole");
        let cms = Api::<ConfigMap>::namespaced(client.clone(), &tenant);
        assert!(cms.get_opt(&format!("{name}-vector-logs-config")).await.unwrap().is_none(), "{name}: ConfigMap");
    }
    // Its own namespace and the shared GreptimeDB namespace are fine.
    let mut shared = section("vectorLogs", json!({"includeNamespaces": [tenant.clone()]}));
    shared["greptimeRef"] = json!({"name": "g", "namespace": "greptime-shared"});
    create(&client, &tenant, ms_json("own", shared)).await.unwrap();
    eventually("own-namespace resource gets its collector", SHORT, || async {
        dss.get_opt("own-vector-logs").await.unwrap().map(|_| ())
    })
    .await;

    // The admin's namespace may collect cluster-wide under the same policy.
    create(&client, &admin, ms_json("all", wide)).await.unwrap();
    reconcile_twice(
        &client,
        &admin,
        "all",
        &controller::Context::with_settings(client.clone(), restricted(None, &admin)),
    )
    .await;
    assert!(crs.get_opt(&cluster_role(&admin, "all")).await.unwrap().is_some(), "admin namespace: ClusterRole");
}

/// A reconcile of a stale copy of a resource (queued before the resource was deleted and its
/// finalizer ran, e.g. by the watch event of its own ClusterRole) must not leave cluster-wide
/// pod reads behind: nothing garbage-collects cluster-scoped children. Measured before: after
/// 300 create/update/delete cycles, 5–7 ClusterRole/Binding pairs were left with their
/// resources gone. This replays that interleaving deterministically.
#[tokio::test]
async fn a_stale_reconcile_after_deletion_leaves_no_cluster_role_behind() {
    let client = env().client().await;
    let ns = namespace(&client, "stale").await;
    let mut spec = basic_spec();
    spec["useClusterRole"] = json!(true);
    create(&client, &ns, ms_json("gone", spec)).await.unwrap();
    let ctx = controller::Context::new(client.clone());
    reconcile_twice(&client, &ns, "gone", &ctx).await;
    let (crs, crbs) = (Api::<ClusterRole>::all(client.clone()), Api::<ClusterRoleBinding>::all(client.clone()));
    let name = format!("monitoringservices:{ns}:gone-vector");
    assert!(crs.get_opt(&name).await.unwrap().is_some(), "ClusterRole applied");
    let stale = get_ms(&client, &ns, "gone").await;

    // Deleted, and the finalizer's cleanup runs.
    let mss = Api::<monitoring_operator::api::MonitoringServices>::namespaced(client.clone(), &ns);
    mss.delete("gone", &Default::default()).await.unwrap();
    controller::reconcile(std::sync::Arc::new(get_ms(&client, &ns, "gone").await), ctx.clone()).await.unwrap();
    eventually("resource gone", SHORT, || async { mss.get_opt("gone").await.unwrap().is_none().then_some(()) }).await;
    assert!(crs.get_opt(&name).await.unwrap().is_none(), "finalizer removed the ClusterRole");

    // The stale copy's reconcile comes last: whatever it applies, nothing is left.
    let _ = controller::reconcile(std::sync::Arc::new(stale), ctx).await;
    assert!(crs.get_opt(&name).await.unwrap().is_none(), "ClusterRole left behind by a stale reconcile");
    assert!(crbs.get_opt(&name).await.unwrap().is_none(), "ClusterRoleBinding left behind by a stale reconcile");
}

/// Churn with the controller running and no pauses: create → update → delete cycles of
/// resources whose toggles create and remove cluster-scoped children (`useClusterRole`,
/// `vectorMetrics.enabled`, `s3Prefix`), names reused at once, deletes landing while
/// reconciles of the same resource are in flight. Afterwards no ClusterRole or binding of any
/// of them is left.
#[tokio::test]
async fn churn_leaves_no_cluster_scoped_children() {
    use futures::StreamExt;
    let client = env().client().await;
    let ns = namespace(&client, "churn").await;
    start_controller(&ns).await;
    let mss = Api::<monitoring_operator::api::MonitoringServices>::namespaced(client.clone(), &ns);
    const WORKERS: usize = 6;
    const CYCLES: usize = 40; // per worker: 240 in all
    futures::stream::iter(0..WORKERS)
        .for_each_concurrent(WORKERS, |w| {
            let (client, ns, mss) = (client.clone(), ns.clone(), mss.clone());
            async move {
                let name = format!("churn-{w}");
                for i in 0..CYCLES {
                    let mut spec = basic_spec();
                    spec["useClusterRole"] = json!(i % 2 == 0);
                    spec["vectorMetrics"]["enabled"] = json!(i % 3 != 0);
                    create(&client, &ns, ms_json(&name, spec)).await.unwrap();
                    // Give the controller a moment on some cycles only: the others are deleted
                    // before or during their first reconcile.
                    if i % 4 == 0 {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    patch_spec(
                        &client,
                        &ns,
                        &name,
                        json!({"useClusterRole": i % 2 == 1, "vectorLogs": {"s3Prefix": format!("p{i}")}}),
                    )
                    .await;
                    mss.delete(&name, &Default::default()).await.unwrap();
                    eventually("deleted (finalizer done)", SHORT, || async {
                        mss.get_opt(&name).await.unwrap().is_none().then_some(())
                    })
                    .await;
                }
            }
        })
        .await;
    let selector = format!("e6data.io/owner-namespace={ns}");
    let lp = kube::api::ListParams::default().labels(&selector);
    let (crs, crbs) = (Api::<ClusterRole>::all(client.clone()), Api::<ClusterRoleBinding>::all(client.clone()));
    // Reconciles still queued when the last delete returned get their chance to misbehave.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut left: Vec<String> = crs.list_metadata(&lp).await.unwrap().items.iter().map(|o| o.name_any()).collect();
    left.extend(crbs.list_metadata(&lp).await.unwrap().items.iter().map(|o| format!("binding {}", o.name_any())));
    assert!(left.is_empty(), "cluster-scoped children left after {} cycles: {left:?}", WORKERS * CYCLES);
}
