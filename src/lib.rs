//! monitoring-operator: runs Vector log and metrics collection for `MonitoringServices`
//! (`e6data.io/v1alpha2`).
//!
//! The reconcile is a pipeline: fetch → [`model::build`] (validate into a defaulted model)
//! → [`render::render`] (pure) → apply (server-side apply) → status. Only [`controller`]
//! talks to the cluster.

pub mod api;
pub mod controller;
pub mod discover;
pub mod greptime;
pub mod model;
pub mod render;
pub mod telemetry;
pub mod vector;
