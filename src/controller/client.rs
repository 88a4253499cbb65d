//! Kubernetes client construction with a request counter in the tower stack: every request
//! is counted by HTTP method and by Kubernetes verb and resource, for tests (writes of a
//! no-op reconcile) and for the `monitoring_operator_kube_requests_total` metric.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

#[derive(Default, Debug)]
struct Counts {
    by_method: BTreeMap<String, u64>,
    by_verb: BTreeMap<(String, String), u64>,
}

/// Requests issued through a client.
#[derive(Clone, Default, Debug)]
pub struct RequestCounter(Arc<Mutex<Counts>>);

impl RequestCounter {
    fn record(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = classify(method, uri);
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *c.by_method.entry(method.as_str().to_string()).or_default() += 1;
        *c.by_verb.entry((verb.to_string(), resource)).or_default() += 1;
    }

    /// Requests by HTTP method so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).by_method.clone()
    }

    /// Requests by Kubernetes verb and resource so far.
    pub fn by_verb(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).by_verb.clone()
    }

    /// Requests that can change state (anything but GET/HEAD/OPTIONS).
    pub fn writes(&self) -> u64 {
        self.snapshot().iter().filter(|(m, _)| !matches!(m.as_str(), "GET" | "HEAD" | "OPTIONS")).map(|(_, n)| n).sum()
    }
}

impl Collector for RequestCounter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.by_verb();
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "monitoring_operator_kube_requests",
            "Kubernetes API requests made by the operator, by verb and resource",
            None,
            counter.metric_type(),
        )?;
        for ((verb, resource), n) in counts {
            let labels = [("verb", verb), ("resource", resource)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Kubernetes verb and resource (with subresource) of a request to the apiserver.
pub fn classify(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let rest = match segs.first() {
        Some(&"api") if segs.len() >= 2 => &segs[2..],
        Some(&"apis") if segs.len() >= 3 => &segs[3..],
        _ => return (verb_of(method, false, false), "other".into()),
    };
    let (resource, name, sub) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (rest[2], rest.get(3), rest.get(4))
    } else {
        (rest.first().copied().unwrap_or("other"), rest.get(1), rest.get(2))
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    let watch = uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    (verb_of(method, name.is_some(), watch), resource)
}

fn verb_of(method: &http::Method, named: bool, watch: bool) -> &'static str {
    match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    }
}

/// A client for `config` whose requests are counted in the returned counter.
pub fn counted(config: Config) -> kube::Result<(Client, RequestCounter)> {
    let counter = RequestCounter::default();
    let c = counter.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<Body>| {
        c.record(req.method(), req.uri());
        req
    });
    let client = ClientBuilder::try_from(config)?.with_layer(&layer).build();
    Ok((client, counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: http::Method, u: &str) -> (&'static str, String) {
        classify(&m, &u.parse().unwrap())
    }

    #[test]
    fn verbs_and_resources() {
        use http::Method as M;
        assert_eq!(c(M::GET, "/apis/apps/v1/namespaces/a/daemonsets?labelSelector=x"), ("list", "daemonsets".into()));
        assert_eq!(c(M::GET, "/apis/apps/v1/daemonsets?watch=true&resourceVersion=1"), ("watch", "daemonsets".into()));
        assert_eq!(c(M::GET, "/api/v1/nodes/n1"), ("get", "nodes".into()));
        assert_eq!(
            c(M::PATCH, "/apis/e6data.io/v1alpha2/namespaces/a/monitoringservices/m/status"),
            ("patch", "monitoringservices/status".into())
        );
        assert_eq!(c(M::POST, "/api/v1/namespaces"), ("create", "namespaces".into()));
        assert_eq!(c(M::DELETE, "/api/v1/namespaces/a/configmaps/x"), ("delete", "configmaps".into()));
        assert_eq!(c(M::GET, "/version"), ("list", "other".into()));
    }
}
