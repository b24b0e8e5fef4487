//! Replaying a history recorded from a real instance against today's code
//! ([`TestEngine::replay`]): the Workflows engine's replay, held to the recorded steps.
//!
//! A history comes from `GET …/workflows/{name}/instances/{id}/history?format=replay`
//! (`core::replay_history`), saved as a test fixture. The replay runs the workflow's `run`
//! from the top, as the engine does after a deploy, and answers every step from the
//! history without running its closure. It names the first step where the code no longer
//! does what the recorded instance did:
//! - a step the history does not have while recorded steps are still to come (a step
//!   renamed or inserted, a sleep's duration changed: the engine keys sleeps by it, a
//!   step's kind changed), which on the engine would run in the middle of the old history;
//! - a recorded step called out of order (reordered, or one before it skipped), unless the
//!   two were in flight at once in the recording (their start order is the engine's);
//! - a recorded step the code no longer calls before it returns (removed);
//! - a wait for another event type, a streamed step read as JSON or the other way round.
//!
//! A patch's step (`Step::patched`) is outside the order: recorded, it answers as
//! recorded; not recorded (the instance predates the patch), it answers false, as it
//! would for that instance. The replay stops, without error, where the history ends: at a
//! step the history has as still running, or at the first step past the last recorded
//! one (the code would run it next). Side effects outside steps are reported, and the
//! replay runs twice, with different UUIDs and clock readings outside steps (from the
//! engine's seed): two replays that call different steps are reported too.
//!
//! What the history cannot hold needs a stand-in from the test, else the replay stops
//! there with [`ReplayError::NeedsStandIn`] naming the step: a sensitive step's output
//! (the engine reports `"[REDACTED]"`), a streamed output, an output past the history's
//! bounds, a received event's payload (not in the engine's events), params that were
//! not copied.

use super::history::ErrorInfo;
use super::world::{TestEnv, World};
use super::{seed_note, workflow_name, StepRef, TestEngine};
use crate::bridge::engine::{EventRecord, LocalBoxFuture, StepCall, StepEngine, StreamCall};
use crate::bridge::patch::{PatchBackend, PatchContext};
use crate::bridge::{output_text, Env, Step, WorkflowEvent};
use crate::core::duration;
use crate::core::patch;
use crate::core::replay_history::{ReplayHistory, ReplayStep, ReplayStepKind, ReplayStepStatus, FORMAT, VERSION};
use crate::core::step_error::StepError;
use crate::core::validate;
use crate::registry::Registered;
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// A value the test gives for what the history cannot hold.
#[derive(Debug, Clone, PartialEq)]
enum StandIn {
    /// A `do` step's output, or a received event's payload, as JSON.
    Json(String),
    /// A streamed step's bytes.
    Bytes(Vec<u8>),
}

/// A history recorded from a real instance (`GET …/history?format=replay`), with the
/// stand-ins a test gives for what it cannot hold. Replay it with [`TestEngine::replay`].
#[derive(Debug, Clone)]
pub struct RecordedHistory {
    history: ReplayHistory,
    stand_ins: BTreeMap<(String, u32), StandIn>,
    params: Option<Value>,
    /// Where it was read from, for messages.
    source: String,
}

impl RecordedHistory {
    /// Reads a history from the JSON `GET …/history?format=replay` answered.
    pub fn from_json(text: &str) -> Result<Self, ReplayError> {
        Self::parse(text, "the history")
    }

