//! High availability against the real control plane: two operator processes (the real
//! binary) with leader election hand over when the leader is killed, and never write at the
//! same time; the controller's watches recover from an apiserver restart on kept state (a
//! test-owned control plane on a fixed port).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use monitoring_operator::controller;
use serde_json::json;
use support::*;

use support::datapath::free_port;

/// A replica: the binary with leader election on (its default), the Lease in `ns`.
fn replica(ns: &str, pod: &str, port: u16) -> Operator {
    let envs = [("POD_NAME", pod), ("POD_NAMESPACE", ns), ("LEASE_NAME", "ha-test"), ("RUST_LOG", "info")];
    operator_process(port, &["--namespace", ns], &envs, Stdio::inherit())
}

/// The replica's /metrics, or None while it is not serving.
fn scrape(port: u16) -> Option<String> {
    let out = Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/metrics")]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn leader(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix("monitoring_operator_leader ")).and_then(|v| v.trim().parse().ok())
}

/// Write requests this replica's controller made (the Lease has a client of its own).
fn writes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("monitoring_operator_kube_requests_total{"))
        .filter(|l| ["create", "patch", "update", "delete"].iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Two replicas: one leads, the other writes nothing; the leader is killed (SIGKILL, no lease
/// release) and the standby takes over and reconciles a change. The hand-over time is
/// printed (a benchmark figure, not an assertion: it is bounded by the lease's 15 s).
#[tokio::test]
async fn standby_takes_over_when_the_leader_dies_and_never_writes_before() {
    let client = env().client().await;
    let ns = namespace(&client, "ha").await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = replica(&ns, "replica-a", port_a);
    let a_leads = eventually("replica a leads", Duration::from_secs(60), || async {
        scrape(port_a).and_then(|m| (leader(&m) == Some(1.0)).then_some(()))
    });
    a_leads.await;
    let _b = replica(&ns, "replica-b", port_b);
    eventually("replica b serves /metrics as a standby", Duration::from_secs(60), || async {
        scrape(port_b).and_then(|m| (leader(&m) == Some(0.0)).then_some(()))
    })
    .await;

    // Sample both replicas all along: never two leaders at once.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let (ma, mb) = (scrape(port_a), scrape(port_b));
                let leads = |m: &Option<String>| m.as_deref().and_then(leader) == Some(1.0);
                assert!(!(leads(&ma) && leads(&mb)), "both replicas report leading");
                samples += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };

    create(&client, &ns, ms_json("mon", basic_spec())).await.unwrap();
    wait_status(&client, &ns, "mon", "a status from the leader", |m| m.status.is_some()).await;
    let standby = scrape(port_b).unwrap();
    assert_eq!(writes(&standby), 0.0, "the standby wrote while the other replica led:\n{standby}");
    assert!(writes(&scrape(port_a).unwrap()) > 0.0, "the leader's writes are not counted");

    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let killed = Instant::now();
    patch_spec(&client, &ns, "mon", json!({"vectorLogs": {"s3Prefix": "after-handover"}})).await;
    // wait_status waits for the status of the current generation.
    wait_status(&client, &ns, "mon", "the change reconciled by the new leader", |_| true).await;
    let took = killed.elapsed();
    assert_eq!(scrape(port_b).as_deref().and_then(leader), Some(1.0), "replica b does not report leading");
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.await.unwrap();
    println!(
        "leader hand-over after SIGKILL: change reconciled {:.1} s after the kill ({samples} samples, never two leaders)",
        took.as_secs_f64()
    );
}

/// The apiserver (and etcd) stop for 15 s and start again on the same state: the in-process
/// controller's watches resume or relist and a resource created afterwards is reconciled.
/// The recovery time is printed.
#[tokio::test]
async fn watches_recover_after_an_apiserver_restart() {
    let mut cp = OwnControlPlane::start("restart");
    let client = cp.env.client().await;
    let ns = namespace(&client, "restart").await;
    let (operator, _) = controller::client::counted(cp.env.config().await).unwrap();
    let settings = controller::Settings { namespace: Some(ns.clone()), flow_interval: None, ..Default::default() };
    tokio::spawn(controller::run(operator, settings));
    create(&client, &ns, ms_json("before", basic_spec())).await.unwrap();
    wait_status(&client, &ns, "before", "status before the outage", |m| m.status.is_some()).await;

    cp.stop();
    tokio::time::sleep(Duration::from_secs(15)).await;
    cp.restart();
    let back = Instant::now();
    let client = cp.env.client().await;
    create(&client, &ns, ms_json("after", basic_spec())).await.unwrap();
    wait_status(&client, &ns, "after", "status of a resource created after the restart", |m| m.status.is_some()).await;
    println!(
        "apiserver restart: a new resource reconciled {:.1} s after the apiserver was back",
        back.elapsed().as_secs_f64()
    );
    // The one from before is still handled: a change to it is reconciled too.
    patch_spec(&client, &ns, "before", json!({"vectorLogs": {"s3Prefix": "after-restart"}})).await;
    wait_status(&client, &ns, "before", "a change after the restart", |_| true).await;
}
