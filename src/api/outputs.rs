//! Optional outputs besides the S3 archive (additive fields of `v1alpha2`): logs to Loki
//! (`spec.vectorLogs.loki`) and metrics to any Prometheus remote-write endpoint
//! (`spec.vectorMetrics.remoteWrite`: Thanos Receive, Mimir, Cortex, Prometheus itself).
//! Credentials and certificates are only ever named here (a Secret in the resource's own
//! namespace and a key in it), never given as values.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// A key of a Secret in this resource's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretKeyRef {
    /// Secret name (in this resource's namespace).
    #[schemars(schema_with = "schema::dns_subdomain")]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(schema_with = "schema::secret_key")]
    pub key: String,
}

/// HTTP authentication of an output: basic or bearer, exactly one.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.basic) != has(self.bearerTokenSecretRef)").message("auth needs exactly one of basic and bearerTokenSecretRef"))]
pub struct HttpAuthSpec {
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuthSpec>,
    /// Bearer token (sent as `Authorization: Bearer <token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret_ref: Option<SecretKeyRef>,
}

/// Basic authentication: a user name and a password from a Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthSpec {
    /// User name (not secret, e.g. a Grafana Cloud instance id).
    #[schemars(length(min = 1, max = 256))]
    pub username: String,
    /// The password.
    pub password_secret_ref: SecretKeyRef,
}

/// TLS towards an output. Without it, https:// endpoints are verified against the image's
/// system CAs.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.certSecretRef) == has(self.keySecretRef)").message("certSecretRef and keySecretRef go together (client certificate and its key)"))]
pub struct TlsSpec {
    /// CA bundle (PEM) that signs the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Client certificate (PEM), for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeyRef>,
    /// Client key (PEM), for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// Do not verify the server's certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Container logs to Loki's push API.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LokiSpec {
    /// Loki's base URL, e.g. http://loki-gateway.loki.svc (logs are pushed to
    /// <endpoint>/loki/api/v1/push).
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("loki.endpoint must be an absolute http:// or https:// URL"))]
    #[schemars(length(min = 8, max = 2048))]
    pub endpoint: String,
    /// Tenant sent as X-Scope-OrgID; defaults to spec.tenant. Under a restricted tenancy policy
    /// it must be spec.tenant (or the tenant the admin pinned this namespace to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_tenant_id")]
    pub tenant_id: Option<String>,
    /// Constant labels added to every stream (on top of namespace, pod, container, workspace and
    /// tenant). Values are literal: a label never takes a per-line value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::loki_labels")]
    pub extra_labels: BTreeMap<String, String>,
    /// Send node, pod_uid, container_image and stream as structured metadata (Loki 3, or 2.9+
    /// with allow_structured_metadata). Off: they are left out.
    #[serde(default = "default_true")]
    pub structured_metadata: bool,
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuthSpec>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Scraped metrics to a Prometheus remote-write endpoint.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteWriteSpec {
    /// Full write URL, e.g. http://thanos-receive.thanos.svc:19291/api/v1/receive or
    /// http://mimir.mimir.svc/api/v1/push.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("remoteWrite.endpoint must be an absolute http:// or https:// URL"))]
    #[schemars(length(min = 8, max = 2048))]
    pub endpoint: String,
    /// Tenant sent as X-Scope-OrgID; defaults to spec.tenant. Same policy rule as loki.tenantId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_tenant_id")]
    pub tenant_id: Option<String>,
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuthSpec>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

fn default_true() -> bool {
    true
}

impl TlsSpec {
    /// The Secret keys this TLS block names, with the field of each.
    pub fn secret_refs(&self) -> impl Iterator<Item = (&'static str, &SecretKeyRef)> {
        [
            ("caSecretRef", &self.ca_secret_ref),
            ("certSecretRef", &self.cert_secret_ref),
            ("keySecretRef", &self.key_secret_ref),
        ]
        .into_iter()
        .filter_map(|(f, r)| Some((f, r.as_ref()?)))
    }
}

impl HttpAuthSpec {
    pub fn secret_refs(&self) -> impl Iterator<Item = (&'static str, &SecretKeyRef)> {
        [
            ("basic.passwordSecretRef", self.basic.as_ref().map(|b| &b.password_secret_ref)),
            ("bearerTokenSecretRef", self.bearer_token_secret_ref.as_ref()),
        ]
        .into_iter()
        .filter_map(|(f, r)| Some((f, r?)))
    }
}

/// Every Secret key an output names, with its field path below the output (`auth.…`, `tls.…`).
pub fn output_secret_refs<'a>(
    auth: Option<&'a HttpAuthSpec>,
    tls: Option<&'a TlsSpec>,
) -> Vec<(String, &'a SecretKeyRef)> {
    let mut out: Vec<(String, &SecretKeyRef)> =
        auth.into_iter().flat_map(|a| a.secret_refs()).map(|(f, r)| (format!("auth.{f}"), r)).collect();
    out.extend(tls.into_iter().flat_map(|t| t.secret_refs()).map(|(f, r)| (format!("tls.{f}"), r)));
    out
}
