//! Whether the API lets a restart through: never once an instance's compensations
//! (rollbacks) have started, since its steps' cached results then describe work that was
//! undone (a refunded charge) and a restart would reuse them. The check reads the
//! instance's history for a `rollback_started`, and fails closed: a history it cannot
//! read to its end in time refuses the restart, never lets it through.

use std::time::Duration;
use worker_workflows::core::instance_events::EventKind;
use worker_workflows::core::status::InstanceState;

/// How long the read waits for a further event of an instance that has not finished
/// before taking what it has as all there is.
pub const IDLE: Duration = Duration::from_millis(500);
/// The most time the read may take; past it the restart is refused.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No compensation has started: the restart may go ahead.
    Allowed,
    /// A compensation has started (or is running): refused, 409 `invalid_state`.
    CompensationsStarted,
    /// The history could not be read to its end in time: refused, 503.
    Unverified,
}

/// One outcome of waiting for the next event of the history.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<'a> {
    /// An event came.
    Event(&'a EventKind),
    /// The history ended (the instance has finished and every event was read).
    End,
    /// No event came within the wait [`Scan::wait`] gave.
    Idle,
}

/// The check of one instance, fed the outcomes of reading its history.
#[derive(Debug, Clone, Copy)]
pub struct Scan {
    /// The instance is still live: its history has no end yet, so a quiet moment ends the read.
    live: bool,
}

impl Scan {
    /// The check for an instance in `state`: a verdict at once when the state says it all
    /// (`rollingBack`: its compensations are running), else a scan of its history, which
    /// every other state needs (a `running` instance may be rolling back on the local
    /// runtime, which reports no `rollingBack`).
    pub fn start(state: InstanceState) -> Result<Scan, Verdict> {
        match state {
            InstanceState::RollingBack => Err(Verdict::CompensationsStarted),
            state => Ok(Scan { live: !state.is_finished() }),
        }
    }

    /// How long to wait for the next event, with `left` of the deadline left: a live
    /// instance's history is read until it is quiet for [`IDLE`].
    pub fn wait(&self, left: Duration) -> Duration {
        if self.live {
            left.min(IDLE)
        } else {
            left
        }
    }

    /// The verdict after `read`, which waited `waited` (what [`wait`](Self::wait) gave), or
    /// `None` to read on. With no time left, call [`out_of_time`](Self::out_of_time).
    pub fn next(&self, read: Read<'_>, waited: Duration) -> Option<Verdict> {
        match read {
            Read::Event(EventKind::RollbackStarted) => Some(Verdict::CompensationsStarted),
            Read::Event(_) => None,
            Read::End => Some(Verdict::Allowed),
            // Quiet for a moment: all there is of a live instance, as far as anyone can tell.
            Read::Idle if self.live && waited >= IDLE => Some(Verdict::Allowed),
            // The deadline came while waiting.
            Read::Idle => Some(Verdict::Unverified),
        }
    }

    /// The verdict when the deadline passed before the history was read: refused.
    pub fn out_of_time(&self) -> Verdict {
        Verdict::Unverified
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use worker_workflows::core::instance_events::EventKind;

    fn step() -> EventKind {
        EventKind::WorkflowStarted { params: None }
    }

    /// Runs the scan over a scripted history: each item an event, or `None` for a wait
    /// that saw none; the deadline is `budget` of waiting.
    fn scan(state: InstanceState, history: &[Option<EventKind>], end: bool, budget: Duration) -> Verdict {
        let scan = match Scan::start(state) {
            Ok(scan) => scan,
            Err(verdict) => return verdict,
        };
        let mut left = budget;
        let mut items = history.iter();
        loop {
            if left.is_zero() {
                return scan.out_of_time();
            }
            let wait = scan.wait(left);
            let read = match items.next() {
                Some(Some(kind)) => Read::Event(kind),
                Some(None) => {
                    left = left.saturating_sub(wait);
                    Read::Idle
                }
                None if end => Read::End,
                None => {
                    left = left.saturating_sub(wait);
                    Read::Idle
                }
            };
            if let Some(verdict) = scan.next(read, wait) {
                return verdict;
            }
            left = left.saturating_sub(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_rollback_started_refuses_in_any_state() {
        for state in
            [InstanceState::Running, InstanceState::Errored, InstanceState::Terminated, InstanceState::Waiting, InstanceState::Queued]
        {
            let history = [Some(step()), Some(EventKind::RollbackStarted), Some(step())];
            assert_eq!(scan(state, &history, state.is_finished(), DEADLINE), Verdict::CompensationsStarted, "{state:?}");
        }
        // Cloudflare reports rolling back as a state of its own: refused without reading.
        assert!(matches!(Scan::start(InstanceState::RollingBack), Err(Verdict::CompensationsStarted)));
    }

    #[test]
    fn a_history_without_rollbacks_allows() {
        assert_eq!(scan(InstanceState::Errored, &[Some(step()), Some(step())], true, DEADLINE), Verdict::Allowed);
        // A live instance's history never ends: a quiet moment is its end.
        assert_eq!(scan(InstanceState::Running, &[Some(step()), None], false, DEADLINE), Verdict::Allowed);
    }

    #[test]
    fn a_history_that_cannot_be_read_in_time_refuses() {
        // A finished instance whose history stops coming before its end.
        assert_eq!(scan(InstanceState::Errored, &[Some(step()), None], false, DEADLINE), Verdict::Unverified);
        // A live one whose events keep coming past the deadline.
        let endless: Vec<Option<EventKind>> = (0..10_000).map(|_| Some(step())).collect();
        assert_eq!(scan(InstanceState::Running, &endless, false, Duration::from_secs(1)), Verdict::Unverified);
        // A live one whose last wait was cut short by the deadline.
        let scan = Scan::start(InstanceState::Running).unwrap();
        assert_eq!(scan.next(Read::Idle, Duration::from_millis(100)), Some(Verdict::Unverified));
        assert_eq!(scan.wait(Duration::from_millis(100)), Duration::from_millis(100));
    }
}
