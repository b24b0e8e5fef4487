//! An instance's history as a replay needs it (`GET …/history?format=replay`): each step
//! the workflow called, keyed as the engine keys it (type, name, count), with what the
//! engine stored for it (a `do` step's output or error, a sleep's duration, a wait's
//! event type and outcome), plus the instance's params and creation time. The test
//! engine replays it against today's code (`TestEngine::replay`) and names the first
//! step where the code now diverges.
//!
//! Folded from the instance's events, like [`History`](super::history::History), bounded
//! the same way (at most [`MAX_STEPS`] steps) and in the outputs it copies (at most
//! [`MAX_OUTPUT_CHARS`] characters of JSON in all). What the engine never reports cannot
//! be replayed, and says so instead of being guessed: a sensitive step's output
//! (`outputRedacted`), a streamed output (`outputIsStream`), an output past the bounds
//! (`outputOmittedChars`), and the payload of the event a wait received (the engine's
//! events do not carry it). A replay that reaches such a step needs a stand-in value from
//! the test, or stops there saying which step needs one.
//!
//! Rollbacks are not part of it: the engine calls them, the workflow's code never does.

use crate::core::history::MAX_STEPS;
use crate::core::instance_events::{EventKind, InstanceEvent, StepOutput, StepRef};
use crate::core::status::{InstanceError, InstanceState};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// What [`ReplayHistory::format`] says: this document's kind.
pub const FORMAT: &str = "worker-workflows/replay-history";
/// The version of the format this code writes and reads.
pub const VERSION: u32 = 1;
/// The most characters of JSON of step outputs (and params) one history copies; past it,
/// outputs are omitted (`outputOmittedChars`), so a history's size is bounded whatever
/// its steps returned.
/// Small beside the isolate's memory: a parsed JSON value takes several times its text, and
/// the history is held parsed, then as text, then handed to JS.
pub const MAX_OUTPUT_CHARS: u64 = 2 * 1024 * 1024;

/// The type of a step the workflow called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReplayStepKind {
    /// `step.do` (`step.run`, `run_stream`, a patch's step).
    Do,
    /// `step.sleep` or `step.sleep_until` (the engine reports both as sleeps).
    Sleep,
    /// `step.wait_for_event`.
    WaitForEvent,
}

/// Where a step stood when the history was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReplayStepStatus {
    /// Started, not ended: retrying, sleeping, waiting. A replay stops at it.
    Running,
    /// Completed (a `do` with its output), slept, or received its event.
    Complete,
    /// A `do` that failed for good, with its error.
    Errored,
    /// A wait whose timeout passed.
    TimedOut,
}

/// Keeps a JSON `null` as `Some(Null)`: an output that is null is not a missing one.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One step of a [`ReplayHistory`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayStep {
    /// The step's name.
    pub name: String,
    /// The n-th step of this name and type in the run, from 1 (the engine's key with the name).
    pub count: u32,
    /// Its type (`type` in JSON).
    #[serde(rename = "type")]
    pub kind: ReplayStepKind,
    /// Where it stands.
    pub status: ReplayStepStatus,
    /// When it started, in Unix milliseconds.
    pub started_at: i64,
    /// When it ended, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// A completed `do` step's output, as the engine stored it (`null` included).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The output is sensitive: the engine reports `"[REDACTED]"` in its place.
    #[serde(default, skip_serializing_if = "is_false")]
    pub output_redacted: bool,
    /// The output is a stream (`run_stream`): its bytes are not in the history.
    #[serde(default, skip_serializing_if = "is_false")]
    pub output_is_stream: bool,
    /// The output was not copied: this many characters of JSON (past 1 MiB, or past the
    /// history's bound on outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_omitted_chars: Option<u64>,
    /// The last failed attempt's error (the step's, once it failed for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// Attempts made (`do` steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// How long a sleep sleeps, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The event type a wait waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

impl ReplayStep {
    fn new(kind: ReplayStepKind, step: &StepRef, at: i64) -> Self {
        ReplayStep {
            name: step.name.clone(),
            count: step.count,
            kind,
            status: ReplayStepStatus::Running,
            started_at: at,
            ended_at: None,
            output: None,
            output_redacted: false,
            output_is_stream: false,
            output_omitted_chars: None,
            error: None,
            attempts: (kind == ReplayStepKind::Do).then_some(0),
            duration_ms: None,
            event_type: None,
        }
    }
}

