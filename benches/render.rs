//! Rendering cost (no cluster): validate + render + serialise every seed example, and render a
//! node's discovery file for 20, 100 and 500 pods. Run with `cargo bench --bench render`;
//! prints time per operation (a reference on this machine, not an assertion).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches fail loudly by design

use std::hint::black_box;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use monitoring_operator::api::MonitoringServices;
use monitoring_operator::{discover, model, render, vector};

fn examples() -> Vec<MonitoringServices> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            if v["kind"] == "MonitoringServices" {
                out.push(serde_json::from_value(v).unwrap());
            }
        }
    }
    out
}

fn time<F: FnMut()>(what: &str, iterations: u32, mut f: F) {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    println!("{what:<50} {per:>12.2?} per op ({iterations} ops)");
}

fn main() {
    let crs = examples();
    time("validate+render+YAML, all 6 seed examples", 200, || {
        for ms in &crs {
            let m = model::build(ms, &model::Dereferenced::assumed(ms)).unwrap();
            black_box(render::to_yaml(&render::render(&m, None).unwrap()).unwrap());
        }
    });
    let cr = crs.iter().find(|c| c.spec.use_cluster_role).unwrap();
    let cm = render::render(&model::build(cr, &model::Dereferenced::default()).unwrap(), None)
        .unwrap()
        .to_list()
        .unwrap()
        .into_iter()
        .find(|c| c.name().ends_with("metrics-config"))
        .unwrap();
    let settings: discover::Settings =
        serde_json::from_str(cm.object.data["data"]["discovery.json"].as_str().unwrap()).unwrap();
    for n in [20usize, 100, 500] {
        let pods: Vec<Pod> = (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p{i}"), "namespace": "workspace-prod", "uid": format!("u{i}"),
                                 "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}},
                    "spec": {"containers": [{"name": "c"}]},
                    "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 250, i % 250)}
                }))
                .unwrap()
            })
            .collect();
        time(&format!("discovery file for {n} pods"), 200, || {
            black_box(vector::discovered(pods.iter(), &settings, "node-a").unwrap());
        });
    }
}
