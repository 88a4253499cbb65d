//! The real Vector binary from `../shared/vector/`, unpacked once and checksum-verified.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::files::repo;

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
pub fn vector() -> Option<PathBuf> {
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
