//! Test harness: one real control plane (kube-apiserver + etcd + kube-controller-manager from
//! `kubetestenv up`) per test binary, the CRD installed once, a namespace and an in-process
//! controller per test. The control plane stops when the test process exits (its stdin
//! pipe closes).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use monitoring_operator::api::{MonitoringServices, Phase};
use monitoring_operator::controller::{self, client::RequestCounter};
use serde_json::{Value, json};

pub struct TestEnv {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();
static PROCESS: Mutex<Option<Child>> = Mutex::new(None);

pub mod datapath;
pub mod files;
pub mod jaeger;
pub mod loki;
pub mod rendered;
pub mod vector_bin;
pub use files::repo;

fn kubetestenv_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KUBETESTENV_BIN") {
        return p.into();
    }
    // Not run through scripts/test.sh: build (or reuse) it the same way.
    let out = Command::new("bash")
        .arg(repo().join("scripts/kubetestenv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/kubetestenv.sh");
    assert!(out.status.success(), "scripts/kubetestenv.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The shared control plane, started on first use.
pub fn env() -> &'static TestEnv {
    ENV.get_or_init(|| {
        let bin = kubetestenv_bin();
        let dir = std::env::temp_dir().join(format!("monitoring-operator-test-{}", std::process::id()));
        let (child, kubeconfig) = spawn_up(&bin, &[OsStr::new("--dir"), dir.as_os_str()]);
        *PROCESS.lock().unwrap() = Some(child);
        let env = TestEnv { kubeconfig, bin };
        let crd = repo().join("deploy/crd.yaml");
        env.kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        env.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "crd/monitoringservices.e6data.io"]);
        env
    })
}

/// `kubetestenv up ARGS`, once it printed READY: the process and its kubeconfig.
fn spawn_up(bin: &Path, args: &[&OsStr]) -> (Child, PathBuf) {
    let mut child = Command::new(bin)
        .arg("up")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kubetestenv up");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let kubeconfig = loop {
        let line = lines.next().expect("kubetestenv exited before READY").unwrap();
        if let Some(p) = line.strip_prefix("READY ") {
            break PathBuf::from(p);
        }
    };
    (child, kubeconfig)
}

/// A control plane of one test's own, on a fixed port with kept state, that the test can
/// stop and start again (an apiserver outage, a restart). The shared [`env`] is not touched.
pub struct OwnControlPlane {
    pub env: TestEnv,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OwnControlPlane {
    pub fn start(name: &str) -> OwnControlPlane {
        let bin = kubetestenv_bin();
        let dir = std::env::temp_dir().join(format!("monitoring-operator-{name}-{}", std::process::id()));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cp = OwnControlPlane { env: TestEnv { kubeconfig: PathBuf::new(), bin }, dir, port, child: None };
        cp.up();
        let crd = repo().join("deploy/crd.yaml");
        cp.env.kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        cp.env.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "crd/monitoringservices.e6data.io"]);
        cp
    }

    fn up(&mut self) {
        let port = self.port.to_string();
        let args =
            [OsStr::new("--dir"), self.dir.as_os_str(), OsStr::new("--keep"), OsStr::new("--port"), OsStr::new(&port)];
        let (child, kubeconfig) = spawn_up(&self.env.bin, &args);
        self.child = Some(child);
        self.env.kubeconfig = kubeconfig;
    }

    /// Stop everything (etcd included); the state stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take()); // kubetestenv stops when its stdin closes
            let _ = child.wait();
        }
    }

    /// Start again on the same state, port and certificates.
    pub fn restart(&mut self) {
        self.stop();
        self.up();
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestEnv {
    /// Run the kubectl built with the control plane; panics with its output on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_result(args);
        match out {
            Ok(s) => s,
            Err(e) => panic!("kubectl {args:?} failed: {e}"),
        }
    }

    pub fn kubectl_result(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("run kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
        }
    }

    pub async fn config(&self) -> Config {
        let kc = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap()
    }

    /// A new client (clients are per test: each test has its own runtime).
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).unwrap()
    }
}

/// The operator binary (or any child process) running for a test; killed when dropped.
pub struct Operator(pub Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `monitoring-operator run` (the real binary) against the shared control plane, metrics on
/// 127.0.0.1:`port`, with more `args` and `envs`; its log goes to `log`.
pub fn operator_process(port: u16, args: &[&str], envs: &[(&str, &str)], log: Stdio) -> Operator {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monitoring-operator"));
    cmd.args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("KUBECONFIG", &env().kubeconfig)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Operator(cmd.spawn().unwrap())
}

/// A fresh namespace named after the test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:x}", rand_suffix());
    create_namespace(client, &name).await;
    name
}

pub async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (t.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffffff
}

/// Run the operator's controller for `namespace` in this test's runtime; its API requests
/// are counted.
pub async fn start_controller(namespace: &str) -> RequestCounter {
    start_controller_with(controller::Settings { namespace: Some(namespace.to_string()), ..Default::default() }).await
}

pub async fn start_controller_with(settings: controller::Settings) -> RequestCounter {
    start_controller_as(env().config().await, settings).await
}

