//! Has a child drifted from what we apply? Pure: reads the live object and its managedFields,
//! touches nothing.
//!
//! Two checks, because each misses what the other sees:
//! - [`foreign_owner`]: another manager owns one of our fields. A server-side apply by someone
//!   else with `force` takes the field over this way.
//! - [`difference`]: every value we apply is still in the live object. An *update* (merge,
//!   strategic or JSON patch, `kubectl edit`/`set image`, a PUT) moves ownership of the fields it
//!   changes to its manager and removes them from ours, so the field set shows no conflict: only
//!   the values tell. Fields the apiserver defaults, and fields others add next to ours (an IRSA
//!   annotation, `kubectl rollout restart`), are not ours and are left alone, so re-applying
//!   settles: no apply loop.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde::Serialize;
use serde_json::Value;

use crate::render::meta::MANAGER;

/// Leaf paths of a managedFields `fieldsV1` trie (`f:spec/f:template/...`).
fn leaves(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                if k == "." {
                    out.insert(prefix.to_string());
                } else {
                    leaves(child, &format!("{prefix}/{k}"), out);
                }
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// True when another manager owns (so has written) a field we apply, outside status, or when
/// we own nothing (never applied by us, or our ownership was removed). A forced re-apply takes
/// those fields back, after which this is false again.
pub fn foreign_owner(fields: &[ManagedFieldsEntry]) -> bool {
    let main = |f: &&ManagedFieldsEntry| f.subresource.as_deref().unwrap_or("").is_empty();
    let set = |f: &ManagedFieldsEntry| {
        let mut out = BTreeSet::new();
        if let Some(v) = &f.fields_v1 {
            leaves(&v.0, "", &mut out);
        }
        out
    };
    let Some(ours) = fields.iter().filter(main).find(|f| f.manager.as_deref() == Some(MANAGER)).map(set) else {
        return true;
    };
    fields.iter().filter(main).filter(|f| f.manager.as_deref() != Some(MANAGER)).any(|f| !set(f).is_disjoint(&ours))
}

/// None when every value of `desired` is in `live`; else the path of the first one that is
/// not (`spec.template.spec.containers[0].image`). Objects key by key (extra live keys are
/// defaults or someone else's), lists element by element with the same length, quantities by
/// value (`0.5` is stored as `500m`). An empty value we apply (`false`, `0`, `""`, `[]`, `{}`)
/// matches a missing one (the apiserver omits them).
pub fn difference<K: Serialize>(desired: &K, live: &K) -> Option<String> {
    match (serde_json::to_value(desired), serde_json::to_value(live)) {
        (Ok(d), Ok(l)) => first_difference(&d, &l, ""),
        _ => Some("(not serializable)".into()),
    }
}

/// What the apiserver stores as absent: Go's `omitempty` drops zero values.
fn empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn first_difference(want: &Value, live: &Value, path: &str) -> Option<String> {
    let same = match (want, live) {
        (Value::Object(w), Value::Object(l)) => {
            return w.iter().find_map(|(k, wv)| {
                let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match l.get(k) {
                    Some(lv) => first_difference(wv, lv, &at),
                    None => (!empty(wv)).then_some(at),
                }
            });
        }
        (Value::Array(w), Value::Array(l)) if w.len() == l.len() => {
            return w.iter().zip(l).enumerate().find_map(|(i, (a, b))| first_difference(a, b, &format!("{path}[{i}]")));
        }
        (Value::String(w), Value::String(l)) => w == l || same_quantity(w, l),
        (w, Value::Null) => empty(w),
        (w, l) => w == l,
    };
    (!same).then(|| path.to_string())
}

#[cfg(test)]
fn value_covers(want: &Value, live: &Value) -> bool {
    first_difference(want, live, "").is_none()
}

/// `1` and `1000m`, `1Gi` and `1024Mi`: equal quantities written differently.
fn same_quantity(a: &str, b: &str) -> bool {
    match (quantity(a), quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// A Kubernetes quantity's value (`500m`, `2`, `1Gi`, `1e3`); None for anything else, so
/// ordinary strings never compare equal this way.
fn quantity(q: &str) -> Option<f64> {
    let end = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(end);
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e => 10f64.powi(e.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(entries: Value) -> Vec<ManagedFieldsEntry> {
        serde_json::from_value(entries).unwrap()
    }

    fn entry(manager: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn a_foreign_owner_of_our_fields_is_drift() {
        let ours = json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:automountServiceAccountToken": {}});
        // Someone added an annotation next to our fields: not drift.
        let annotated = fields(json!([
            entry(MANAGER, ours.clone()),
            entry("kubectl-annotate", json!({"f:metadata": {"f:annotations": {"f:eks.amazonaws.com/role-arn": {}}}}))
        ]));
        assert!(!foreign_owner(&annotated));
        // Someone changed a field we own: drift.
        let edited = fields(json!([
            entry(MANAGER, ours.clone()),
            entry("kubectl-edit", json!({"f:automountServiceAccountToken": {}}))
        ]));
        assert!(foreign_owner(&edited));
        // Never applied by us.
        assert!(foreign_owner(&fields(json!([entry("someone", ours)]))));
    }

    #[test]
    fn values_we_apply_must_still_be_there() {
        let want = json!({"data": {"vector.yaml": "a"}, "spec": {"containers": [{"name": "v", "image": "x:1", "args": []}],
                          "resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}}});
        // Defaults and others' fields next to ours: covered.
        let defaulted = json!({"data": {"vector.yaml": "a"}, "spec": {"containers": [{"name": "v", "image": "x:1",
                               "imagePullPolicy": "IfNotPresent"}], "resources": {"limits": {"cpu": "500m", "memory": "1024Mi"}}},
                               "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}});
        assert!(value_covers(&want, &defaulted));
        // An edited value, a removed key, an added list element: not covered.
        let mut edited = defaulted.clone();
        edited["data"]["vector.yaml"] = json!("b");
        assert!(!value_covers(&want, &edited));
        let mut image = defaulted.clone();
        image["spec"]["containers"][0]["image"] = json!("evil:1");
        assert!(!value_covers(&want, &image));
        let mut removed = defaulted.clone();
        removed["data"].as_object_mut().unwrap().remove("vector.yaml");
        assert!(!value_covers(&want, &removed));
        let mut added = defaulted.clone();
        added["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "sidecar"}));
        assert!(!value_covers(&want, &added));
        let mut cpu = defaulted;
        cpu["spec"]["resources"]["limits"]["cpu"] = json!("2");
        assert!(!value_covers(&want, &cpu));
    }
}
