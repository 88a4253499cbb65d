//! A typed, deterministic model of the Vector configuration the operator generates. Only the
//! components and options the operator uses are modelled; maps are ordered so the same input
//! always serialises to the same bytes (the config hash that rolls pods depends on it).
//! Pure: no I/O.

mod config;
pub mod logs;
pub mod metrics;
pub mod shared;
pub mod traces;
mod vrl;

pub use config::*;
pub use vrl::vrl_string;

use k8s_openapi::api::core::v1::Pod;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::discover::{self, Mode, Settings};

use crate::api::{Compression, EncodingCodec, S3Partition};
use crate::model::Archive;

/// The Vector config file the discovery sidecar writes for `pods` of `node`.
pub fn discovered<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    s: &Settings,
    node: &str,
) -> Result<String, serde_norway::Error> {
    if !s.tenants.is_empty() {
        let pods: Vec<&Pod> = pods.into_iter().collect();
        return metrics::discovered_shared(&pods, s, node);
    }
    match s.mode {
        Mode::Metrics => metrics::discovered(&discover::targets(pods, s), s, node),
        Mode::Logs => logs::discovered(&discover::log_pods(pods, s), s, node),
    }
}

/// The per-node file: sources and transforms only (merged into the base config).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Fragment {
    pub sources: BTreeMap<String, Source>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub transforms: BTreeMap<String, Transform>,
}

fn fragment_yaml(f: &Fragment) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(f)
}

/// Where Vector's API (health) listens inside the pod.
pub const API_PORT: i32 = 8686;
/// Where Vector's own metrics are exposed in Prometheus format.
pub const METRICS_PORT: i32 = 9598;
/// Mount point of the per-DaemonSet host data directory.
pub const DATA_DIR: &str = "/vector-data-dir";
/// Minimum disk buffer size Vector accepts (about 256 MiB).
pub const MIN_DISK_BUFFER_BYTES: u64 = 268_435_488;

/// The object-key prefix: literal user prefix, then the time partition. `extra` is a literal
/// or templated segment placed after the literal prefix (so Vector 0.57's template
/// confinement always has a literal prefix to hold on to).
pub fn key_prefix(archive: &Archive, extra: &str) -> String {
    let time = match archive.partition {
        S3Partition::Day => "date=%Y-%m-%d/",
        S3Partition::Hour => "date=%Y-%m-%d/hour=%H/",
    };
    format!("{}/{extra}{time}", archive.prefix)
}

/// The S3 archive sink. The archive is the durable copy: a disk buffer that blocks when full
/// (backpressure, never drops), so nothing is lost while S3 is slow or briefly unreachable.
pub fn s3_sink(inputs: Vec<String>, archive: &Archive, key_prefix: String) -> Sink {
    Sink::AwsS3(Box::new(AwsS3 {
        inputs,
        bucket: archive.bucket.clone(),
        // Vector needs the region for SigV4 signing also with a custom endpoint.
        region: Some(archive.region.clone()),
        endpoint: archive.endpoint.clone(),
        key_prefix,
        compression: match archive.compression {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Zlib => "zlib",
            Compression::Snappy => "snappy",
        }
        .into(),
        encoding: Encoding {
            codec: match archive.codec {
                EncodingCodec::Json => "json",
                EncodingCodec::Text => "text",
                EncodingCodec::Logfmt => "logfmt",
            }
            .into(),
        },
        // JSON without explicit framing is written as one JSON array per object.
        framing: Framing { method: "newline_delimited".into() },
        batch: Batch {
            max_bytes: Some(archive.batch_max_bytes),
            timeout_secs: Some(archive.batch_timeout_secs as f64),
        },
        buffer: Buffer::Disk { max_size: MIN_DISK_BUFFER_BYTES, when_full: WhenFull::Block },
        auth: None,
        healthcheck: None,
        content_type: content_type(archive.codec).into(),
        filename_extension: filename_extension(archive.codec, archive.compression),
    }))
}

/// The object's `Content-Type` for the records' encoding (Vector's default, `text/x-log`, hides
/// newline-delimited JSON from the tools that read the archive). Compression is the object's
/// `Content-Encoding`, which Vector sets itself.
pub fn content_type(codec: EncodingCodec) -> &'static str {
    match codec {
        EncodingCodec::Json => "application/x-ndjson",
        EncodingCodec::Text | EncodingCodec::Logfmt => "text/plain",
    }
}

/// The object-name extension for encoding and compression: `json.gz` for gzip NDJSON (what
/// Athena, Spark and S3 Select recognise), `log` for text and logfmt lines.
pub fn filename_extension(codec: EncodingCodec, compression: Compression) -> String {
    let base = match codec {
        EncodingCodec::Json => "json",
        EncodingCodec::Text | EncodingCodec::Logfmt => "log",
    };
    let suffix = match compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
        Compression::Zlib => ".zz",
        Compression::Snappy => ".snappy",
    };
    format!("{base}{suffix}")
}

