//! The one client of GreptimeDB's HTTP API: makes sure the log pipeline exists. One pooled
//! HTTP client per operator (connections are reused across reconciles). Touches: the network,
//! GreptimeDB's `/v1/pipelines/{name}` only.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{PIPELINE, pipeline_name};

/// Time limit of one HTTP call.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GreptimeDB at {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("GreptimeDB refused the pipeline ({0}): {1}")]
    Refused(u16, String),
}

/// A pooled HTTP client for GreptimeDB.
#[derive(Clone)]
pub struct PipelineClient {
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Default for PipelineClient {
    fn default() -> Self {
        PipelineClient { http: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl PipelineClient {
    async fn call(&self, method: &str, url: &str, body: Option<&str>) -> Result<(u16, String), PipelineError> {
        let unreachable = |e: &dyn std::fmt::Display| PipelineError::Unreachable(url.into(), e.to_string());
        let mut req = http::Request::builder().method(method).uri(url);
        if body.is_some() {
            req = req.header("content-type", "application/x-yaml");
        }
        let req =
            req.body(Full::new(Bytes::from(body.unwrap_or_default().to_string()))).map_err(|e| unreachable(&e))?;
        let resp = tokio::time::timeout(TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| unreachable(&"timed out after 10s"))?
            .map_err(|e| unreachable(&e))?;
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| unreachable(&"timed out after 10s"))?
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Make sure pipeline [`pipeline_name`] exists in GreptimeDB at `base` (e.g.
    /// `http://greptime-prod-frontend.greptime-system.svc:4000`): `GET /v1/pipelines/{name}`,
    /// and only when it is missing `POST` the YAML to the same path. Returns whether it was
    /// created.
    pub async fn ensure_pipeline(&self, base: &str) -> Result<bool, PipelineError> {
        let url = format!("{}/v1/pipelines/{}", base.trim_end_matches('/'), pipeline_name());
        let (status, body) = self.call("GET", &url, None).await?;
        if status == 200 && has_pipeline(&body) {
            return Ok(false);
        }
        let (status, body) = self.call("POST", &url, Some(PIPELINE)).await?;
        if (200..300).contains(&status) {
            Ok(true)
        } else {
            Err(PipelineError::Refused(status, body.chars().take(300).collect()))
        }
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
    fn recognises_a_listed_pipeline() {
        assert!(has_pipeline(r#"{"pipelines":[{"name":"x","version":"v"}],"execution_time_ms":1}"#));
        assert!(!has_pipeline(r#"{"pipelines":[]}"#));
        assert!(!has_pipeline("not json"));
    }
}
