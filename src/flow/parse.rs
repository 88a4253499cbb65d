//! One scrape of Vector's Prometheus exporter → the counters flow health needs, per sink.
//! Only the few families below are read; everything else on the page is skipped line by line,
//! so a page of any size costs one pass and no allocation per skipped series.

use std::collections::BTreeMap;

/// The internal-metrics source and the exporter sink are the collector's own plumbing, not
/// telemetry: they are left out of flow health.
const OWN_COMPONENTS: [&str; 2] = ["vector_internal_metrics", "vector_metrics_exporter"];

/// What one collector reported at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The `config_id` tag the operator stamps (`vector::CONFIG_ID_TAG`) on the collector's own metrics: the
    /// configuration Vector has actually loaded.
    pub config_id: Option<String>,
    /// Events the sources (other than Vector's own metrics) have received, summed.
    pub source_events: f64,
    /// The same by source id (the shared collector's tenants each have their own sources).
    pub sources: BTreeMap<String, f64>,
    /// Events the transforms received, by id: where a tenant of the shared logs collector has
    /// no source of its own (one source serves every tenant), its pipeline starts here.
    pub transforms: BTreeMap<String, f64>,
    pub sinks: BTreeMap<String, SinkCounters>,
}

impl Snapshot {
    /// The part of a shared collector that is one tenant's: its sources and sinks, whose ids
    /// start with `prefix`.
    pub fn only(&self, prefix: &str) -> Snapshot {
        let own = |m: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), *v)).collect()
        };
        let sources = own(&self.sources);
        // No source of its own (the shared logs collector): what entered its transforms.
        let source_events =
            if sources.is_empty() { own(&self.transforms).values().sum() } else { sources.values().sum() };
        Snapshot {
            config_id: self.config_id.clone(),
            source_events,
            sources,
            transforms: own(&self.transforms),
            sinks: self
                .sinks
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Counters and gauges of one sink (cumulative since the collector started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkCounters {
    pub received_events: f64,
    pub sent_events: f64,
    /// Errors by class: `error_type` of `component_errors_total`, or the HTTP client's
    /// `error_kind` (cut to 120 characters: it is free text).
    pub errors: BTreeMap<String, f64>,
    /// Events dropped by the sink's buffer or by the sink itself.
    pub discarded_events: f64,
    pub buffer_events: f64,
    pub buffer_bytes: f64,
    pub buffer_max_events: f64,
    pub buffer_max_bytes: f64,
}

impl SinkCounters {
    /// Fill ratio of the buffer: bytes where it has a byte limit (disk), else events.
    pub fn buffer_ratio(&self) -> Option<f64> {
        if self.buffer_max_bytes > 0.0 {
            Some(self.buffer_bytes / self.buffer_max_bytes)
        } else if self.buffer_max_events > 0.0 {
            Some(self.buffer_events / self.buffer_max_events)
        } else {
            None
        }
    }
}

/// Parses the Prometheus text exposition format (Vector writes no exemplars or escapes in
/// names; label values may carry `\"`, `\\` and `\n`).
///
/// After a hot reload the exporter shows each series twice for a while: under the old
/// `config_id` (frozen, until the exporter expires it) and the new one (the same cumulative
/// counters, growing). Summing both would double-count, and their expiry would look like a
/// restart; so the series are grouped by `config_id` and the most active group is the snapshot.
pub fn parse(text: &str) -> Snapshot {
    let mut by_id: std::collections::BTreeMap<String, Snapshot> = Default::default();
    // Series without the stamp (an unstamped collector) belong to whichever group wins.
    let mut unstamped = Vec::new();
    for line in text.lines() {
        let Some((name, labels, _)) = split(line) else { continue };
        if Family::of(name) == Family::Other {
            continue;
        }
        match parse_labels(labels).into_iter().find(|(k, _)| k == "config_id") {
            Some((_, id)) => {
                let s =
                    by_id.entry(id.clone()).or_insert_with(|| Snapshot { config_id: Some(id), ..Default::default() });
                add(s, line);
            }
            None => unstamped.push(line),
        }
    }
    let activity =
        |s: &Snapshot| s.source_events + s.sinks.values().map(|k| k.sent_events + k.received_events).sum::<f64>();
    let mut s = by_id.into_values().max_by(|a, b| activity(a).total_cmp(&activity(b))).unwrap_or_default();
    for line in unstamped {
        add(&mut s, line);
    }
    s
}

/// Adds one series line to `s`.
fn add(s: &mut Snapshot, line: &str) {
    {
        let Some((name, labels, value)) = split(line) else { return };
        let family = Family::of(name);
        let labels = parse_labels(labels);
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(id) = label("component_id") else { return };
        if OWN_COMPONENTS.contains(&id) {
            return;
        }
        let kind = label("component_kind");
        if kind == Some("source") {
            if family == Family::Received {
                s.source_events += value;
                *s.sources.entry(id.to_string()).or_default() += value;
            }
            return;
        }
        if kind == Some("transform") {
            if family == Family::Received {
                *s.transforms.entry(id.to_string()).or_default() += value;
            }
            return;
        }
        if kind != Some("sink") {
            return;
        }
        let sink = s.sinks.entry(id.to_string()).or_default();
        match family {
            Family::Received => sink.received_events += value,
            Family::Sent => sink.sent_events += value,
            Family::Errors => {
                *sink.errors.entry(label("error_type").unwrap_or("unknown").to_string()).or_default() += value
            }
            Family::HttpErrors => {
                let kind: String = label("error_kind").unwrap_or("http").chars().take(120).collect();
                *sink.errors.entry(kind).or_default() += value;
            }
            Family::Discarded => sink.discarded_events += value,
            Family::BufferEvents => sink.buffer_events += value,
            Family::BufferBytes => sink.buffer_bytes += value,
            Family::BufferMaxEvents => sink.buffer_max_events += value,
            Family::BufferMaxBytes => sink.buffer_max_bytes += value,
            Family::Other => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Received,
    Sent,
    Errors,
    HttpErrors,
    Discarded,
    BufferEvents,
    BufferBytes,
    BufferMaxEvents,
    BufferMaxBytes,
    Other,
}

impl Family {
    /// Vector 0.57 reports buffer sizes under an old and a new name (`buffer_events` and
    /// `buffer_size_events`); only the new ones are read, so nothing counts twice.
    fn of(name: &str) -> Family {
        match name {
            "vector_component_received_events_total" => Family::Received,
            "vector_component_sent_events_total" => Family::Sent,
            "vector_component_errors_total" => Family::Errors,
            "vector_http_client_errors_total" => Family::HttpErrors,
            "vector_buffer_discarded_events_total" | "vector_component_discarded_events_total" => Family::Discarded,
            "vector_buffer_size_events" => Family::BufferEvents,
            "vector_buffer_size_bytes" => Family::BufferBytes,
            "vector_buffer_max_size_events" => Family::BufferMaxEvents,
            "vector_buffer_max_size_bytes" => Family::BufferMaxBytes,
            _ => Family::Other,
        }
    }
}

/// `name{labels} value [timestamp]` → its parts; comments and malformed lines → None.
fn split(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}').filter(|c| *c > open)?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim_matches([',', ' ']).into();
        if name.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_escapes_and_commas() {
        let l = parse_labels(r#"a="x,y",b="say \"hi\"\n",c="back\\slash""#);
        assert_eq!(
            l,
            vec![("a".into(), "x,y".into()), ("b".into(), "say \"hi\"\n".into()), ("c".into(), "back\\slash".into())]
        );
    }

    #[test]
    fn after_a_reload_only_the_growing_config_counts() {
        // The old id's series are frozen copies of the same cumulative counters.
        let text = r#"vector_component_sent_events_total{component_id="s3_archive",component_kind="sink",config_id="old"} 100
vector_component_sent_events_total{component_id="s3_archive",component_kind="sink",config_id="new"} 130
vector_component_received_events_total{component_id="pod_logs",component_kind="source",config_id="old"} 100
vector_component_received_events_total{component_id="pod_logs",component_kind="source",config_id="new"} 131
"#;
        let s = parse(text);
        assert_eq!(
            (s.config_id.as_deref(), s.source_events, s.sinks["s3_archive"].sent_events),
            (Some("new"), 131.0, 130.0)
        );
    }

    #[test]
    fn own_components_and_other_families_are_skipped() {
        let text = r#"# TYPE vector_component_sent_events_total counter
vector_component_sent_events_total{component_id="vector_metrics_exporter",component_kind="sink",config_id="h1"} 5 1
vector_component_sent_events_total{component_id="s3_archive",component_kind="sink",config_id="h1"} 7 1
vector_component_received_events_total{component_id="pod_logs",component_kind="source",config_id="h1"} 9 1
vector_component_received_events_total{component_id="vector_internal_metrics",component_kind="source"} 100
vector_buffer_events{component_id="s3_archive",component_kind="sink"} 3
vector_buffer_size_events{component_id="s3_archive",component_kind="sink"} 3
vector_started_total 1
"#;
        let s = parse(text);
        assert_eq!(s.config_id.as_deref(), Some("h1"));
        assert_eq!(s.source_events, 9.0);
        assert_eq!(s.sinks.keys().collect::<Vec<_>>(), ["s3_archive"]);
        assert_eq!((s.sinks["s3_archive"].sent_events, s.sinks["s3_archive"].buffer_events), (7.0, 3.0));
    }

    #[test]
    fn a_shared_logs_tenant_is_judged_on_its_own_transforms_and_sinks() {
        // One source for every tenant; ta's pipeline starts at its own transform.
        let text = r#"vector_component_received_events_total{component_id="pod_logs",component_kind="source"} 50
vector_component_received_events_total{component_id="ta_enrich",component_kind="transform"} 30
vector_component_received_events_total{component_id="tb_enrich",component_kind="transform"} 20
vector_component_sent_events_total{component_id="ta_s3_archive",component_kind="sink"} 30
vector_component_sent_events_total{component_id="tb_s3_archive",component_kind="sink"} 20
"#;
        let a = parse(text).only("ta_");
        assert_eq!(a.source_events, 30.0);
        assert_eq!(a.sinks.keys().collect::<Vec<_>>(), ["ta_s3_archive"]);
        // A tenant with a source of its own (shared metrics) is judged on it.
        let m = parse(
            "vector_component_received_events_total{component_id=\"ta_pod_metrics_x\",component_kind=\"source\"} 7\n",
        );
        assert_eq!(m.only("ta_").source_events, 7.0);
    }
}
