//! Test harness: one real control plane (kube-apiserver + etcd + kube-controller-manager from
//! `kubetestenv up`) per test binary, the CRD installed once, a namespace and an in-process
//! controller per test. The control plane stops when the test process exits (its stdin
//! pipe closes).
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use monitoring_operator::controller::{self, client::RequestCounter};

pub struct TestEnv {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();
static PROCESS: Mutex<Option<Child>> = Mutex::new(None);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
        let mut child = Command::new(&bin)
            .args(["up", "--dir"])
            .arg(&dir)
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
        *PROCESS.lock().unwrap() = Some(child);
        let env = TestEnv { kubeconfig, bin };
        let crd = repo().join("deploy/crd.yaml");
        env.kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()]);
        env.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "crd/monitoringservices.e6data.io"]);
        env
    })
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
    let (client, counter) = controller::client::counted(env().config().await).unwrap();
    let settings = controller::Settings { namespace: Some(namespace.to_string()), ..Default::default() };
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
