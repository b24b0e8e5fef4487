//! Compensations (rollbacks) of steps, the parts that need no engine: the error that
//! triggered them as the engine passes it, the count of each rollback's attempts (the
//! engine passes the original step's context, not the rollback's), and when the engine
//! is done calling them, so a run knows how long to keep its rollbacks alive.
//!
//! The engine calls a step's rollback after the run has failed, or from
//! `terminate({rollback: true})` while it is still running or paused, in reverse order
//! of the steps' starts; each as a step of its own, retried per its rollback config;
//! and it stops at the first rollback that fails for good.

use crate::core::step_config::{Backoff, EngineStepConfig};
use crate::core::step_error::{StepError, NON_RETRYABLE_NAME};
use std::time::Duration;

/// The error that made the engine run the rollbacks: the instance's failure, or its
/// termination (`Error: Instance terminated during rollback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFailure {
    /// The error's name, read back as [`from_engine`](Self::from_engine) says.
    pub name: String,
    /// Its message.
    pub message: String,
}

/// The message of the error the local engine passes to rollbacks on terminate.
pub const TERMINATED_MESSAGE: &str = "Instance terminated during rollback";

impl InstanceFailure {
    /// As the engine passes it. A custom error name does not survive the engine's RPC:
    /// a non-retryable failure arrives as `Error` with the message
    /// `NonRetryableError: <message>`, and the terminate error as `Error`; both are read
    /// back to their own names ("NonRetryableError", "Terminated").
    pub fn from_engine(name: &str, message: &str) -> Self {
        if let Some(rest) = message.strip_prefix(NON_RETRYABLE_NAME) {
            let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
            return InstanceFailure { name: NON_RETRYABLE_NAME.into(), message: rest.into() };
        }
        let name = if message == TERMINATED_MESSAGE && name == "Error" { "Terminated" } else { name };
        InstanceFailure { name: name.into(), message: message.into() }
    }

    /// The instance was terminated (with rollback) rather than failed.
    pub fn is_termination(&self) -> bool {
        self.name == "Terminated"
    }
}

/// The prefix of the errors the engine throws into a run it stops (pause, restart,
/// terminate, delete): the engine recognises them by their exact message.
pub const ENGINE_ABORT_PREFIX: &str = "Aborting engine:";

/// The message is one of the engine's abort errors ([`ENGINE_ABORT_PREFIX`]): the engine
/// stopped the run; it did not fail.
pub fn is_engine_abort(message: &str) -> bool {
    message.starts_with(ENGINE_ABORT_PREFIX)
}

/// Where one step's rollback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackState {
    /// Not called yet, or between attempts.
    Waiting,
    /// An attempt is running.
    Running,
    /// It succeeded.
    Succeeded,
    /// Its last attempt failed, or it failed with a non-retryable error: the engine runs
    /// no further rollbacks.
    FailedForGood,
}

/// What the engine does after a rollback attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The rollback succeeded.
    Succeeded,
    /// The engine will call it again after its retry delay.
    WillRetry,
    /// It failed for good: the engine runs no further rollbacks.
    FailedForGood,
}

#[derive(Debug, Clone)]
struct Entry {
    step: String,
    max_attempts: u32,
    attempts: u32,
    state: RollbackState,
    longest_delay: Option<Duration>,
}

/// The rollbacks one run registered with the engine, and their attempts.
#[derive(Debug, Clone, Default)]
pub struct RollbackLedger {
    entries: Vec<Entry>,
}

/// How long a run keeps its rollbacks after it completed: long enough for the engine's
/// replay of a terminated instance (it runs the rollbacks right after a replayed run
/// ends, successful or not); a completed run's rollbacks are otherwise never called.
pub const LINGER_AFTER_SUCCESS: Duration = Duration::from_secs(60);
/// How long a run keeps its rollbacks without a call after it failed or was terminated,
/// at the least: the engine may wait this long between a rollback's attempts only if its
/// config says so (then the limit grows to fit, up to a day; a delay function's
/// waits are not known beforehand, so it gets the maximum).
pub const LINGER_IDLE: Duration = Duration::from_secs(15 * 60);
const LINGER_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// A paused run keeps its rollbacks with no time limit: the instance may be terminated
/// with rollback any time later, and the engine then calls the rollbacks of that run.
/// It ends when a newer run of the instance replaces it, or under [`MAX_LINGERING_RUNS`].
pub const LINGER_UNTIL_REPLACED: Duration = Duration::MAX;
/// At most this many ended runs keep their rollbacks in one isolate; the oldest goes first.
/// (Each holds its workflow and event; an isolate has 128 MB.)
pub const MAX_LINGERING_RUNS: usize = 200;

