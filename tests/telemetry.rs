//! The operator's own observability, with the real binary (`monitoring-operator run`) against
//! the real control plane: its /metrics shows the status of resources in several phases and
//! forgets deleted ones (and passes `promtool check metrics`); with `ENABLE_TRACING=1` it sends
//! a reconcile trace with one child span per API call to an OTLP/gRPC receiver built from the
//! official OpenTelemetry protobuf definitions (opentelemetry-proto).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DeleteParams};
use monitoring_operator::api::{MonitoringServices, Phase};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use support::*;

use support::datapath::free_port;

fn start_operator(ns: &str, metrics_port: u16, envs: &[(&str, String)]) -> Operator {
    // Each test's operator leads on its own Lease.
    let mut all = vec![("POD_NAMESPACE", ns), ("RUST_LOG", "info")];
    all.extend(envs.iter().map(|(k, v)| (*k, v.as_str())));
    let args = ["--namespace", ns, "--status-metrics-kind", "e6data.io/v1alpha2/MonitoringServices"];
    operator_process(metrics_port, &args, &all, Stdio::inherit())
}

async fn get(url: &str) -> Option<(u16, String)> {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.parse().ok()?, body.to_string()))
}

/// Value of the sample of `family` whose labels include all of `labels`.
fn sample(metrics: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().filter(|l| l.starts_with(&format!("{family}{{"))).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        labels.iter().all(|(k, v)| head.contains(&format!("{k}=\"{v}\""))).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn status_metrics_follow_resources() {
    let client = env().client().await;
    let ns = namespace(&client, "metrics").await;
    let port = free_port();
    let _op = start_operator(&ns, port, &[]);
    let base = format!("http://127.0.0.1:{port}");
    eventually("/readyz", Duration::from_secs(30), || async {
        get(&format!("{base}/readyz")).await.filter(|(c, _)| *c == 200)
    })
    .await;
    assert_eq!(get(&format!("{base}/healthz")).await.unwrap().0, 200);

    // One resource that runs, one that fails validation.
    let nodes = create_nodes(&client, &ns, 1).await;
    let mut good = basic_spec();
    good["nodeSelector"] = json!({"pool": ns.clone()});
    create(&client, &ns, ms_json("good", good)).await.unwrap();
    let mut bad = basic_spec();
    bad["vectorLogs"]["includeNamespaces"] = json!(["elsewhere"]);
    create(&client, &ns, ms_json("bad", bad)).await.unwrap();
    for sel in ["app.kubernetes.io/name=vector-logs", "app.kubernetes.io/name=vector-metrics"] {
        all_pods_ready(&client, &ns, sel, 1).await;
    }
    wait_status(&client, &ns, "good", "Running", |m| phase(m) == Some(Phase::Running)).await;
    wait_status(&client, &ns, "bad", "Failed", |m| phase(m) == Some(Phase::Failed)).await;

    let text = eventually("both resources in /metrics", Duration::from_secs(30), || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        let running = sample(&text, "monitoringservices_status_phase", &[("name", "good"), ("phase", "Running")]);
        let failed = sample(&text, "monitoringservices_status_phase", &[("name", "bad"), ("phase", "Failed")]);
        (running == Some(1.0) && failed == Some(1.0)).then_some(text)
    })
    .await;
    // StateSet: exactly one phase is 1 per resource.
    for name in ["good", "bad"] {
        let ones: f64 = Phase::ALL
            .iter()
            .map(|p| {
                sample(
                    &text,
                    "monitoringservices_status_phase",
                    &[("namespace", &ns), ("name", name), ("phase", p.as_str())],
                )
                .unwrap()
            })
            .sum();
        assert_eq!(ones, 1.0, "{name}");
    }
    let c = |name, t, reason| {
        sample(&text, "monitoringservices_status_condition", &[("name", name), ("type", t), ("reason", reason)])
    };
    assert_eq!(c("bad", "SpecValid", "InvalidSpec"), Some(0.0));
    assert_eq!(c("good", "Ready", "Running"), Some(1.0));
    assert_eq!(sample(&text, "monitoringservices_status_ready", &[("name", "good")]), Some(1.0));
    assert_eq!(
        sample(&text, "monitoringservices_component_ready_replicas", &[("name", "good"), ("component", "logs")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "customresource_status_phase",
            &[("customresource_kind", "MonitoringServices"), ("name", "good"), ("phase", "Running")]
        ),
        Some(1.0)
    );
    assert!(
        sample(&text, "monitoring_operator_kube_requests_total", &[("verb", "patch"), ("resource", "daemonsets")])
            .unwrap()
            >= 2.0
    );
    assert!(text.lines().any(|l| l.starts_with("monitoring_operator_reconciles_total ")), "{text}");
    assert!(text.contains("monitoring_operator_reconcile_duration_seconds_bucket"));

    // promtool lints the exposition (names, types, help).
    let promtool =
        String::from_utf8(Command::new("bash").arg(repo().join("scripts/promtool.sh")).output().unwrap().stdout)
            .unwrap();
    let mut check = Command::new(promtool.trim())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A deleted resource's series are gone.
    Api::<MonitoringServices>::namespaced(client.clone(), &ns).delete("bad", &DeleteParams::default()).await.unwrap();
    eventually("series of the deleted resource gone", Duration::from_secs(30), || async {
        let (_, text) = get(&format!("{base}/metrics")).await?;
        (sample(&text, "monitoringservices_status_phase", &[("name", "bad")]).is_none()
            && sample(&text, "monitoringservices_status_phase", &[("name", "good")]).is_some())
        .then_some(())
    })
    .await;
    delete_nodes(&client, &nodes).await;
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()).and_then(|v| match &v.value {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => Some(s.clone()),
        Some(other) => Some(format!("{other:?}")),
        None => None,
    })
}

