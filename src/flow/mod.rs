//! Flow health: whether a collector actually delivers, read from its own Vector metrics.
//!
//! Pure (touches nothing): [`parse`] turns one scrape of Vector's `prometheus_exporter` into a
//! [`Snapshot`]; [`health`] compares two snapshots of one collector (a window apart) and names
//! what is wrong per sink; [`damp`] keeps a reason from flapping; [`facts`] turns the pods'
//! summaries into one verdict per component. Who scrapes, and how the
//! summaries reach the resource's status, is decided above this module (see the README,
//! "Flow health").
//!
//! Why not the error counters alone: measured with Vector 0.57, a sink whose endpoint is
//! unreachable (S3 or HTTP, connection refused) retries without end and never increments
//! `vector_component_errors_total`; only its buffer grows while `component_sent_events_total`
//! stays flat. So a stalled sink is recognised by "events waiting, none sent", and errors are
//! an additional, more specific signal when Vector reports them.

pub mod damp;
pub mod facts;
pub mod health;
pub mod parse;

pub use damp::Damper;
pub use facts::{ComponentFlow, PodReport, Summary, aggregate};
pub use health::{Flow, Reason, SinkHealth, Thresholds, evaluate};
pub use parse::{SinkCounters, Snapshot, parse};
