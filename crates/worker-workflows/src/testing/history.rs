//! What a test reads back: each step's record (name, count, attempts, the delays that
//! would have passed, its outcome) and the instance as a whole ([`TestRun`]).

use crate::core::step_config::Backoff;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The kind of a step call, each counted on its own as the engine counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepKind {
    /// `step.run` / `step.run_with` (`step.do`).
    Do,
    /// `step.sleep`.
    Sleep,
    /// `step.sleep_until`.
    SleepUntil,
    /// `step.wait_for_event`.
    WaitForEvent,
}

impl StepKind {
    fn label(self) -> &'static str {
        match self {
            StepKind::Do => "step",
            StepKind::Sleep => "sleep",
            StepKind::SleepUntil => "sleep_until",
            StepKind::WaitForEvent => "wait_for_event",
        }
    }
}

/// An error as the engine saw it: its JS `name` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The error's JS name (`"Error"`, `"NonRetryableError"`, `"WorkflowTimeoutError"`, …).
    pub name: String,
    /// Its message.
    pub message: String,
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// The config a step ran with, resolved against the engine's defaults (retries: limit 5,
/// delay 1 s, exponential; timeout 10 minutes) and frozen at the step's first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedConfig {
    /// Retries after the first attempt.
    pub limit: u32,
    /// The base delay; `None` when a delay function computes it (`Retries::delay_fn`).
    pub delay: Option<Duration>,
    /// How the delay grows from one retry to the next.
    pub backoff: Backoff,
    /// The timeout of each attempt.
    pub timeout: Duration,
}

/// How a step's rollback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackOutcome {
    /// It succeeded.
    Succeeded,
    /// Failed for good (its retries ran out, or a non-retryable error): the engine ran no
    /// rollback after it.
    Failed(ErrorInfo),
}

/// A step's rollback, as the engine ran it when the instance failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRecord {
    /// The rolled-back step.
    pub step: String,
    /// Which step of that name it is in the run, from 1.
    pub count: u32,
    /// The rollback's own attempts (their `retry_delay`s as its config computes them).
    pub attempts: Vec<Attempt>,
    /// How it ended.
    pub outcome: RollbackOutcome,
}

/// How one attempt of a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It succeeded.
    Succeeded,
    /// It failed with this error.
    Failed(ErrorInfo),
    /// Still running (or hanging: it times out when its timeout has passed).
    Running,
}

/// One attempt of a `step.run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// When it started (virtual time).
    pub started_at: SystemTime,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The wait before the next attempt, when this one failed and a retry followed.
    pub retry_delay: Option<Duration>,
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Not settled yet: retrying, running, sleeping or waiting.
    Pending,
    /// The step's value, as the engine stored it.
    Value(Value),
    /// A streamed step's output (`Step::run_stream`): its length, as the engine reports
    /// a `ReadableStream` output (`[ReadableStream (binary): N bytes]`).
    Stream {
        /// The output's length in bytes.
        len: usize,
    },
    /// A step marked sensitive (`StepConfig::sensitive`) that succeeded: the engine shows
    /// `"[REDACTED]"` in place of its output wherever it reports the step. The workflow
    /// got the real value, and a replay gets it again.
    Redacted,
    /// Failed for good (retries exhausted); the engine stored the error and throws it again on replay.
    Failed(ErrorInfo),
    /// Failed with a non-retryable error. The engine does not store these: a replay runs the step again.
    NonRetryable(ErrorInfo),
    /// A sleep that has ended.
    Slept,
    /// The event a `wait_for_event` received.
    Event {
        /// The event's type.
        event_type: String,
        /// Its payload, as JSON.
        payload: Value,
        /// When it was sent (virtual time).
        sent_at: SystemTime,
    },
    /// A `wait_for_event` that ran out of time, with the engine's message.
    TimedOut(String),
}

/// One step of an instance, as the engine keys it: kind, name and count (the n-th call
/// of that name in one run).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Its kind.
    pub kind: StepKind,
    /// Its name.
    pub name: String,
    /// Which call of that name and kind it is in the run, from 1.
    pub count: u32,
    /// When the step was first called.
    pub started_at: SystemTime,
    /// `step.run` only: the config it runs with.
    pub config: Option<ResolvedConfig>,
    /// Its attempts (`step.run` only), in order.
    pub attempts: Vec<Attempt>,
    /// Where it stands.
    pub outcome: StepOutcome,
}

impl StepRecord {
    /// The step's value read as `T`; panics, saying where the step stands, when it has none.
    pub fn value<T: DeserializeOwned>(&self) -> T {
        match &self.outcome {
            StepOutcome::Value(v) => {
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{self}: value {v} does not read as the type asked for: {e}"))
            }
            other => panic!("{self} has no value: {other:?}"),
        }
    }

    /// The error the step failed with (stored, or non-retryable); panics when it did not fail.
    pub fn error(&self) -> &ErrorInfo {
        match &self.outcome {
            StepOutcome::Failed(e) | StepOutcome::NonRetryable(e) => e,
            other => panic!("{self} did not fail: {other:?}"),
        }
    }