/// An instance's history for a replay. Serialised, it is the body of
/// `GET …/history?format=replay`, and a test fixture as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayHistory {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The workflow's name.
    pub workflow: String,
    /// The instance's id.
    pub id: String,
    /// When the engine queued the instance (its first event), Unix milliseconds: within
    /// milliseconds of the event's `timestamp` the workflow sees, which the events do not carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// The params it was created with (`null` included).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// The params were not copied: this many characters of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_omitted_chars: Option<u64>,
    /// The instance's status as its events tell it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceState>,
    /// Its output, once complete.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error, once errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// The steps the workflow called, in the order they started; at most [`MAX_STEPS`].
    pub steps: Vec<ReplayStep>,
    /// Steps that started past [`MAX_STEPS`], not listed.
    #[serde(default)]
    pub omitted_steps: u64,
    /// The last event folded in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<u64>,
    /// Reading stopped at its time limit before the end of the events.
    #[serde(default)]
    pub truncated: bool,
}

/// The fold: feed it events in order with [`ReplayHistoryFold::apply`], then
/// [`finish`](ReplayHistoryFold::finish).
#[derive(Debug, Clone)]
pub struct ReplayHistoryFold {
    history: ReplayHistory,
    index: HashMap<(ReplayStepKind, StepRef), usize>,
    output_chars: u64,
}

/// Characters of JSON of a value (as serde_json writes it compactly).
fn json_chars(value: &Value) -> u64 {
    serde_json::to_string(value).map_or(0, |s| s.chars().count() as u64)
}

impl ReplayHistoryFold {
    /// An empty history of instance `id` of `workflow`.
    pub fn new(workflow: &str, id: &str) -> Self {
        ReplayHistoryFold {
            history: ReplayHistory {
                format: FORMAT.to_string(),
                version: VERSION,
                workflow: workflow.to_string(),
                id: id.to_string(),
                created_at: None,
                params: None,
                params_omitted_chars: None,
                status: None,
                output: None,
                error: None,
                steps: Vec::new(),
                omitted_steps: 0,
                last_event_id: None,
                truncated: false,
            },
            index: HashMap::new(),
            output_chars: 0,
        }
    }