    /// Reads a history from a file (a fixture saved from `GET …/history?format=replay`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Format(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, source: &str) -> Result<Self, ReplayError> {
        let history: ReplayHistory =
            serde_json::from_str(text).map_err(|e| ReplayError::Format(format!("{source} is not a replay history ({FORMAT}): {e}")))?;
        if history.format != FORMAT || history.version != VERSION {
            return Err(ReplayError::Format(format!(
                "{source} is {:?} version {}, and this test engine reads {FORMAT:?} version {VERSION}",
                history.format, history.version
            )));
        }
        Ok(RecordedHistory { history, stand_ins: BTreeMap::new(), params: None, source: source.to_string() })
    }

    /// The history as recorded.
    pub fn history(&self) -> &ReplayHistory {
        &self.history
    }

    /// Gives `value` as the output of a `do` step whose output the history does not hold
    /// (sensitive, omitted, not reported), or as the payload of the event a wait received
    /// (never in the history). The replay goes on with it, so give what the step returned.
    pub fn stand_in(mut self, step: impl Into<StepRef>, value: &impl Serialize) -> Self {
        let step = step.into();
        let json = serde_json::to_string(value).expect("a stand-in serialises");
        self.stand_ins.insert((step.name, step.count), StandIn::Json(json));
        self
    }

    /// Gives `bytes` as the output of a streamed step (`run_stream`), which the history
    /// never holds.
    pub fn stand_in_bytes(mut self, step: impl Into<StepRef>, bytes: impl Into<Vec<u8>>) -> Self {
        let step = step.into();
        self.stand_ins.insert((step.name, step.count), StandIn::Bytes(bytes.into()));
        self
    }

    /// Replays with these params instead of the recorded ones (needed when the history
    /// did not copy them: `paramsOmittedChars`).
    pub fn with_params(mut self, params: Value) -> Self {
        self.params = Some(params);
        self
    }

    fn stand_in_for(&self, step: &ReplayStep) -> Option<&StandIn> {
        self.stand_ins.get(&(step.name.clone(), step.count))
    }
}

/// Where a replay of a recorded history ended, when the code did all the history did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayEnd {
    /// The code returned this output (JSON).
    Completed(Value),
    /// The code returned this error (as the instance would have it).
    Errored(ErrorInfo),
    /// The code waits on a step the history has as still running (retrying, sleeping,
    /// waiting): the recorded instance was there.
    Suspended {
        /// The step, described.
        step: String,
    },
    /// The code went on past the last recorded step: it would run this one next.
    PastTheHistory {
        /// The step, described.
        step: String,
    },
}

/// A replay of a recorded history that found the code doing what the recorded instance did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// Recorded steps the code called and got from the history.
    pub replayed: usize,
    /// Steps in the history.
    pub recorded: usize,
    /// Where the replay ended.
    pub end: ReplayEnd,
    /// The patches the code asked for, with their answers (recorded, or false for one the
    /// instance predates), in the order asked.
    pub patches: Vec<(String, bool)>,
    /// Fields of the recorded params today's params type no longer has (dropped, as a
    /// run drops them).
    pub ignored_params: Vec<String>,
}

/// Why a replay of a recorded history failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayError {
    /// The code diverges from the recorded history at `step` (its position in the
    /// history, from 1, or one past its last step): the message says how.
    Diverged {
        /// Where, in the history (from 1).
        step: usize,
        /// What the code did instead.
        message: String,
        /// The engine's seed (the replay's UUIDs and clock readings outside steps).
        seed: u64,
    },
    /// The replay reached a step whose value the history does not hold: give one with
    /// [`RecordedHistory::stand_in`] (or `stand_in_bytes`, or `with_params`).
    NeedsStandIn {
        /// The step (or "params").
        step: String,
        /// Why the history does not hold it.
        reason: String,
    },
    /// The recorded params do not read as today's params type (a field added without a
    /// default, a changed type): instances in flight would fail the same way.
    Params(String),
    /// Not a replay history, of another version, of another workflow, or a stand-in for
    /// a step whose output the history holds.
    Format(String),
    /// The replay itself is not deterministic: a side effect outside steps, or two
    /// replays (with different UUIDs and clock readings outside steps) that call
    /// different steps.
    Nondeterministic {
        /// What differed.
        message: String,
        /// The engine's seed.
        seed: u64,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Diverged { step, message, seed } => {
                write!(f, "the code diverges from the recorded history at its step {step}: {message} ({})", seed_note(*seed))
            }
            ReplayError::NeedsStandIn { step, reason } => write!(
                f,
                "the replay reached {step}, whose value the history does not hold ({reason}): give one with RecordedHistory::stand_in"
            ),
            ReplayError::Params(message) => write!(f, "the recorded params do not read as today's params: {message}"),
            ReplayError::Format(message) => f.write_str(message),
            ReplayError::Nondeterministic { message, seed } => write!(f, "{message} ({})", seed_note(*seed)),
        }
    }
}

