//! One reconcile of one resource, as a pipeline with one line per step:
//! dereference → build (validate into a complete model) → render → apply → status.
//! The error policy sits here too: an invalid spec waits for a change; a transient failure is
//! retried with exponential backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, warn};

use super::apply::{self, SyncError};
use super::context::Context;
use super::dereference::dereference;
use super::refusals;
use super::shared;
use super::traced::traced;
use crate::api::{MonitoringServices, MonitoringServicesStatus, Phase};
use crate::error::{Error, bounded};
use crate::render::meta::MANAGER;
use crate::status::{self, Failure};
use crate::{model, render};

/// Finalizer that removes the cluster-scoped children (they cannot be owned by a namespaced CR).
/// Added only before a resource's first cluster-scoped child is applied: namespaced children
/// go with the resource through their owner references, and the shared collectors drop a
/// deleted resource's part when it leaves the watch cache, so a resource without
/// cluster-scoped children costs no finalizer write (and the orphan sweep backs it up).
pub const FINALIZER: &str = "e6data.io/cluster-resources";

/// Watches on every child drive reconciles; the periodic requeue only repairs drift that
/// produced no watch event.
const RESYNC: Duration = Duration::from_secs(600);
/// GreptimeDB's HTTP API is never watched (and its CRD may appear after start-up): look again.
const GREPTIME_RECHECK: Duration = Duration::from_secs(30);
/// Collector pods missing (refused, or not created yet): the refusal is an Event, which is not
/// watched, and the DaemonSet's status does not change while its controller retries.
const PODS_MISSING_RECHECK: Duration = Duration::from_secs(15);
/// A child the apiserver refused: the spec must change, but the refusal may also come from
/// something outside the spec (an admission policy, the operator's RBAC) that gets fixed.
const REJECTED_RECHECK: Duration = Duration::from_secs(60);

/// One reconcile of one CR, in a span, with its outcome counted.
pub async fn reconcile(ms: Arc<MonitoringServices>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ms.namespace().unwrap_or_default();
    let span = tracing::info_span!(
        "reconcile",
        otel.name = "reconcile MonitoringServices",
        k8s.kind = "MonitoringServices",
        k8s.namespace = %ns,
        k8s.name = %ms.name_any(),
        k8s.generation = ms.metadata.generation.unwrap_or_default(),
        trace_id = tracing::field::Empty,
        result = tracing::field::Empty,
    );
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let id = span.context().span().span_context().trace_id();
        if id != opentelemetry::trace::TraceId::INVALID {
            span.record("trace_id", tracing::field::display(id));
        }
    }
    let start = std::time::Instant::now();
    let obj = ObjectRef::from_obj(&*ms);
    let api: Api<MonitoringServices> = Api::namespaced(ctx.client.clone(), &ns);
    let out = async {
        if ms.metadata.deletion_timestamp.is_some() {
            ctx.shared.remove(&ns, &ms.name_any());
            if ms.finalizers().iter().any(|f| f == FINALIZER) {
                apply::delete_cluster_children(&ctx.client, &ns, &ms.name_any()).await?;
                set_finalizer(&api, &ms, false).await?;
            }
            return Ok(Action::await_change());
        }
        apply(ms, &ctx).await
    }
    .instrument(span.clone())
    .await;
    ctx.metrics.observe(start.elapsed(), out.as_ref().map(|_| ()));
    span.record("result", if out.is_ok() { "ok" } else { "error" });
    if out.is_ok() {
        ctx.reset_retry(&obj);
    }
    out
}