/// How a run's own future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The workflow returned its output.
    Completed,
    /// The workflow failed.
    Failed,
    /// The engine stopped it (pause, restart, delete): an abort error.
    Aborted,
    /// Terminated with rollback while running: the rollbacks began before it ended.
    Terminated,
}

impl RollbackLedger {
    /// Registers a step's rollback with its rollback config; returns its id.
    pub fn register(&mut self, step: &str, config: Option<&EngineStepConfig>) -> usize {
        self.entries.push(Entry {
            step: step.to_string(),
            max_attempts: EngineStepConfig::max_attempts(config),
            attempts: 0,
            state: RollbackState::Waiting,
            longest_delay: longest_retry_delay(config),
        });
        self.entries.len() - 1
    }

    /// No rollback was registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The step rollback `id` belongs to (empty for an unknown id).
    pub fn step(&self, id: usize) -> &str {
        self.entries.get(id).map_or("", |e| e.step.as_str())
    }

    /// Where rollback `id` stands (`None` for an unknown id).
    pub fn state(&self, id: usize) -> Option<RollbackState> {
        self.entries.get(id).map(|e| e.state)
    }

    /// The engine called rollback `id`: the attempt's number (1 for the first).
    pub fn begin(&mut self, id: usize) -> u32 {
        let Some(entry) = self.entries.get_mut(id) else { return 1 };
        entry.attempts = entry.attempts.saturating_add(1);
        entry.state = RollbackState::Running;
        entry.attempts
    }

    /// An attempt of rollback `id` ended: whether the engine will call it again.
    pub fn end(&mut self, id: usize, result: &Result<(), StepError>) -> AttemptEnd {
        let Some(entry) = self.entries.get_mut(id) else { return AttemptEnd::FailedForGood };
        let end = match result {
            Ok(()) => AttemptEnd::Succeeded,
            Err(e) if e.js_name() == NON_RETRYABLE_NAME || entry.attempts >= entry.max_attempts => AttemptEnd::FailedForGood,
            Err(_) => AttemptEnd::WillRetry,
        };
        entry.state = match end {
            AttemptEnd::Succeeded => RollbackState::Succeeded,
            AttemptEnd::WillRetry => RollbackState::Waiting,
            AttemptEnd::FailedForGood => RollbackState::FailedForGood,
        };
        end
    }

    /// The engine will call none of these again: every one succeeded, or one failed for
    /// good (the engine stops there).
    pub fn is_settled(&self) -> bool {
        self.entries.iter().all(|e| e.state == RollbackState::Succeeded)
            || self.entries.iter().any(|e| e.state == RollbackState::FailedForGood)
    }

    /// Whether a run that ended so must keep serving its rollbacks, and for how long
    /// without a call: `None` when the engine will call none of them.
    pub fn linger(&self, end: RunEnd) -> Option<Duration> {
        if self.is_empty() || self.is_settled() {
            return None;
        }
        Some(match end {
            RunEnd::Completed => LINGER_AFTER_SUCCESS,
            RunEnd::Aborted => LINGER_UNTIL_REPLACED,
            RunEnd::Failed | RunEnd::Terminated => self.idle_limit(),
        })
    }

    /// The longest the engine may leave these rollbacks uncalled while it still means to
    /// call them: [`LINGER_IDLE`], or the longest retry delay their configs allow plus a
    /// minute (at most a day).
    fn idle_limit(&self) -> Duration {
        let longest = self.entries.iter().map(|e| e.longest_delay.unwrap_or(LINGER_MAX)).max().unwrap_or(Duration::ZERO);
        longest.saturating_add(Duration::from_secs(60)).clamp(LINGER_IDLE, LINGER_MAX)
    }
}

/// One run of one instance of one workflow, as a live frame in this isolate knows it:
/// instance ids are unique only within a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// The workflow's name.
    pub workflow: String,
    /// The instance's id.
    pub instance_id: String,
}

/// A live frame as [`frames_to_end`] sees it: whose run it is, and once its workflow
/// ended, its idle limit and last activity (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameState<'a> {
    /// The run the frame serves.
    pub key: &'a RunKey,
    /// `None` while its workflow runs; once it ended, how long it may stay idle and when it
    /// was last active (ms since the epoch).
    pub linger: Option<(Duration, f64)>,
}

