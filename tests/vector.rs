//! The real Vector 0.57.0 binary (`../shared/vector/`, the version the operator pins) on what
//! the operator renders: every Vector config a collector pod of every example would run — the
//! logs and traces configs as they are, the metrics and namespace-scoped logs configs merged
//! with a real discovery-sidecar file (no targets, and some) — passes `vector validate`.
//!
//! When `../shared/vector/` is missing the tests say so loudly and stop; CI always has it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::process::Command;

mod support;
use support::files::examples;
use support::rendered::{children, vector_configs};
use support::vector_bin::vector;

#[test]
fn the_binary_is_the_pinned_version() {
    let Some(bin) = vector() else { return };
    let out = Command::new(&bin).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("vector 0.57.0"), "{version}");
    assert!(monitoring_operator::api::DEFAULT_IMAGE_TAG.starts_with("0.57.0"), "the operator pins another Vector");
}

#[test]
fn every_rendered_config_passes_vector_validate() {
    let Some(bin) = vector() else { return };
    let dir = std::env::temp_dir().join(format!("vector-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut validated = 0;
    let mut failures = Vec::new();
    for (file, ms) in examples() {
        for (name, config) in vector_configs(&children(&ms)) {
            let path = dir.join(format!("{validated}.yaml"));
            std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
            // --no-environment: no healthchecks and no data_dir on this machine; the config,
            // every component's options, the topology and every VRL program are checked.
            let out =
                Command::new(&bin).args(["validate", "--no-environment", "--config-yaml"]).arg(&path).output().unwrap();
            if !out.status.success() {
                failures.push(format!(
                    "{file} {name}:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            validated += 1;
        }
    }
    assert!(failures.is_empty(), "vector validate refused:\n{}", failures.join("\n"));
    // 6 seed examples: logs (and namespace-scoped logs twice), metrics twice, traces.
    assert!(validated >= 15, "only {validated} configs validated");
    std::fs::remove_dir_all(&dir).ok();
}
