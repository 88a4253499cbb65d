//! The operator's own observability: Prometheus metrics (operator counters and the status of
//! the watched resources as gauges), the HTTP endpoint serving them, and OpenTelemetry traces.

pub mod metrics;
pub mod server;
pub mod status_metrics;
pub mod tracing_setup;
