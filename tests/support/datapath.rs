//! The far ends of the data path for tests that run real Vector: moto's S3-compatible server
//! (from PyPI, `scripts/moto.sh`), and Vector itself run the way a collector pod runs it, on
//! an emulated node.
//!
//! The node's pod-log root: Vector's sources read `/var/log/pods` (kubernetes_logs has no
//! option to move it, and the namespace-scoped file source's globs name it), so each Vector runs
//! in a private mount namespace (`unshare -m`, we are root) with a test-owned directory bound
//! over `/var/log`. Nothing on the machine's own `/var/log` is read or written.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::files::repo;

/// A free loopback port (bound and released: good enough on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An empty directory for one test's files (Vector's data dir, the node's log root): a
/// checkpoint left by an earlier run with the same process id must never be read.
pub fn fresh_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("datapath-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// [`fresh_dir`] with an emulated node's empty pod-log root in it: (dir, the `/var/log` to bind).
pub fn fresh_node(test: &str) -> (PathBuf, PathBuf) {
    let dir = fresh_dir(test);
    let var_log = dir.join("var-log");
    std::fs::create_dir_all(var_log.join("pods")).unwrap();
    (dir, var_log)
}

fn moto_bin() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/moto.sh")).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "scripts/moto.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A moto S3 server on loopback, killed on drop.
pub struct S3 {
    child: Child,
    pub port: u16,
    bin: PathBuf,
    log: PathBuf,
}

impl S3 {
    pub fn start() -> S3 {
        let bin = moto_bin();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let child = Self::spawn(&bin, port, &log);
        S3 { child, port, bin, log }
    }

    /// A server holding one empty bucket.
    pub fn with_bucket(bucket: &str) -> S3 {
        let s3 = S3::start();
        s3.create_bucket(bucket);
        s3
    }

    fn spawn(bin: &Path, port: u16, log: &Path) -> Child {
        // moto logs one line per request: the first thing to read when a test sees nothing arrive.
        let child = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    /// The last `n` requests moto logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn python(&self, script: &str, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("python"))
            .arg("-c")
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.python(
            "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1').create_bucket(Bucket=sys.argv[2])",
            &[bucket],
        );
    }

    /// Every object of `bucket`: key, content type and its records (gunzipped NDJSON lines).
    pub fn objects(&self, bucket: &str) -> Vec<Object> {
        let script = r#"
import sys, json, gzip, boto3
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')
out = []
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2]):
    for o in page.get('Contents', []):
        obj = s3.get_object(Bucket=sys.argv[2], Key=o['Key'])
        body = obj['Body'].read()
        if obj.get('ContentEncoding') == 'gzip' or body[:2] == b'\x1f\x8b':
            body = gzip.decompress(body)
        out.append({'key': o['Key'], 'content_type': obj.get('ContentType'), 'content_encoding': obj.get('ContentEncoding'),
                    'records': [json.loads(l) for l in body.decode().splitlines() if l.strip()]})
print(json.dumps(out))
"#;
        serde_json::from_str(&self.python(script, &[bucket])).unwrap()
    }

    /// All records of `bucket`, once at least `want` distinct messages arrived (or the timeout
    /// passed): duplicates and heartbeats must not end the wait early.
    pub fn wait_records(&self, bucket: &str, want: usize, timeout: Duration) -> Vec<Object> {
        let deadline = Instant::now() + timeout;
        loop {
            let objects = self.objects(bucket);
            // Records without a message (metrics) count as themselves.
            let distinct: std::collections::BTreeSet<String> = objects
                .iter()
                .flat_map(|o| &o.records)
                .filter(|r| !is_heartbeat(r))
                .map(|r| r["message"].as_str().map(str::to_string).unwrap_or_else(|| r.to_string()))
                .collect();
            if distinct.len() >= want || Instant::now() > deadline {
                return objects;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[derive(serde::Deserialize, Debug, Clone)]
pub struct Object {
    pub key: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub records: Vec<Value>,
}

/// A Vector process on an emulated node, killed on drop; its log is kept for failures.
pub struct Vector {
    child: Child,
    pub log: PathBuf,
}

impl Vector {
    /// Run `bin` on `configs` (as the collector container does: several `--config`,
    /// `--watch-config`) with `var_log` bound over `/var/log` in a private mount namespace.
    pub fn start(bin: &Path, configs: &[PathBuf], var_log: &Path, env: &[(&str, &str)]) -> Vector {
        let log = var_log.parent().unwrap().join("vector.log");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /var/log && exec "$@""#)
            .arg(var_log)
            .arg(bin);
        for c in configs {
            cmd.arg("--config").arg(c);
        }
        // Everything the tests reach is on loopback: a proxy from the environment must not be used.
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            cmd.env_remove(var);
        }
        cmd.arg("--watch-config")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("VECTOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Vector { child: cmd.spawn().unwrap(), log }
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILL, as the OOM killer ends a container: no shutdown, no final checkpoint.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The Vector process (unshare and sh exec into it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Vector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Vector's own metrics from its Prometheus exporter at `addr` (empty when unreachable).
pub fn vector_metrics(addr: &str) -> String {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// Events `component` received so far, from the exporter at `addr`.
pub fn received(addr: &str, component: &str) -> u64 {
    component_total(addr, "vector_component_received_events_total", component)
}

/// Events `component` sent on (for a sink: delivered and acknowledged), from the exporter.
pub fn sent(addr: &str, component: &str) -> u64 {
    component_total(addr, "vector_component_sent_events_total", component)
}

fn component_total(addr: &str, metric: &str, component: &str) -> u64 {
    vector_metrics(addr)
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| l.contains(&format!("component_id=\"{component}\"")))
        // `name{labels} value [timestamp]`
        .filter_map(|l| l.rsplit_once('}')?.1.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Events in and out of every component, buffer sizes and errors: what a failure message needs
/// to say where events stopped.
pub fn counters(addr: &str) -> String {
    let keep = [
        "vector_component_received_events_total",
        "vector_component_sent_events_total",
        "vector_buffer_events",
        "vector_component_errors_total",
        "vector_component_discarded_events_total",
    ];
    vector_metrics(addr).lines().filter(|l| keep.iter().any(|k| l.starts_with(k))).collect::<Vec<_>>().join("\n")
}

/// Marks the lines a [`Heartbeat`] writes; waits and checks leave them out.
pub const HEARTBEAT: &str = "heartbeat-";

/// One line a second into a pod's log file, as a node's chatty pods write all the time; stops
/// on drop. Why: Vector 0.57's disk buffer sometimes misses the wake-up for events written
/// into it while nothing else follows (vectordotdev/vector#22946: "Event stuck in buffer and
/// remains unprocessed" until the next event arrives). A test that writes one batch and then
/// waits for it hit that in about 1 of 8 runs (nothing reached S3 for minutes); on a real node
/// the next line releases them. The tests' own lines are still counted exactly.
pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(file: PathBuf) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !flag.load(Ordering::SeqCst) {
                append(&file, &cri_lines(&[format!("{HEARTBEAT}{n}")]));
                n += 1;
                for _ in 0..10 {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Heartbeat { stop, thread: Some(thread) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// True for a record a [`Heartbeat`] wrote.
pub fn is_heartbeat(record: &Value) -> bool {
    record["message"].as_str().is_some_and(|m| m.starts_with(HEARTBEAT))
}

/// CRI log lines (`<time> <stream> F <message>`), as the kubelet writes them.
pub fn cri_lines(messages: &[String]) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    messages.iter().map(|m| format!("{now} stdout F {m}\n")).collect()
}

/// The log file of container `app` of pod `p` under the emulated node's `/var/log`.
pub fn log_file(var_log: &Path, p: &k8s_openapi::api::core::v1::Pod) -> PathBuf {
    let m = &p.metadata;
    var_log.join(format!(
        "pods/{}_{}_{}/app/0.log",
        m.namespace.as_deref().unwrap(),
        m.name.as_deref().unwrap(),
        m.uid.as_deref().unwrap()
    ))
}

/// What the DaemonSet changes by its mounts and what two Vectors on one machine must not
/// share: the data dir (a hostPath in the pod) and the API and metrics ports.
pub fn localise(cfg: &mut Value, dir: &Path) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    cfg["data_dir"] = serde_json::json!(data);
    cfg["api"]["address"] = serde_json::json!(format!("127.0.0.1:{}", free_port()));
    cfg["sinks"]["vector_metrics_exporter"]["address"] = serde_json::json!(format!("127.0.0.1:{}", free_port()));
}

/// Append `text` to `path`, creating it and its directory.
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A Prometheus target on loopback serving one counter, recording when it was scraped.
pub struct Target {
    pub port: u16,
    pub scrapes: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl Target {
    pub fn start(metric: &str) -> Target {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scrapes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, metric) = (scrapes.clone(), metric.to_string());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                log.lock().unwrap().push(Instant::now());
                let body = format!("# TYPE {metric} counter\n{metric}{{namespace=\"theirs\"}} 42\n");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Target { port, scrapes }
    }

    /// Seconds between consecutive scrapes so far.
    pub fn intervals(&self) -> Vec<f64> {
        let s = self.scrapes.lock().unwrap();
        s.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect()
    }
}

/// Debian's Prometheus (`scripts/promtool.sh` installs the package) as a remote-write receiver
/// on loopback, killed on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Prometheus {
    pub fn start(dir: &Path) -> Prometheus {
        let out = Command::new("bash").arg(repo().join("scripts/promtool.sh")).output().unwrap();
        assert!(out.status.success(), "scripts/promtool.sh: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, "global: {}\n").unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "prometheus did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { child, port }
    }

    /// The series of an instant query, as the HTTP API returns them.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        use std::io::Write;
        let q: String = q
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        write!(stream, "GET /api/v1/query?query={q} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut resp = String::new();
        stream.read_to_string(&mut resp).unwrap();
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
        let v: Value = serde_json::from_str(body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on loopback in front of a server, that can be switched off: while off it drops
/// every connection at once (what a client sees of an unreachable service), and the server
/// behind it keeps its state.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Connections accepted and bytes forwarded (both directions): said when a test fails.
    stats: Arc<(AtomicU64, AtomicU64)>,
    /// The first MiB the clients sent (request heads are plain text even when bodies are not).
    sent: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let stats = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, counters, captured) = (up.clone(), stats.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counters.0.fetch_add(1, Ordering::SeqCst);
                if !flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let pipe = |mut from: std::net::TcpStream,
                            mut to: std::net::TcpStream,
                            capture: Option<Arc<std::sync::Mutex<Vec<u8>>>>| {
                    let (up, counters) = (flag.clone(), counters.clone());
                    move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    use std::io::Write;
                                    if !up.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                    counters.1.fetch_add(n as u64, Ordering::SeqCst);
                                    if let Some(c) = &capture {
                                        let mut c = c.lock().unwrap();
                                        let room = (1usize << 20).saturating_sub(c.len()).min(n);
                                        c.extend_from_slice(&buf[..room]);
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    }
                };
                std::thread::spawn(pipe(client, server, Some(captured.clone())));
                std::thread::spawn(pipe(s2, c2, None));
            }
        });
        Proxy { port, up, stats, sent }
    }

    /// Values of request header `name` (any case) the clients sent so far.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let sent = self.sent.lock().unwrap();
        let text = String::from_utf8_lossy(&sent);
        let prefix = format!("{}:", name.to_ascii_lowercase());
        text.split("\r\n")
            .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .collect()
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// "N connections, M bytes forwarded", for failure messages.
    pub fn stats(&self) -> String {
        format!(
            "{} connections, {} bytes forwarded",
            self.stats.0.load(Ordering::SeqCst),
            self.stats.1.load(Ordering::SeqCst)
        )
    }
}

/// One data-path test at a time: each runs real Vector processes whose timing (glob cooldowns,
/// batch timeouts, reload debounce) is what they check, and five of them at once on 2 cores
/// starve each other. Hold the guard for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