impl std::error::Error for ReplayError {}

/// A patch backend the replay never calls: it answers patch steps itself.
struct NoPatches;

impl PatchBackend for NoPatches {
    fn first_seen<'a>(&'a self, _: &'a str, _: &'a str) -> LocalBoxFuture<'a, Result<u64, StepError>> {
        Box::pin(async { Err(StepError::non_retryable("a replay of a recorded history records no patches")) })
    }
}

/// What a step call gets from the history.
enum Answer {
    Json(String),
    Bytes(Vec<u8>),
    Slept,
    Event(EventRecord),
    Fail(StepError),
    /// Never completes: the replay stops here (the end of the history, or a divergence).
    Pending,
}

/// A step call, as the engine keys it.
#[derive(Clone, Copy)]
enum Call<'a> {
    Do { streamed: bool },
    Sleep { ms: u64 },
    SleepUntil,
    Wait { event_type: &'a str },
}

/// One replay of a recorded history: the step engine the workflow's `Step` talks to.
struct Replayer<'h> {
    recorded: &'h RecordedHistory,
    seed: u64,
    state: RefCell<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    consumed: Vec<bool>,
    counters: HashMap<(u8, String, Option<u64>), u32>,
    /// Every call, described, in order: two replays must make the same ones.
    calls: Vec<String>,
    replayed: usize,
    patches: Vec<(String, bool)>,
    failure: Option<ReplayError>,
    end: Option<ReplayEnd>,
}

fn label(kind: ReplayStepKind) -> &'static str {
    match kind {
        ReplayStepKind::Do => "step",
        ReplayStepKind::Sleep => "sleep",
        ReplayStepKind::WaitForEvent => "wait_for_event",
    }
}

fn describe(kind: ReplayStepKind, name: &str, count: u32, sleep_ms: Option<u64>) -> String {
    let mut text = format!("{} {name:?}", label(kind));
    if count > 1 {
        text.push_str(&format!(" (call {count} of that name)"));
    }
    if let Some(ms) = sleep_ms {
        text.push_str(&format!(" of {ms} ms"));
    }
    text
}

fn describe_recorded(step: &ReplayStep) -> String {
    describe(step.kind, &step.name, step.count, step.duration_ms)
}

/// Whether two recorded steps were in flight at once (their start order is the engine's,
/// not necessarily the code's).
fn overlapped(a: &ReplayStep, b: &ReplayStep) -> bool {
    let end = |s: &ReplayStep| s.ended_at.unwrap_or(i64::MAX);
    a.started_at < end(b) && b.started_at < end(a)
}

const PATCH_ADVICE: &str = "an instance in flight would run it in the middle of its old history: put new code behind step.patched";

impl<'h> Replayer<'h> {
    fn new(recorded: &'h RecordedHistory, seed: u64) -> Self {
        let state = ReplayState { consumed: vec![false; recorded.history.steps.len()], ..ReplayState::default() };
        Replayer { recorded, seed, state: RefCell::new(state) }
    }

