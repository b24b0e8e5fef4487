//! An instance's event history as `instance.subscribe()` delivers it: every event type
//! the engine emits, typed, with the fields it carries. An event type this code does
//! not know decodes as [`EventKind::Other`] rather than failing, and a field of an
//! unexpected shape is dropped rather than failing the event.
//!
//! The bridge hands events over as JSON after making them safe to buffer: a step output
//! that is a `ReadableStream` never reaches JSON (it becomes [`StepOutput::Stream`]),
//! and an output or params larger than [`MAX_VALUE_CHARS`] becomes
//! [`StepOutput::Omitted`].

use crate::core::status::InstanceError;
use serde::Serialize;
use serde_json::{Map, Value};

/// The largest output or params (JSON characters) an event carries; larger ones are
/// omitted with their size. The engine's own limit on step results is 1 MiB.
pub const MAX_VALUE_CHARS: usize = 1024 * 1024;
/// The most characters of an error message an event carries.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 8 * 1024;
/// The largest event (JSON characters) read at all; anything larger is cut down to its
/// type and ids first. Outputs and messages are bounded above, so only a pathological
/// event reaches this.
pub const MAX_EVENT_CHARS: usize = MAX_VALUE_CHARS + 64 * 1024;

/// The field the bridge sets to `true` in place of a step output that is a `ReadableStream`.
pub const OUTPUT_IS_STREAM: &str = "$outputIsStream";
/// The field the bridge sets in place of an output larger than [`MAX_VALUE_CHARS`]: its
/// size in JSON characters.
pub const OUTPUT_OMITTED_CHARS: &str = "$outputOmittedChars";
/// The field the bridge sets in place of params larger than [`MAX_VALUE_CHARS`]: their
/// size in JSON characters.
pub const PARAMS_OMITTED_CHARS: &str = "$paramsOmittedChars";

/// Every event type the engine emits (the local engine never emits `workflow_waiting`).
pub const EVENT_TYPES: &[&str] = &[
    "workflow_queued",
    "workflow_started",
    "workflow_running",
    "workflow_paused",
    "workflow_waiting_for_pause",
    "workflow_waiting",
    "workflow_completed",
    "workflow_errored",
    "workflow_terminated",
    "step_started",
    "step_completed",
    "step_errored",
    "attempt_started",
    "attempt_completed",
    "attempt_errored",
    "sleep_started",
    "sleep_completed",
    "wait_started",
    "wait_completed",
    "wait_timed_out",
    "rollback_started",
    "rollback_step_started",
    "rollback_step_completed",
    "rollback_step_errored",
    "rollback_attempt_started",
    "rollback_attempt_completed",
    "rollback_attempt_errored",
    "rollback_completed",
    "rollback_errored",
];

/// A step as events name it: the engine's `stepName` is `{name}-{count}`, `count`
/// being the n-th step of that name in the run (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct StepRef {
    /// The step's name as the workflow gave it.
    pub name: String,
    /// Which step of that name in the run this is, from 1.
    pub count: u32,
}

impl StepRef {
    /// Splits the engine's `{name}-{count}`; a name without a count suffix counts 1.
    pub fn parse(step_name: &str) -> StepRef {
        match step_name.rsplit_once('-') {
            Some((name, count)) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => match count.parse() {
                Ok(count) => StepRef { name: name.to_string(), count },
                Err(_) => StepRef { name: step_name.to_string(), count: 1 },
            },
            _ => StepRef { name: step_name.to_string(), count: 1 },
        }
    }
}

/// A step's (or the workflow's) output as an event carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutput {
    /// The output's JSON.
    Value(Value),
    /// The step was marked `sensitive: "output"`: the engine sends "[REDACTED]".
    Redacted,
    /// The step returned a `ReadableStream`; its bytes are not part of the event.
    Stream,
    /// Larger than [`MAX_VALUE_CHARS`]; this many characters of JSON were not copied.
    Omitted {
        /// Characters of JSON not copied.
        chars: u64,
    },
}

