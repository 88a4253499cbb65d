//! Resolve a resource's `greptimeRef`: find the GreptimeDBCluster, derive its frontend
//! endpoint, make sure the log pipeline exists in GreptimeDB, and report all of it. Touches:
//! the Kubernetes API (one GET of the cluster object) and GreptimeDB's HTTP API (through
//! [`crate::greptime::ensure_pipeline`], cached per endpoint).

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};

use super::Context;
use crate::api::GreptimeDbIntegrationStatus;
use crate::greptime;
use crate::model::{GreptimeTarget, Model};

/// How long a confirmed pipeline is trusted before it is checked again.
const PIPELINE_TTL: Duration = Duration::from_secs(600);

/// Outcome for one resource.
pub struct Integration {
    pub status: GreptimeDbIntegrationStatus,
    /// What to render: None while the cluster is missing or not ready.
    pub target: Option<GreptimeTarget>,
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// `old` is the integration status last reported: once GreptimeDB was reached, its sinks stay
/// rendered through trouble (a not-ready cluster, a failed check), so an outage never rewrites
/// the collectors' config and rolls every pod twice; the real-time buffers drop what cannot be
/// delivered, and the condition reports the trouble. Only a changed `greptimeRef` drops them.
pub async fn resolve(ctx: &Context, m: &Model, old: Option<&GreptimeDbIntegrationStatus>) -> Option<Integration> {
    let r = m.greptime.as_ref()?;
    let ns = m.greptime_namespace()?;
    let previous = old.filter(|o| {
        o.cluster_name.as_deref() == Some(r.name.as_str())
            && o.cluster_namespace.as_deref() == Some(ns.as_str())
            && o.database.as_deref() == Some(r.database.as_str())
    });
    let sticky = previous.and_then(|o| {
        let mut t = GreptimeTarget::new(r, o.endpoint.clone()?);
        t.logs &= o.pipeline_ready;
        Some(t)
    });
    let mut status = GreptimeDbIntegrationStatus {
        discovered: false,
        cluster_name: Some(r.name.clone()),
        cluster_namespace: Some(ns.clone()),
        pipeline_ready: false,
        endpoint: None,
        database: Some(r.database.clone()),
    };
    let not_ready = |mut status: GreptimeDbIntegrationStatus, reason, message: String| {
        if let Some(t) = &sticky {
            status.endpoint = Some(t.endpoint.clone());
            status.pipeline_ready = t.logs;
        }
        Integration { status, target: sticky.clone(), ready: false, reason, message }
    };
    let ar = greptime::cluster_resource();
    let clusters = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &ns, &ar);
    let cluster = match super::traced::traced("get", "GreptimeDBCluster", &ns, &r.name, clusters.get_opt(&r.name)).await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            let msg = format!("GreptimeDBCluster {ns}/{} not found; S3 archival continues", r.name);
            return Some(not_ready(status, "ClusterNotFound", msg));
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let msg =
                "the GreptimeDBCluster CRD (greptime.io/v1alpha1) is not installed; S3 archival continues".to_string();
            return Some(not_ready(status, "ClusterNotFound", msg));
        }
        Err(e) => return Some(not_ready(status, "LookupFailed", format!("cannot read GreptimeDBCluster: {e}"))),
    };
    status.discovered = true;
    let endpoint = greptime::endpoint_of(&cluster);
    status.endpoint = Some(endpoint.clone());
    if let Err(why) = greptime::cluster_ready(&cluster) {
        return Some(not_ready(status, "ClusterNotReady", format!("{why}; S3 archival continues")));
    }
    let mut target = GreptimeTarget::new(r, endpoint.clone());
    let mut problem = None;
    if r.logs_enabled {
        let base = ctx.settings.greptime_url.clone().unwrap_or_else(|| format!("http://{endpoint}"));
        match ensure_cached(ctx, &base).await {
            Ok(()) => status.pipeline_ready = true,
            Err(e) if previous.is_some_and(|o| o.pipeline_ready) => {
                // It existed when last checked: a failed re-check is GreptimeDB trouble, not a
                // missing pipeline, so the logs sink stays.
                status.pipeline_ready = true;
                problem = Some(("PipelineCheckFailed", format!("log pipeline {}: {e}", target.pipeline_name)));
            }
            Err(e) => {
                // Without its pipeline the logs sink would be refused: leave it out for now.
                target.logs = false;
                problem = Some(("PipelineNotReady", format!("log pipeline {}: {e}", target.pipeline_name)));
            }
        }
    }
    Some(match problem {
        None => Integration {
            status,
            target: Some(target),
            ready: true,
            reason: "Ready",
            message: format!("Writing to GreptimeDB at {endpoint}, database {}", r.database),
        },
        Some((reason, message)) => Integration { status, target: Some(target), ready: false, reason, message },
    })
}

async fn ensure_cached(ctx: &Context, base: &str) -> Result<(), greptime::PipelineError> {
    let key = format!("{base} {}", greptime::pipeline_name());
    if ctx.pipelines.lock().await.get(&key).is_some_and(|t| t.elapsed() < PIPELINE_TTL) {
        return Ok(());
    }
    let name = greptime::pipeline_name();
    super::traced::traced("ensure pipeline", "GreptimeDB", "", &name, greptime::ensure_pipeline(base)).await?;
    ctx.pipelines.lock().await.insert(key, Instant::now());
    Ok(())
}