    fn steps(&self) -> &'h [ReplayStep] {
        &self.recorded.history.steps
    }

    fn is_patch(step: &ReplayStep) -> bool {
        step.kind == ReplayStepKind::Do && patch::patch_id(&step.name).is_some()
    }

    /// The first recorded step (not a patch's) the code has not called yet.
    fn next_expected(&self, state: &ReplayState) -> Option<usize> {
        self.steps().iter().enumerate().position(|(i, s)| !state.consumed[i] && !Self::is_patch(s))
    }

    fn diverge(&self, state: &mut ReplayState, step: usize, message: String) -> Answer {
        state.failure.get_or_insert(ReplayError::Diverged { step, message, seed: self.seed });
        Answer::Pending
    }

    /// The answer to one step call: checks it against the history and gives what the
    /// history holds.
    fn call(&self, call: Call<'_>, name: &str) -> Answer {
        let mut state = self.state.borrow_mut();
        if state.failure.is_some() || state.end.is_some() {
            return Answer::Pending;
        }
        let (kind, class, key_ms) = match call {
            Call::Do { .. } => (ReplayStepKind::Do, 0, None),
            Call::Sleep { ms } => (ReplayStepKind::Sleep, 1, Some(ms)),
            Call::SleepUntil => (ReplayStepKind::Sleep, 2, None),
            Call::Wait { .. } => (ReplayStepKind::WaitForEvent, 3, None),
        };
        let count = {
            let n = state.counters.entry((class, name.to_string(), key_ms)).or_insert(0);
            *n += 1;
            *n
        };
        let called = describe(kind, name, count, key_ms);
        state.calls.push(called.clone());
        let steps = self.steps();
        let found = match call {
            // The engine counts sleep_until's sleeps by a duration computed on each run:
            // match the n-th recorded sleep of that name.
            Call::SleepUntil => steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kind == ReplayStepKind::Sleep && s.name == name)
                .nth(count as usize - 1)
                .map(|(i, _)| i),
            // The engine keys a sleep by its name and duration, and counts per both.
            Call::Sleep { ms } => {
                steps.iter().position(|s| s.kind == kind && s.name == name && s.count == count && s.duration_ms == Some(ms))
            }
            _ => steps.iter().position(|s| s.kind == kind && s.name == name && s.count == count),
        };
        // A patch's step: as recorded, or false for an instance that predates the patch.
        if let (Call::Do { streamed: false }, Some(id)) = (call, patch::patch_id(name)) {
            let answer = match found.map(|i| (i, &steps[i])) {
                Some((i, step)) => {
                    state.consumed[i] = true;
                    step.output.as_ref().and_then(Value::as_bool).unwrap_or(false)
                }
                None => false,
            };
            state.patches.push((id.to_string(), answer));
            return Answer::Json(answer.to_string());
        }
        let next = self.next_expected(&state);
        let Some(index) = found.filter(|&i| !state.consumed[i]) else {
            return match next {
                Some(next) => {
                    let changed = match (call, steps.iter().position(|s| s.kind == kind && s.name == name)) {
                        (Call::Sleep { .. }, Some(i)) if steps[i].kind == ReplayStepKind::Sleep => format!(
                            " (the history's sleep of that name slept {} ms: the engine keys sleeps by their duration, so an \
                             instance in flight would sleep again)",
                            steps[i].duration_ms.unwrap_or(0)
                        ),
                        _ => String::new(),
                    };
                    self.diverge(
                        &mut state,
                        next + 1,
                        format!(
                            "the code calls {called}, which the history does not have{changed}, where the history has {} next \
                             (renamed, inserted, or changed); {PATCH_ADVICE}",
                            describe_recorded(&steps[next])
                        ),
                    )
                }
                None => {
                    state.end = Some(ReplayEnd::PastTheHistory { step: called });
                    Answer::Pending
                }
            };
        };
        let step = &steps[index];
        if let Some(next) = next.filter(|&next| next != index && !overlapped(&steps[next], step)) {
            return self.diverge(
                &mut state,
                next + 1,
                format!(
                    "the code calls {called} (the history's step {}) where the history has {} next (reordered, or {} removed)",
                    index + 1,
                    describe_recorded(&steps[next]),
                    describe_recorded(&steps[next])
                ),
            );
        }
        state.consumed[index] = true;
        match (call, step.status) {
            (Call::Wait { event_type }, _) if step.event_type.as_deref().is_some_and(|t| t != event_type) => {
                let recorded = step.event_type.clone().unwrap_or_default();
                return self.diverge(
                    &mut state,
                    index + 1,
                    format!("the code calls {called} for event type {event_type:?}, where the recorded wait was for {recorded:?}"),
                );
            }
            (_, ReplayStepStatus::Running) => {
                state.end = Some(ReplayEnd::Suspended { step: called });
                return Answer::Pending;
            }
            _ => {}
        }
        state.replayed += 1;
        match (call, step.status) {
            (Call::Do { streamed }, ReplayStepStatus::Complete) => self.output(&mut state, index, streamed),
            (Call::Do { .. }, _) => {
                let error = step
                    .error
                    .clone()
                    .unwrap_or_else(|| crate::core::status::InstanceError { name: "Error".into(), message: String::new() });
                Answer::Fail(StepError::from_engine(&error.name, &error.message))
            }
            (Call::Sleep { .. } | Call::SleepUntil, _) => Answer::Slept,
            (Call::Wait { .. }, ReplayStepStatus::TimedOut) => {
                let waited = step.ended_at.unwrap_or(step.started_at).saturating_sub(step.started_at).max(0);
                Answer::Fail(StepError::Timeout(format!("Execution timed out after {waited}ms")))
            }
            (Call::Wait { event_type }, _) => match self.recorded.stand_in_for(step) {
                Some(StandIn::Json(payload)) => Answer::Event(EventRecord {
                    payload_json: payload.clone(),
                    event_type: event_type.to_string(),
                    timestamp_millis: step.ended_at.and_then(|t| u64::try_from(t).ok()),
                }),
                _ => self.needs(&mut state, &called, "the engine's events do not carry the payload a wait received"),
            },
        }
    }

    fn needs(&self, state: &mut ReplayState, step: &str, reason: &str) -> Answer {
        state.failure.get_or_insert(ReplayError::NeedsStandIn { step: step.to_string(), reason: reason.to_string() });
        Answer::Pending
    }

    /// A completed `do` step's value: recorded, else the test's stand-in.
    fn output(&self, state: &mut ReplayState, index: usize, streamed: bool) -> Answer {
        let step = &self.steps()[index];
        let called = describe_recorded(step);
        if streamed != step.output_is_stream && (step.output.is_some() || step.output_is_stream) {
            let (stored, read) = if streamed { ("JSON", "as a stream (run_stream)") } else { ("a stream", "as JSON (run)") };
            return self.diverge(state, index + 1, format!("the code reads {called} {read}, where the recorded step stored {stored}"));
        }
        match (&step.output, self.recorded.stand_in_for(step)) {
            (Some(value), _) if !streamed => Answer::Json(value.to_string()),
            (_, Some(StandIn::Json(text))) if !streamed => Answer::Json(text.clone()),
            (_, Some(StandIn::Bytes(bytes))) if streamed => Answer::Bytes(bytes.clone()),
            _ => {
                let reason = if step.output_redacted {
                    "it is sensitive: the engine reports \"[REDACTED]\" in its place".to_string()
                } else if step.output_is_stream {
                    "a streamed output's bytes are not in the history: give them with stand_in_bytes".to_string()
                } else if let Some(chars) = step.output_omitted_chars {
                    format!("its {chars} characters of JSON were not copied")
                } else {
                    "the engine reported no output for it".to_string()
                };
                self.needs(state, &called, &reason)
            }
        }
    }
}

