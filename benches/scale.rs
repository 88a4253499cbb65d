//! Scale against the local control plane (not a test; figures, not assertions): the release
//! operator binary and N resources over M namespaces (default 1,000 over 100; `SCALE_RESOURCES`,
//! `SCALE_NAMESPACES`). Measures the time until every resource has a status and until the
//! operator stops writing, its RSS and CPU, API requests by verb per resource at creation,
//! requests per minute when idle, and the same after a restart with every resource present.
//! There are no Nodes, so every resource stays `Creating`. Run with `cargo bench --bench scale`
//! (`scripts/kubetestenv.sh` builds the control plane when `KUBETESTENV_BIN` is unset).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches fail loudly by design

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ListParams};
use monitoring_operator::api::MonitoringServices;
use support::*;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn start(port: u16) -> Operator {
    let envs = [("POD_NAMESPACE", "default"), ("LEASE_NAME", "scale-bench"), ("RUST_LOG", "warn")];
    operator_process(port, &["--log-format", "json"], &envs, Stdio::null())
}

/// RSS and its high-water mark (KiB), and user+system CPU seconds of a process.
fn usage(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split(' ').collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat (11 and 12 after the name).
    (kib("VmRSS:"), kib("VmHWM:"), (ticks(11) + ticks(12)) / 100.0)
}

/// Requests by verb (watches left out: they are long-running, not per-reconcile).
fn requests(port: u16) -> BTreeMap<String, f64> {
    let out = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/metrics")]).output().unwrap();
    let mut by_verb = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = l.strip_prefix("monitoring_operator_kube_requests_total{") else { continue };
        let Some(verb) = rest.split("verb=\"").nth(1).and_then(|v| v.split('"').next()) else { continue };
        let Some(n) = l.rsplit_once(' ').and_then(|(_, n)| n.parse::<f64>().ok()) else { continue };
        if verb != "watch" {
            *by_verb.entry(verb.to_string()).or_default() += n;
        }
    }
    by_verb
}

// Folded from 0.0: an empty float `sum()` is -0.0, printed as "-0".
fn total(m: &BTreeMap<String, f64>) -> f64 {
    m.values().fold(0.0, |a, n| a + n)
}

fn writes(m: &BTreeMap<String, f64>) -> f64 {
    m.iter().filter(|(v, _)| !matches!(v.as_str(), "get" | "list")).fold(0.0, |a, (_, n)| a + n)
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Wait until no write happened for `quiet`; the time it took.
async fn until_idle(port: u16, quiet: Duration, limit: Duration) -> Duration {
    let start = Instant::now();
    let (mut last, mut since) = (writes(&requests(port)), Instant::now());
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = writes(&requests(port));
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return since.duration_since(start);
        }
    }
    start.elapsed()
}

async fn all_have_status(client: &kube::Client, n: usize) -> usize {
    let list = Api::<MonitoringServices>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert!(list.items.len() >= n);
    list.items.iter().filter(|m| m.status.is_some()).count()
}

#[tokio::main]
async fn main() {
    let (n, spaces) = (env_num("SCALE_RESOURCES", 1000), env_num("SCALE_NAMESPACES", 100));
    let client = env().client().await;
    let port = datapath::free_port();
    let mut op = start(port);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_empty, _, _) = usage(op.0.id());

    let names: Vec<String> = (0..spaces).map(|i| format!("scale-{i:03}")).collect();
    for ns in &names {
        create_namespace(&client, ns).await;
    }
    let before = requests(port);
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let client = client.clone();
            let ns = names[i % spaces].clone();
            async move {
                create(&client, &ns, ms_json(&format!("ms-{i:04}"), basic_spec())).await.unwrap();
            }
        })
        .await;
    let created = t0.elapsed();
    loop {
        if all_have_status(&client, n).await == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = t0.elapsed();
    let idle_after = until_idle(port, Duration::from_secs(20), Duration::from_secs(900)).await;
    let at_creation = delta(&requests(port), &before);
    let (_, _, cpu) = usage(op.0.id());

    // Idle: a minute without writes and without a /metrics scrape (this bench scrapes every
    // second while it waits; Prometheus every 15–30 s), then one scrape.
    let idle_start = requests(port);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (rss, hwm, _) = usage(op.0.id());
    let idle = delta(&requests(port), &idle_start);
    let (rss_scraped, _, _) = usage(op.0.id());

    // Restart with everything present.
    drop(op);
    let port = datapath::free_port();
    let t1 = Instant::now();
    op = start(port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_idle = until_idle(port, Duration::from_secs(20), Duration::from_secs(900)).await;
    let after_restart = requests(port);
    let (rss_restart, hwm_restart, cpu_restart) = usage(op.0.id());
    let restart_took = t1.elapsed();

    let per = |m: &BTreeMap<String, f64>| {
        m.iter().map(|(k, v)| format!("{k} {:.2}", v / n as f64)).collect::<Vec<_>>().join(", ")
    };
    println!("## scale: {n} resources over {spaces} namespaces (release binary, no Nodes)");
    println!("| figure | value |\n|---|---|");
    println!("| all {n} created (16 at a time) | {:.1} s |", created.as_secs_f64());
    println!("| every resource has a status | {:.1} s after the first create |", converged.as_secs_f64());
    println!(
        "| last write (then 20 s without) | {:.1} s after the first create |",
        (converged + idle_after).as_secs_f64()
    );
    println!(
        "| requests per resource at creation | {} ({:.1} total, {:.1} writes) |",
        per(&at_creation),
        total(&at_creation) / n as f64,
        writes(&at_creation) / n as f64
    );
    println!("| requests per minute, idle (watches excluded) | {:.0} ({:?}) |", total(&idle), idle);
    println!(
        "| RSS empty / at {n} idle / right after a /metrics scrape / high-water | {} / {} / {} / {} MiB |",
        rss_empty / 1024,
        rss / 1024,
        rss_scraped / 1024,
        hwm / 1024
    );
    println!("| CPU until idle | {cpu:.1} s |");
    println!(
        "| restart with {n} present: until 20 s without writes | {:.1} s (idle reached {:.1} s after start) |",
        restart_took.as_secs_f64(),
        restart_idle.as_secs_f64()
    );
    println!(
        "| restart: requests | {:.0} ({:?}), {:.0} writes |",
        total(&after_restart),
        after_restart,
        writes(&after_restart)
    );
    println!(
        "| restart: RSS / high-water, CPU | {} / {} MiB, {cpu_restart:.1} s |",
        rss_restart / 1024,
        hwm_restart / 1024
    );
}
