//! monitoring-operator: runs Vector log and metrics collection for `MonitoringServices`
//! (`e6data.io/v1alpha2`).
//!
//! The reconcile is a pipeline (see `docs/architecture.md`): dereference (read what the build
//! needs) → [`model::build`] (validate into a complete model) → [`render::render`] (pure) →
//! apply (server-side apply, orphans pruned) → [`status`] (pure). Only [`controller`] and
//! [`sidecar`] talk to the cluster, and nothing imports them.

pub mod api;
pub mod controller;
pub mod discover;
pub mod error;
pub mod flow;
pub mod greptime;
pub mod http_get;
pub mod model;
pub mod render;
pub mod sidecar;
pub mod status;
pub mod telemetry;
pub mod vector;
