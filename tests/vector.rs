//! The real Vector 0.57.0 binary (`../shared/vector/`, the version the operator pins) on what
//! the operator renders: every Vector config a collector pod of every example would run — the
//! logs and traces configs as they are, the metrics and namespace-scoped logs configs merged
//! with a real discovery-sidecar file (no targets, and some) — passes `vector validate`.
//!
//! When `../shared/vector/` is missing the tests say so loudly and stop; CI always has it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

mod support;
use support::files::{examples, repo};
use support::rendered::{children, vector_configs};

const ARCHIVE: &str = "vector-0.57.0-x86_64-unknown-linux-gnu.xz";

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The expected checksum of `name` from `SHA256SUMS`.
fn checksum(sums: &str, name: &str) -> String {
    sums.lines()
        .find(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ") == name)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{name} not in SHA256SUMS"))
        .to_string()
}

/// The unpacked, checksum-verified binary, cached outside the clone by the archive's checksum.
/// None (with a loud message) when `../shared/vector/` is not there.
fn vector() -> Option<PathBuf> {
    static BIN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BIN.get_or_init(unpack).clone()
}

fn unpack() -> Option<PathBuf> {
    let dir = repo().join("../shared/vector");
    if !dir.join(ARCHIVE).is_file() {
        eprintln!("\n*** SKIPPED: {} is missing: the real-Vector tests did not run ***\n", dir.join(ARCHIVE).display());
        return None;
    }
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let archive_sum = checksum(&sums, ARCHIVE);
    assert_eq!(sha256(&dir.join(ARCHIVE)), archive_sum, "{ARCHIVE} does not match SHA256SUMS");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let cache = PathBuf::from(home).join(".cache/monitoring-operator").join(format!("vector-{}", &archive_sum[..16]));
    let bin = cache.join("vector");
    if !bin.is_file() {
        std::fs::create_dir_all(&cache).unwrap();
        let tmp = cache.join(format!("vector.{}.tmp", std::process::id()));
        let out = std::fs::File::create(&tmp).unwrap();
        let status = Command::new("xz").arg("-dc").arg(dir.join(ARCHIVE)).stdout(out).status().expect("run xz");
        assert!(status.success(), "xz -dc {ARCHIVE} failed");
        assert_eq!(sha256(&tmp), checksum(&sums, "vector (unpacked)"), "unpacked binary does not match SHA256SUMS");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &bin).unwrap();
    }
    Some(bin)
}

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
