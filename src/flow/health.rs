//! Two snapshots of one collector, a window apart → what is wrong, per sink and overall.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::parse::{SinkCounters, Snapshot};

/// Flow reasons, from harmless to worst: the overall reason is the worst of the sinks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Everything sent what it received.
    Healthy,
    /// The collector could not be read: no answer is better than a wrong one.
    Unknown,
    /// Pods are selected, yet the sources received nothing in the window.
    NoDataReceived,
    /// A sink's buffer is above the threshold: it sends slower than it receives.
    BufferFillingUp,
    /// A sink reported errors (the most frequent class is named).
    SinkErrors,
    /// A collector runs another configuration than its pod was given (a failed reload).
    ConfigOutdated,
    /// A sink has events waiting and sent none in the window (an unreachable endpoint: Vector
    /// retries without counting an error).
    SinkStalled,
    /// A sink's buffer dropped events: they are lost for that sink.
    DataDropped,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Healthy => "Healthy",
            Reason::Unknown => "Unknown",
            Reason::NoDataReceived => "NoDataReceived",
            Reason::BufferFillingUp => "BufferFillingUp",
            Reason::SinkErrors => "SinkErrors",
            Reason::ConfigOutdated => "ConfigOutdated",
            Reason::SinkStalled => "SinkStalled",
            Reason::DataDropped => "DataDropped",
        }
    }

    /// The reason named `s` (as written by [`Reason::as_str`]).
    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::Healthy,
            Reason::Unknown,
            Reason::NoDataReceived,
            Reason::BufferFillingUp,
            Reason::SinkErrors,
            Reason::ConfigOutdated,
            Reason::SinkStalled,
            Reason::DataDropped,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Healthy and Unknown are not problems of the data path, and neither is silence: quiet
    /// pods are normal (NoDataReceived informs, it does not degrade).
    pub fn is_problem(self) -> bool {
        !matches!(self, Reason::Healthy | Reason::Unknown | Reason::NoDataReceived)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The admin's thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Buffer fill ratio from which `BufferFillingUp` shows.
    pub buffer_filling: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { buffer_filling: 0.8 }
    }
}

/// One sink's verdict over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkHealth {
    pub sink: String,
    pub reason: Reason,
    /// What was measured, for people: e.g. "140 events waiting, none sent".
    pub detail: String,
}

/// One collector's verdict over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub reason: Reason,
    /// The worst sink's detail, prefixed with its name; empty when healthy.
    pub message: String,
    pub sinks: Vec<SinkHealth>,
    /// What the collector has loaded (see [`Snapshot::config_id`]).
    pub config_id: Option<String>,
}

/// Compares `cur` with `prev` (the same collector, one window earlier). The window must be
/// longer than the longest batch timeout of the collector's sinks (`batchTimeoutSecs`), or a
/// sink still filling its batch would look stalled. `expects_data`: the
/// collector has something to read (selected pods, scrape targets); without it silence is fine.
/// A counter lower than before means the collector restarted: its value is the delta.
pub fn evaluate(prev: &Snapshot, cur: &Snapshot, expects_data: bool, t: &Thresholds) -> Flow {
    let empty = SinkCounters::default();
    let sinks: Vec<SinkHealth> = cur
        .sinks
        .iter()
        .map(|(name, now)| {
            let before = prev.sinks.get(name).unwrap_or(&empty);
            let (reason, detail) = sink(before, now, t);
            SinkHealth { sink: name.clone(), reason, detail }
        })
        .collect();
    let worst = sinks.iter().filter(|s| s.reason.is_problem()).max_by_key(|s| s.reason);
    let (reason, message) = match worst {
        Some(s) => (s.reason, format!("sink {}: {}", s.sink, s.detail)),
        None if expects_data && delta(prev.source_events, cur.source_events) == 0.0 => {
            (Reason::NoDataReceived, "the sources received no events although there is something to read".to_string())
        }
        None => (Reason::Healthy, String::new()),
    };
    Flow { reason, message, sinks, config_id: cur.config_id.clone() }
}