impl<'w> StepEngine<'w> for Replayer<'_> {
    fn run<'a>(&'a self, call: StepCall<'a, 'w>) -> LocalBoxFuture<'a, Result<String, StepError>> {
        // The closure never runs and the rollback is never called: the history answers.
        let answer = self.call(Call::Do { streamed: false }, call.name);
        Box::pin(async move {
            match answer {
                Answer::Json(text) => Ok(text),
                Answer::Fail(error) => Err(error),
                _ => std::future::pending().await,
            }
        })
    }

    fn run_stream<'a>(&'a self, call: StreamCall<'a>) -> LocalBoxFuture<'a, Result<Vec<u8>, StepError>> {
        let answer = self.call(Call::Do { streamed: true }, call.name);
        Box::pin(async move {
            match answer {
                Answer::Bytes(bytes) => Ok(bytes),
                Answer::Fail(error) => Err(error),
                _ => std::future::pending().await,
            }
        })
    }

    fn sleep<'a>(&'a self, name: &'a str, duration: Duration) -> LocalBoxFuture<'a, Result<(), StepError>> {
        let answer = self.call(Call::Sleep { ms: duration::as_millis(duration) }, name);
        Box::pin(async move {
            match answer {
                Answer::Slept => Ok(()),
                Answer::Fail(error) => Err(error),
                _ => std::future::pending().await,
            }
        })
    }

    fn sleep_until<'a>(&'a self, name: &'a str, _epoch_millis: u64) -> LocalBoxFuture<'a, Result<(), StepError>> {
        let answer = self.call(Call::SleepUntil, name);
        Box::pin(async move {
            match answer {
                Answer::Slept => Ok(()),
                Answer::Fail(error) => Err(error),
                _ => std::future::pending().await,
            }
        })
    }

    fn wait_for_event<'a>(&'a self, name: &'a str, event_type: &'a str, _: Duration) -> LocalBoxFuture<'a, Result<EventRecord, StepError>> {
        let answer = self.call(Call::Wait { event_type }, name);
        Box::pin(async move {
            match answer {
                Answer::Event(event) => Ok(event),
                Answer::Fail(error) => Err(error),
                _ => std::future::pending().await,
            }
        })
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls in one replay before concluding the workflow keeps waking itself.
const MAX_POLLS: u32 = 100_000;