#[tokio::test]
async fn enable_tracing_exports_reconcile_traces() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_listener(listener))
            .await
            .unwrap();
    });

    let client = env().client().await;
    let ns = namespace(&client, "traces").await;
    let _op = start_operator(
        &ns,
        free_port(),
        &[
            ("ENABLE_TRACING", "1".into()),
            ("TELEMETRY_ENDPOINT", addr.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ],
    );
    create(&client, &ns, ms_json("traced", basic_spec())).await.unwrap();

    let spans = eventually("a reconcile trace with API-call children", Duration::from_secs(60), || async {
        let spans = receiver.0.lock().unwrap().clone();
        // Find the reconcile that applied the children.
        spans
            .iter()
            .filter(|s| s.name == "reconcile MonitoringServices" && attr(s, "k8s.name").as_deref() == Some("traced"))
            .find_map(|root| {
                let children: Vec<Span> = spans.iter().filter(|s| s.parent_span_id == root.span_id).cloned().collect();
                children.iter().any(|s| s.name == "apply DaemonSet").then(|| (root.clone(), children))
            })
    })
    .await;
    let (root, children) = spans;
    assert_eq!(attr(&root, "k8s.namespace").as_deref(), Some(ns.as_str()));
    let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    // Children are read from the watch caches: no list request in a reconcile.
    assert!(!names.iter().any(|n| n.starts_with("list ")), "a reconcile listed: {names:?}");
    for want in ["apply ConfigMap", "apply DaemonSet", "patch status MonitoringServices"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // A new resource's children are all creations: a refusal deletes what was created, so no
    // dry run precedes them (it would double the writes).
    assert!(!names.iter().any(|n| n.starts_with("dry-run")), "dry runs at creation: {names:?}");
    let apply = children.iter().find(|s| s.name == "apply DaemonSet").unwrap();
    assert_eq!(apply.trace_id, root.trace_id);
    assert_eq!(attr(apply, "k8s.kind").as_deref(), Some("DaemonSet"));
    assert_eq!(attr(apply, "result").as_deref(), Some("ok"));
    assert!(attr(apply, "duration_ms").is_some());
    assert!(apply.end_time_unix_nano >= apply.start_time_unix_nano);
}

/// Accepted connections of a bound listener as the stream tonic serves from.
fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// The same reconcile trace in a real trace store: the operator exports OTLP/gRPC to a real
/// Jaeger (built from the Go module proxy), and the trace is read back through Jaeger's query
/// API, as Grafana's Jaeger data source reads it.
#[tokio::test]
async fn reconcile_traces_arrive_in_jaeger() {
    let jaeger = tokio::task::spawn_blocking(support::jaeger::Jaeger::start).await.unwrap();
    let client = env().client().await;
    let ns = namespace(&client, "jaeger").await;
    let _op = start_operator(
        &ns,
        free_port(),
        &[
            ("ENABLE_TRACING", "1".into()),
            ("TELEMETRY_ENDPOINT", format!("127.0.0.1:{}", jaeger.otlp_grpc)),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ],
    );
    create(&client, &ns, ms_json("stored", basic_spec())).await.unwrap();

    let jaeger = Arc::new(jaeger);
    let (root, apply, process) =
        eventually("a stored reconcile trace with an apply DaemonSet span", Duration::from_secs(90), || {
            let jaeger = jaeger.clone();
            let ns = ns.clone();
            async move {
                let traces = tokio::task::spawn_blocking(move || jaeger.traces("monitoring-operator")).await.ok()?;
                traces.into_iter().find_map(|t| {
                    let spans = t["spans"].as_array()?.clone();
                    let root = spans.iter().find(|s| {
                        s["operationName"] == "reconcile MonitoringServices"
                            && support::jaeger::tag(s, "k8s.name").as_deref() == Some("stored")
                            && support::jaeger::tag(s, "k8s.namespace").as_deref() == Some(ns.as_str())
                    })?;
                    let apply = spans.iter().find(|s| {
                        s["operationName"] == "apply DaemonSet"
                            && s["references"].as_array().is_some_and(|r| {
                                r.iter().any(|r| r["refType"] == "CHILD_OF" && r["spanID"] == root["spanID"])
                            })
                    })?;
                    let process = t["processes"][root["processID"].as_str()?].clone();
                    Some((root.clone(), apply.clone(), process))
                })
            }
        })
        .await;
    assert_eq!(process["serviceName"], "monitoring-operator");
    assert_eq!(support::jaeger::tag(&apply, "k8s.kind").as_deref(), Some("DaemonSet"));
    assert_eq!(support::jaeger::tag(&apply, "result").as_deref(), Some("ok"));
    assert_eq!(apply["traceID"], root["traceID"]);
}

/// Wait up to `limit` for `child` to exit after a SIGTERM; its exit status if it did.
fn terminate(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// A SIGTERM ends the operator, with the apiserver reachable and without: before, with the
/// apiserver unreachable the process never stopped (its graceful shutdown never finished),
/// so a pod would wait out its grace period and be killed.
#[tokio::test]
async fn sigterm_ends_the_operator_even_with_the_apiserver_unreachable() {
    let dead = std::env::temp_dir().join(format!("dead-kubeconfig-{}", std::process::id()));
    let port = free_port(); // nothing listens there
    std::fs::write(
        &dead,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"https://127.0.0.1:{port}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: x}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let client = env().client().await;
    let ns = namespace(&client, "sigterm").await;
    for kubeconfig in [dead.clone(), env().kubeconfig.clone()] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_monitoring-operator"))
            .args(["run", "--namespace", &ns, "--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", &ns)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(child.try_wait().unwrap().is_none(), "{}: exited before the signal", kubeconfig.display());
        let (status, mut child) =
            tokio::task::spawn_blocking(move || (terminate(&mut child, Duration::from_secs(60)), child)).await.unwrap();
        if status.is_none() {
            let _ = child.kill();
        }
        assert!(status.is_some(), "{}: still running 60 s after SIGTERM", kubeconfig.display());
    }
    std::fs::remove_file(&dead).ok();
}
