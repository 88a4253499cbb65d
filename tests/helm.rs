//! The Helm chart (charts/monitoring-operator): `helm lint --strict`, `helm template` with the
//! default and the CI values, the chart's copies of deploy/ files, and install → upgrade →
//! uninstall on the real apiserver with the operator running in-process as the chart's
//! ServiceAccount (impersonation), which proves the chart's RBAC suffices. Helm comes from
//! `HELM_BIN` or scripts/helm.sh (built from the Go module proxy, cached).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use monitoring_operator::api::{MonitoringServices, Phase};
use serde_json::{Value, json};
use support::files::yaml_documents;
use support::*;

const RELEASE: &str = "mo";
const FULLNAME: &str = "mo-monitoring-operator";
const CRD_NAME: &str = "monitoringservices.e6data.io";

fn chart() -> PathBuf {
    repo().join("charts/monitoring-operator")
}

fn ci_values() -> PathBuf {
    chart().join("ci/restricted-values.yaml")
}

fn helm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("HELM_BIN") {
            return p.into();
        }
        // Not run through scripts/test.sh: build (or reuse) it the same way.
        let out = Command::new("bash")
            .arg(repo().join("scripts/helm.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/helm.sh");
        assert!(out.status.success(), "scripts/helm.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Run helm with its own config, cache and data directories (nothing of the user's is read or
/// written) and no ambient kubeconfig: Ok(stdout) or Err(stdout + stderr).
fn helm(args: &[&str]) -> Result<String, String> {
    let home = std::env::temp_dir().join(format!("monitoring-operator-helm-{}", std::process::id()));
    let out = Command::new(helm_bin())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("run helm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() { Ok(stdout) } else { Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))) }
}

fn helm_ok(args: &[&str]) -> String {
    helm(args).unwrap_or_else(|e| panic!("helm {args:?} failed:\n{e}"))
}

/// Run helm off the async runtime (the in-process controller keeps running meanwhile).
async fn helm_async(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || helm_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

/// `helm template` of release `mo` in namespace monitoring-operator: the output and its
/// documents.
fn render(extra: &[&str]) -> (String, Vec<Value>) {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.to_str().unwrap(), "--namespace", "monitoring-operator"];
    args.extend_from_slice(extra);
    let text = helm_ok(&args);
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("helm template output: {e}\n{text}")))
        .filter(|v: &Value| !v.is_null())
        .collect();
    (text, docs)
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all(docs, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}: {found:#?}");
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The value of a literal env var of the operator container (None when absent).
fn env_value<'a>(docs: &'a [Value], name: &str) -> Option<&'a str> {
    let env = container(docs)["env"].as_array().expect("container env");
    let var = env.iter().find(|e| e["name"] == name)?;
    Some(var["value"].as_str().unwrap_or_else(|| panic!("{name} has no literal value: {var}")))
}

fn env_field_ref<'a>(docs: &'a [Value], name: &str) -> Option<&'a str> {
    let env = container(docs)["env"].as_array().unwrap();
    env.iter().find(|e| e["name"] == name)?["valueFrom"]["fieldRef"]["fieldPath"].as_str()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rules of the ClusterRole in deploy/operator.yaml.
fn deploy_cluster_role_rules() -> Value {
    let docs = yaml_documents(&repo().join("deploy/operator.yaml"));
    docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap()["rules"].clone()
}

#[test]
fn chart_lints_strict_with_default_and_ci_values() {
    let chart = chart();
    let ci = ci_values();
    for extra in [vec![], vec!["-f", ci.to_str().unwrap()]] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend_from_slice(&extra);
        let out = helm_ok(&args);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
        assert!(!out.contains("[WARNING]") && !out.contains("[ERROR]"), "{out}");
    }
}

/// The schema catches typos and wrong types instead of ignoring them.
#[test]
fn values_schema_rejects_unknown_and_mistyped_values() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for set in [
        "replica=3",
        "image.tags=1.0",
        "tenancy.policy=strict",
        "replicas=two",
        "serviceMonitor.enable=true",
        "collection.mode=per-node",
    ] {
        let err = helm(&["template", RELEASE, chart, "--set", set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "{set}: {err}");
    }
    let err = helm(&["template", RELEASE, chart, "--set", "tracing.enabled=true"]).unwrap_err();
    assert!(err.contains("tracing.endpoint is required"), "{err}");
    let err = helm(&["template", RELEASE, chart, "--set", "leaderElection.enabled=false"]).unwrap_err();
    assert!(err.contains("replicas > 1 needs leaderElection.enabled"), "{err}");
}

