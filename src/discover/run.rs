//! The discovery sidecar's loop: watch this node's pods, rewrite the targets file when the
//! target set changes. Touches: the Kubernetes API (read-only pod watch) and one output file.

use std::collections::BTreeMap;
use std::path::Path;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::{Mode, Settings, render_fragment};

fn api(client: Client, s: &Settings) -> Api<Pod> {
    match &s.namespace_scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// The watch only sees this node's pods that pass the label filters (and, for scraping,
/// only Running ones).
fn selectors(node: &str, s: &Settings) -> (String, String) {
    let fields = match s.mode {
        Mode::Metrics => format!("spec.nodeName={node},status.phase=Running"),
        Mode::Logs => format!("spec.nodeName={node}"),
    };
    (fields, s.label_selector())
}

/// Write `content` to `path` atomically (readers never see a partial file) when it differs
/// from what was last written. Returns whether it wrote.
pub fn write_if_changed(path: &Path, content: &str, last: &mut Option<String>) -> std::io::Result<bool> {
    if last.as_deref() == Some(content) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    *last = Some(content.to_string());
    Ok(true)
}

/// List once and write the file: the init container, so Vector starts with a valid config.
pub async fn once(client: Client, node: &str, s: &Settings, output: &Path) -> anyhow::Result<()> {
    let (fields, labels) = selectors(node, s);
    let pods = api(client, s).list(&ListParams::default().fields(&fields).labels(&labels)).await?;
    write_if_changed(output, &render_fragment(pods.items.iter(), s, node), &mut None)?;
    info!(node, pods = pods.items.len(), mode = ?s.mode, "wrote initial discovery file");
    Ok(())
}

/// Watch forever, rewriting `output` whenever this node's target set changes.
pub async fn watch(client: Client, node: &str, s: &Settings, output: &Path) -> anyhow::Result<()> {
    let (fields, labels) = selectors(node, s);
    let cfg = watcher::Config::default().fields(&fields).labels(&labels);
    let mut stream = std::pin::pin!(watcher::watcher(api(client, s), cfg).default_backoff());
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut init: Option<BTreeMap<String, Pod>> = None;
    let mut last = std::fs::read_to_string(output).ok();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => anyhow::bail!("pod watch ended"),
            Err(e) => {
                warn!(error = %e, "pod watch error; retrying");
                continue;
            }
        };
        match event {
            Event::Init => init = Some(BTreeMap::new()),
            Event::InitApply(p) => {
                init.get_or_insert_with(BTreeMap::new).insert(key(&p), p);
            }
            Event::InitDone => pods = init.take().unwrap_or_default(),
            Event::Apply(p) => {
                pods.insert(key(&p), p);
            }
            Event::Delete(p) => {
                pods.remove(&key(&p));
            }
        }
        if init.is_some() {
            continue; // a relist is in progress: keep serving the previous set until it is complete
        }
        if write_if_changed(output, &render_fragment(pods.values(), s, node), &mut last)? {
            info!(node, pods = pods.len(), mode = ?s.mode, "discovered targets changed");
        }
    }
}

fn key(p: &Pod) -> String {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}
