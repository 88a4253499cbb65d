//! The GreptimeDB part of the model: which real-time sinks to render and the integration's
//! health, from `greptimeRef` and the [`GreptimeLookup`]. Pure.
//!
//! The sinks are rendered whenever the GreptimeDBCluster exists, whatever its phase or the
//! pipeline check says: GreptimeDB trouble never rewrites the collectors' config (and never
//! rolls every pod twice); the real-time buffers drop what cannot be delivered, the S3 archive
//! holds the complete copy, and the condition reports the trouble.

use super::inputs::{GreptimeLookup, PipelineCheck};
use crate::api::{GreptimeDbIntegrationStatus, GreptimeDbRef, reason};

/// A GreptimeDB the real-time sinks write to.
#[derive(Debug, Clone, PartialEq)]
pub struct GreptimeTarget {
    /// `host:port` of the frontend's HTTP API.
    pub endpoint: String,
    pub database: String,
    pub logs_table: String,
    /// Log pipeline the logs sink writes through.
    pub pipeline_name: String,
    pub logs: bool,
    pub metrics: bool,
}

/// The integration's health, for status.
#[derive(Debug, Clone, PartialEq)]
pub struct GreptimeHealth {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
    pub status: GreptimeDbIntegrationStatus,
}

/// The GreptimeDB integration of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Greptime {
    /// Name and namespace of the referenced GreptimeDBCluster.
    pub cluster: String,
    pub cluster_namespace: String,
    /// What the sinks write to; None while the cluster does not exist.
    pub target: Option<GreptimeTarget>,
    pub health: GreptimeHealth,
}

pub fn build(r: &GreptimeDbRef, own_namespace: &str, lookup: Option<&GreptimeLookup>) -> Greptime {
    let ns = r.namespace.clone().unwrap_or_else(|| own_namespace.to_string());
    let mut status = GreptimeDbIntegrationStatus {
        discovered: false,
        cluster_name: Some(r.name.clone()),
        cluster_namespace: Some(ns.clone()),
        pipeline_ready: false,
        endpoint: None,
        database: Some(r.database.clone()),
    };
    let missing = GreptimeLookup::Missing { crd_installed: true };
    let (target, ready, reason, message) = match lookup.unwrap_or(&missing) {
        GreptimeLookup::Missing { crd_installed: true } => {
            let msg = format!("GreptimeDBCluster {ns}/{} not found; S3 archival continues", r.name);
            (None, false, reason::CLUSTER_NOT_FOUND, msg)
        }
        GreptimeLookup::Missing { crd_installed: false } => {
            let msg = "the GreptimeDBCluster CRD (greptime.io/v1alpha1) is not installed; S3 archival continues";
            (None, false, reason::CLUSTER_NOT_FOUND, msg.to_string())
        }
        GreptimeLookup::Found { endpoint, phase, pipeline } => {
            status.discovered = true;
            status.endpoint = Some(endpoint.clone());
            status.pipeline_ready = *pipeline == PipelineCheck::Ready;
            let target = GreptimeTarget {
                endpoint: endpoint.clone(),
                database: r.database.clone(),
                logs_table: r.logs_table.clone(),
                pipeline_name: crate::greptime::pipeline_name(),
                logs: r.logs_enabled,
                metrics: r.metrics_enabled,
            };
            let (ready, reason, message) = match (crate::greptime::phase_usable(phase.as_deref()), pipeline) {
                (Err(why), _) => (false, reason::CLUSTER_NOT_READY, format!("{why}; S3 archival continues")),
                (Ok(()), PipelineCheck::Failed(e)) => {
                    (false, reason::PIPELINE_NOT_READY, format!("log pipeline {}: {e}", target.pipeline_name))
                }
                (Ok(()), _) => {
                    (true, reason::READY, format!("Writing to GreptimeDB at {endpoint}, database {}", r.database))
                }
            };
            (Some(target), ready, reason, message)
        }
    };
    Greptime {
        cluster: r.name.clone(),
        cluster_namespace: ns,
        target,
        health: GreptimeHealth { ready, reason, message: crate::error::bounded(&message), status },
    }
}