#[test]
fn default_values_render_the_ha_operator() {
    let (text, docs) = render(&[]);
    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["metadata"]["name"], FULLNAME);
    assert_eq!(deploy["metadata"]["namespace"], "monitoring-operator");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let soft = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(soft["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(soft["podAffinityTerm"]["labelSelector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"]);

    let c = container(&docs);
    let image = format!("ghcr.io/e6data/monitoring-operator:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(c["image"], image.as_str(), "image tag defaults to appVersion = the crate version");
    assert_eq!(env_value(&docs, "DISCOVERY_IMAGE"), Some(image.as_str()));
    assert_eq!(c["args"], json!(["run", "--log-format", "json"]));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["resources"], json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "metrics"}));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "metrics"}));
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(env_field_ref(&docs, "POD_NAME"), Some("metadata.name"));
    assert_eq!(env_field_ref(&docs, "POD_NAMESPACE"), Some("metadata.namespace"));
    assert_eq!(env_value(&docs, "LEADER_ELECTION"), Some("true"));
    assert_eq!(env_value(&docs, "LEASE_NAME"), Some(FULLNAME));
    assert_eq!(env_value(&docs, "TENANCY_POLICY"), Some("open"));
    assert_eq!(env_value(&docs, "COLLECTION_MODE"), Some("per-resource"), "the seed's layout by default");
    assert_eq!(env_value(&docs, "SHARED_NAMESPACE"), None, "the release namespace (POD_NAMESPACE)");
    assert_eq!((env_value(&docs, "SHARED_CPU"), env_value(&docs, "SHARED_MEMORY")), (Some("500m"), Some("512Mi")));
    assert_eq!(env_value(&docs, "METRICS_ADDR"), Some("0.0.0.0:8080"));
    assert_eq!(env_value(&docs, "FLOW_INTERVAL_SECS"), Some("30"));
    assert_eq!(env_value(&docs, "FLOW_CONCURRENCY"), Some("32"));
    assert_eq!(
        env_value(&docs, "FLOW_WINDOW_SECS"),
        Some(monitoring_operator::model::DEFAULT_FLOW_WINDOW_SECS.to_string().as_str())
    );
    for absent in ["WATCH_NAMESPACE", "PINNED_TENANTS", "ENABLE_TRACING", "TELEMETRY_ENDPOINT", "GREPTIMEDB_URL"] {
        assert_eq!(env_value(&docs, absent), None, "{absent}");
    }

    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"]);
    let svc = one(&docs, "Service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    for off in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"] {
        assert!(all(&docs, off).is_empty(), "{off} is off by default");
    }

    // RBAC: exactly the ClusterRole rules of deploy/operator.yaml, bound to the ServiceAccount;
    // the Lease Role in the release namespace.
    assert_eq!(one(&docs, "ServiceAccount")["metadata"]["name"], FULLNAME);
    assert_eq!(one(&docs, "ClusterRole")["rules"], deploy_cluster_role_rules());
    let crb = one(&docs, "ClusterRoleBinding");
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "monitoring-operator"}])
    );
    let role = one(&docs, "Role");
    assert_eq!(role["metadata"]["namespace"], "monitoring-operator");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}])
    );
    assert_eq!(one(&docs, "RoleBinding")["roleRef"]["name"], role["metadata"]["name"]);

    // The CRD: deploy/crd.yaml byte for byte, plus the keep policy and the chart's labels.
    let crd = one(&docs, "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    let source = read(&repo().join("deploy/crd.yaml"));
    let rendered = text
        .split("\n---\n")
        .find(|d| d.starts_with("# Source: monitoring-operator/templates/crd.yaml\n"))
        .expect("crd.yaml document")
        .split_once('\n')
        .unwrap()
        .1;
    let start = rendered.find("\n  annotations:\n").expect("annotations inserted") + 1;
    let end = rendered.find("\nspec:\n").unwrap() + 1;
    let without_metadata = format!("{}{}", &rendered[..start], &rendered[end..]);
    assert_eq!(without_metadata.trim_end(), source.trim_end(), "the CRD is deploy/crd.yaml unchanged");

    let (_, no_crd) = render(&["--set", "crds.install=false", "--set", "replicas=1"]);
    assert!(all(&no_crd, "CustomResourceDefinition").is_empty());
    assert!(all(&no_crd, "PodDisruptionBudget").is_empty(), "no PDB for a single replica");
}