    /// The delays between attempts that would have passed on the engine, in order.
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.attempts.iter().filter_map(|a| a.retry_delay).collect()
    }

    /// The errors of the failed attempts, in order.
    pub fn attempt_errors(&self) -> Vec<&ErrorInfo> {
        self.attempts
            .iter()
            .filter_map(|a| match &a.outcome {
                AttemptOutcome::Failed(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for StepRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind.label(), self.name)?;
        if self.count > 1 {
            write!(f, " (call {} of that name)", self.count)?;
        }
        Ok(())
    }
}

/// The status of an instance on the test engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Created, not run yet.
    Queued,
    /// Suspended until its next wake (a sleep, a retry, an attempt's timeout).
    Running,
    /// Waiting for an event (or its timeout).
    Waiting,
    /// Completed with an output.
    Complete,
    /// Failed with an error.
    Errored,
    /// The test engine stopped the instance: it broke a replay rule (see `TestRun::violation`).
    NonDeterministic,
    /// Terminated ([`TestEngine::terminate`](super::TestEngine::terminate), or a
    /// terminate through an instance handle).
    Terminated,
}

impl Status {
    /// The instance will not run again: complete, errored, terminated or stopped as non-deterministic.
    pub fn is_finished(&self) -> bool {
        matches!(self, Status::Complete | Status::Errored | Status::NonDeterministic | Status::Terminated)
    }
}

/// An instance as the test sees it: status, output or error, and its step history.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The workflow's name.
    pub workflow: String,
    /// The instance's id.
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// The workflow's output as the engine stored it (JSON), when complete.
    pub output: Option<Value>,
    /// The instance's error (`{name, message}` as `status()` reports it), when errored.
    pub error: Option<ErrorInfo>,
    /// Why the test engine stopped the instance, when it broke a replay rule.
    pub violation: Option<String>,
    /// Every step, in the order of its first call.
    pub steps: Vec<StepRecord>,
    /// How many times `run` was executed from the top: the first run plus every replay.
    pub runs: u32,
    /// The rollbacks the engine ran when the instance failed, in the order it ran them
    /// (reverse order of the steps' starts).
    pub rollbacks: Vec<RollbackRecord>,
    /// When it was created (virtual time).
    pub created_at: SystemTime,
    /// When it completed or errored (virtual time).
    pub finished_at: Option<SystemTime>,
}

impl TestRun {
    /// This instance life's key, `{id}@{createdAtMs}` (what `event.identity().key()`
    /// gives its workflow): the base of its idempotency keys.
    pub fn instance_key(&self) -> String {
        let created = self.created_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        format!("{}@{created}", self.id)
    }

    /// The output read as `T`; panics with the status and error when the instance did not complete.
    pub fn output<T: DeserializeOwned>(&self) -> T {
        match (&self.status, &self.output) {
            (Status::Complete, Some(v)) => serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("instance {}: output {v} does not read as the type asked for: {e}", self.id)),
            _ => panic!("instance {} did not complete: {}", self.id, self.summary()),
        }
    }

    /// The instance's error; panics when it did not error.
    pub fn error(&self) -> &ErrorInfo {
        match (&self.status, &self.error) {
            (Status::Errored, Some(e)) => e,
            _ => panic!("instance {} did not error: {}", self.id, self.summary()),
        }
    }

    /// The first step named `name` (count 1) of any kind; panics listing the steps when there is none.
    pub fn step(&self, name: &str) -> &StepRecord {
        self.step_n(name, 1)
    }

    /// The `count`-th step named `name`.
    pub fn step_n(&self, name: &str, count: u32) -> &StepRecord {
        self.steps
            .iter()
            .find(|s| s.name == name && s.count == count)
            .unwrap_or_else(|| panic!("instance {} has no step {name:?} (call {count}); its steps: {:?}", self.id, self.step_names()))
    }

    /// Whether a step of that name was called.
    pub fn has_step(&self, name: &str) -> bool {
        self.steps.iter().any(|s| s.name == name)
    }

    /// The names of the steps, in the order of their first call.
    pub fn step_names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.name.as_str()).collect()
    }

    /// The steps whose rollbacks ran, in the order they ran.
    pub fn rolled_back(&self) -> Vec<&str> {
        self.rollbacks.iter().map(|r| r.step.as_str()).collect()
    }

    /// The rollback of the step named `name` (count 1); panics listing those that ran.
    pub fn rollback(&self, name: &str) -> &RollbackRecord {
        self.rollbacks
            .iter()
            .find(|r| r.step == name && r.count == 1)
            .unwrap_or_else(|| panic!("instance {} ran no rollback of {name:?}; it rolled back: {:?}", self.id, self.rolled_back()))
    }

    /// Virtual time from creation to the end (or to now, while it runs).
    pub fn elapsed(&self) -> Option<Duration> {
        self.finished_at.and_then(|f| f.duration_since(self.created_at).ok())
    }

    /// One line: status, then the error or the violation.
    pub fn summary(&self) -> String {
        match (&self.error, &self.violation) {
            (_, Some(v)) => format!("{:?}: {v}", self.status),
            (Some(e), _) => format!("{:?}: {e}", self.status),
            _ => format!("{:?}", self.status),
        }
    }
}