/// The one place a failed reconcile is logged; it is retried with growing, jittered delay.
pub fn error_policy(ms: Arc<MonitoringServices>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_retry(ObjectRef::from_obj(&*ms));
    warn!(
        namespace = ms.namespace().unwrap_or_default(),
        name = ms.name_any(),
        reason = err.metric_label(),
        error = %bounded(&err.to_string()),
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn apply(ms: Arc<MonitoringServices>, ctx: &Context) -> Result<Action, Error> {
    let (name, ns, generation) = (ms.name_any(), ms.namespace().unwrap_or_default(), ms.metadata.generation);
    // Our own last write stands in for a cached status that does not show it yet.
    let ours = ctx.written.newer_than(&ms);
    let old = ours.as_ref().or(ms.status.as_ref());

    // The admin's policy first, before anything is read on the resource's behalf: what it
    // refuses gets nothing, and loses what an older, looser policy gave it.
    if let Err(v) = ctx.settings.policy.check(&ms) {
        ctx.shared.remove(&ns, &name);
        let removed = apply::sync(
            &ctx.client,
            ctx.caches.get().map(|c| &c.children),
            &ns,
            &name,
            render::Children::default(),
            false,
        )
        .await
        .map_err(|e| match e {
            SyncError::Failed(e) => e,
            // An empty child set applies nothing, so nothing can be refused: a bug if it is.
            SyncError::Rejected(r) => Error::Render(r.to_string()),
        })?;
        if removed.deleted > 0 {
            info!(%ns, %name, deleted = removed.deleted, field = %v.field, "tenancy policy: children removed");
        }
        write_status(ctx, &ms, old, status::failed(old, generation, &Failure::PolicyViolation(v))).await?;
        return Ok(Action::await_change());
    }
    let dereferenced = dereference(&ms, ctx).await?;
    let model = match model::build(&ms, &dereferenced) {
        Ok(m) => m,
        Err(e) => {
            // What it had on the shared collectors stays only while its spec is valid.
            ctx.shared.remove(&ns, &name);
            write_status(ctx, &ms, old, status::failed(old, generation, &Failure::InvalidSpec(e))).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(sh) = &model.shared
        && let Err(holder) = ctx.shared.set(&ns, &name, Some(sh.tenant.clone()))
    {
        let e = model::SpecError {
            field: "metadata.name".into(),
            message: format!(
                "this resource's id in the shared collectors ({}) is already held by {holder}; rename one of them",
                sh.tenant.id
            ),
        };
        write_status(ctx, &ms, old, status::failed(old, generation, &Failure::InvalidSpec(e))).await?;
        return Ok(Action::await_change());
    }
    let owner = ms.controller_owner_ref(&()).ok_or_else(|| Error::Render("resource has no name or uid".into()))?;
    let children = render::render(&model, Some(&owner)).map_err(|e| Error::Render(e.to_string()))?;
    let cluster_scoped = !(children.cluster_roles.is_empty() && children.cluster_role_bindings.is_empty());
    if cluster_scoped && !ms.finalizers().iter().any(|f| f == FINALIZER) {
        let api: Api<MonitoringServices> = Api::namespaced(ctx.client.clone(), &ns);
        set_finalizer(&api, &ms, true).await?;
    }
    let key = ObjectRef::from_obj(&*ms);
    let careful = ctx.refused.lock().unwrap_or_else(|p| p.into_inner()).contains(&key);
    let caches = ctx.caches.get().map(|c| &c.children);
    let synced = apply::sync(&ctx.client, caches, &ns, &name, children, careful).await;
    {
        let mut refused = ctx.refused.lock().unwrap_or_else(|p| p.into_inner());
        match &synced {
            Err(SyncError::Rejected(_)) => refused.insert(key),
            _ => refused.remove(&key),
        };
    }
    let synced = match synced {
        Ok(s) => s,
        Err(SyncError::Rejected(r)) => {
            let failure = Failure::ApplyRejected(r.to_string());
            write_status(ctx, &ms, old, status::failed(old, generation, &failure)).await?;
            return Ok(Action::requeue(REJECTED_RECHECK));
        }
        Err(SyncError::Failed(e)) => return Err(e),
    };
    if synced.applied + synced.deleted > 0 {
        info!(%ns, %name, applied = synced.applied, deleted = synced.deleted, "children synced");
    }
    if synced.cluster_applied > 0 {
        // A reconcile of a stale copy (queued before the resource was deleted and its finalizer
        // ran) would leave cluster-wide pod reads granted to nobody's resource: nothing garbage
        // collects cluster-scoped children. Check the owner after writing them.
        let current = traced("get", "MonitoringServices", &ns, &name, ms_api(ctx, &ns).get_opt(&name)).await.map_err(
            |source| Error::Dereference {
                what: "MonitoringServices (owner of cluster-scoped children)".into(),
                source,
            },
        )?;
        if current.is_none_or(|c| c.metadata.uid != ms.metadata.uid) {
            warn!(%ns, %name, "resource gone while its cluster-scoped children were applied: removing them");
            apply::delete_cluster_children(&ctx.client, &ns, &name).await?;
            return Ok(Action::await_change());
        }
    }
    let mut live = synced.live;
    let collectors_ns = match &model.shared {
        // Its collectors are the shared ones: their status is its collection's.
        Some(sh) => {
            live.daemon_sets = shared::daemon_sets(ctx).await;
            sh.namespace.clone()
        }
        None => ns.clone(),
    };
    let refused = refusals::pod_refusals(&ctx.client, &collectors_ns, &live.daemon_sets).await;
    let flow = ctx.settings.flow_interval.map(|_| {
        let facts = ctx.flow.lock().unwrap_or_else(|p| p.into_inner());
        facts.get(&ObjectRef::from_obj(&*ms)).cloned().unwrap_or_default()
    });
    let observed = status::observe(&model, &live, &refused, generation, flow.as_ref());
    // The DaemonSet controller observes each DaemonSet on its own: a status for every step of
    // that is a write per DaemonSet for a message nobody reads. While some but not all of them
    // are observed (and this generation already has a status), wait: the last one's watch
    // event brings the reconcile that writes.
    let seen: Vec<bool> = live.daemon_sets.iter().map(status::rollout_observed).collect();
    let halfway = seen.contains(&true) && seen.contains(&false);
    if !(halfway && old.and_then(|s| s.observed_generation) == generation) {
        write_status(ctx, &ms, old, status::compose(old, observed)).await?;
    }
    let greptime_down = model.greptime.as_ref().is_some_and(|g| !g.health.ready);
    let pods_missing = live.daemon_sets.iter().any(status::pods_missing);
    Ok(Action::requeue(if pods_missing {
        PODS_MISSING_RECHECK
    } else if greptime_down {
        GREPTIME_RECHECK
    } else {
        RESYNC
    }))
}

/// Add or remove [`FINALIZER`], keeping any other finalizer; conditional on the resource's
/// version, so a concurrent change of the list makes this fail (and retry) rather than lose it.
async fn set_finalizer(api: &Api<MonitoringServices>, ms: &MonitoringServices, present: bool) -> Result<(), Error> {
    let mut list: Vec<String> = ms.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    if present {
        list.push(FINALIZER.into());
    }
    let patch = serde_json::json!({
        "metadata": { "finalizers": list, "resourceVersion": ms.resource_version() }
    });
    let name = ms.name_any();
    let ns = ms.namespace().unwrap_or_default();
    match traced(
        "patch finalizers",
        "MonitoringServices",
        &ns,
        &name,
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing left to guard.
        Err(kube::Error::Api(e)) if e.code == 404 && !present => Ok(()),
        Err(e) => Err(Error::Finalizer(e)),
    }
}

fn ms_api(ctx: &Context, ns: &str) -> Api<MonitoringServices> {
    Api::namespaced(ctx.client.clone(), ns)
}

/// Write `st` if it differs from the stored status; publish an Event when the phase changes.
/// `old`: the status as last written (the cached one, or our own newer write).
async fn write_status(
    ctx: &Context,
    ms: &MonitoringServices,
    old: Option<&MonitoringServicesStatus>,
    st: MonitoringServicesStatus,
) -> Result<(), Error> {
    if status::same(old, &st) {
        return Ok(());
    }
    let (ns, name) = (ms.namespace().unwrap_or_default(), ms.name_any());
    let api: Api<MonitoringServices> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": MonitoringServices::api_version(&()),
        "kind": MonitoringServices::kind(&()),
        "status": st,
    });
    let (pp, patch) = (PatchParams::apply(MANAGER).force(), Patch::Apply(&patch));
    let written = traced("patch status", "MonitoringServices", &ns, &name, api.patch_status(&name, &pp, &patch))
        .await
        .map_err(Error::PatchStatus)?;
    ctx.written.record(&written, st.clone());
    let old_phase = old.and_then(|s| s.phase);
    if old_phase != st.phase {
        let phase = st.phase.unwrap_or_default();
        let warning = matches!(phase, Phase::Degraded | Phase::Failed);
        let ev = phase_event(ctx, ms, phase.as_str(), st.message.as_deref(), warning);
        let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
        // An Event is a courtesy: failing to publish one does not fail the reconcile.
        if let Err(e) = traced("create", "Event", &ns, &name, events.create(&PostParams::default(), &ev)).await {
            warn!(error = %e, "could not publish event");
        }
    }
    Ok(())
}

/// The apiserver's limit on an Event's note, in bytes.
const EVENT_NOTE_BYTES: usize = 1024;

/// An Event name's prefix from the resource's name: at most 253 characters in all with the
/// dot and up to 32 hex digits, not ending in a dot or dash (a DNS subdomain).
fn event_prefix(name: &str) -> &str {
    let mut end = name.len().min(253 - 33);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['.', '-'])
}

/// The Event of a phase change. Created directly, one per change: kube's `Recorder` keeps
/// every Event it published in a cache for series aggregation (measured: 3 MB for 1,000
/// resources, never shrinking), which one Event per phase change never needs.
fn phase_event(ctx: &Context, ms: &MonitoringServices, reason: &str, note: Option<&str>, warning: bool) -> Event {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    let now = k8s_openapi::jiff::Timestamp::now();
    Event {
        // Named like client-go's: the object's name, a dot, the time in hex nanoseconds (the
        // name shortened so the whole stays within 253 characters).
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", event_prefix(&ms.name_any()), now.as_nanosecond())),
            namespace: ms.namespace(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some("Reconcile".into()),
        reason: Some(reason.into()),
        note: note.map(|n| crate::error::bounded_bytes(n, EVENT_NOTE_BYTES)),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        regarding: Some(ms.object_ref(&())),
        reporting_controller: Some(MANAGER.into()),
        reporting_instance: Some(ctx.reporting_instance.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_names_stay_within_a_dns_subdomain() {
        assert_eq!(super::event_prefix("mon"), "mon");
        let long = format!("{}.{}", "a".repeat(219), "b".repeat(30));
        let prefix = super::event_prefix(&long);
        assert_eq!(prefix, "a".repeat(219), "cut at 220 characters, the trailing dot dropped");
        assert!(prefix.len() + 1 + 32 <= 253);
    }
}