/// What the engine sends in place of a sensitive step's output.
pub const REDACTED: &str = "[REDACTED]";

/// One event of an instance's history.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceEvent {
    /// The engine's event id: increasing within one run; pass the last one seen as the
    /// cursor to resume after it.
    pub event_id: u64,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// What happened, with the fields of its type.
    pub kind: EventKind,
}

/// The type of an [`InstanceEvent`], with the fields that type carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The instance was created and waits to run.
    WorkflowQueued,
    /// `params` as created (a callback envelope already unwrapped).
    WorkflowStarted {
        /// The params, when the event carries them.
        params: Option<StepOutput>,
    },
    /// The instance is running.
    WorkflowRunning,
    /// The instance is paused.
    WorkflowPaused,
    /// A pause was asked for; the instance pauses once its running step ends.
    WorkflowWaitingForPause,
    /// The instance waits (for a sleep or an event); the local engine never emits it.
    WorkflowWaiting,
    /// The instance completed.
    WorkflowCompleted {
        /// The workflow's output, when the event carries it.
        output: Option<StepOutput>,
    },
    /// The instance failed.
    WorkflowErrored {
        /// The error it failed with.
        error: InstanceError,
    },
    /// The instance was terminated.
    WorkflowTerminated,
    /// A step started.
    StepStarted {
        /// The step.
        step: StepRef,
        /// The step's resolved config (retries, timeout, sensitive) as the engine stored it.
        config: Option<Value>,
    },
    /// A step completed.
    StepCompleted {
        /// The step.
        step: StepRef,
        /// Its result, when the event carries it.
        output: Option<StepOutput>,
    },
    /// A step failed after its last attempt.
    StepErrored {
        /// The step.
        step: StepRef,
    },
    /// An attempt of a step started.
    AttemptStarted {
        /// The step.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// An attempt of a step succeeded.
    AttemptCompleted {
        /// The step.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// An attempt of a step failed.
    AttemptErrored {
        /// The step.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
        /// The error the attempt failed with.
        error: InstanceError,
        /// Present when another attempt follows after this many milliseconds.
        retry_delay_ms: Option<u64>,
    },
    /// A sleep started.
    SleepStarted {
        /// The step.
        step: StepRef,
        /// How long it sleeps, in milliseconds.
        duration_ms: u64,
    },
    /// A sleep ended.
    SleepCompleted {
        /// The step.
        step: StepRef,
    },
    /// A wait for an event started.
    WaitStarted {
        /// The step.
        step: StepRef,
        /// The event type it waits for.
        event_type: String,
    },
    /// The awaited event arrived.
    WaitCompleted {
        /// The step.
        step: StepRef,
    },
    /// The wait reached its timeout without the event.
    WaitTimedOut {
        /// The step.
        step: StepRef,
    },
    /// The rollbacks started: the engine calls the steps' rollbacks, last started first.
    RollbackStarted,
    /// A step's rollback started.
    RollbackStepStarted {
        /// The step whose rollback this is.
        step: StepRef,
        /// The rollback's resolved config as the engine stored it.
        config: Option<Value>,
    },
    /// A step's rollback completed.
    RollbackStepCompleted {
        /// The step whose rollback this is.
        step: StepRef,
    },
    /// A step's rollback failed for good; the engine runs no further rollbacks.
    RollbackStepErrored {
        /// The step whose rollback this is.
        step: StepRef,
        /// Why, when the engine says (a rollback function that is missing); a rollback that
        /// failed by itself carries none.
        error: Option<InstanceError>,
    },
    /// An attempt of a step's rollback started.
    RollbackAttemptStarted {
        /// The step whose rollback this is.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// An attempt of a step's rollback succeeded.
    RollbackAttemptCompleted {
        /// The step whose rollback this is.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// An attempt of a step's rollback failed.
    RollbackAttemptErrored {
        /// The step whose rollback this is.
        step: StepRef,
        /// The attempt's number, from 1.
        attempt: u32,
        /// The error the attempt failed with.
        error: InstanceError,
        /// Present when another attempt follows after this many milliseconds.
        retry_delay_ms: Option<u64>,
    },
    /// Every rollback succeeded.
    RollbackCompleted,
    /// A rollback failed for good; the rollbacks ended there.
    RollbackErrored,
    /// An event type this code does not know (or one missing the fields its type needs).
    Other {
        /// The type as the engine named it.
        event_type: String,
    },
}

impl EventKind {
    /// The engine's name for this event's type.
    pub fn type_name(&self) -> &str {
        match self {
            EventKind::WorkflowQueued => "workflow_queued",
            EventKind::WorkflowStarted { .. } => "workflow_started",
            EventKind::WorkflowRunning => "workflow_running",
            EventKind::WorkflowPaused => "workflow_paused",
            EventKind::WorkflowWaitingForPause => "workflow_waiting_for_pause",
            EventKind::WorkflowWaiting => "workflow_waiting",
            EventKind::WorkflowCompleted { .. } => "workflow_completed",
            EventKind::WorkflowErrored { .. } => "workflow_errored",
            EventKind::WorkflowTerminated => "workflow_terminated",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::StepCompleted { .. } => "step_completed",
            EventKind::StepErrored { .. } => "step_errored",
            EventKind::AttemptStarted { .. } => "attempt_started",
            EventKind::AttemptCompleted { .. } => "attempt_completed",
            EventKind::AttemptErrored { .. } => "attempt_errored",
            EventKind::SleepStarted { .. } => "sleep_started",
            EventKind::SleepCompleted { .. } => "sleep_completed",
            EventKind::WaitStarted { .. } => "wait_started",
            EventKind::WaitCompleted { .. } => "wait_completed",
            EventKind::WaitTimedOut { .. } => "wait_timed_out",
            EventKind::RollbackStarted => "rollback_started",
            EventKind::RollbackStepStarted { .. } => "rollback_step_started",
            EventKind::RollbackStepCompleted { .. } => "rollback_step_completed",
            EventKind::RollbackStepErrored { .. } => "rollback_step_errored",
            EventKind::RollbackAttemptStarted { .. } => "rollback_attempt_started",
            EventKind::RollbackAttemptCompleted { .. } => "rollback_attempt_completed",
            EventKind::RollbackAttemptErrored { .. } => "rollback_attempt_errored",
            EventKind::RollbackCompleted => "rollback_completed",
            EventKind::RollbackErrored => "rollback_errored",
            EventKind::Other { event_type } => event_type,
        }
    }

    /// The instance ends with this event (the engine's subscription closes after it).
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventKind::WorkflowCompleted { .. } | EventKind::WorkflowErrored { .. } | EventKind::WorkflowTerminated)
    }

    /// The step this event is about, if any.
    pub fn step(&self) -> Option<&StepRef> {
        match self {
            EventKind::StepStarted { step, .. }
            | EventKind::StepCompleted { step, .. }
            | EventKind::StepErrored { step }
            | EventKind::AttemptStarted { step, .. }
            | EventKind::AttemptCompleted { step, .. }
            | EventKind::AttemptErrored { step, .. }
            | EventKind::SleepStarted { step, .. }
            | EventKind::SleepCompleted { step }
            | EventKind::WaitStarted { step, .. }
            | EventKind::WaitCompleted { step }
            | EventKind::WaitTimedOut { step }
            | EventKind::RollbackStepStarted { step, .. }
            | EventKind::RollbackStepCompleted { step }
            | EventKind::RollbackStepErrored { step, .. }
            | EventKind::RollbackAttemptStarted { step, .. }
            | EventKind::RollbackAttemptCompleted { step, .. }
            | EventKind::RollbackAttemptErrored { step, .. } => Some(step),
            _ => None,
        }
    }
}

/// An instance event that could not be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// Not a JSON object with a `type` and an `eventId`; holds the start of its JSON (200
    /// characters).
    #[error("an instance event is not a JSON object with a type and an eventId: {0}")]
    Malformed(String),
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

fn number(map: &Map<String, Value>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)))
}

