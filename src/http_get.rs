//! A plain HTTP GET with one timeout for the whole exchange: the flow summary's scrape of the
//! local Vector (`sidecar::flow`) and the operator's read of each pod's summary
//! (`controller::flow`). Touches: the network, nothing else.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled plain-HTTP client.
pub type Client = LegacyClient<HttpConnector, Empty<Bytes>>;

pub fn client() -> Client {
    LegacyClient::builder(TokioExecutor::new()).build_http()
}

/// The body of a 2xx answer from `url` within `timeout` and at most `max_bytes` long; None for
/// anything else (a longer answer is never read whole: whoever answers cannot make the caller
/// hold more than `max_bytes`).
pub async fn body(client: &Client, url: &str, timeout: Duration, max_bytes: usize) -> Option<Bytes> {
    let uri: hyper::Uri = url.parse().ok()?;
    let get = async {
        let resp = client.get(uri).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let limited = http_body_util::Limited::new(resp.into_body(), max_bytes);
        Some(limited.collect().await.ok()?.to_bytes())
    };
    tokio::time::timeout(timeout, get).await.ok().flatten()
}
