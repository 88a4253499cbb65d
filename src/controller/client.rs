//! Kubernetes client construction with a request counter in the tower stack, so tests (and
//! the metrics endpoint) can see how many requests of each verb the operator makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};

/// Requests issued through a client, by HTTP method.
#[derive(Clone, Default, Debug)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    fn record(&self, method: &http::Method) {
        *self.0.lock().expect("counter lock").entry(method.as_str().to_string()).or_default() += 1;
    }

    /// Requests by method so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("counter lock").clone()
    }

    /// Requests that can change state (anything but GET/HEAD/OPTIONS).
    pub fn writes(&self) -> u64 {
        self.snapshot().iter().filter(|(m, _)| !matches!(m.as_str(), "GET" | "HEAD" | "OPTIONS")).map(|(_, n)| n).sum()
    }
}

/// A client for `config` whose requests are counted in the returned counter.
pub fn counted(config: Config) -> kube::Result<(Client, RequestCounter)> {
    let counter = RequestCounter::default();
    let c = counter.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<Body>| {
        c.record(req.method());
        req
    });
    let client = ClientBuilder::try_from(config)?.with_layer(&layer).build();
    Ok((client, counter))
}