#[test]
fn ci_values_render_restricted_ha_with_monitoring() {
    let ci = ci_values();
    let (_, docs) = render(&["-f", ci.to_str().unwrap()]);
    let deploy = one(&docs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 3);
    let c = container(&docs);
    assert_eq!(c["image"], "ghcr.io/e6data/monitoring-operator:0.1.0-ci");
    assert_eq!(env_value(&docs, "DISCOVERY_IMAGE"), c["image"].as_str());
    assert_eq!(c["args"], json!(["run", "--log-format", "text"]));
    assert_eq!(env_value(&docs, "TENANCY_POLICY"), Some("restricted"));
    assert_eq!(env_value(&docs, "CLUSTER_COLLECTOR_NAMESPACES"), Some("platform-observability"));
    assert_eq!(env_value(&docs, "SHARED_GREPTIME_NAMESPACES"), Some("greptime"));
    assert_eq!(env_value(&docs, "PINNED_TENANTS"), Some("team-a=tenant-a,team-b=tenant-b"));
    assert_eq!(env_value(&docs, "STATUS_METRICS_KINDS"), Some("cert-manager.io/v1/Certificate"));
    assert_eq!(env_value(&docs, "FLOW_INTERVAL_SECS"), Some("15"));
    assert_eq!(env_value(&docs, "LEASE_NAME"), Some("monitoring-operator-ci"));
    assert_eq!(env_value(&docs, "ENABLE_TRACING"), Some("1"));
    assert_eq!(env_value(&docs, "TELEMETRY_ENDPOINT"), Some("tempo.monitoring.svc:4317"));
    assert_eq!(env_value(&docs, "RUST_BACKTRACE"), Some("1"));
    assert_eq!(env_value(&docs, "COLLECTION_MODE"), Some("shared"));
    assert_eq!(env_value(&docs, "SHARED_NAMESPACE"), Some("platform-collectors"));
    assert_eq!(env_value(&docs, "SHARED_NODE_SELECTOR"), Some("kubernetes.io/os=linux,pool=general"));

    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["nodeSelector"], json!({"node-role.kubernetes.io/infra": ""}));
    assert_eq!(pod["tolerations"][0]["key"], "node-role.kubernetes.io/infra");
    let hard = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(hard["labelSelector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"]);
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["labelSelector"]["matchLabels"], deploy["spec"]["selector"]["matchLabels"]);
    assert_eq!(deploy["spec"]["template"]["metadata"]["annotations"]["example.com/team"], "platform");

    assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"], 1);
    let rules = one(&docs, "ClusterRole")["rules"].as_array().unwrap().clone();
    let base = deploy_cluster_role_rules();
    assert_eq!(&rules[..base.as_array().unwrap().len()], base.as_array().unwrap().as_slice());
    assert_eq!(rules.last().unwrap()["apiGroups"], json!(["cert-manager.io"]), "rbac.extraRules appended");

    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["honorLabels"], true);
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "30s");
    assert_eq!(sm["spec"]["selector"]["matchLabels"], one(&docs, "Service")["spec"]["selector"]);
    assert_eq!(one(&docs, "PodMonitor")["spec"]["namespaceSelector"], json!({"any": true}));

    // The PrometheusRule carries exactly the groups of the plain rule file.
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let groups = &yaml_documents(&repo().join("deploy/prometheus/monitoring-operator.rules.yaml"))[0]["groups"];
    assert!(groups.as_array().is_some_and(|g| !g.is_empty()));
    assert_eq!(&rule["spec"]["groups"], groups);

    // The dashboard ConfigMap for the Grafana sidecar: the dashboard file unchanged.
    let cm = one(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "Monitoring");
    let dashboard = read(&repo().join("deploy/grafana/monitoring-services-overview.json"));
    assert_eq!(cm["data"]["monitoring-services-overview.json"], dashboard.as_str());

    // A digest pins both the operator and the discovery sidecar.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let (_, pinned) = render(&["--set", &format!("image.digest={digest}")]);
    let image = format!("ghcr.io/e6data/monitoring-operator@{digest}");
    assert_eq!(container(&pinned)["image"], image.as_str());
    assert_eq!(env_value(&pinned, "DISCOVERY_IMAGE"), Some(image.as_str()));
}

