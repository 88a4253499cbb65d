//! The discovery sidecar's loop (`monitoring-operator discover`): watch this node's pods into
//! a kube-runtime reflector store, and rewrite the Vector file ([`crate::vector::discovered`])
//! whenever what it renders changes. Touches: the Kubernetes API (read-only pod watch) and
//! one output file. [`flow`] summarises the pod's own Vector for the operator.

pub mod flow;

use std::path::Path;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use tracing::{info, warn};

use crate::discover::{Mode, Settings};
use crate::vector::discovered;

fn api(client: Client, s: &Settings) -> Api<Pod> {
    match &s.namespace_scope {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// The watch sees only this node's pods. For scraping, only Running ones passing the label
/// filters; for logs all of them, since the file source reads the namespace's directories and
/// must know which pods the filters reject.
fn selectors(node: &str, s: &Settings) -> (String, String) {
    match s.mode {
        // Shared: every tenant's own filters apply in the sidecar.
        Mode::Metrics if !s.tenants.is_empty() => (format!("spec.nodeName={node},status.phase=Running"), String::new()),
        Mode::Metrics => (format!("spec.nodeName={node},status.phase=Running"), s.label_selector()),
        Mode::Logs => (format!("spec.nodeName={node}"), String::new()),
    }
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

/// Resolves with the settings file's new text once it differs from `current` (checked every
/// 5 s: a mounted Secret or ConfigMap changes by a symlink swap, which a poll sees simply).
pub async fn settings_changed(path: &Path, current: &str) -> String {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        if let Ok(text) = std::fs::read_to_string(path)
            && text != current
            && serde_json::from_str::<Settings>(&text).is_ok()
        {
            return text;
        }
    }
}

/// List once and write the file: the init container, so Vector starts with a valid config.
pub async fn once(client: Client, node: &str, s: &Settings, output: &Path) -> anyhow::Result<()> {
    let (fields, labels) = selectors(node, s);
    let pods = api(client, s).list(&ListParams::default().fields(&fields).labels(&labels)).await?;
    write_if_changed(output, &discovered(pods.items.iter(), s, node)?, &mut None)?;
    info!(node, pods = pods.items.len(), mode = ?s.mode, "wrote initial discovery file");
    Ok(())
}

/// Watch forever, rewriting `output` (if any) whenever this node's target set changes, and
/// publishing how many pods the collector reads (for the flow summary).
pub async fn watch(
    client: Client,
    node: &str,
    s: &Settings,
    output: Option<&Path>,
    selected: tokio::sync::watch::Sender<flow::Selected>,
) -> anyhow::Result<()> {
    let (fields, labels) = selectors(node, s);
    let cfg = watcher::Config::default().fields(&fields).labels(&labels);
    let (reader, writer) = reflector::store::<Pod>();
    // The store swaps in a relisted set only once the relist is complete (InitDone), so a
    // relist in progress keeps serving the previous set.
    let stream = reflector(writer, watcher::watcher(api(client, s), cfg).default_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut last = output.and_then(|o| std::fs::read_to_string(o).ok());
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => {
                warn!(error = %e, "pod watch error; retrying");
                continue;
            }
            Ok(Event::Init | Event::InitApply(_)) => continue,
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_)) => {}
        }
        let pods = reader.state();
        selected.send_replace(flow::Selected {
            total: crate::discover::selected(pods.iter().map(|p| &**p), s),
            by_tenant: s
                .tenants
                .iter()
                .map(|t| (t.id.clone(), crate::discover::selected(pods.iter().map(|p| &**p), &t.settings)))
                .collect(),
            windows: s
                .tenants
                .iter()
                .filter(|t| t.flow_window_secs > 0)
                .map(|t| (t.id.clone(), std::time::Duration::from_secs(t.flow_window_secs)))
                .collect(),
        });
        let Some(output) = output else { continue };
        let text = discovered(pods.iter().map(|p| &**p), s, node)?;
        if write_if_changed(output, &text, &mut last)? {
            info!(node, pods = pods.len(), mode = ?s.mode, "discovered targets changed");
        }
    }
    anyhow::bail!("pod watch ended")
}
