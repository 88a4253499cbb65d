//! The operator's HTTP endpoint (axum): `/metrics` (Prometheus text, or OpenMetrics when
//! asked), `/healthz` and `/livez` (the process serves), `/readyz` (the watched kind can be
//! listed). Touches: one TCP listener; stops gracefully on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::warn;

/// State the endpoint reports.
pub struct Endpoint {
    pub registry: Registry,
    pub ready: AtomicBool,
    /// Size of the last page: the next one's buffer is allocated once at about that size
    /// instead of doubling its way there (the page of 1,000 resources is 1.5 MB).
    pub last_size: std::sync::atomic::AtomicUsize,
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn metrics(State(ep): State<Arc<Endpoint>>, headers: HeaderMap) -> Response {
    let mut out = String::with_capacity(ep.last_size.load(Ordering::Relaxed) + 4096);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &ep.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response();
    }
    ep.last_size.store(out.len(), Ordering::Relaxed);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/openmetrics-text") {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out).into_response()
    } else {
        let text = to_prometheus_text(&out);
        drop(out);
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
    }
}

async fn ready(State(ep): State<Arc<Endpoint>>) -> Response {
    if ep.ready.load(Ordering::Relaxed) {
        text(StatusCode::OK, "ok\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "cannot list MonitoringServices yet\n")
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Bind `addr`; returns the bound address (port 0 picks one) and serves in the background
/// until SIGTERM/SIGINT.
pub async fn serve(addr: SocketAddr, ep: Arc<Endpoint>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/livez", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/readyz", get(ready))
        .with_state(ep);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
            warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

/// OpenMetrics text → Prometheus text format 0.0.4 (for clients that do not ask for
/// OpenMetrics, e.g. `promtool check metrics` or curl): counter families are named with their
/// `_total` suffix, and the `# EOF` terminator and `# UNIT` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn openmetrics_to_text() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            super::to_prometheus_text(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total 3\n# HELP g G.\n# TYPE g gauge\ng 1\n"
        );
    }
}