/// What one replay did: its calls, and how it ended.
struct Outcome {
    calls: Vec<String>,
    result: Result<ReplayReport, ReplayError>,
}

impl TestEngine {
    /// Replays a recorded history against today's code of `W` (see [`RecordedHistory`]):
    /// the report when the code does what the recorded instance did; panics naming the
    /// first step where it diverges (or what the replay needs).
    pub fn replay<W: Registered>(&self, history: &RecordedHistory) -> ReplayReport
    where
        W::Params: 'static,
    {
        self.try_replay::<W>(history).unwrap_or_else(|e| panic!("{}: {e}", history.source))
    }

    /// [`replay`](Self::replay), returning what went wrong as an error.
    pub fn try_replay<W: Registered>(&self, history: &RecordedHistory) -> Result<ReplayReport, ReplayError>
    where
        W::Params: 'static,
    {
        let recorded = &history.history;
        let workflow = workflow_name::<W>();
        if recorded.workflow != workflow {
            return Err(ReplayError::Format(format!("the history is of workflow {:?}, and the code is {workflow:?}", recorded.workflow)));
        }
        for (name, count) in history.stand_ins.keys() {
            let holds = recorded.steps.iter().any(|s| s.name == *name && s.count == *count && s.output.is_some());
            if holds {
                return Err(ReplayError::Format(format!("a stand-in for step {name:?} (call {count}), whose output the history holds")));
            }
        }
        let params = match (&history.params, &recorded.params) {
            (Some(params), _) | (None, Some(params)) => params,
            (None, None) => {
                let reason = match recorded.params_omitted_chars {
                    Some(chars) => format!("their {chars} characters of JSON were not copied"),
                    None => "the history has none".to_string(),
                };
                return Err(ReplayError::NeedsStandIn {
                    step: "the params".into(),
                    reason: format!("{reason}: give them with with_params"),
                });
            }
        };
        // A scheduled run's params as the engine holds them: the tick in an envelope.
        let (params, schedule) = crate::core::schedule::unwrap(params.clone());
        let read = validate::typed_params_tolerant::<W::Params>(&params).map_err(|e| ReplayError::Params(e.to_string()))?;
        let created_at = recorded.created_at.or_else(|| recorded.steps.first().map(|s| s.started_at)).unwrap_or(0).max(0) as u64;
        let event = WorkflowEvent {
            payload: read.params,
            timestamp: World::time(created_at),
            instance_id: recorded.id.clone(),
            workflow_name: workflow,
            schedule,
        };
        // Twice: a replay's UUIDs and clock readings outside steps differ from the
        // other's, as two real runs' do.
        let first = self.replay_once::<W>(history, &event, &read.ignored);
        let second = self.replay_once::<W>(history, &event, &read.ignored);
        if first.result.is_ok() && second.result.is_ok() && first.calls != second.calls {
            let at = first.calls.iter().zip(&second.calls).position(|(a, b)| a != b).unwrap_or(first.calls.len().min(second.calls.len()));
            let one = first.calls.get(at).map_or("nothing more".to_string(), Clone::clone);
            let other = second.calls.get(at).map_or("nothing more".to_string(), Clone::clone);
            return Err(ReplayError::Nondeterministic {
                message: format!(
                    "two replays of the history differ at call {}: one called {one}, the other {other}; code outside steps must make \
                     the same step calls on every replay (read the clock and make random values inside a step)",
                    at + 1
                ),
                seed: self.current_seed(),
            });
        }
        first.result
    }

