//! Hand-written OpenAPI fragments for fields whose shape the derive cannot express: Kubernetes
//! name patterns, quantities, and the string-or-object environment values.

use schemars::{Schema, SchemaGenerator, json_schema};

const LABEL_VALUE: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
const QUANTITY: &str = r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";
const QUALIFIED_NAME: &str = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

pub fn label_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": LABEL_VALUE})
}

pub fn optional_label_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE})
}

pub fn dns_label(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS_LABEL})
}

pub fn optional_dns_label(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "maxLength": 63, "pattern": DNS_LABEL})
}

pub fn optional_dns_subdomain(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN})
}

/// The pattern only pre-filters (it is the apiserver's own first check, which lets `1.2.3`
/// through); CEL's quantity library checks the real grammar, so a bad value is refused on
/// create instead of inside the DaemonSet later.
pub fn optional_quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 64,
        "pattern": QUANTITY,
        "x-kubernetes-validations": [{
            "rule": "isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",
            "message": "must be a non-negative Kubernetes quantity, e.g. 500m, 2, 256Mi, 1Gi"
        }]
    })
}

pub fn qualified_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "maxLength": 317, "pattern": QUALIFIED_NAME})
}

pub fn namespace_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 256,
        "items": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL}
    })
}

pub fn optional_bucket(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 3,
        "maxLength": 255,
        "pattern": r"^[^/\s]+$",
        "description": "S3 bucket name, without s3:// and without a trailing /."
    })
}

pub fn s3_prefix(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 512,
        "pattern": r"^[^/{}%].*[^/]$|^[^/{}%]$",
        "description": "Key prefix in the bucket: no leading or trailing /, no {{ }} or % (the operator appends the partition path)."
    })
}

/// A container env value: a plain string or `{valueFrom: EnvVarSource}`. Structural schemas
/// cannot say "string or object", and the apiserver cannot compile CEL over a value without
/// a type, so the value keeps unknown fields and the operator checks the shape (a bad value
/// turns the resource Failed with the key named).
pub fn env_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A plain string, or {valueFrom: {secretKeyRef|configMapKeyRef|fieldRef|resourceFieldRef: ...}} as in a Pod's env.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

pub fn dns_subdomain(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 253, "pattern": DNS_SUBDOMAIN})
}

/// A key of a Secret's data (the apiserver's own rule for Secret keys).
pub fn secret_key(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[-._a-zA-Z0-9]+$"})
}

/// A tenant id as Loki, Mimir and Thanos accept it in X-Scope-OrgID (Loki's rule: at most 150
/// bytes of alphanumerics and `!-_.*'()`, not `.` or `..`); `|` would name several tenants at once.
pub fn optional_tenant_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": 150,
        "pattern": r"^[A-Za-z0-9!._*'()-]+$",
        "x-kubernetes-validations": [{"rule": "self != '.' && self != '..'", "message": "a tenant id cannot be . or .."}]
    })
}

/// Constant Loki stream labels: Prometheus-style names, bounded count and length.
pub fn loki_labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 256},
        "x-kubernetes-validations": [{
            "rule": "self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$') && size(k) <= 64)",
            "message": "Loki label names are [a-zA-Z_][a-zA-Z0-9_]*, at most 64 characters"
        }, {
            // The same list as model::outputs::LOKI_LABELS (which the operator checks too).
            "rule": "self.all(k, !(k in ['namespace', 'pod', 'container', 'workspace', 'tenant']))",
            "message": "namespace, pod, container, workspace and tenant are set on every stream already"
        }, {
            // Vector would read these as templates: a label must be a constant.
            "rule": "self.all(k, !self[k].contains('{{') && !self[k].contains('%'))",
            "message": "label values are literal: no {{ }} templates or % strftime items"
        }]
    })
}