    /// The step's entry; made when `starts` and there is room.
    fn entry(&mut self, kind: ReplayStepKind, step: &StepRef, at: i64, starts: bool) -> Option<&mut ReplayStep> {
        let key = (kind, step.clone());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None if starts && self.history.steps.len() < MAX_STEPS => {
                self.history.steps.push(ReplayStep::new(kind, step, at));
                self.index.insert(key, self.history.steps.len() - 1);
                self.history.steps.len() - 1
            }
            None => {
                if starts {
                    self.history.omitted_steps += 1;
                }
                return None;
            }
        };
        self.history.steps.get_mut(i)
    }

    /// Copies a value while the bound on outputs allows; else how many characters it has.
    fn copy(&mut self, value: &Value) -> Result<Value, u64> {
        let chars = json_chars(value);
        if self.output_chars.saturating_add(chars) > MAX_OUTPUT_CHARS {
            return Err(chars);
        }
        self.output_chars += chars;
        Ok(value.clone())
    }

    fn end(&mut self, kind: ReplayStepKind, step: &StepRef, at: i64, status: ReplayStepStatus) {
        if let Some(entry) = self.entry(kind, step, at, false) {
            entry.status = status;
            entry.ended_at = Some(at);
        }
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &InstanceEvent) {
        use ReplayStepKind::{Do, Sleep, WaitForEvent};
        self.history.last_event_id = Some(event.event_id);
        let at = event.timestamp;
        match &event.kind {
            EventKind::WorkflowQueued => {
                self.history.created_at.get_or_insert(at);
            }
            EventKind::WorkflowStarted { params } => {
                self.history.created_at.get_or_insert(at);
                match params {
                    Some(StepOutput::Value(value)) => match self.copy(value) {
                        Ok(value) => self.history.params = Some(value),
                        Err(chars) => self.history.params_omitted_chars = Some(chars),
                    },
                    Some(StepOutput::Omitted { chars }) => self.history.params_omitted_chars = Some(*chars),
                    _ => {}
                }
                self.history.status = Some(InstanceState::Running);
            }
            EventKind::WorkflowRunning => self.history.status = Some(InstanceState::Running),
            EventKind::WorkflowPaused => self.history.status = Some(InstanceState::Paused),
            EventKind::WorkflowWaitingForPause => self.history.status = Some(InstanceState::WaitingForPause),
            EventKind::WorkflowWaiting => self.history.status = Some(InstanceState::Waiting),
            EventKind::WorkflowCompleted { output } => {
                self.history.status = Some(InstanceState::Complete);
                if let Some(StepOutput::Value(value)) = output {
                    self.history.output = self.copy(value).ok();
                }
            }
            EventKind::WorkflowErrored { error } => {
                self.history.status = Some(InstanceState::Errored);
                self.history.error = Some(error.clone());
            }
            EventKind::WorkflowTerminated => self.history.status = Some(InstanceState::Terminated),
            EventKind::RollbackStarted => self.history.status = Some(InstanceState::RollingBack),
            EventKind::StepStarted { step, .. } => {
                self.entry(Do, step, at, true);
            }
            EventKind::AttemptStarted { step, attempt } | EventKind::AttemptCompleted { step, attempt } => {
                if let Some(entry) = self.entry(Do, step, at, false) {
                    entry.attempts = Some(entry.attempts.unwrap_or(0).max(*attempt));
                }
            }
            EventKind::AttemptErrored { step, attempt, error, .. } => {
                if let Some(entry) = self.entry(Do, step, at, false) {
                    entry.attempts = Some(entry.attempts.unwrap_or(0).max(*attempt));
                    entry.error = Some(error.clone());
                }
            }
            EventKind::StepCompleted { step, output } => {
                let copied = match output {
                    Some(StepOutput::Value(value)) => Some(self.copy(value)),
                    _ => None,
                };
                if let Some(entry) = self.entry(Do, step, at, false) {
                    entry.status = ReplayStepStatus::Complete;
                    entry.ended_at = Some(at);
                    entry.error = None;
                    match (output, copied) {
                        (_, Some(Ok(value))) => entry.output = Some(value),
                        (_, Some(Err(chars))) => entry.output_omitted_chars = Some(chars),
                        (Some(StepOutput::Redacted), _) => entry.output_redacted = true,
                        (Some(StepOutput::Stream), _) => entry.output_is_stream = true,
                        (Some(StepOutput::Omitted { chars }), _) => entry.output_omitted_chars = Some(*chars),
                        // No output reported: neither a value nor a reason; a replay needs a stand-in.
                        _ => {}
                    }
                }
            }
            EventKind::StepErrored { step } => self.end(Do, step, at, ReplayStepStatus::Errored),
            EventKind::SleepStarted { step, duration_ms } => {
                if let Some(entry) = self.entry(Sleep, step, at, true) {
                    entry.duration_ms = Some(*duration_ms);
                }
            }
            EventKind::SleepCompleted { step } => self.end(Sleep, step, at, ReplayStepStatus::Complete),
            EventKind::WaitStarted { step, event_type } => {
                if let Some(entry) = self.entry(WaitForEvent, step, at, true) {
                    entry.event_type = Some(event_type.clone());
                }
            }
            EventKind::WaitCompleted { step } => self.end(WaitForEvent, step, at, ReplayStepStatus::Complete),
            EventKind::WaitTimedOut { step } => self.end(WaitForEvent, step, at, ReplayStepStatus::TimedOut),
            EventKind::RollbackStepStarted { .. }
            | EventKind::RollbackStepCompleted { .. }
            | EventKind::RollbackStepErrored { .. }
            | EventKind::RollbackAttemptStarted { .. }
            | EventKind::RollbackAttemptCompleted { .. }
            | EventKind::RollbackAttemptErrored { .. }
            | EventKind::RollbackCompleted
            | EventKind::RollbackErrored
            | EventKind::Other { .. } => {}
        }
    }

    /// The history, `truncated` when reading stopped before the end of the events.
    pub fn finish(mut self, truncated: bool) -> ReplayHistory {
        self.history.truncated = truncated;
        self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(name: &str) -> StepRef {
        StepRef { name: name.into(), count: 1 }
    }

    fn fold(kinds: Vec<EventKind>) -> ReplayHistory {
        let mut f = ReplayHistoryFold::new("order-processing", "o-1");
        for (i, kind) in kinds.into_iter().enumerate() {
            f.apply(&InstanceEvent { event_id: i as u64 + 1, timestamp: 1000 + i as i64, kind });
        }
        f.finish(false)
    }

    #[test]
    fn a_history_keeps_what_a_replay_needs_and_says_what_it_cannot_have() {
        use EventKind::*;
        let err = InstanceError { name: "Error".into(), message: "503".into() };
        let h = fold(vec![
            WorkflowQueued,
            WorkflowStarted { params: Some(StepOutput::Value(json!({"orderId": "o-1"}))) },
            StepStarted { step: step("check"), config: None },
            AttemptStarted { step: step("check"), attempt: 1 },
            AttemptErrored { step: step("check"), attempt: 1, error: err.clone(), retry_delay_ms: Some(1000) },
            AttemptStarted { step: step("check"), attempt: 2 },
            StepCompleted { step: step("check"), output: Some(StepOutput::Value(json!({"ok": true}))) },
            StepStarted { step: step("confirm"), config: None },
            StepCompleted { step: step("confirm"), output: Some(StepOutput::Value(Value::Null)) },
            StepStarted { step: step("secret"), config: None },
            StepCompleted { step: step("secret"), output: Some(StepOutput::Redacted) },
            StepStarted { step: step("bytes"), config: None },
            StepCompleted { step: step("bytes"), output: Some(StepOutput::Stream) },
            SleepStarted { step: step("nap"), duration_ms: 5000 },
            SleepCompleted { step: step("nap") },
            WaitStarted { step: step("approval"), event_type: "approval".into() },
            WaitCompleted { step: step("approval") },
            StepStarted { step: step("ship"), config: None },
            AttemptErrored { step: step("ship"), attempt: 1, error: err.clone(), retry_delay_ms: None },
            StepErrored { step: step("ship") },
            RollbackStarted,
            RollbackStepStarted { step: step("check"), config: None },
            RollbackStepCompleted { step: step("check") },
            WorkflowErrored { error: err.clone() },
        ]);
        assert_eq!((h.created_at, h.params.clone()), (Some(1000), Some(json!({"orderId": "o-1"}))));
        let kinds: Vec<_> = h.steps.iter().map(|s| (s.name.as_str(), s.kind, s.status)).collect();
        use ReplayStepKind::*;
        use ReplayStepStatus::*;
        assert_eq!(
            kinds,
            [
                ("check", Do, Complete),
                ("confirm", Do, Complete),
                ("secret", Do, Complete),
                ("bytes", Do, Complete),
                ("nap", Sleep, Complete),
                ("approval", WaitForEvent, Complete),
                ("ship", Do, Errored)
            ],
            "rollbacks are not steps the code calls"
        );
        assert_eq!((h.steps[0].output.clone(), h.steps[0].attempts, h.steps[0].error.clone()), (Some(json!({"ok": true})), Some(2), None));
        assert_eq!(h.steps[1].output, Some(Value::Null), "a null output is an output");
        assert!(h.steps[2].output_redacted && h.steps[2].output.is_none());
        assert!(h.steps[3].output_is_stream && h.steps[3].output.is_none());
        assert_eq!(h.steps[4].duration_ms, Some(5000));
        assert_eq!(h.steps[5].event_type.as_deref(), Some("approval"));
        assert_eq!(h.steps[6].error, Some(err.clone()));
        assert_eq!((h.status, h.error.clone()), (Some(InstanceState::Errored), Some(err)));

        // The JSON round-trips, null output included, and names its format.
        let text = serde_json::to_string(&h).unwrap();
        let back: ReplayHistory = serde_json::from_str(&text).unwrap();
        assert_eq!(back, h);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((json["format"].as_str(), json["version"].as_u64()), (Some(FORMAT), Some(1)));
        assert_eq!(json["steps"][1]["output"], Value::Null);
        assert!(json["steps"][1].as_object().unwrap().contains_key("output"));
        assert_eq!(json["steps"][2]["outputRedacted"], true);
        assert!(!text.contains("REDACTED"), "a sensitive output is never copied");
    }

    #[test]
    fn outputs_past_the_bound_are_omitted_with_their_size() {
        let big = Value::String("x".repeat(1024 * 1024 - 2));
        let mut f = ReplayHistoryFold::new("w", "i");
        let steps = MAX_OUTPUT_CHARS / (1024 * 1024) + 2;
        for i in 0..steps {
            let s = StepRef { name: format!("s{i}"), count: 1 };
            f.apply(&InstanceEvent { event_id: 2 * i, timestamp: 0, kind: EventKind::StepStarted { step: s.clone(), config: None } });
            let output = Some(StepOutput::Value(big.clone()));
            f.apply(&InstanceEvent { event_id: 2 * i + 1, timestamp: 0, kind: EventKind::StepCompleted { step: s, output } });
        }
        let h = f.finish(false);
        let copied = h.steps.iter().filter(|s| s.output.is_some()).count() as u64;
        assert_eq!(copied, MAX_OUTPUT_CHARS / (1024 * 1024));
        assert_eq!(h.steps.last().unwrap().output_omitted_chars, Some(1024 * 1024));
    }

    #[test]
    fn a_history_is_bounded_in_steps() {
        let mut f = ReplayHistoryFold::new("w", "i");
        for i in 0..(MAX_STEPS as u64 + 3) {
            let s = StepRef { name: format!("s{i}"), count: 1 };
            f.apply(&InstanceEvent { event_id: i, timestamp: 0, kind: EventKind::SleepStarted { step: s, duration_ms: 1 } });
        }
        let h = f.finish(true);
        assert_eq!((h.steps.len(), h.omitted_steps, h.truncated), (MAX_STEPS, 3, true));
    }
}
