//! Keeps a flow reason from flapping: a problem shows only after it held for `raise_after`, and
//! clears only after `Healthy` held for `clear_after`. Time is passed in, so this stays pure.

use std::time::Duration;

use super::health::Reason;

#[derive(Debug, Clone)]
pub struct Damper {
    raise_after: Duration,
    clear_after: Duration,
    shown: Reason,
    /// The reason waiting to be shown and since when. Problems of different kinds share one
    /// timer (a sink that alternates between stalled and erroring is still in trouble).
    pending: Option<(Reason, Duration)>,
}

impl Damper {
    /// Starts as `Unknown`: nothing is claimed before the first window.
    pub fn new(raise_after: Duration, clear_after: Duration) -> Self {
        Damper { raise_after, clear_after, shown: Reason::Unknown, pending: None }
    }

    pub fn shown(&self) -> Reason {
        self.shown
    }

    /// Feeds one verdict observed at `now` (any monotonic clock); returns what to show.
    pub fn observe(&mut self, reason: Reason, now: Duration) -> Reason {
        if reason == self.shown {
            self.pending = None;
            return self.shown;
        }
        // Leaving Unknown is immediate: the first real verdict is better than none.
        if self.shown == Reason::Unknown || reason == Reason::Unknown {
            self.shown = reason;
            self.pending = None;
            return self.shown;
        }
        let since = match self.pending {
            Some((p, since)) if p == reason || (p.is_problem() && reason.is_problem()) => since,
            _ => now,
        };
        let wait = if reason.is_problem() { self.raise_after } else { self.clear_after };
        if now.saturating_sub(since) >= wait {
            self.shown = reason;
            self.pending = None;
        } else {
            self.pending = Some((reason, since));
        }
        self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_problem_must_hold_and_health_must_hold_to_clear() {
        let mut d = Damper::new(S(60), S(120));
        assert_eq!(d.observe(Reason::Healthy, S(0)), Reason::Healthy);
        assert_eq!(d.observe(Reason::SinkStalled, S(30)), Reason::Healthy);
        assert_eq!(d.observe(Reason::SinkErrors, S(60)), Reason::Healthy, "one timer for problems");
        assert_eq!(d.observe(Reason::SinkErrors, S(90)), Reason::SinkErrors);
        // A single healthy window does not clear it.
        assert_eq!(d.observe(Reason::Healthy, S(120)), Reason::SinkErrors);
        assert_eq!(d.observe(Reason::SinkErrors, S(150)), Reason::SinkErrors);
        assert_eq!(d.observe(Reason::Healthy, S(180)), Reason::SinkErrors);
        assert_eq!(d.observe(Reason::Healthy, S(300)), Reason::Healthy);
        // A one-window blip never shows.
        assert_eq!(d.observe(Reason::DataDropped, S(330)), Reason::Healthy);
        assert_eq!(d.observe(Reason::Healthy, S(360)), Reason::Healthy);
        assert_eq!(d.observe(Reason::DataDropped, S(420)), Reason::Healthy, "timer restarted");
    }

    #[test]
    fn unknown_is_left_and_entered_at_once() {
        let mut d = Damper::new(S(60), S(60));
        assert_eq!(d.shown(), Reason::Unknown);
        assert_eq!(d.observe(Reason::SinkStalled, S(0)), Reason::SinkStalled);
        assert_eq!(d.observe(Reason::Unknown, S(10)), Reason::Unknown);
    }
}