    fn replay_once<W: Registered>(&self, history: &RecordedHistory, event: &WorkflowEvent<W::Params>, ignored: &[String]) -> Outcome
    where
        W::Params: 'static,
    {
        let seed = self.current_seed();
        let replayer = Rc::new(Replayer::new(history, seed));
        let workflow = W::new(Env::new(Rc::new(TestEnv { world: Rc::clone(&self.world) })));
        self.world.set_running(Some(event.instance_id.clone()));
        let patches = PatchContext::new(&event.workflow_name, event.timestamp, Rc::new(NoPatches));
        let result = {
            let step = Step::new(replayer.clone(), W::EVENTS).with_patches(patches);
            let mut future = pin!(workflow.run(event, step));
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(Arc::clone(&flag));
            let mut context = Context::from_waker(&waker);
            let mut polls = 0;
            loop {
                flag.0.store(false, Ordering::SeqCst);
                if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
                    break Some(result.and_then(|output| output_text(&output)));
                }
                polls += 1;
                if !flag.0.load(Ordering::SeqCst) || polls >= MAX_POLLS {
                    break None;
                }
            }
        };
        let outside = self.world.outside_steps.borrow().clone();
        self.world.set_running(None);
        let state = std::mem::take(&mut *replayer.state.borrow_mut());
        let calls = state.calls.clone();
        Outcome { calls, result: conclude(history, state, result, &outside, seed, ignored) }
    }
}

/// The verdict of one replay.
fn conclude(
    history: &RecordedHistory,
    state: ReplayState,
    result: Option<Result<String, StepError>>,
    outside: &[String],
    seed: u64,
    ignored: &[String],
) -> Result<ReplayReport, ReplayError> {
    if !outside.is_empty() {
        return Err(ReplayError::Nondeterministic {
            message: format!("side effects outside any step run again on every replay: {}; move them into a step", outside.join(", ")),
            seed,
        });
    }
    if let Some(failure) = state.failure {
        return Err(failure);
    }
    let steps = &history.history.steps;
    let end = match (state.end, result) {
        (Some(end), _) => end,
        (None, Some(result)) => {
            // The code returned: every recorded step must have been called.
            let missed = steps.iter().enumerate().find(|(i, s)| !state.consumed[*i] && !Replayer::is_patch(s));
            if let Some((i, step)) = missed {
                let how = if result.is_ok() { "returned" } else { "failed" };
                return Err(ReplayError::Diverged {
                    step: i + 1,
                    message: format!(
                        "the code {how} without calling {}, whose result the engine stored (removed, or now skipped by a branch)",
                        describe_recorded(step)
                    ),
                    seed,
                });
            }
            match result {
                Ok(text) => ReplayEnd::Completed(serde_json::from_str(&text).unwrap_or(Value::Null)),
                Err(error) => ReplayEnd::Errored(ErrorInfo { name: error.js_name().to_string(), message: error.to_string() }),
            }
        }
        (None, None) => {
            return Err(ReplayError::Nondeterministic {
                message: "the workflow's run is pending but no step is: it awaits something only the Worker could complete".into(),
                seed,
            })
        }
    };
    Ok(ReplayReport { replayed: state.replayed, recorded: steps.len(), end, patches: state.patches, ignored_params: ignored.to_vec() })
}
