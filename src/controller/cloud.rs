//! Cloud auto-detection from Node `spec.providerID` (`aws://`, `gce://`, `azure://`).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::api::Cloud;

/// The cloud a providerID belongs to, if known.
pub fn from_provider_id(id: &str) -> Option<Cloud> {
    let scheme = id.split("://").next()?;
    match scheme {
        "aws" => Some(Cloud::Aws),
        "gce" => Some(Cloud::Gcp),
        "azure" => Some(Cloud::Azure),
        _ => None,
    }
}

/// Look at a few Nodes; `None` when none carries a known providerID (bare metal, kind, or
/// no Nodes yet).
pub async fn detect(nodes: &Api<Node>) -> kube::Result<Option<Cloud>> {
    let list = nodes.list_metadata(&ListParams::default().limit(1)).await;
    // list_metadata keeps the request small, but providerID is in spec: fetch that one Node.
    let Some(first) = list?.items.into_iter().next() else {
        return Ok(None);
    };
    let Some(name) = first.metadata.name else {
        return Ok(None);
    };
    let node = nodes.get(&name).await?;
    Ok(node.spec.and_then(|s| s.provider_id).as_deref().and_then(from_provider_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids() {
        assert_eq!(from_provider_id("aws:///us-east-1a/i-0abc"), Some(Cloud::Aws));
        assert_eq!(from_provider_id("gce://proj/us-central1-a/node-1"), Some(Cloud::Gcp));
        assert_eq!(from_provider_id("azure:///subscriptions/x/resourceGroups/y"), Some(Cloud::Azure));
        assert_eq!(from_provider_id("kind://docker/kind/kind-control-plane"), None);
        assert_eq!(from_provider_id(""), None);
    }
}