/// Run the controller with the credentials of `config` (e.g. impersonating its ServiceAccount).
pub async fn start_controller_as(config: Config, settings: controller::Settings) -> RequestCounter {
    let (client, counter) = controller::client::counted(config).unwrap();
    tokio::spawn(controller::run(client, settings));
    counter
}

/// Poll `f` until it returns Some, or panic after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bind the DaemonSet's pods to their nodes and set their Ready condition, as a kubelet would.
pub async fn set_pods_ready(client: &Client, ns: &str, selector: &str, ready: bool, limit: usize) -> usize {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let mut n = 0;
    for pod in pods.list(&ListParams::default().labels(selector)).await.unwrap() {
        if n >= limit {
            break;
        }
        let name = pod.name_any();
        if pod.metadata.deletion_timestamp.is_some() {
            // What a kubelet does for a terminating pod: confirm it is gone.
            let _ = pods.delete(&name, &DeleteParams::default().grace_period(0)).await;
            continue;
        }
        let spec = pod.spec.clone().unwrap();
        if spec.node_name.is_none() {
            // The DaemonSet controller pins each pod to its node with a matchFields affinity.
            let terms = spec
                .affinity
                .unwrap()
                .node_affinity
                .unwrap()
                .required_during_scheduling_ignored_during_execution
                .unwrap();
            let node =
                terms.node_selector_terms[0].match_fields.as_ref().unwrap()[0].values.as_ref().unwrap()[0].clone();
            let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": node}});
            let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/binding"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&binding).unwrap())
                .unwrap();
            if client.request::<Value>(req).await.is_err() {
                continue; // deleted or already bound meanwhile (a rollout in progress)
            }
        }
        let status = if ready { "True" } else { "False" };
        let patch = json!({"status": {"phase": "Running", "podIP": "10.1.0.1", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "ContainersReady", "status": status}
        ]}});
        if pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await.is_ok() {
            n += 1;
        }
    }
    n
}

/// Create `count` Nodes labelled `pool=<pool>` (no kubelet: they exist for the DaemonSet
/// controller and for discovery).
pub async fn create_nodes(client: &Client, pool: &str, count: usize) -> Vec<String> {
    let nodes = Api::<Node>::all(client.clone());
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("{pool}-node-{i}");
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"pool": pool}},
            "spec": {"providerID": format!("aws:///us-east-1a/i-{pool}-{i}")}});
        nodes.create(&PostParams::default(), &serde_json::from_value(node).unwrap()).await.unwrap();
        names.push(name);
    }
    names
}

pub async fn delete_nodes(client: &Client, names: &[String]) {
    for n in names {
        let _ = Api::<Node>::all(client.clone()).delete(n, &DeleteParams::default()).await;
    }
}

/// Make every pod of the DaemonSets selected by `selector` ready (waits for them to exist).
pub async fn all_pods_ready(client: &Client, ns: &str, selector: &str, count: usize) {
    eventually("pods created", Duration::from_secs(30), || async {
        let pods =
            Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default().labels(selector)).await.unwrap();
        (pods.items.len() == count).then_some(())
    })
    .await;
    assert_eq!(set_pods_ready(client, ns, selector, true, count).await, count);
}

// ---- MonitoringServices helpers ----

pub const LONG: Duration = Duration::from_secs(120);
pub const SHORT: Duration = Duration::from_secs(30);

pub fn ms_json(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices", "metadata": {"name": name}, "spec": spec})
}

pub fn basic_spec() -> Value {
    json!({
        "workspace": "analytics-prod",
        "tenant": "my-company",
        "vectorLogs": {"s3Bucket": "logs-bucket", "s3Region": "us-east-1"},
        "vectorMetrics": {"s3Bucket": "metrics-bucket", "s3Region": "us-east-1"}
    })
}

pub async fn create(client: &Client, ns: &str, body: Value) -> kube::Result<MonitoringServices> {
    let ms: MonitoringServices = serde_json::from_value(body).unwrap();
    Api::<MonitoringServices>::namespaced(client.clone(), ns).create(&PostParams::default(), &ms).await
}

pub async fn patch_spec(client: &Client, ns: &str, name: &str, spec: Value) {
    Api::<MonitoringServices>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
        .await
        .unwrap();
}

pub async fn get_ms(client: &Client, ns: &str, name: &str) -> MonitoringServices {
    Api::<MonitoringServices>::namespaced(client.clone(), ns).get(name).await.unwrap()
}

/// Wait until status reflects the current generation and `pred` holds.
pub async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&MonitoringServices) -> bool,
) -> MonitoringServices {
    eventually(what, LONG, || async {
        let ms = get_ms(client, ns, name).await;
        let current = ms.status.as_ref().and_then(|s| s.observed_generation) == ms.metadata.generation;
        (current && pred(&ms)).then_some(ms)
    })
    .await
}

pub fn phase(ms: &MonitoringServices) -> Option<Phase> {
    ms.status.as_ref().and_then(|s| s.phase)
}

pub async fn config_map(client: &Client, ns: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(name).await.unwrap()
}
