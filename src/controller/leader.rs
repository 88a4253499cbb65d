//! Leader election with a `coordination.k8s.io` Lease (kube-lease-manager): only the holder
//! runs the controller. Touches: the Kubernetes API (one Lease in the operator's namespace).
//!
//! Safety rests on one rule: the holder stops reconciling *before* its lease can expire. The
//! lease lasts [`LEASE_SECS`] and is renewed [`GRACE_SECS`] before that; the Lease client's
//! requests time out after [`REQUEST_TIMEOUT`], shorter than the grace, so a renewal that
//! hangs (apiserver unreachable) fails while the lease still holds, and any failed or refused
//! renewal ends this process's leadership at once. Nothing else is ever written by a process
//! that is not the holder: the controller is only built after the lease is taken.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tracing::{info, warn};

/// How long a taken lease is valid without renewal (client-go's default).
pub const LEASE_SECS: u64 = 15;
/// The holder renews this long before expiry; also the clock skew tolerated between nodes.
pub const GRACE_SECS: u64 = 5;
/// Every Lease request gives up after this: less than the grace.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Which Lease, who we are, and the client that renews it ([`lease_client`]).
#[derive(Clone)]
pub struct LeaderSettings {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per process: the pod name, plus the process id when run outside a pod.
    pub identity: String,
    pub client: Client,
}

impl std::fmt::Debug for LeaderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderSettings")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The Lease client: the operator's connection settings with short timeouts (see module docs).
pub fn lease_client(mut config: kube::Config) -> kube::Result<Client> {
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    Client::try_from(config)
}

/// Wait until this process holds the lease. Errors are retried: a standby outlives an
/// unreachable apiserver.
pub async fn acquire(client: Client, settings: &LeaderSettings) -> LeaseManager {
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(LEASE_SECS)
            .with_grace(GRACE_SECS)
            .with_field_manager(format!("monitoring-operator-{}", settings.identity))
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(e) => {
                warn!(error = %e, lease = %settings.lease_name, "cannot set up the leader lease; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    info!(lease = %settings.lease_name, identity = %settings.identity, "waiting to become the leader");
    loop {
        match manager.changed().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "leader lease: cannot read or take it; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    info!(lease = %settings.lease_name, identity = %settings.identity, "became the leader");
    manager
}

/// Keep renewing the lease; returns (with why) as soon as it is lost or a renewal failed.
pub async fn hold(manager: &LeaseManager) -> String {
    loop {
        match manager.changed().await {
            Ok(true) => {}
            Ok(false) => return "another replica holds the lease".into(),
            Err(e) => return format!("renewing the lease failed: {e}"),
        }
    }
}

/// Hand the lease over (graceful shutdown): the next replica does not wait for expiry.
pub async fn release(manager: &LeaseManager) {
    match manager.release().await {
        Ok(()) => info!("leader lease released"),
        Err(e) => warn!(error = %e, "could not release the leader lease; it expires on its own"),
    }
}
