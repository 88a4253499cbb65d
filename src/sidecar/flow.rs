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
        let Some(page) = page else {
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
        let snapshot = flow::parse(page);
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
        }
    }
}

/// Scrapes `metrics` (the local Vector's exporter) forever and serves the summary on `listen`.
pub async fn run(
    metrics: String,
    listen: SocketAddr,
    window: Duration,
    interval: Duration,
    selected: watch::Receiver<usize>,
) -> anyhow::Result<()> {
    let mut agent = Agent::new(window);
    let (tx, rx) = watch::channel(agent.observe(Duration::ZERO, None, *selected.borrow()));
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
        let summary = agent.observe(start.elapsed(), page.as_deref(), *selected.borrow());
        if summary.reason != tx.borrow().reason {
            info!(reason = %summary.reason, message = summary.latest.as_ref().map(|f| f.message.as_str()), "flow changed");
        }
        tx.send_replace(summary);
    }
}

async fn scrape(client: &http_get::Client, url: &str, timeout: Duration) -> Option<String> {
    String::from_utf8(http_get::body(client, url, timeout).await?.to_vec()).ok()
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
}
