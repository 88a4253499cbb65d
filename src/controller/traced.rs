//! One tracing span per Kubernetes API call (or other remote call) the controller makes,
//! named after the operation (`apply DaemonSet`, `patch status MonitoringServices`, ...) with
//! the object's kind, namespace and name, the result and the duration as attributes. Exported
//! as OpenTelemetry spans when tracing is enabled.

use std::future::Future;
use std::time::Instant;

use tracing::{Instrument, field, info_span};

/// Run `call` inside a span for `operation` on `kind` `namespace`/`name`.
pub async fn traced<T, E: std::fmt::Display>(
    operation: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let span = info_span!(
        "kube.call",
        otel.name = %format!("{operation} {kind}"),
        otel.kind = "client",
        k8s.operation = operation,
        k8s.kind = kind,
        k8s.namespace = namespace,
        k8s.name = name,
        result = field::Empty,
        duration_ms = field::Empty,
        otel.status_code = field::Empty,
    );
    let start = Instant::now();
    let out = call.instrument(span.clone()).await;
    span.record("duration_ms", start.elapsed().as_secs_f64() * 1000.0);
    match &out {
        Ok(_) => {
            span.record("result", "ok");
        }
        Err(e) => {
            span.record("result", field::display(e));
            span.record("otel.status_code", "ERROR");
        }
    }
    out
}
