//! Shared clusters, against the real control plane: whatever verb edits one of the operator's
//! children (merge, strategic or JSON patch, a PUT, `kubectl set image`, a forced apply by
//! another manager), the operator puts its own values back, promptly (the edit's watch event
//! triggers the reconcile; no resync is waited for).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, Patch, PatchParams, PostParams};
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
