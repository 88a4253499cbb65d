//! Workload traces with real parts: the operator's rendered `{name}-vector-otlp` configuration
//! run by the real Vector 0.57.0, forwarding to a real Jaeger (OTLP/HTTP in, the query API out)
//! in place of Tempo: Jaeger's OTLP receiver is the same protocol Tempo's is. A span an
//! application sends arrives with its resource attributes (Jaeger's "process" tags) and its own
//! attributes. The operator's own spans into Jaeger are in tests/telemetry.rs.
//!
//! When `../shared/vector/` is missing the test says so loudly and stops; CI always has it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::time::{Duration, Instant};

use monitoring_operator::api::MonitoringServices;
use monitoring_operator::render::Kind;
use monitoring_operator::{model, render};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};

mod support;
use support::datapath::{Vector, free_port};
use support::jaeger::{Jaeger, tag};
use support::vector_bin;

/// The trace endpoint's vector.yaml for a resource `mon` in `ws` sending to `tempo`.
fn otlp_config(tempo: &str) -> Value {
    let ms: MonitoringServices = serde_json::from_value(json!({
        "apiVersion": "e6data.io/v1alpha2", "kind": "MonitoringServices",
        "metadata": {"name": "mon", "namespace": "ws", "uid": "u"},
        "spec": {"workspace": "analytics", "tenant": "acme",
                 "vectorLogs": {"s3Bucket": "logs", "s3Region": "us-east-1"}, "vectorMetrics": {"enabled": false},
                 "traces": {"enabled": true, "tempoEndpoint": tempo}},
    }))
    .unwrap();
    let m = model::build(&ms, &model::Dereferenced::default()).unwrap();
    let children = render::render(&m, None).unwrap().to_list().unwrap();
    let cm = children.iter().find(|c| c.kind == Kind::ConfigMap && c.name() == "mon-vector-otlp-config").unwrap();
    serde_norway::from_str(cm.object.data["data"]["vector.yaml"].as_str().unwrap()).unwrap()
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

/// One span of service `checkout` in namespace `shop`, as an OpenTelemetry SDK sends it.
fn workload_span(trace_id: [u8; 16]) -> ExportTraceServiceRequest {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", "checkout"),
                    string("k8s.namespace.name", "shop"),
                    string("k8s.pod.name", "checkout-7d9f"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    name: "GET /cart".into(),
                    kind: 2, // server
                    start_time_unix_nano: now - 5_000_000,
                    end_time_unix_nano: now,
                    attributes: vec![string("http.request.method", "GET")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// POST an OTLP/HTTP protobuf body; true on a 2xx answer.
fn post_otlp(url: &str, body: &[u8], dir: &Path) -> bool {
    let file = dir.join("request.pb");
    std::fs::write(&file, body).unwrap();
    std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", "-X", "POST", "-H", "content-type: application/x-protobuf"])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(url)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_workload_span_sent_to_the_trace_endpoint_arrives_in_jaeger() {
    let _serial = support::datapath::serial();
    let Some(bin) = vector_bin::vector() else { return };
    let dir = support::datapath::fresh_dir("traces");
    std::fs::create_dir_all(dir.join("var-log")).unwrap();
    let jaeger = Jaeger::start();

    let mut cfg = otlp_config(&format!("http://127.0.0.1:{}", jaeger.otlp_http));
    assert_eq!(cfg["sinks"]["tempo"]["protocol"]["uri"], format!("http://127.0.0.1:{}/v1/traces", jaeger.otlp_http));
    // What the Deployment's pod changes: the listen addresses (its own IP there, loopback
    // ports of their own here) and the data dir.
    let http = free_port();
    cfg["sources"]["otlp"]["http"]["address"] = json!(format!("127.0.0.1:{http}"));
    cfg["sources"]["otlp"]["grpc"]["address"] = json!(format!("127.0.0.1:{}", free_port()));
    cfg["data_dir"] = json!(dir.join("data"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    cfg["api"]["address"] = json!(format!("127.0.0.1:{}", free_port()));
    cfg["sinks"]["vector_metrics_exporter"]["address"] = json!(format!("127.0.0.1:{}", free_port()));
    let file = dir.join("vector.yaml");
    std::fs::write(&file, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let mut vector = Vector::start(&bin, &[file], &dir.join("var-log"), &[]);

    let trace_id: [u8; 16] = *b"checkout-trace-1";
    let body = workload_span(trace_id).encode_to_vec();
    let url = format!("http://127.0.0.1:{http}/v1/traces");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !post_otlp(&url, &body, &dir) {
        assert!(vector.running(), "vector exited:\n{}", vector.log_text());
        assert!(Instant::now() < deadline, "the trace endpoint never accepted the span:\n{}", vector.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }

    let hex: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    let trace = jaeger.wait_for("checkout", Duration::from_secs(60), |traces| {
        traces.iter().find(|t| t["traceID"] == hex.as_str()).cloned()
    });
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{trace:#}");
    let span = &spans[0];
    assert_eq!(span["operationName"], "GET /cart", "{trace:#}");
    assert_eq!(span["spanID"], "0102030405060708", "{trace:#}");
    assert_eq!(tag(span, "http.request.method").as_deref(), Some("GET"), "{trace:#}");
    assert_eq!(tag(span, "span.kind").as_deref(), Some("server"), "{trace:#}");
    let process = &trace["processes"][span["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "checkout", "{trace:#}");
    assert_eq!(tag(process, "k8s.namespace.name").as_deref(), Some("shop"), "{trace:#}");
    assert_eq!(tag(process, "k8s.pod.name").as_deref(), Some("checkout-7d9f"), "{trace:#}");
    assert!(vector.running(), "vector exited:\n{}", vector.log_text());
    drop(vector);
    std::fs::remove_dir_all(&dir).ok();
}
