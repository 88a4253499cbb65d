//! The dereference step: read everything the build needs from outside the resource — the
//! cloud (from Nodes, cached per process), the referenced GreptimeDBCluster and its log
//! pipeline (through the pooled GreptimeDB client, cached), the Secrets the outputs name (key
//! names and resourceVersion only), the operator's settings — into a
//! [`Dereferenced`]. Reads the controller's watch caches where it has them (GreptimeDBClusters,
//! Secret metadata), so an unchanged resource costs no request. Touches: the Kubernetes API
//! (Node list/get, a GreptimeDBCluster GET without its cache, a Secret GET when its
//! resourceVersion is new) and GreptimeDB's HTTP API. A failed read is a
//! transient [`Error::Dereference`]: nothing is applied from a guess.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;

use super::cloud;
use super::context::Context;
use super::traced::traced;
use crate::api::{Cloud, MonitoringServices};
use crate::error::{Error, bounded};
use crate::greptime;
use crate::model::{self, Dereferenced, GreptimeLookup, PipelineCheck, SecretInfo};

/// How long a confirmed pipeline is trusted before it is checked again.
const PIPELINE_TTL: Duration = Duration::from_secs(600);
/// How long "no Node names a known cloud" is trusted before the Nodes are asked again.
const NO_CLOUD_TTL: Duration = Duration::from_secs(600);

pub async fn dereference(ms: &MonitoringServices, ctx: &Context) -> Result<Dereferenced, Error> {
    let detected_cloud = if ms.spec.cloud.is_some() { None } else { detect_cloud(ctx).await? };
    let greptime = match &ms.spec.greptime_ref {
        Some(r) => {
            let ns = r.namespace.clone().or_else(|| ms.namespace()).unwrap_or_default();
            Some(lookup_greptime(ctx, &r.name, &ns, r.logs_enabled).await?)
        }
        None => None,
    };
    let secrets = read_secrets(ms, ctx).await?;
    let secret_values = match ctx.settings.shared {
        Some(_) => read_secret_values(ms, ctx).await?,
        None => Default::default(),
    };
    Ok(Dereferenced { detected_cloud, greptime, operator: ctx.settings.operator(), secrets, secret_values })
}

/// The resourceVersion of Secret `ns/name` as the metadata watch has it: None without a ready
/// cache (then the caller reads the API), Some(None) when the Secret does not exist.
fn cached_version(ctx: &Context, ns: &str, name: &str) -> Option<Option<String>> {
    let store = ctx.caches.get().map(|c| &c.secrets)?;
    store.wait_until_ready().now_or_never()?.ok()?;
    Some(store.get(&ObjectRef::new(name).within(ns)).and_then(|s| s.metadata.resource_version.clone()))
}

/// Shared mode only: the values of the Secret keys the `environmentVariables` name (the
/// tenant's S3 credentials, which the shared collectors' Secret in the admin's namespace
/// carries). Kept per Secret with its resourceVersion: read again only when the Secret
/// metadata watch shows a new version. A missing Secret or key is the build's to report.
async fn read_secret_values(ms: &MonitoringServices, ctx: &Context) -> Result<model::shared::SecretValues, Error> {
    let ns = ms.namespace().unwrap_or_default();
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    let mut out = BTreeMap::new();
    for (name, keys) in model::shared::value_refs(&ms.spec) {
        let key = (ns.clone(), name.clone());
        let current = cached_version(ctx, &ns, &name);
        if let Some(None) = current {
            continue;
        }
        let known = ctx.secret_values.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let values = match (known, current) {
            (Some((rv, values)), Some(Some(now))) if rv == now => values,
            _ => {
                let found = traced("get", "Secret", &ns, &name, api.get_opt(&name))
                    .await
                    .map_err(|source| Error::Dereference { what: format!("Secret {ns}/{name}"), source })?;
                let Some(found) = found else { continue };
                let rv = found.metadata.resource_version.clone().unwrap_or_default();
                let values: BTreeMap<String, String> = found
                    .data
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| keys.contains(k))
                    .filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?)))
                    .collect();
                ctx.secret_values.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (rv, values.clone()));
                values
            }
        };
        out.insert(name, values);
    }
    Ok(out)
}