fn error(map: &Map<String, Value>) -> Option<InstanceError> {
    let raw = map.get("error").filter(|v| !v.is_null())?;
    let mut error: InstanceError = serde_json::from_value(raw.clone())
        .unwrap_or(InstanceError { name: "Error".into(), message: raw.to_string().chars().take(MAX_ERROR_MESSAGE_CHARS).collect() });
    if error.message.chars().count() > MAX_ERROR_MESSAGE_CHARS {
        error.message = error.message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect::<String>() + "…";
    }
    Some(error)
}

/// The output (or params) under `key`, with the bridge's markers for what it did not copy.
fn value(map: &Map<String, Value>, key: &str, omitted_marker: &str) -> Option<StepOutput> {
    if map.get(OUTPUT_IS_STREAM).and_then(Value::as_bool) == Some(true) && key == "output" {
        return Some(StepOutput::Stream);
    }
    if let Some(chars) = number(map, omitted_marker) {
        return Some(StepOutput::Omitted { chars });
    }
    match map.get(key)? {
        Value::String(s) if s == REDACTED => Some(StepOutput::Redacted),
        v => Some(StepOutput::Value(v.clone())),
    }
}

impl InstanceEvent {
    /// Decodes one event. Only a value that is not an object with a `type` and an
    /// `eventId` is an error; unknown types and odd fields are tolerated.
    pub fn from_json(event: &Value) -> Result<InstanceEvent, EventDecodeError> {
        let malformed = || EventDecodeError::Malformed(event.to_string().chars().take(200).collect());
        let map = event.as_object().ok_or_else(malformed)?;
        let event_type = text(map, "type").ok_or_else(malformed)?;
        let event_id = number(map, "eventId").ok_or_else(malformed)?;
        let timestamp = map.get("timestamp").and_then(Value::as_f64).map_or(0, |t| t as i64);
        let step = || text(map, "stepName").map(|s| StepRef::parse(&s));
        let attempt = || number(map, "attempt").map(|a| a.min(u64::from(u32::MAX)) as u32);
        let config = || map.get("config").filter(|c| c.is_object()).cloned();
        let other = || EventKind::Other { event_type: event_type.clone() };
        let kind = match event_type.as_str() {
            "workflow_queued" => EventKind::WorkflowQueued,
            "workflow_started" => EventKind::WorkflowStarted { params: value(map, "params", PARAMS_OMITTED_CHARS) },
            "workflow_running" => EventKind::WorkflowRunning,
            "workflow_paused" => EventKind::WorkflowPaused,
            "workflow_waiting_for_pause" => EventKind::WorkflowWaitingForPause,
            "workflow_waiting" => EventKind::WorkflowWaiting,
            "workflow_completed" => EventKind::WorkflowCompleted { output: value(map, "output", OUTPUT_OMITTED_CHARS) },
            "workflow_errored" => {
                EventKind::WorkflowErrored { error: error(map).unwrap_or(InstanceError { name: "Error".into(), message: String::new() }) }
            }
            "workflow_terminated" => EventKind::WorkflowTerminated,
            "rollback_started" => EventKind::RollbackStarted,
            "rollback_completed" => EventKind::RollbackCompleted,
            "rollback_errored" => EventKind::RollbackErrored,
            step_type => match (step(), step_type) {
                (Some(step), "step_started") => EventKind::StepStarted { step, config: config() },
                (Some(step), "step_completed") => EventKind::StepCompleted { step, output: value(map, "output", OUTPUT_OMITTED_CHARS) },
                (Some(step), "step_errored") => EventKind::StepErrored { step },
                (Some(step), "attempt_started") => attempt().map_or_else(other, |attempt| EventKind::AttemptStarted { step, attempt }),
                (Some(step), "attempt_completed") => attempt().map_or_else(other, |attempt| EventKind::AttemptCompleted { step, attempt }),
                (Some(step), "attempt_errored") => match (attempt(), error(map)) {
                    (Some(attempt), Some(error)) => {
                        EventKind::AttemptErrored { step, attempt, error, retry_delay_ms: number(map, "retryDelayMs") }
                    }
                    _ => other(),
                },
                (Some(step), "sleep_started") => EventKind::SleepStarted { step, duration_ms: number(map, "durationMs").unwrap_or(0) },
                (Some(step), "sleep_completed") => EventKind::SleepCompleted { step },
                (Some(step), "wait_started") => EventKind::WaitStarted { step, event_type: text(map, "eventType").unwrap_or_default() },
                (Some(step), "wait_completed") => EventKind::WaitCompleted { step },
                (Some(step), "wait_timed_out") => EventKind::WaitTimedOut { step },
                (Some(step), "rollback_step_started") => EventKind::RollbackStepStarted { step, config: config() },
                (Some(step), "rollback_step_completed") => EventKind::RollbackStepCompleted { step },
                (Some(step), "rollback_step_errored") => EventKind::RollbackStepErrored { step, error: error(map) },
                (Some(step), "rollback_attempt_started") => {
                    attempt().map_or_else(other, |attempt| EventKind::RollbackAttemptStarted { step, attempt })
                }
                (Some(step), "rollback_attempt_completed") => {
                    attempt().map_or_else(other, |attempt| EventKind::RollbackAttemptCompleted { step, attempt })
                }
                (Some(step), "rollback_attempt_errored") => match (attempt(), error(map)) {
                    (Some(attempt), Some(error)) => {
                        EventKind::RollbackAttemptErrored { step, attempt, error, retry_delay_ms: number(map, "retryDelayMs") }
                    }
                    _ => other(),
                },
                _ => other(),
            },
        };
        Ok(InstanceEvent { event_id, timestamp, kind })
    }