/// Buffer of a real-time (GreptimeDB) sink: bounded memory that drops the newest events when
/// full, so a slow or unreachable GreptimeDB never backpressures the shared upstream and the
/// S3 archive keeps flowing. The archive holds the complete copy.
pub fn realtime_buffer() -> Buffer {
    Buffer::Memory { max_events: 10_000, when_full: WhenFull::DropNewest }
}

/// The transform that stamps [`CONFIG_ID_TAG`] on Vector's own metrics.
pub const CONFIG_ID_TRANSFORM: &str = "vector_config_id";
/// Tag on every internal metric of a collector: the id of the configuration it has actually
/// loaded (a hash of everything else in that configuration). What Vector reports is what it
/// runs, so a node that failed a hot reload shows the old id (loaded-config proof).
pub const CONFIG_ID_TAG: &str = "config_id";

/// Vector's own metrics, exposed for Prometheus on [`METRICS_PORT`], stamped with the config's
/// id. Call last: the id covers what the config holds when this is called.
pub fn self_observability(cfg: &mut Config) {
    cfg.sources.insert(
        "vector_internal_metrics".into(),
        Source::InternalMetrics(InternalMetrics { namespace: "vector".into() }),
    );
    let id = config_id(cfg);
    cfg.id = id.clone();
    cfg.transforms.insert(
        CONFIG_ID_TRANSFORM.into(),
        Transform::Remap(Remap {
            inputs: vec!["vector_internal_metrics".into()],
            source: format!(".tags.{CONFIG_ID_TAG} = \"{id}\"\n"),
            drop_on_error: false,
        }),
    );
    cfg.sinks.insert(
        "vector_metrics_exporter".into(),
        Sink::PrometheusExporter(PrometheusExporter {
            inputs: vec![CONFIG_ID_TRANSFORM.into()],
            address: format!("0.0.0.0:{METRICS_PORT}"),
        }),
    );
}

/// 16 hex digits of the SHA-256 of the config's JSON form (deterministic: every map in the
/// typed config is ordered).
pub fn config_id(cfg: &Config) -> String {
    use sha2::{Digest, Sha256};
    // Serialising these plain structs cannot fail; an empty input would still give an id.
    let bytes = serde_json::to_vec(cfg).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// A config with the global options every collector uses.
pub fn base_config() -> Config {
    Config {
        data_dir: DATA_DIR.into(),
        api: Api { enabled: true, address: format!("0.0.0.0:{API_PORT}") },
        sources: Default::default(),
        transforms: Default::default(),
        sinks: Default::default(),
        secret: Default::default(),
        id: String::new(),
    }
}

/// Where a collector reads the files of the Secrets its outputs name.
#[derive(Debug, Clone, Copy)]
pub enum SecretFiles<'a> {
    /// Each Secret mounted in its own directory (a resource's own collectors).
    Mounted,
    /// Keys of the shared collector's config Secret (mounted at `dir`, read through the
    /// `backend` directory backend), named for tenant `id` ([`crate::model::SecretFile::shared_name`]).
    Tenant { id: &'a str, dir: &'a str, backend: &'a str },
}

impl SecretFiles<'_> {
    /// The `SECRET[...]` reference Vector resolves when it loads the config.
    pub fn reference(&self, f: &crate::model::SecretFile) -> String {
        match self {
            SecretFiles::Mounted => f.reference(),
            SecretFiles::Tenant { id, backend, .. } => format!("SECRET[{backend}.{}]", f.shared_name(id)),
        }
    }

    /// The file's path in the pod (TLS files are read by path).
    pub fn path(&self, f: &crate::model::SecretFile) -> String {
        match self {
            SecretFiles::Mounted => f.path(),
            SecretFiles::Tenant { id, dir, .. } => format!("{dir}/{}", f.shared_name(id)),
        }
    }
}

/// The sink form of a model output's authentication: secrets as `SECRET[...]` references.
pub fn http_auth(a: &crate::model::HttpAuth, files: SecretFiles<'_>) -> HttpAuth {
    match a {
        crate::model::HttpAuth::Basic { user, password } => {
            HttpAuth::Basic { user: user.clone(), password: files.reference(password) }
        }
        crate::model::HttpAuth::Bearer { token } => HttpAuth::Bearer { token: files.reference(token) },
    }
}

/// The sink form of a model output's TLS: files of the Secrets.
pub fn tls(t: &crate::model::Tls, files: SecretFiles<'_>) -> Tls {
    Tls {
        ca_file: t.ca.as_ref().map(|f| files.path(f)),
        crt_file: t.cert.as_ref().map(|f| files.path(f)),
        key_file: t.key.as_ref().map(|f| files.path(f)),
        verify_certificate: t.verify,
        verify_hostname: t.verify,
    }
}

/// One `directory` secret backend per mounted Secret (each key is a file).
pub fn secret_backends(cfg: &mut Config, secrets: &BTreeMap<String, crate::model::MountedSecret>) {
    for name in secrets.keys() {
        cfg.secret.insert(
            crate::model::backend_name(name),
            SecretBackend::Directory {
                path: format!("{}/{name}", crate::model::SECRETS_DIR),
                // `kubectl create secret --from-file` keeps an editor's final newline.
                remove_trailing_whitespace: true,
            },
        );
    }
}
