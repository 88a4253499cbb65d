//! GreptimeDB integration: where the referenced `GreptimeDBCluster` (`greptime.io/v1alpha1`)
//! serves its HTTP API, and the log pipeline the logs sink writes through. The pure parts
//! (addresses, pipeline text) are used by rendering; [`ensure_pipeline`] is the one call to
//! GreptimeDB's HTTP API and is made by the controller only.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;
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

/// Whether the cluster reports itself usable: `status.clusterPhase` Running (the GreptimeDB
/// operator's phases: Starting, Running, Updating, Error, Terminating). Updating still serves.
pub fn cluster_ready(cluster: &DynamicObject) -> Result<(), String> {
    match cluster.data["status"]["clusterPhase"].as_str() {
        Some("Running") | Some("Updating") => Ok(()),
        Some(p) => Err(format!("GreptimeDBCluster phase is {p}")),
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

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GreptimeDB at {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("GreptimeDB refused the pipeline ({0}): {1}")]
    Refused(u16, String),
}

async fn call(method: &str, url: &str, body: Option<&str>) -> Result<(u16, String), PipelineError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/x-yaml");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
        .map_err(|e| PipelineError::Unreachable(url.into(), e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| PipelineError::Unreachable(url.into(), "timed out after 10s".into()))?
        .map_err(|e| PipelineError::Unreachable(url.into(), e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes =
        resp.into_body().collect().await.map_err(|e| PipelineError::Unreachable(url.into(), e.to_string()))?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Make sure pipeline [`pipeline_name`] exists in GreptimeDB at `base` (e.g.
/// `http://greptime-prod-frontend.greptime-system.svc:4000`): `GET /v1/pipelines/{name}`, and
/// only when it is missing `POST` the YAML to the same path. Returns whether it was created.
pub async fn ensure_pipeline(base: &str) -> Result<bool, PipelineError> {
    let url = format!("{}/v1/pipelines/{}", base.trim_end_matches('/'), pipeline_name());
    let (status, body) = call("GET", &url, None).await?;
    if status == 200 && has_pipeline(&body) {
        return Ok(false);
    }
    let (status, body) = call("POST", &url, Some(PIPELINE)).await?;
    if (200..300).contains(&status) {
        Ok(true)
    } else {
        Err(PipelineError::Refused(status, body.chars().take(300).collect()))
    }
}

/// A GET answer that lists at least one version (`{"pipelines": [{"name", "version", ...}]}`).
fn has_pipeline(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["pipelines"].as_array().map(|a| !a.is_empty()))
        .unwrap_or(false)
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
        assert!(cluster_ready(&obj).unwrap_err().contains("Starting"));
        assert!(has_pipeline(r#"{"pipelines":[{"name":"x","version":"v"}],"execution_time_ms":1}"#));
        assert!(!has_pipeline(r#"{"pipelines":[]}"#));
        assert!(!has_pipeline("not json"));
    }
}
