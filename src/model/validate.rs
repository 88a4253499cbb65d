//! Field checks the build uses: Kubernetes name, label and quantity syntax, `${VAR}`
//! substitution. Pure; every failure is a [`SpecError`] naming the field.

use std::collections::BTreeMap;

use crate::error::bounded_to;

/// A spec the schema accepted but that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// JSON path of the offending field, e.g. `spec.vectorLogs.s3Bucket`.
    pub field: String,
    pub message: String,
}

/// A [`SpecError`]; user text quoted in `message` is cut (a 300,000-character name must not
/// become a 900 KB status).
pub fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { field: bounded_to(&field.into(), 256), message: bounded_to(&message.into(), 512) }
}

/// User text quoted in a message: at most 64 characters.
fn quote(s: &str) -> String {
    format!("{:?}", bounded_to(s, 64))
}

pub fn positive(field: &str, v: i64) -> Result<u64, SpecError> {
    u64::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| err(field, "must be greater than 0"))
}

/// Replace every `${NAME}` in `value` from `vars`; an unknown name is an error naming `field`.
pub fn substitute(
    field: &str,
    value: &str,
    vars: &BTreeMap<String, String>,
    vars_field: &str,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| err(field, "unterminated ${ reference"))?;
        let key = &after[..end];
        let v = vars.get(key).ok_or_else(|| {
            err(field, format!("references ${{{}}}, which is not defined in {vars_field}", bounded_to(key, 64)))
        })?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

pub fn check_dns_subdomain(field: &str, s: &str) -> Result<(), SpecError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(err(field, format!("{} is not a valid Kubernetes object name", quote(s)))) }
}

fn is_label_segment(s: &str, max: usize, allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    s.len() <= max
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Kubernetes label key (`[prefix/]name`) and value syntax.
pub fn check_label(field: &str, key: &str, value: &str) -> Result<(), SpecError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    });
    if !prefix_ok || !is_label_segment(name, 63, false) {
        return Err(err(field, format!("{} is not a valid label key", quote(key))));
    }
    if !is_label_segment(value, 63, true) {
        return Err(err(
            format!("{field}.{}", bounded_to(key, 64)),
            format!("{} is not a valid label value", quote(value)),
        ));
    }
    Ok(())
}

/// A resource quantity as the apiserver parses it (`resource.ParseQuantity`): a number
/// (`1`, `1.5`, `.5`, `5.`) and one suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal `m k M G T P E`
/// or an exponent `e3`/`E-2`. The CRD's pattern only pre-filters (it lets `1.2.3`, `1e` and
/// `5Ki5` through, which the apiserver then refuses inside the DaemonSet with a 500), so the
/// build checks the real grammar. Negative values are refused: requests and limits cannot be.
pub fn check_quantity(field: &str, q: &str) -> Result<(), SpecError> {
    let bad = || err(field, format!("{} is not a valid quantity (e.g. 500m, 2, 256Mi, 1Gi)", quote(q)));
    let s = q.strip_prefix('+').unwrap_or(q);
    let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return Err(bad());
    }
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        _ => match suffix.strip_prefix(['e', 'E']) {
            Some(exp) => {
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
            }
            None => false,
        },
    };
    if suffix_ok { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("BUCKET".to_string(), "b1".to_string())])
    }

    #[test]
    fn substitutes_and_names_missing_variables() {
        assert_eq!(substitute("f", "x-${BUCKET}-y", &vars(), "v").unwrap(), "x-b1-y");
        let e =
            substitute("spec.vectorLogs.s3Bucket", "${NOPE}", &vars(), "spec.vectorLogs.configVariables").unwrap_err();
        assert_eq!(e.field, "spec.vectorLogs.s3Bucket");
        assert!(e.message.contains("${NOPE}") && e.message.contains("configVariables"), "{e}");
        assert!(substitute("f", "${OPEN", &vars(), "v").is_err());
    }

    #[test]
    fn huge_undefined_names_make_bounded_messages() {
        let name = "N".repeat(450_000);
        let e = substitute("spec.vectorLogs.s3Bucket", &format!("${{{name}}}"), &vars(), "v").unwrap_err();
        assert!(e.to_string().len() < 700, "{} bytes", e.to_string().len());
        assert_eq!(e.field, "spec.vectorLogs.s3Bucket");
    }

    #[test]
    fn label_syntax() {
        assert!(check_label("f", "app", "debug").is_ok());
        assert!(check_label("f", "example.com/app", "").is_ok());
        assert!(check_label("f", "bad key", "x").is_err());
        assert_eq!(check_label("f", "app", "bad value").unwrap_err().field, "f.app");
    }

    #[test]
    fn quantities_follow_the_apiserver_grammar() {
        for ok in ["1", "200m", "0.5", ".5", "5.", "256Mi", "1Gi", "1e3", "1E-2", "+2", "100k", "2Ei"] {
            assert!(check_quantity("f", ok).is_ok(), "{ok}");
        }
        for bad in ["1.2.3", "1e", "5Ki5", "", ".", "-1", "1Ki1", "abc", "1 Gi", "1mi", "1e+"] {
            let e = check_quantity("spec.vectorLogs.resources.cpu", bad).unwrap_err();
            assert_eq!(e.field, "spec.vectorLogs.resources.cpu", "{bad}");
        }
    }
}
