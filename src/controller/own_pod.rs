//! What the operator learns from its own Pod: the image it runs, which is also the image of
//! the collectors' discovery sidecar when no `--discovery-image` is given. Touches: the
//! Kubernetes API (one GET of its own Pod, at start-up).

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

/// The image of the operator's container (named `operator`, else the Pod's first) in Pod
/// `namespace/name` (in a pod: `POD_NAMESPACE`, `POD_NAME` from the downward API).
pub async fn own_image(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let pod = Api::<Pod>::namespaced(client.clone(), namespace).get(name).await.ok()?;
    let containers = pod.spec?.containers;
    let ours = containers.iter().find(|c| c.name == "operator").or(containers.first())?;
    ours.image.clone()
}
