//! The statuses this process wrote, until the resource watch shows them. A reconcile that
//! starts between a status write and its watch event (triggered by a child's event) would
//! otherwise compare with the older cached status, write the same status again and publish
//! the phase Event twice (measured: 2.3 status writes and 1.3 Events per new resource instead
//! of 2 and 1). Touches nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{MonitoringServices, MonitoringServicesStatus};

/// A watch event lags a write by milliseconds to seconds.
const KEEP: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Written(Mutex<HashMap<ObjectRef<MonitoringServices>, (u64, MonitoringServicesStatus, Instant)>>);

fn version(ms: &MonitoringServices) -> Option<u64> {
    ms.resource_version()?.parse().ok()
}

impl Written {
    /// `written` (the apiserver's answer to our status write) carries `status`.
    pub fn record(&self, written: &MonitoringServices, status: MonitoringServicesStatus) {
        let Some(rv) = version(written) else { return };
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len().is_multiple_of(64) {
            map.retain(|_, (_, _, at)| now.duration_since(*at) < KEEP);
        }
        map.insert(ObjectRef::from_obj(written), (rv, status, now));
    }

    /// The status we last wrote for `ms`, when `ms` (the cached copy) is older than that
    /// write; forgotten once the cache has caught up.
    pub fn newer_than(&self, ms: &MonitoringServices) -> Option<MonitoringServicesStatus> {
        let key = ObjectRef::from_obj(ms);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (rv, status, _) = map.get(&key)?;
        if version(ms).is_none_or(|cached| cached >= *rv) {
            map.remove(&key);
            return None;
        }
        Some(status.clone())
    }
}
