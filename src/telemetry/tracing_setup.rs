//! Logging and OpenTelemetry tracing. With `ENABLE_TRACING=1` spans (one per reconcile, one
//! per Kubernetes API call inside it) are exported over OTLP/gRPC to `TELEMETRY_ENDPOINT`
//! (default `localhost:4317`); without it no exporter or OpenTelemetry layer exists at all,
//! so tracing costs what plain `tracing` spans cost. Log lines carry the span fields,
//! including the reconcile's `trace_id`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

/// Keeps the exporter alive; flushes pending spans when dropped.
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
    }
}

/// `TELEMETRY_ENDPOINT` as a URL (`host:port` gets `http://`).
pub fn endpoint_url(raw: &str) -> String {
    if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") }
}

/// A tracer provider exporting to `endpoint` over OTLP/gRPC in batches.
pub fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint_url(endpoint)).build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("monitoring-operator").build())
        .build())
}

/// The OpenTelemetry layer for a provider.
pub fn otel_layer<S>(p: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(p.tracer("monitoring-operator"))
}

fn tracing_enabled() -> bool {
    matches!(std::env::var("ENABLE_TRACING").as_deref(), Ok("1") | Ok("true") | Ok("TRUE"))
}

/// Install the global subscriber: logs (text or JSON) and, when enabled, OTLP traces.
pub fn init(format: &str) -> anyhow::Result<Guard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let logs = if format == "json" { fmt::layer().json().boxed() } else { fmt::layer().boxed() };
    let base = Registry::default().with(filter).with(logs);
    if tracing_enabled() {
        let endpoint = std::env::var("TELEMETRY_ENDPOINT").unwrap_or_else(|_| "localhost:4317".into());
        let p = provider(&endpoint)?;
        base.with(otel_layer(&p)).try_init()?;
        tracing::info!(endpoint = %endpoint_url(&endpoint), "exporting traces over OTLP/gRPC");
        Ok(Guard(Some(p)))
    } else {
        base.try_init()?;
        Ok(Guard(None))
    }
}