/// When a new run of `key` begins at `now`, which live frames (oldest first) end: the
/// older runs of the same instance (a newer run means the engine is done with them:
/// resume and restart clear its rollbacks), those idle past their limit, and the oldest
/// ended ones beyond [`MAX_LINGERING_RUNS`]. Running frames of other instances never end.
pub fn frames_to_end(frames: &[FrameState<'_>], key: &RunKey, now: f64) -> Vec<bool> {
    let mut end: Vec<bool> =
        frames.iter().map(|f| f.key == key || f.linger.is_some_and(|(limit, since)| now - since > limit.as_millis() as f64)).collect();
    let lingering = frames.iter().zip(&end).filter(|(f, ended)| f.linger.is_some() && !**ended).count();
    let mut excess = lingering.saturating_sub(MAX_LINGERING_RUNS);
    for (frame, ended) in frames.iter().zip(end.iter_mut()) {
        if excess == 0 {
            break;
        }
        if frame.linger.is_some() && !*ended {
            *ended = true;
            excess -= 1;
        }
    }
    end
}

/// The longest wait the engine puts between two attempts of a step with this config
/// (`None` for a delay function, whose waits are not known beforehand).
fn longest_retry_delay(config: Option<&EngineStepConfig>) -> Option<Duration> {
    let Some(retries) = config.and_then(|c| c.retries.as_ref()) else {
        // The engine's default: 1 s, exponential, 5 retries: 16 s before the last.
        return Some(Duration::from_secs(16));
    };
    let base = Duration::from_millis(retries.delay?);
    let last = retries.limit.max(1);
    Some(match retries.backoff {
        Backoff::Constant => base,
        Backoff::Linear => base.saturating_mul(last),
        Backoff::Exponential => base.saturating_mul(2_u32.checked_pow(last - 1).unwrap_or(u32::MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::step_config::{Retries, StepConfig};

    #[test]
    fn the_trigger_error_reads_back_to_its_own_name() {
        assert_eq!(
            InstanceFailure::from_engine("Error", "NonRetryableError: shipping refused"),
            InstanceFailure { name: "NonRetryableError".into(), message: "shipping refused".into() }
        );
        let terminated = InstanceFailure::from_engine("Error", TERMINATED_MESSAGE);
        assert_eq!(terminated.name, "Terminated");
        assert!(terminated.is_termination());
        assert_eq!(InstanceFailure::from_engine("Terminated", TERMINATED_MESSAGE).name, "Terminated");
        let plain = InstanceFailure::from_engine("Error", "shipping answered 503: down");
        assert_eq!((plain.name.as_str(), plain.message.as_str()), ("Error", "shipping answered 503: down"));
        assert!(!plain.is_termination());
    }

    #[test]
    fn abort_errors_are_the_engines_own() {
        assert!(is_engine_abort("Aborting engine: User called pause"));
        assert!(!is_engine_abort("step failed: Aborting engine: User called pause"));
    }

    fn two_retries() -> EngineStepConfig {
        StepConfig::new().retries(Retries::new(1).delay("1 second")).to_engine().unwrap()
    }

    #[test]
    fn attempts_are_counted_per_rollback_up_to_its_limit() {
        let mut ledger = RollbackLedger::default();
        let refund = ledger.register("refund", Some(&two_retries()));
        assert_eq!(ledger.begin(refund), 1);
        assert_eq!(ledger.state(refund), Some(RollbackState::Running));
        assert_eq!(ledger.end(refund, &Err(StepError::failed("503"))), AttemptEnd::WillRetry);
        assert!(!ledger.is_settled());
        assert_eq!(ledger.begin(refund), 2);
        assert_eq!(ledger.end(refund, &Err(StepError::failed("503"))), AttemptEnd::FailedForGood);
        assert!(ledger.is_settled(), "the engine stops at a rollback that failed for good");
        assert_eq!(ledger.step(refund), "refund");
    }

    #[test]
    fn a_non_retryable_failure_is_final_at_once_and_defaults_allow_six_attempts() {
        let mut ledger = RollbackLedger::default();
        let a = ledger.register("a", None);
        for attempt in 1..=5 {
            assert_eq!(ledger.begin(a), attempt);
            assert_eq!(ledger.end(a, &Err(StepError::failed("x"))), AttemptEnd::WillRetry);
        }
        ledger.begin(a);
        assert_eq!(ledger.end(a, &Err(StepError::failed("x"))), AttemptEnd::FailedForGood);
        let mut ledger = RollbackLedger::default();
        let b = ledger.register("b", None);
        ledger.begin(b);
        assert_eq!(ledger.end(b, &Err(StepError::non_retryable("no"))), AttemptEnd::FailedForGood);
        assert_eq!(ledger.end(b, &Err(StepError::Serialization("bad output".into()))), AttemptEnd::FailedForGood);
    }

    #[test]
    fn settled_when_every_rollback_succeeded() {
        let mut ledger = RollbackLedger::default();
        let a = ledger.register("a", None);
        let b = ledger.register("b", None);
        ledger.begin(b);
        assert_eq!(ledger.end(b, &Ok(())), AttemptEnd::Succeeded);
        assert!(!ledger.is_settled());
        assert_eq!(ledger.linger(RunEnd::Failed), Some(LINGER_IDLE));
        ledger.begin(a);
        ledger.end(a, &Ok(()));
        assert!(ledger.is_settled());
        assert_eq!(ledger.linger(RunEnd::Failed), None);
    }

    #[test]
    fn how_long_a_run_keeps_its_rollbacks() {
        assert_eq!(RollbackLedger::default().linger(RunEnd::Failed), None, "nothing to keep");
        let mut ledger = RollbackLedger::default();
        ledger.register("a", None);
        assert_eq!(ledger.linger(RunEnd::Completed), Some(LINGER_AFTER_SUCCESS));
        assert_eq!(ledger.linger(RunEnd::Aborted), Some(LINGER_UNTIL_REPLACED), "a paused run may be terminated any time later");
        assert_eq!(ledger.linger(RunEnd::Terminated), Some(LINGER_IDLE));
        // A rollback whose retries wait an hour keeps the run that long, plus a minute.
        let hourly = StepConfig::new().retries(Retries::new(3).delay("15 minutes").backoff(Backoff::Exponential)).to_engine().unwrap();
        ledger.register("slow", Some(&hourly));
        assert_eq!(ledger.linger(RunEnd::Failed), Some(Duration::from_secs(61 * 60)));
        let absurd = StepConfig::new().retries(Retries::new(10_000).delay("1 day")).to_engine().unwrap();
        ledger.register("absurd", Some(&absurd));
        assert_eq!(ledger.linger(RunEnd::Failed), Some(LINGER_MAX));
    }

    #[test]
    fn a_rollback_with_a_delay_function_keeps_its_run_the_longest_time() {
        let mut ledger = RollbackLedger::default();
        let dynamic = StepConfig::new().retries(Retries::new(3).delay_fn(|_, _| Duration::from_secs(1))).to_engine().unwrap();
        ledger.register("dynamic", Some(&dynamic));
        assert_eq!(ledger.linger(RunEnd::Failed), Some(LINGER_MAX));
    }

    fn key(workflow: &str, id: &str) -> RunKey {
        RunKey { workflow: workflow.into(), instance_id: id.into() }
    }

    #[test]
    fn a_new_run_ends_the_older_runs_of_its_own_instance_only() {
        let (order, onboarding, other) = (key("order-processing", "o-42"), key("user-onboarding", "o-42"), key("order-processing", "o-43"));
        let frames = [
            FrameState { key: &order, linger: None },
            FrameState { key: &onboarding, linger: None },
            FrameState { key: &other, linger: Some((LINGER_IDLE, 0.0)) },
        ];
        assert_eq!(frames_to_end(&frames, &key("order-processing", "o-42"), 1.0), [true, false, false]);
        assert_eq!(frames_to_end(&frames, &key("user-onboarding", "o-42"), 1.0), [false, true, false], "same id, other workflow");
    }

    #[test]
    fn idle_runs_end_past_their_limit_and_paused_ones_only_when_too_many_linger() {
        let (a, b) = (key("w", "a"), key("w", "b"));
        let idle_ms = LINGER_IDLE.as_millis() as f64;
        let frames =
            [FrameState { key: &a, linger: Some((LINGER_IDLE, 0.0)) }, FrameState { key: &b, linger: Some((LINGER_UNTIL_REPLACED, 0.0)) }];
        assert_eq!(frames_to_end(&frames, &key("w", "c"), idle_ms), [false, false]);
        assert_eq!(frames_to_end(&frames, &key("w", "c"), idle_ms + 1.0), [true, false]);
        let years_later = 10.0 * 365.0 * 24.0 * 3600.0 * 1000.0;
        assert_eq!(frames_to_end(&frames, &key("w", "c"), years_later), [true, false], "a paused run waits to be replaced");

        let keys: Vec<RunKey> = (0..MAX_LINGERING_RUNS + 2).map(|i| key("w", &i.to_string())).collect();
        let many: Vec<FrameState> = keys.iter().map(|k| FrameState { key: k, linger: Some((LINGER_UNTIL_REPLACED, 0.0)) }).collect();
        let ended = frames_to_end(&many, &key("w", "new"), 1.0);
        assert_eq!(ended.iter().filter(|e| **e).count(), 2, "the oldest beyond the cap");
        assert!(ended[0] && ended[1] && !ended[2]);
    }
}