    /// The event as this API serves it (the SSE `data:`): the engine's field names, plus
    /// `step: {name, count}`; an output not copied is `outputIsStream: true` or
    /// `outputOmittedChars: n`; a sensitive output stays "[REDACTED]".
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), self.kind.type_name().into());
        out.insert("eventId".into(), self.event_id.into());
        out.insert("timestamp".into(), self.timestamp.into());
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_string(), value);
        };
        if let Some(step) = self.kind.step() {
            put("stepName", format!("{}-{}", step.name, step.count).into());
            put("step", serde_json::json!({"name": step.name, "count": step.count}));
        }
        let output = |put: &mut dyn FnMut(&str, Value), key: &str, omitted: &str, value: &Option<StepOutput>| match value {
            None => {}
            Some(StepOutput::Value(v)) => put(key, v.clone()),
            Some(StepOutput::Redacted) => put(key, REDACTED.into()),
            Some(StepOutput::Stream) => put("outputIsStream", true.into()),
            Some(StepOutput::Omitted { chars }) => put(omitted, (*chars).into()),
        };
        match &self.kind {
            EventKind::WorkflowStarted { params } => output(&mut put, "params", "paramsOmittedChars", params),
            EventKind::WorkflowCompleted { output: o } | EventKind::StepCompleted { output: o, .. } => {
                output(&mut put, "output", "outputOmittedChars", o)
            }
            EventKind::WorkflowErrored { error } => put("error", serde_json::json!(error)),
            EventKind::StepStarted { config: Some(c), .. } | EventKind::RollbackStepStarted { config: Some(c), .. } => {
                put("config", c.clone())
            }
            EventKind::AttemptStarted { attempt, .. }
            | EventKind::AttemptCompleted { attempt, .. }
            | EventKind::RollbackAttemptStarted { attempt, .. }
            | EventKind::RollbackAttemptCompleted { attempt, .. } => put("attempt", (*attempt).into()),
            EventKind::AttemptErrored { attempt, error, retry_delay_ms, .. }
            | EventKind::RollbackAttemptErrored { attempt, error, retry_delay_ms, .. } => {
                put("attempt", (*attempt).into());
                put("error", serde_json::json!(error));
                if let Some(ms) = retry_delay_ms {
                    put("retryDelayMs", (*ms).into());
                }
            }
            EventKind::SleepStarted { duration_ms, .. } => put("durationMs", (*duration_ms).into()),
            EventKind::WaitStarted { event_type, .. } => put("eventType", event_type.clone().into()),
            EventKind::RollbackStepErrored { error: Some(error), .. } => put("error", serde_json::json!(error)),
            _ => {}
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> EventKind {
        InstanceEvent::from_json(&v).unwrap().kind
    }

    fn common(t: &str) -> Value {
        json!({"type": t, "instanceId": "i", "eventId": 7, "timestamp": 1_700_000_000_123_u64})
    }

    fn with(t: &str, extra: Value) -> Value {
        let mut v = common(t);
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn step_names_split_into_name_and_count() {
        assert_eq!(StepRef::parse("process-payment-1"), StepRef { name: "process-payment".into(), count: 1 });
        assert_eq!(StepRef::parse("send item 7-3"), StepRef { name: "send item 7".into(), count: 3 });
        assert_eq!(StepRef::parse("odd"), StepRef { name: "odd".into(), count: 1 });
        assert_eq!(StepRef::parse("trailing-"), StepRef { name: "trailing-".into(), count: 1 });
    }

    #[test]
    fn every_engine_event_type_decodes_with_its_fields() {
        let step = StepRef { name: "charge".into(), count: 1 };
        let e = InstanceEvent::from_json(&common("workflow_queued")).unwrap();
        assert_eq!((e.event_id, e.timestamp, e.kind), (7, 1_700_000_000_123, EventKind::WorkflowQueued));
        assert_eq!(
            decode(with("workflow_started", json!({"params": {"a": 1}}))),
            EventKind::WorkflowStarted { params: Some(StepOutput::Value(json!({"a": 1}))) }
        );
        for (t, k) in [
            ("workflow_running", EventKind::WorkflowRunning),
            ("workflow_paused", EventKind::WorkflowPaused),
            ("workflow_waiting_for_pause", EventKind::WorkflowWaitingForPause),
            ("workflow_waiting", EventKind::WorkflowWaiting),
            ("workflow_terminated", EventKind::WorkflowTerminated),
            ("rollback_started", EventKind::RollbackStarted),
            ("rollback_completed", EventKind::RollbackCompleted),
            ("rollback_errored", EventKind::RollbackErrored),
        ] {
            assert_eq!(decode(common(t)), k, "{t}");
            assert_eq!(k.type_name(), t);
        }
        assert_eq!(
            decode(with("workflow_completed", json!({"output": [1]}))),
            EventKind::WorkflowCompleted { output: Some(StepOutput::Value(json!([1]))) }
        );
        let boom = InstanceError { name: "Error".into(), message: "boom".into() };
        assert_eq!(
            decode(with("workflow_errored", json!({"error": {"name": "Error", "message": "boom"}}))),
            EventKind::WorkflowErrored { error: boom.clone() }
        );
        let config = json!({"retries": {"limit": 5, "delay": 2000, "backoff": "exponential"}, "timeout": "30 seconds"});
        assert_eq!(
            decode(with("step_started", json!({"stepName": "charge-1", "config": config}))),
            EventKind::StepStarted { step: step.clone(), config: Some(config.clone()) }
        );
        assert_eq!(
            decode(with("step_completed", json!({"stepName": "charge-1", "output": {"tx": "t"}}))),
            EventKind::StepCompleted { step: step.clone(), output: Some(StepOutput::Value(json!({"tx": "t"}))) }
        );
        assert_eq!(
            decode(with("step_completed", json!({"stepName": "charge-1"}))),
            EventKind::StepCompleted { step: step.clone(), output: None }
        );
        assert_eq!(decode(with("step_errored", json!({"stepName": "charge-1"}))), EventKind::StepErrored { step: step.clone() });
        assert_eq!(
            decode(with("attempt_started", json!({"stepName": "charge-1", "attempt": 2}))),
            EventKind::AttemptStarted { step: step.clone(), attempt: 2 }
        );
        assert_eq!(
            decode(with("attempt_completed", json!({"stepName": "charge-1", "attempt": 3}))),
            EventKind::AttemptCompleted { step: step.clone(), attempt: 3 }
        );
        assert_eq!(
            decode(with(
                "attempt_errored",
                json!({"stepName": "charge-1", "attempt": 1, "error": {"name": "Error", "message": "boom"}, "retryDelayMs": 2000})
            )),
            EventKind::AttemptErrored { step: step.clone(), attempt: 1, error: boom.clone(), retry_delay_ms: Some(2000) }
        );
        assert_eq!(
            decode(with("sleep_started", json!({"stepName": "nap-1", "durationMs": 1000}))),
            EventKind::SleepStarted { step: StepRef { name: "nap".into(), count: 1 }, duration_ms: 1000 }
        );
        assert_eq!(
            decode(with("sleep_completed", json!({"stepName": "nap-1"}))),
            EventKind::SleepCompleted { step: StepRef { name: "nap".into(), count: 1 } }
        );
        let wait = StepRef { name: "approval".into(), count: 1 };
        assert_eq!(
            decode(with("wait_started", json!({"stepName": "approval-1", "eventType": "approval-response"}))),
            EventKind::WaitStarted { step: wait.clone(), event_type: "approval-response".into() }
        );
        assert_eq!(decode(with("wait_completed", json!({"stepName": "approval-1"}))), EventKind::WaitCompleted { step: wait.clone() });
        assert_eq!(decode(with("wait_timed_out", json!({"stepName": "approval-1"}))), EventKind::WaitTimedOut { step: wait });
        assert_eq!(
            decode(with("rollback_step_started", json!({"stepName": "charge-1"}))),
            EventKind::RollbackStepStarted { step: step.clone(), config: None }
        );
        assert_eq!(
            decode(with("rollback_step_completed", json!({"stepName": "charge-1"}))),
            EventKind::RollbackStepCompleted { step: step.clone() }
        );
        // A normal rollback failure carries no error; only a missing rollback function does.
        assert_eq!(
            decode(with("rollback_step_errored", json!({"stepName": "charge-1"}))),
            EventKind::RollbackStepErrored { step: step.clone(), error: None }
        );
        assert_eq!(
            decode(with("rollback_step_errored", json!({"stepName": "charge-1", "error": {"name": "RollbackMissing", "message": "gone"}}))),
            EventKind::RollbackStepErrored {
                step: step.clone(),
                error: Some(InstanceError { name: "RollbackMissing".into(), message: "gone".into() })
            }
        );
        assert_eq!(
            decode(with("rollback_attempt_started", json!({"stepName": "charge-1", "attempt": 1}))),
            EventKind::RollbackAttemptStarted { step: step.clone(), attempt: 1 }
        );
        assert_eq!(
            decode(with("rollback_attempt_completed", json!({"stepName": "charge-1", "attempt": 1}))),
            EventKind::RollbackAttemptCompleted { step: step.clone(), attempt: 1 }
        );
        assert_eq!(
            decode(with(
                "rollback_attempt_errored",
                json!({"stepName": "charge-1", "attempt": 1, "error": {"name": "Error", "message": "boom"}})
            )),
            EventKind::RollbackAttemptErrored { step, attempt: 1, error: boom, retry_delay_ms: None }
        );
    }

    #[test]
    fn every_listed_type_has_its_own_kind() {
        let fields = json!({"stepName": "s-1", "attempt": 1, "error": {"name": "E", "message": "m"}});
        for t in EVENT_TYPES {
            let kind = decode(with(t, fields.clone()));
            assert!(!matches!(kind, EventKind::Other { .. }), "{t}");
            assert_eq!(kind.type_name(), *t);
        }
    }

    #[test]
    fn unknown_types_and_odd_fields_do_not_break_decoding() {
        assert_eq!(decode(with("step_teleported", json!({"stepName": "x-1"}))), EventKind::Other { event_type: "step_teleported".into() });
        assert_eq!(decode(with("attempt_started", json!({"stepName": "x-1"}))), EventKind::Other { event_type: "attempt_started".into() });
        assert_eq!(decode(with("step_started", json!({}))), EventKind::Other { event_type: "step_started".into() });
        let odd = decode(with("workflow_errored", json!({"error": {"name": "Error", "message": 42}})));
        assert!(matches!(odd, EventKind::WorkflowErrored { error } if error.name == "Error"), "a non-string message is tolerated");
        assert!(InstanceEvent::from_json(&json!({"type": "x"})).is_err(), "no eventId");
        assert!(InstanceEvent::from_json(&json!([1])).is_err());
        let long = "m".repeat(MAX_ERROR_MESSAGE_CHARS + 10);
        let cut = decode(with("attempt_errored", json!({"stepName": "a-1", "attempt": 1, "error": {"name": "E", "message": long}})));
        assert!(matches!(cut, EventKind::AttemptErrored { error, .. } if error.message.chars().count() == MAX_ERROR_MESSAGE_CHARS + 1));
    }

    #[test]
    fn outputs_that_were_not_copied_say_so_and_redaction_stays() {
        let stream = decode(with("step_completed", json!({"stepName": "s-1", OUTPUT_IS_STREAM: true})));
        assert_eq!(stream, EventKind::StepCompleted { step: StepRef { name: "s".into(), count: 1 }, output: Some(StepOutput::Stream) });
        let big = decode(with("step_completed", json!({"stepName": "s-1", OUTPUT_OMITTED_CHARS: 5_000_000})));
        assert!(matches!(big, EventKind::StepCompleted { output: Some(StepOutput::Omitted { chars: 5_000_000 }), .. }));
        let secret = InstanceEvent::from_json(&with("step_completed", json!({"stepName": "s-1", "output": REDACTED}))).unwrap();
        assert!(matches!(&secret.kind, EventKind::StepCompleted { output: Some(StepOutput::Redacted), .. }));
        assert_eq!(secret.to_json()["output"], REDACTED);
        let big_params = decode(with("workflow_started", json!({PARAMS_OMITTED_CHARS: 2_000_000})));
        assert_eq!(big_params, EventKind::WorkflowStarted { params: Some(StepOutput::Omitted { chars: 2_000_000 }) });
    }

    #[test]
    fn events_serve_with_the_engines_field_names() {
        let e = InstanceEvent::from_json(&with(
            "attempt_errored",
            json!({"stepName": "process-payment-1", "attempt": 2, "error": {"name": "Error", "message": "503"}, "retryDelayMs": 4000}),
        ))
        .unwrap();
        assert_eq!(
            e.to_json(),
            json!({"type": "attempt_errored", "eventId": 7, "timestamp": 1_700_000_000_123_u64, "stepName": "process-payment-1",
                   "step": {"name": "process-payment", "count": 1}, "attempt": 2, "error": {"name": "Error", "message": "503"}, "retryDelayMs": 4000})
        );
        let stream = InstanceEvent::from_json(&with("step_completed", json!({"stepName": "s-1", OUTPUT_IS_STREAM: true}))).unwrap();
        assert_eq!(stream.to_json()["outputIsStream"], true);
        assert!(stream.to_json().get("output").is_none());
        let other = InstanceEvent::from_json(&common("brand_new")).unwrap();
        assert_eq!(other.to_json(), json!({"type": "brand_new", "eventId": 7, "timestamp": 1_700_000_000_123_u64}));
    }
}
