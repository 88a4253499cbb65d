//! The operator's HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (the process
//! serves), `/readyz` (the resource cache has synced). Touches: one TCP listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::warn;

/// State the endpoint reports.
pub struct Endpoint {
    pub registry: Registry,
    pub ready: AtomicBool,
}

fn reply(code: u16, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder().status(code).header("content-type", ctype).body(Full::new(Bytes::from(body))).expect("response")
}

fn handle(ep: &Endpoint, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            let mut out = String::new();
            if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &ep.registry) {
                return reply(500, "text/plain", format!("encoding metrics: {e}\n"));
            }
            let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
            if accept.contains("application/openmetrics-text") {
                reply(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", out)
            } else {
                reply(200, "text/plain; version=0.0.4; charset=utf-8", to_prometheus_text(&out))
            }
        }
        "/healthz" | "/livez" => reply(200, "text/plain", "ok\n".into()),
        "/readyz" if ep.ready.load(Ordering::Relaxed) => reply(200, "text/plain", "ok\n".into()),
        "/readyz" => reply(503, "text/plain", "cache not synced\n".into()),
        _ => reply(404, "text/plain", "not found\n".into()),
    }
}

/// Bind `addr`; returns the bound address (port 0 picks one) and serves in the background.
pub async fn serve(addr: SocketAddr, ep: Arc<Endpoint>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let ep = ep.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let resp = handle(&ep, &req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                    warn!(error = %e, "metrics connection");
                }
            });
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
