//! The optional outputs of the model (Loki, Prometheus remote write) and the Secrets a
//! collector pod mounts for them. Pure: the Secrets were read by the dereference step (their
//! key names and resourceVersion, never their values), and a missing Secret or key is a
//! [`SpecError`] naming the field, so nothing is applied that would crash-loop the pods.
//!
//! Credentials reach Vector only as files of the mounted Secret: the config names them
//! (`SECRET[backend.file]` through Vector's `directory` secret backend, or a TLS file path),
//! so ConfigMaps, status and events never hold a value.

use std::collections::{BTreeMap, BTreeSet};

use super::SpecError;
use super::inputs::SecretInfo;
use super::validate::err;
use crate::api::{HttpAuthSpec, LokiSpec, RemoteWriteSpec, SecretKeyRef, TlsSpec, output_secret_refs};

/// Where the collector pods mount the Secrets their outputs name: one directory per Secret.
pub const SECRETS_DIR: &str = "/vector-secrets";

/// Stream labels every Loki stream gets (bounded: a namespace, pod or container name, and the
/// resource's constants); `extraLabels` may not reuse them.
pub const LOKI_LABELS: [&str; 5] = ["namespace", "pod", "container", "workspace", "tenant"];

/// A file of a mounted Secret: one key of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretFile {
    pub secret: String,
    /// The key in the Secret.
    pub key: String,
}

impl SecretFile {
    /// The file name the key is projected to: Vector's `SECRET[backend.key]` takes word
    /// characters and dots only, Secret keys may also hold `-`.
    pub fn file_name(&self) -> String {
        self.key.replace('-', "_")
    }

    /// Path of the file in the pod.
    pub fn path(&self) -> String {
        format!("{SECRETS_DIR}/{}/{}", self.secret, self.file_name())
    }

    /// Name of the Vector secret backend reading this Secret's directory.
    pub fn backend(&self) -> String {
        backend_name(&self.secret)
    }

    /// The `SECRET[...]` reference Vector resolves when it loads the config.
    pub fn reference(&self) -> String {
        format!("SECRET[{}.{}]", self.backend(), self.file_name())
    }

    /// Its key in a shared collector's config Secret, for tenant `id`: the tenant, then the
    /// Secret (without dots, unique per resource: [`Secrets::check_backends`]), then the key.
    /// The first two parts hold no dot, so two files never share a name.
    pub fn shared_name(&self, id: &str) -> String {
        format!("{id}.{}.{}", self.backend(), self.file_name())
    }
}

/// Every Secret file an output's authentication and TLS read.
pub fn output_files(auth: Option<&HttpAuth>, tls: Option<&Tls>) -> Vec<SecretFile> {
    let auth = auth.map(|a| match a {
        HttpAuth::Basic { password, .. } => password.clone(),
        HttpAuth::Bearer { token } => token.clone(),
    });
    let tls = tls.into_iter().flat_map(|t| [t.ca.clone(), t.cert.clone(), t.key.clone()]).flatten();
    auth.into_iter().chain(tls).collect()
}

/// `[[:word:]]` only (Vector's rule for backend names).
pub fn backend_name(secret: &str) -> String {
    format!("secret_{}", secret.replace(['-', '.'], "_"))
}

/// A Secret a collector pod mounts: the keys projected, and the version the pod template
/// carries (a changed Secret rolls the pods, so Vector reads the new value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MountedSecret {
    pub resource_version: String,
    pub keys: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    Basic { user: String, password: SecretFile },
    Bearer { token: SecretFile },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    pub ca: Option<SecretFile>,
    pub cert: Option<SecretFile>,
    pub key: Option<SecretFile>,
    pub verify: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Loki {
    pub endpoint: String,
    pub tenant_id: String,
    pub extra_labels: BTreeMap<String, String>,
    pub structured_metadata: bool,
    pub auth: Option<HttpAuth>,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    pub endpoint: String,
    pub tenant_id: String,
    pub auth: Option<HttpAuth>,
    pub tls: Option<Tls>,
}

/// Checks every Secret key an output names against what was read, and collects the mounts.
pub struct Secrets<'a> {
    pub found: &'a BTreeMap<String, Option<SecretInfo>>,
    pub namespace: &'a str,
    pub mounts: BTreeMap<String, MountedSecret>,
}