/// The Secrets the outputs name, in the resource's own namespace: key names and
/// resourceVersion only. The values are dropped here and never logged, stored or rendered.
/// With the Secret watch's cache, a Secret is read only when its resourceVersion is new.
async fn read_secrets(ms: &MonitoringServices, ctx: &Context) -> Result<BTreeMap<String, Option<SecretInfo>>, Error> {
    let ns = ms.namespace().unwrap_or_default();
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    let mut out = BTreeMap::new();
    for name in model::referenced_secrets(&ms.spec).into_keys() {
        let key = (ns.clone(), name.clone());
        if let Some(current) = cached_version(ctx, &ns, &name) {
            let Some(current) = current else {
                out.insert(name, None);
                continue;
            };
            let known = ctx.secret_infos.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            if let Some(info) = known.filter(|i| i.resource_version == current) {
                out.insert(name, Some(info));
                continue;
            }
        }
        let found = traced("get", "Secret", &ns, &name, api.get_opt(&name))
            .await
            .map_err(|source| Error::Dereference { what: format!("Secret {ns}/{name}"), source })?;
        let info = found.map(|s| SecretInfo {
            resource_version: s.metadata.resource_version.clone().unwrap_or_default(),
            keys: s.data.into_iter().flat_map(|d| d.into_keys()).collect(),
        });
        let mut known = ctx.secret_infos.lock().unwrap_or_else(|p| p.into_inner());
        match &info {
            Some(i) => known.insert(key, i.clone()),
            None => known.remove(&key),
        };
        drop(known);
        out.insert(name, info);
    }
    Ok(out)
}

async fn detect_cloud(ctx: &Context) -> Result<Option<Cloud>, Error> {
    let mut cached = ctx.cloud.lock().await;
    if let Some((cloud, at)) = *cached
        && (cloud.is_some() || at.elapsed() < NO_CLOUD_TTL)
    {
        return Ok(cloud);
    }
    let nodes = Api::<Node>::all(ctx.client.clone());
    let found = traced("detect cloud", "Node", "", "", cloud::detect(&nodes))
        .await
        .map_err(|source| Error::Dereference { what: "Nodes (cloud detection)".into(), source })?;
    *cached = Some((found, Instant::now()));
    Ok(found)
}

async fn lookup_greptime(ctx: &Context, name: &str, ns: &str, logs: bool) -> Result<GreptimeLookup, Error> {
    let ar = greptime::cluster_resource();
    let cached = ctx.caches.get().and_then(|c| c.greptime.as_ref());
    let cluster = match cached {
        // Watched (its CRD was installed at start-up): read the cache.
        Some(store) if store.wait_until_ready().now_or_never().is_some() => {
            match store.get(&ObjectRef::new_with(name, ar.clone()).within(ns)) {
                Some(c) => (*c).clone(),
                None => return Ok(GreptimeLookup::Missing { crd_installed: true }),
            }
        }
        _ => match lookup_cluster(ctx, &ar, name, ns).await? {
            Ok(c) => c,
            Err(missing) => return Ok(missing),
        },
    };
    let endpoint = greptime::endpoint_of(&cluster);

    let phase = greptime::phase_of(&cluster);
    let pipeline = if logs && greptime::phase_usable(phase.as_deref()).is_ok() {
        let base = ctx.settings.greptime_url.clone().unwrap_or_else(|| format!("http://{endpoint}"));
        match ensure_cached(ctx, &base).await {
            Ok(()) => PipelineCheck::Ready,
            Err(e) => PipelineCheck::Failed(bounded(&e.to_string())),
        }
    } else {
        PipelineCheck::NotChecked
    };
    Ok(GreptimeLookup::Found { endpoint, phase, pipeline })
}

/// The cluster read from the API, or the lookup saying why there is none.
async fn lookup_cluster(
    ctx: &Context,
    ar: &ApiResource,
    name: &str,
    ns: &str,
) -> Result<Result<DynamicObject, GreptimeLookup>, Error> {
    let clusters = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), ns, ar);
    match traced("get", "GreptimeDBCluster", ns, name, clusters.get_opt(name)).await {
        Ok(Some(c)) => Ok(Ok(c)),
        Ok(None) => Ok(Err(GreptimeLookup::Missing { crd_installed: true })),
        // The kind itself is unknown to the apiserver.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Err(GreptimeLookup::Missing { crd_installed: false })),
        Err(source) => Err(Error::Dereference { what: format!("GreptimeDBCluster {ns}/{name}"), source }),
    }
}

async fn ensure_cached(ctx: &Context, base: &str) -> Result<(), greptime::client::PipelineError> {
    let name = greptime::pipeline_name();
    let key = format!("{base} {name}");
    let fresh = |ctx: &Context| {
        let map = ctx.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key).is_some_and(|t| t.elapsed() < PIPELINE_TTL)
    };
    if fresh(ctx) {
        return Ok(());
    }
    traced("ensure pipeline", "GreptimeDB", "", &name, ctx.greptime.ensure_pipeline(base)).await?;
    ctx.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Instant::now());
    Ok(())
}
