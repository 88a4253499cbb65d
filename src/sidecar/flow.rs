//! The sidecar's flow summary: scrape the local Vector's own metrics every `interval`, judge a
//! sliding `window` with [`crate::flow`], damp the verdict, and serve it as JSON on `/flow`.
//! Touches: one HTTP GET to the pod's own Vector (localhost) per interval and one TCP
//! listener. The operator reads these small summaries instead of every collector's full
//! metrics page (see the README, "Flow health").

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, routing::get};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::flow::{self, Damper, Flow, Reason, Snapshot, Summary, Thresholds};
use crate::http_get;

/// The judging part, with time passed in (tested without a clock or a Vector).
#[derive(Debug)]
pub struct Agent {
    window: Duration,
    thresholds: Thresholds,
    damper: Damper,
    history: VecDeque<(Duration, Snapshot)>,
    /// Since when Vector has not answered (None: it answered last time).
    failing_since: Option<Duration>,
    /// The latest verdict whose reason is the one shown: its message explains what is shown.
    shown: Option<Flow>,
    config_id: Option<String>,
}

impl Agent {
    /// Problems show after they held for one window and clear after health held for one.
    pub fn new(window: Duration) -> Self {
        Agent {
            window,
            thresholds: Thresholds::default(),
            damper: Damper::new(window, window),
            history: VecDeque::new(),
            failing_since: None,
            shown: None,
            config_id: None,
        }
    }

    /// One scrape at `now` (`None`: Vector did not answer) with `selected` pods to read.
    pub fn observe(&mut self, now: Duration, page: Option<&str>, selected: usize) -> Summary {
        self.observe_snapshot(now, page.map(flow::parse), selected)
    }

    /// As [`Agent::observe`], with the page already parsed (a shared collector parses once for
    /// every tenant's agent).
    pub fn observe_snapshot(&mut self, now: Duration, snapshot: Option<Snapshot>, selected: usize) -> Summary {
        let Some(snapshot) = snapshot else {
            // One missed scrape changes nothing; Vector silent for a whole window is reported
            // as Unknown, never as the last good verdict.
            let since = *self.failing_since.get_or_insert(now);
            if now.saturating_sub(since) >= self.window {
                self.history.clear();
                self.damper.observe(Reason::Unknown, now);
                self.shown = None;
                self.config_id = None;
            }
            return self.summary(None, selected);
        };
        self.failing_since = None;
        self.config_id = snapshot.config_id.clone();
        self.history.push_back((now, snapshot));
        // Keep the newest scrape that is at least a window old as the comparison point.
        while self.history.len() > 2 && now.saturating_sub(self.history[1].0) >= self.window {
            self.history.pop_front();
        }
        let (then, old) = &self.history[0];
        if now.saturating_sub(*then) < self.window {
            return self.summary(None, selected);
        }
        let latest = flow::evaluate(old, &self.history[self.history.len() - 1].1, selected > 0, &self.thresholds);
        let reason = self.damper.observe(latest.reason, now);
        if latest.reason == reason {
            self.shown = Some(latest.clone());
        }
        self.summary(Some(latest), selected)
    }

    fn summary(&self, latest: Option<Flow>, selected: usize) -> Summary {
        let reason = self.damper.shown();
        Summary {
            reason,
            shown: self.shown.clone().filter(|f| f.reason == reason),
            latest,
            config_id: self.config_id.clone(),
            selected,
            window_secs: self.window.as_secs(),
            tenants: Default::default(),
        }
    }
}

/// What the collector reads on its node: pods in all, and per tenant of a shared collector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selected {
    pub total: usize,
    pub by_tenant: std::collections::BTreeMap<String, usize>,
    /// A tenant's own flow window, where it has one (its sinks' batch timeouts).
    pub windows: std::collections::BTreeMap<String, Duration>,
}

/// The whole collector's agent, and one per tenant of a shared collector (each judging only
/// its tenant's sources and sinks, so one tenant's dead sink is that tenant's verdict only).
struct Agents {
    all: Agent,
    tenants: std::collections::BTreeMap<String, Agent>,
    window: Duration,
}