fn sink(before: &SinkCounters, now: &SinkCounters, t: &Thresholds) -> (Reason, String) {
    let discarded = delta(before.discarded_events, now.discarded_events);
    if discarded > 0.0 {
        return (Reason::DataDropped, format!("{discarded} events dropped"));
    }
    let sent = delta(before.sent_events, now.sent_events);
    let received = delta(before.received_events, now.received_events);
    let waiting = now.buffer_events;
    if sent == 0.0 && (waiting > 0.0 || received > 0.0) {
        return (Reason::SinkStalled, format!("{waiting} events waiting, {received} received, none sent"));
    }
    let errors = now
        .errors
        .iter()
        .map(|(class, n)| (class, delta(before.errors.get(class).copied().unwrap_or(0.0), *n)))
        .filter(|(_, d)| *d > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((class, n)) = errors {
        return (Reason::SinkErrors, format!("{n} errors ({class}), {sent} events sent"));
    }
    if let Some(ratio) = now.buffer_ratio().filter(|r| *r >= t.buffer_filling) {
        return (Reason::BufferFillingUp, format!("buffer {:.0}% full", ratio * 100.0));
    }
    (Reason::Healthy, format!("{sent} events sent"))
}

/// Increase of a cumulative counter; a lower value is a restart, so the new value is all of it.
fn delta(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::parse;

    /// Recorded from real Vector 0.57 (trimmed): an aws_s3 sink whose endpoint refuses
    /// connections, 15 s and 30 s after start. No error counter anywhere.
    const S3_DOWN_15S: &str = r#"vector_buffer_size_events{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 140
vector_buffer_size_bytes{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 30240
vector_buffer_max_size_bytes{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 268435488
vector_component_received_events_total{component_id="gen",component_kind="source",component_type="demo_logs"} 141
"#;
    const S3_DOWN_30S: &str = r#"vector_buffer_size_events{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 290
vector_buffer_size_bytes{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 62640
vector_buffer_max_size_bytes{buffer_type="disk",component_id="s3_archive",component_kind="sink",component_type="aws_s3",stage="0"} 268435488
vector_component_received_events_total{component_id="gen",component_kind="source",component_type="demo_logs"} 291
"#;

    fn eval(a: &str, b: &str) -> Flow {
        evaluate(&parse(a), &parse(b), true, &Thresholds::default())
    }

    #[test]
    fn an_unreachable_sink_is_stalled_without_any_error_counter() {
        let f = eval(S3_DOWN_15S, S3_DOWN_30S);
        assert_eq!(f.reason, Reason::SinkStalled);
        assert_eq!(f.message, "sink s3_archive: 290 events waiting, 0 received, none sent");
    }

    fn sink_page(sent: f64, errors: f64, discarded: f64, buffered: f64) -> String {
        format!(
            r#"vector_component_sent_events_total{{component_id="loki",component_kind="sink"}} {sent}
vector_component_errors_total{{component_id="loki",component_kind="sink",error_type="request_failed"}} {errors}
vector_buffer_discarded_events_total{{component_id="loki",component_kind="sink",intentional="true"}} {discarded}
vector_buffer_size_events{{component_id="loki",component_kind="sink"}} {buffered}
vector_buffer_max_size_events{{component_id="loki",component_kind="sink"}} 10000
vector_component_received_events_total{{component_id="pod_logs",component_kind="source"}} {sent}
"#
        )
    }

    #[test]
    fn the_worst_reason_wins_in_order() {
        let base = sink_page(100.0, 0.0, 0.0, 0.0);
        let case = |page: String| eval(&base, &page).reason;
        assert_eq!(case(sink_page(200.0, 0.0, 0.0, 10.0)), Reason::Healthy);
        assert_eq!(case(sink_page(200.0, 0.0, 0.0, 9000.0)), Reason::BufferFillingUp);
        assert_eq!(case(sink_page(200.0, 3.0, 0.0, 9000.0)), Reason::SinkErrors);
        assert_eq!(case(sink_page(100.0, 3.0, 0.0, 9000.0)), Reason::SinkStalled);
        assert_eq!(case(sink_page(100.0, 3.0, 5.0, 10000.0)), Reason::DataDropped);
        // Errors long ago (no increase) are not errors now.
        assert_eq!(eval(&sink_page(100.0, 3.0, 0.0, 0.0), &sink_page(200.0, 3.0, 0.0, 0.0)).reason, Reason::Healthy);
    }

    #[test]
    fn a_restart_is_not_a_stall_and_silence_needs_something_to_read() {
        // Counters went down: the collector restarted and has sent 50 since.
        assert_eq!(eval(&sink_page(1000.0, 0.0, 0.0, 0.0), &sink_page(50.0, 0.0, 0.0, 0.0)).reason, Reason::Healthy);
        let idle = sink_page(100.0, 0.0, 0.0, 0.0);
        assert_eq!(eval(&idle, &idle).reason, Reason::NoDataReceived);
        let quiet = evaluate(&parse(&idle), &parse(&idle), false, &Thresholds::default());
        assert_eq!(quiet.reason, Reason::Healthy);
    }
}