impl Secrets<'_> {
    fn file(&mut self, field: &str, r: &SecretKeyRef) -> Result<SecretFile, SpecError> {
        let info = match self.found.get(&r.name) {
            Some(Some(info)) => info,
            _ => {
                return Err(err(field, format!("Secret {:?} not found in namespace {:?}", r.name, self.namespace)));
            }
        };
        if !info.keys.contains(&r.key) {
            return Err(err(field, format!("Secret {:?} has no key {:?}", r.name, r.key)));
        }
        let file = SecretFile { secret: r.name.clone(), key: r.key.clone() };
        let mount = self.mounts.entry(r.name.clone()).or_default();
        mount.resource_version = info.resource_version.clone();
        // Two keys projected to one file name ("a-b" and "a_b") would shadow each other.
        if let Some(other) = mount.keys.iter().find(|k| **k != r.key && k.replace('-', "_") == file.file_name()) {
            return Err(err(
                field,
                format!("keys {other:?} and {:?} of Secret {:?} cannot both be used", r.key, r.name),
            ));
        }
        mount.keys.insert(r.key.clone());
        Ok(file)
    }

    fn check_backends(&self, field: &str) -> Result<(), SpecError> {
        let mut seen = BTreeMap::new();
        for name in self.mounts.keys() {
            if let Some(other) = seen.insert(backend_name(name), name) {
                return Err(err(field, format!("Secrets {other:?} and {name:?} differ only in - and .; rename one")));
            }
        }
        Ok(())
    }

    fn auth(&mut self, path: &str, a: Option<&HttpAuthSpec>) -> Result<Option<HttpAuth>, SpecError> {
        let Some(a) = a else { return Ok(None) };
        Ok(Some(match (&a.basic, &a.bearer_token_secret_ref) {
            (Some(b), None) => HttpAuth::Basic {
                user: b.username.clone(),
                password: self.file(&format!("{path}.auth.basic.passwordSecretRef"), &b.password_secret_ref)?,
            },
            (None, Some(t)) => HttpAuth::Bearer { token: self.file(&format!("{path}.auth.bearerTokenSecretRef"), t)? },
            _ => return Err(err(format!("{path}.auth"), "needs exactly one of basic and bearerTokenSecretRef")),
        }))
    }

    fn tls(&mut self, path: &str, t: Option<&TlsSpec>) -> Result<Option<Tls>, SpecError> {
        let Some(t) = t else { return Ok(None) };
        if t.cert_secret_ref.is_some() != t.key_secret_ref.is_some() {
            return Err(err(format!("{path}.tls"), "certSecretRef and keySecretRef go together"));
        }
        let mut file = |f: &str, r: &Option<SecretKeyRef>| {
            r.as_ref().map(|r| self.file(&format!("{path}.tls.{f}"), r)).transpose()
        };
        Ok(Some(Tls {
            ca: file("caSecretRef", &t.ca_secret_ref)?,
            cert: file("certSecretRef", &t.cert_secret_ref)?,
            key: file("keySecretRef", &t.key_secret_ref)?,
            verify: !t.insecure_skip_verify,
        }))
    }
}

fn check_url(field: &str, url: &str) -> Result<(), SpecError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(char::is_whitespace) {
        return Err(err(field, "must be an absolute http:// or https:// URL"));
    }
    // `{{` would make Vector read the URL as a template.
    if url.contains("{{") || url.contains("SECRET[") {
        return Err(err(field, "must be a literal URL (no {{ }} templates, no SECRET[...])"));
    }
    Ok(())
}

pub fn loki(l: &LokiSpec, tenant: &str, secrets: &mut Secrets<'_>) -> Result<Loki, SpecError> {
    let path = "spec.vectorLogs.loki";
    check_url(&format!("{path}.endpoint"), &l.endpoint)?;
    for (k, v) in &l.extra_labels {
        if LOKI_LABELS.contains(&k.as_str()) {
            return Err(err(format!("{path}.extraLabels.{k}"), "is one of the labels every stream already has"));
        }
        // Vector reads `{{ }}` and strftime `%` items in label values as templates.
        if v.contains("{{") || v.contains('%') {
            return Err(err(format!("{path}.extraLabels.{k}"), "must be a constant (no {{ }} templates, no %)"));
        }
    }
    let auth = secrets.auth(path, l.auth.as_ref())?;
    let tls = secrets.tls(path, l.tls.as_ref())?;
    secrets.check_backends(path)?;
    Ok(Loki {
        endpoint: l.endpoint.trim_end_matches('/').to_string(),
        tenant_id: l.tenant_id.clone().unwrap_or_else(|| tenant.to_string()),
        extra_labels: l.extra_labels.clone(),
        structured_metadata: l.structured_metadata,
        auth,
        tls,
    })
}

pub fn remote_write(r: &RemoteWriteSpec, tenant: &str, secrets: &mut Secrets<'_>) -> Result<RemoteWrite, SpecError> {
    let path = "spec.vectorMetrics.remoteWrite";
    check_url(&format!("{path}.endpoint"), &r.endpoint)?;
    let auth = secrets.auth(path, r.auth.as_ref())?;
    let tls = secrets.tls(path, r.tls.as_ref())?;
    secrets.check_backends(path)?;
    Ok(RemoteWrite {
        endpoint: r.endpoint.clone(),
        tenant_id: r.tenant_id.clone().unwrap_or_else(|| tenant.to_string()),
        auth,
        tls,
    })
}

/// Every Secret name the outputs of `spec` refer to (what the dereference step reads).
pub fn referenced_secrets(spec: &crate::api::MonitoringServicesSpec) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let logs = spec.vector_logs.as_ref().filter(|l| l.enabled).and_then(|l| l.loki.as_ref());
    let metrics = spec.vector_metrics.as_ref().filter(|m| m.enabled).and_then(|m| m.remote_write.as_ref());
    let refs = logs
        .map(|l| output_secret_refs(l.auth.as_ref(), l.tls.as_ref()))
        .into_iter()
        .chain(metrics.map(|r| output_secret_refs(r.auth.as_ref(), r.tls.as_ref())))
        .flatten();
    for (_, r) in refs {
        out.entry(r.name.clone()).or_default().insert(r.key.clone());
    }
    out
}
