//! GreptimeDB facts: where the referenced `GreptimeDBCluster` (`greptime.io/v1alpha1`) serves
//! its HTTP API, whether its phase is usable, and the log pipeline the logs sink writes
//! through. Pure; the one caller of GreptimeDB's HTTP API is [`client`], used by the
//! controller's dereference step only.

pub mod client;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use sha2::{Digest, Sha256};

/// Default HTTP port of a GreptimeDB frontend.
pub const DEFAULT_HTTP_PORT: i64 = 4000;

/// The `GreptimeDBCluster` kind.
pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("greptime.io", "v1alpha1", "GreptimeDBCluster"),
        "greptimedbclusters",
    )
}

/// `<cluster>-frontend.<namespace>.svc:4000`: the frontend Service the GreptimeDB operator creates.
pub fn default_endpoint(cluster: &str, namespace: &str) -> String {
    format!("{cluster}-frontend.{namespace}.svc:{DEFAULT_HTTP_PORT}")
}

/// Frontend endpoint of a GreptimeDBCluster object: its Service name and the cluster-level
/// `spec.httpPort` when set.
pub fn endpoint_of(cluster: &DynamicObject) -> String {
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let ns = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let port = cluster.data["spec"]["httpPort"].as_i64().unwrap_or(DEFAULT_HTTP_PORT);
    format!("{name}-frontend.{ns}.svc:{port}")
}

/// `status.clusterPhase` of a GreptimeDBCluster object.
pub fn phase_of(cluster: &DynamicObject) -> Option<String> {
    cluster.data["status"]["clusterPhase"].as_str().map(str::to_string)
}

/// Whether a cluster phase is usable: Running (the GreptimeDB operator's phases: Starting,
/// Running, Updating, Error, Terminating). Updating still serves.
pub fn phase_usable(phase: Option<&str>) -> Result<(), String> {
    match phase {
        Some("Running") | Some("Updating") => Ok(()),
        Some(p) => Err(format!("GreptimeDBCluster phase is {}", crate::error::bounded_to(p, 64))),
        None => Err("GreptimeDBCluster reports no phase yet".into()),
    }
}

/// The log pipeline: maps the flattened records the logs collector sends (see
/// `vector::logs`) to typed columns. Workspace, tenant and namespace are tags; the message is
/// full-text indexed; the record timestamp is the time index.
pub const PIPELINE: &str = r#"processors:
  - date:
      fields:
        - timestamp
      formats:
        - "%Y-%m-%dT%H:%M:%S%.fZ"
      ignore_missing: true
transform:
  - fields:
      - workspace
      - tenant
      - namespace
    type: string
    index: tag
  - fields:
      - pod
      - container
      - node
      - stream
    type: string
  - fields:
      - message
    type: string
    index: fulltext
  - fields:
      - timestamp
    type: time
    index: timestamp
"#;

/// Pipeline name, versioned by content: a changed pipeline gets a new name, so "exists"
/// means "exists with this content" and ensuring it is idempotent.
pub fn pipeline_name() -> String {
    format!("e6data_vector_logs_{}", &hex::encode(Sha256::digest(PIPELINE.as_bytes()))[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_endpoints() {
        assert_eq!(
            default_endpoint("greptime-prod", "greptime-system"),
            "greptime-prod-frontend.greptime-system.svc:4000"
        );
        let name = pipeline_name();
        assert!(name.starts_with("e6data_vector_logs_") && !name.starts_with("greptime_"));
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "greptime.io/v1alpha1", "kind": "GreptimeDBCluster",
            "metadata": {"name": "g", "namespace": "n"}, "spec": {"httpPort": 4100}, "status": {"clusterPhase": "Starting"}
        }))
        .unwrap();
        assert_eq!(endpoint_of(&obj), "g-frontend.n.svc:4100");
        assert!(phase_usable(phase_of(&obj).as_deref()).unwrap_err().contains("Starting"));
        assert!(phase_usable(Some("Updating")).is_ok());
    }
}