impl Agents {
    fn observe(&mut self, now: Duration, page: Option<&str>, selected: &Selected) -> Summary {
        let snapshot = page.map(flow::parse);
        let window = self.window;
        self.tenants.retain(|id, _| selected.by_tenant.contains_key(id));
        let mut tenants = std::collections::BTreeMap::new();
        for (id, n) in &selected.by_tenant {
            let window = selected.windows.get(id).copied().unwrap_or(window);
            let agent = self.tenants.entry(id.clone()).or_insert_with(|| Agent::new(window));
            if agent.window != window {
                // Its batch timeout changed: judge afresh over the new window.
                *agent = Agent::new(window);
            }
            let own = snapshot.as_ref().map(|s| s.only(&format!("{id}_")));
            tenants.insert(id.clone(), agent.observe_snapshot(now, own, *n));
        }
        Summary { tenants, ..self.all.observe_snapshot(now, snapshot, selected.total) }
    }
}

/// Scrapes `metrics` (the local Vector's exporter) forever and serves the summary on `listen`.
pub async fn run(
    metrics: String,
    listen: SocketAddr,
    window: Duration,
    interval: Duration,
    selected: watch::Receiver<Selected>,
) -> anyhow::Result<()> {
    let mut agent = Agents { all: Agent::new(window), tenants: Default::default(), window };
    let (tx, rx) = watch::channel(agent.observe(Duration::ZERO, None, &selected.borrow()));
    let app = Router::new().route(
        "/flow",
        get(move || async move {
            // Serialising the summary cannot fail (plain structs, string keys).
            let body = serde_json::to_string(&*rx.borrow()).unwrap_or_default();
            ([(http::header::CONTENT_TYPE, "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    info!(%listen, window_secs = window.as_secs(), "serving the flow summary on /flow");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "flow summary server stopped");
        }
    });
    let client = http_get::client();
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let page = scrape(&client, &metrics, interval).await;
        let current = selected.borrow().clone();
        let summary = agent.observe(start.elapsed(), page.as_deref(), &current);
        if summary.reason != tx.borrow().reason {
            info!(reason = %summary.reason, message = summary.latest.as_ref().map(|f| f.message.as_str()), "flow changed");
        }
        tx.send_replace(summary);
    }
}

async fn scrape(client: &http_get::Client, url: &str, timeout: Duration) -> Option<String> {
    // The local Vector's page: ours, but bounded all the same (a shared collector's page grows
    // with its tenants).
    String::from_utf8(http_get::body(client, url, timeout, 256 << 20).await?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source has read `sent + waiting` events so far.
    fn page(sent: u64, waiting: u64) -> String {
        format!(
            "vector_component_sent_events_total{{component_id=\"s3_archive\",component_kind=\"sink\",config_id=\"c1\"}} {sent}\n\
             vector_buffer_size_events{{component_id=\"s3_archive\",component_kind=\"sink\"}} {waiting}\n\
             vector_component_received_events_total{{component_id=\"pod_logs\",component_kind=\"source\"}} {}\n",
            sent + waiting
        )
    }

    #[test]
    fn judges_full_windows_damps_and_says_unknown_when_vector_is_silent() {
        let s = Duration::from_secs;
        let mut a = Agent::new(s(30));
        let first = a.observe(s(0), Some(&page(0, 0)), 1);
        assert_eq!(
            (first.reason, first.latest.is_none(), first.config_id.as_deref()),
            (Reason::Unknown, true, Some("c1"))
        );
        assert_eq!(a.observe(s(15), Some(&page(10, 0)), 1).reason, Reason::Unknown, "no full window yet");
        assert_eq!(a.observe(s(30), Some(&page(20, 0)), 1).reason, Reason::Healthy);
        // Stalls from 45 s on: the 30 s window sees it at 75 s, the damper shows it a window later.
        let mut shown = Vec::new();
        for (i, t) in [45, 60, 75, 90, 105, 120].into_iter().enumerate() {
            shown.push(a.observe(s(t), Some(&page(25, 100 + i as u64)), 1).reason);
        }
        assert_eq!(shown[..3], [Reason::Healthy; 3]);
        assert_eq!(*shown.last().unwrap(), Reason::SinkStalled);
        let stalled = a.observe(s(120), Some(&page(25, 106)), 1);
        assert!(
            stalled.shown.unwrap().message.starts_with("sink s3_archive: "),
            "the message explains the reason shown"
        );
        // One missed scrape changes nothing; a window of silence is Unknown.
        assert_eq!(a.observe(s(135), None, 1).reason, Reason::SinkStalled);
        assert_eq!(a.observe(s(150), None, 1).reason, Reason::SinkStalled);
        assert_eq!(a.observe(s(165), None, 1).reason, Reason::Unknown);
    }

    /// A shared collector: tenant ta's sink stalls, tb's flows. Each tenant's summary says its
    /// own truth; neither sees the other's sinks.
    #[test]
    fn a_shared_collector_judges_each_tenant_on_its_own_sinks() {
        let s = Duration::from_secs;
        let page = |a_sent: u64, a_waiting: u64, b_sent: u64| {
            let mut out = String::new();
            for (id, sent, waiting) in [("ta", a_sent, a_waiting), ("tb", b_sent, 0)] {
                out.push_str(&format!(
                    "vector_component_sent_events_total{{component_id=\"{id}_s3_archive\",component_kind=\"sink\",config_id=\"c1\"}} {sent}\n\
                     vector_buffer_size_events{{component_id=\"{id}_s3_archive\",component_kind=\"sink\",config_id=\"c1\"}} {waiting}\n\
                     vector_component_received_events_total{{component_id=\"{id}_pod_metrics_x\",component_kind=\"source\",config_id=\"c1\"}} {}\n",
                    sent + waiting
                ));
            }
            out
        };
        let selected = Selected {
            total: 2,
            by_tenant: [("ta".to_string(), 1), ("tb".to_string(), 1)].into(),
            ..Default::default()
        };
        let mut agents = Agents { all: Agent::new(s(30)), tenants: Default::default(), window: s(30) };
        let mut last = None;
        for (i, t) in [0u64, 15, 30, 45, 60, 75, 90, 105, 120].into_iter().enumerate() {
            // ta stops sending from 30 s on (its buffer grows); tb keeps sending.
            let a_sent = if t < 30 { 10 * i as u64 } else { 20 };
            let a_wait = if t < 30 { 0 } else { 10 * i as u64 };
            last = Some(agents.observe(s(t), Some(&page(a_sent, a_wait, 10 * i as u64)), &selected));
        }
        let summary = last.unwrap();
        assert_eq!(summary.tenants["ta"].reason, Reason::SinkStalled, "{:?}", summary.tenants["ta"]);
        assert_eq!(summary.tenants["tb"].reason, Reason::Healthy, "{:?}", summary.tenants["tb"]);
        let msg = summary.tenants["ta"].shown.as_ref().unwrap().message.clone();
        assert!(msg.contains("ta_s3_archive") && !msg.contains("tb_"), "{msg}");
        // The whole collector's verdict is the worst (for the admin), the tenants' are their own.
        assert_eq!(summary.reason, Reason::SinkStalled);
        // A tenant that left is forgotten.
        let only_b = Selected { total: 1, by_tenant: [("tb".to_string(), 1)].into(), ..Default::default() };
        let next = agents.observe(s(135), Some(&page(20, 100, 100)), &only_b);
        assert_eq!(next.tenants.keys().collect::<Vec<_>>(), vec!["tb"]);
    }

    /// Each tenant is judged over its own window (its batch timeout): a tenant whose sink
    /// sends every 2 minutes is not stalled after one minute of filling its batch.
    #[test]
    fn each_tenant_is_judged_over_its_own_window() {
        let s = Duration::from_secs;
        let page = |a_received: u64, b_sent: u64| {
            format!(
                "vector_component_received_events_total{{component_id=\"ta_enrich\",component_kind=\"transform\"}} {a_received}\n\
                 vector_component_received_events_total{{component_id=\"ta_s3_archive\",component_kind=\"sink\"}} {a_received}\n\
                 vector_component_sent_events_total{{component_id=\"ta_s3_archive\",component_kind=\"sink\"}} 0\n\
                 vector_component_received_events_total{{component_id=\"tb_enrich\",component_kind=\"transform\"}} {b_sent}\n\
                 vector_component_sent_events_total{{component_id=\"tb_s3_archive\",component_kind=\"sink\"}} {b_sent}\n"
            )
        };
        let selected = Selected {
            total: 2,
            by_tenant: [("ta".to_string(), 1), ("tb".to_string(), 1)].into(),
            windows: [("ta".to_string(), s(240))].into(),
        };
        let mut agents = Agents { all: Agent::new(s(30)), tenants: Default::default(), window: s(30) };
        let mut last = None;
        for t in (0..=120).step_by(15) {
            // ta fills a batch (received, nothing sent yet); tb sends what it gets.
            last = Some(agents.observe(s(t), Some(&page(t, t)), &selected));
        }
        let summary = last.unwrap();
        assert_eq!(summary.tenants["tb"].reason, Reason::Healthy);
        assert_eq!(summary.tenants["ta"].reason, Reason::Unknown, "ta's 240 s window is not over: no verdict yet");
        assert_eq!(summary.tenants["ta"].window_secs, 240);
    }
}