/// charts/monitoring-operator/files/<path> is a byte-identical copy of deploy/<path>
/// (scripts/sync-chart-files.sh refreshes them).
#[test]
fn chart_files_are_copies_of_deploy() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let files = chart().join("files");
    let mut copies = Vec::new();
    walk(&files, &mut copies);
    copies.sort();
    let names: Vec<String> =
        copies.iter().map(|p| p.strip_prefix(&files).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["crd.yaml", "grafana/monitoring-services-overview.json", "prometheus/monitoring-operator.rules.yaml"]
    );
    for (copy, name) in copies.iter().zip(&names) {
        let source = repo().join("deploy").join(name);
        assert!(
            std::fs::read(copy).unwrap() == std::fs::read(&source).unwrap(),
            "{} differs from {}: run scripts/sync-chart-files.sh",
            copy.display(),
            source.display()
        );
    }
}

/// A seed example, renamed and moved into `ns`.
fn example(file: &str, name: &str, ns: &str) -> Value {
    let mut doc = yaml_documents(&repo().join("examples/seed").join(file)).remove(0);
    doc["metadata"] = json!({"name": name, "namespace": ns});
    doc
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

/// helm install → the operator works as the chart's ServiceAccount → helm upgrade → helm
/// uninstall, on the real apiserver (no kubelet: the Deployment's pods never run; the operator
/// runs in this process instead, impersonating the ServiceAccount).
#[tokio::test]
async fn install_upgrade_uninstall_on_the_apiserver() {
    let env = env();
    let client = env.client().await;
    // ClusterRole names are cluster-wide: a unique release (= its namespace's name).
    let ns = namespace(&client, "helm").await;
    let release = ns.clone();
    let fullname = format!("{release}-monitoring-operator");
    let kubeconfig = env.kubeconfig.to_str().unwrap().to_string();
    let chart = chart();
    let chart = chart.to_str().unwrap();

    // The harness applied the CRD with kubectl: hand it to the release (Helm's adoption
    // labels), as a user moving from `kubectl apply -k deploy/` would.
    let crd = format!("crd/{CRD_NAME}");
    env.kubectl(&["label", "--overwrite", &crd, "app.kubernetes.io/managed-by=Helm"]);
    env.kubectl(&[
        "annotate",
        "--overwrite",
        &crd,
        &format!("meta.helm.sh/release-name={release}"),
        &format!("meta.helm.sh/release-namespace={ns}"),
    ]);

    let out = helm_async(&["install", &release, chart, "--namespace", &ns, "--kubeconfig", &kubeconfig]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let deploy = deployments.get(&fullname).await.unwrap();
    let spec = deploy.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    let discovery = container.env.as_ref().unwrap().iter().find(|e| e.name == "DISCOVERY_IMAGE").unwrap();
    assert_eq!(discovery.value, container.image);
    assert!(exists(&Api::<ServiceAccount>::namespaced(client.clone(), &ns), &fullname).await);
    assert!(exists(&Api::<Service>::namespaced(client.clone(), &ns), &fullname).await);
    assert!(exists(&Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns), &fullname).await);
    let lease_role = format!("{fullname}-leader-election");
    assert!(exists(&Api::<Role>::namespaced(client.clone(), &ns), &lease_role).await);
    assert!(exists(&Api::<RoleBinding>::namespaced(client.clone(), &ns), &lease_role).await);
    let cluster_roles = Api::<ClusterRole>::all(client.clone());
    let cluster_bindings = Api::<ClusterRoleBinding>::all(client.clone());
    assert!(exists(&cluster_roles, &fullname).await);
    assert!(exists(&cluster_bindings, &fullname).await);
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let annotations = crds.get(CRD_NAME).await.unwrap().metadata.annotations.unwrap();
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    assert_eq!(annotations["meta.helm.sh/release-name"], release);

    // The operator as the chart's ServiceAccount, not as admin.
    let mut config = env.config().await;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{fullname}"));
    let sa = Client::try_from(config.clone()).unwrap();
    // The Lease Role: the lease crate's calls in the release namespace, and nowhere else.
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "rbac-probe"}, "spec": {"holderIdentity": "helm-test"}
    }))
    .unwrap();
    let ssa = PatchParams::apply("helm-test");
    let leases = Api::<Lease>::namespaced(sa.clone(), &ns);
    leases.patch("rbac-probe", &ssa, &Patch::Apply(&lease)).await.unwrap();
    leases.get("rbac-probe").await.unwrap();
    leases.delete("rbac-probe", &DeleteParams::default()).await.unwrap();
    let apps = namespace(&client, "helm-apps").await;
    let elsewhere = Api::<Lease>::namespaced(sa.clone(), &apps).patch("rbac-probe", &ssa, &Patch::Apply(&lease)).await;
    assert!(matches!(elsewhere, Err(kube::Error::Api(ref e)) if e.code == 403), "{elsewhere:?}");

    // With leader election on the release's Lease, as the chart runs it: only the holder
    // reconciles, so a status below also proves the Lease Role.
    let leader = monitoring_operator::controller::leader::LeaderSettings {
        namespace: ns.clone(),
        lease_name: fullname.clone(),
        identity: "helm-test".into(),
        client: monitoring_operator::controller::leader::lease_client(config.clone()).unwrap(),
    };
    start_controller_as(
        config,
        monitoring_operator::controller::Settings {
            namespace: Some(apps.clone()),
            leader: Some(leader),
            ..Default::default()
        },
    )
    .await;
    create(&client, &apps, example("seed-4.1-0.yaml", "scoped", &apps)).await.unwrap();
    create(&client, &apps, example("seed-4.5-0.yaml", "central", &apps)).await.unwrap();
    for name in ["scoped", "central"] {
        let ms = wait_status(&client, &apps, name, "a phase set by the chart's ServiceAccount", |m| phase(m).is_some())
            .await;
        let st = ms.status.unwrap();
        assert_ne!(st.phase, Some(Phase::Failed), "{name}: {:?}", st.message);
    }
    // useClusterRole: the operator created cluster-scoped collector RBAC with the chart's rights.
    assert!(exists(&cluster_bindings, &format!("monitoringservices:{apps}:central-vector")).await);
    let held = Api::<Lease>::namespaced(client.clone(), &ns).get(&fullname).await.unwrap();
    assert_eq!(held.spec.unwrap().holder_identity.as_deref(), Some("helm-test"));

    // helm upgrade with a changed value.
    let out = helm_async(&[
        "upgrade",
        &release,
        chart,
        "--namespace",
        &ns,
        "--kubeconfig",
        &kubeconfig,
        "--reuse-values",
        "--set",
        "replicas=3",
    ])
    .await;
    assert!(out.contains("STATUS: deployed") && out.contains("REVISION: 2"), "{out}");
    assert_eq!(deployments.get(&fullname).await.unwrap().spec.unwrap().replicas, Some(3));

    // helm uninstall: the release's objects go, the CRD (and the users' resources) stay.
    helm_async(&["uninstall", &release, "--namespace", &ns, "--kubeconfig", &kubeconfig]).await;
    eventually("the release's objects deleted", SHORT, || async {
        let gone = !exists(&deployments, &fullname).await
            && !exists(&Api::<ServiceAccount>::namespaced(client.clone(), &ns), &fullname).await
            && !exists(&Api::<Role>::namespaced(client.clone(), &ns), &lease_role).await
            && !exists(&cluster_roles, &fullname).await
            && !exists(&cluster_bindings, &fullname).await;
        gone.then_some(())
    })
    .await;
    let kept = crds.get(CRD_NAME).await.expect("the CRD survives helm uninstall");
    assert!(kept.metadata.deletion_timestamp.is_none());
    let resources = Api::<MonitoringServices>::namespaced(client.clone(), &apps);
    assert!(exists(&resources, "scoped").await && exists(&resources, "central").await);
}
