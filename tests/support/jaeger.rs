//! A real Jaeger (v2, built from the Go module proxy by `scripts/jaeger.sh`) on loopback, with
//! in-memory storage: OTLP in (gRPC and HTTP), traces read back through its query API
//! (`/api/traces`), the same API Grafana's Jaeger data source uses.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::datapath::free_port;
use super::files::repo;

/// `$JAEGER_BIN` (scripts/test.sh builds it before the tests), else built here.
fn jaeger_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("JAEGER_BIN") {
        return PathBuf::from(bin);
    }
    let out = Command::new("bash").arg(repo().join("scripts/jaeger.sh")).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "scripts/jaeger.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub struct Jaeger {
    child: Child,
    dir: PathBuf,
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    pub query: u16,
}

impl Jaeger {
    pub fn start() -> Jaeger {
        let bin = jaeger_bin();
        let (otlp_grpc, otlp_http, query, query_grpc) = (free_port(), free_port(), free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("jaeger-{}-{query}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The all-in-one layout (cmd/jaeger/internal/all-in-one.yaml) reduced to what the tests
        // use, on ports of their own so that runs never collide.
        let config = format!(
            r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
        );
        let file = dir.join("config.yaml");
        std::fs::write(&file, config).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("jaeger.log")).unwrap())
            .spawn()
            .unwrap();
        let mut j = Jaeger { child, dir, otlp_grpc, otlp_http, query };
        let deadline = Instant::now() + Duration::from_secs(60);
        while j.get("/api/services").is_none() {
            assert!(matches!(j.child.try_wait(), Ok(None)), "jaeger exited:\n{}", j.log_text());
            assert!(Instant::now() < deadline, "jaeger's query API did not come up:\n{}", j.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
        j
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("jaeger.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("http://127.0.0.1:{}{path}", self.query)])
            .output()
            .ok()?;
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// The traces Jaeger holds for `service` (its `/api/traces` answer's `data`).
    pub fn traces(&self, service: &str) -> Vec<Value> {
        self.get(&format!("/api/traces?service={service}&lookback=1h&limit=1000"))
            .and_then(|v| v["data"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Wait until `found` picks something out of `service`'s traces.
    pub fn wait_for<T>(&self, service: &str, timeout: Duration, found: impl Fn(&[Value]) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = found(&self.traces(service)) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "not in jaeger after {timeout:?}; {service}'s traces: {:#}\njaeger:\n{}",
                Value::from(self.traces(service)),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// A span's (or process's) tag value as a string, from Jaeger's JSON (`tags: [{key, value}]`).
pub fn tag(v: &Value, key: &str) -> Option<String> {
    v["tags"].as_array()?.iter().find(|t| t["key"] == key).map(|t| match &t["value"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
