//! Helpers for the small VRL programs the operator generates.

/// A VRL string literal for `s` (quotes and backslashes escaped, control characters as
/// escapes; `{` is escaped so a value can never become a template).
pub fn vrl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '{' => out.push_str("\\{"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Stamp workspace and tenant on every event. Assignments come last so nothing upstream can
/// overwrite them.
pub fn stamp_identity(workspace: &str, tenant: &str) -> String {
    format!(".workspace = {}\n.tenant = {}\n", vrl_string(workspace), vrl_string(tenant))
}
