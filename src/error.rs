//! The reconcile's error type: one variant per pipeline step, each with the context of the
//! failing call (which child, which object). Lives below both the controller and the
//! telemetry, so neither imports the other. Touches nothing.
//!
//! Spec errors are not here: an invalid spec is a [`crate::model::SpecError`], reported in
//! status, and the resource waits for a change. Everything here is transient (the apiserver or
//! a dependency was unreachable, slow or conflicting) and is retried with backoff.

/// Upper bound on any text the operator puts into a status, an Event or a log line taken from
/// user input or a remote answer (etcd refuses objects over ~1.5 MiB; a status should be read
/// by a person).
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// `s` cut to [`MAX_MESSAGE_CHARS`] characters, marked when cut.
pub fn bounded(s: &str) -> String {
    bounded_to(s, MAX_MESSAGE_CHARS)
}

/// `s` cut to `max` characters, marked when cut.
pub fn bounded_to(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}… ({} characters cut)", &s[..at], s.chars().count() - max),
    }
}

/// `s` cut to at most `max` bytes in all, the mark included (the apiserver counts an Event's
/// note in bytes: 1 KiB).
pub fn bounded_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mark = |cut: usize| format!("… ({cut} bytes cut)");
    let mut at = max.saturating_sub(mark(s.len()).len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}{}", &s[..at], mark(s.len() - at))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading what the build needs (Nodes for the cloud, the GreptimeDBCluster).
    #[error("dereference {what}: {source}")]
    Dereference {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Listing the live children of one kind.
    #[error("list {kind}: {source}")]
    ListChildren {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    /// A child kind's watch cache could not be read (reported like a failed list: same step).
    #[error("list {kind} (watch cache): {why}")]
    CacheNotReady { kind: &'static str, why: &'static str },
    /// A server-side apply (dry run or real) that failed for a transient reason.
    #[error("apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a child that is no longer rendered.
    #[error("delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Rendering failed to serialise one of our own types: a bug, not a spec problem.
    #[error("render: {0}")]
    Render(String),
    /// Writing the resource's status.
    #[error("patch status: {0}")]
    PatchStatus(#[source] kube::Error),
    /// Adding or removing the finalizer.
    #[error("finalizer: {0}")]
    Finalizer(#[source] kube::Error),
}

impl Error {
    /// A short, bounded label for metrics and logs: the failing step.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Dereference { .. } => "Dereference",
            Error::ListChildren { .. } | Error::CacheNotReady { .. } => "ListChildren",
            Error::Apply { .. } => "Apply",
            Error::Delete { .. } => "Delete",
            Error::Render(_) => "Render",
            Error::PatchStatus(_) => "PatchStatus",
            Error::Finalizer(_) => "Finalizer",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_bytes_fits_the_limit_with_its_mark() {
        assert_eq!(bounded_bytes("héllo", 1024), "héllo");
        for s in ["x".repeat(5000), "é".repeat(3000), format!("a{}", "€".repeat(700))] {
            let cut = bounded_bytes(&s, 1024);
            assert!(cut.len() <= 1024, "{} bytes", cut.len());
            assert!(cut.ends_with(" bytes cut)") && cut.len() > 1000, "{cut}");
        }
    }

    #[test]
    fn bounded_cuts_on_characters_and_says_so() {
        assert_eq!(bounded_to("héllo", 10), "héllo");
        assert_eq!(bounded_to("héllo", 2), "hé… (3 characters cut)");
        assert!(bounded(&"x".repeat(300_000)).len() < MAX_MESSAGE_CHARS + 40);
    }
}
