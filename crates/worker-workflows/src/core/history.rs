//! An instance's step history, folded from its events: one entry per step in the order
//! the steps started, with its kind, status, attempts, times and error. Outputs are not
//! part of it (so a sensitive step's output cannot appear), and it holds at most
//! [`MAX_STEPS`] steps, so an instance's history is bounded in memory however long it ran.

use crate::core::instance_events::{EventKind, InstanceEvent, StepRef};
use crate::core::status::{InstanceError, InstanceState};
use serde::Serialize;
use std::collections::HashMap;

/// The most steps a history holds; later steps are counted in `omittedSteps`.
pub const MAX_STEPS: usize = 1000;

/// The kind of a step in a [`StepHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HistoryStepKind {
    /// `step.do` (`step.run` in Rust).
    Do,
    /// `step.sleep` or `step.sleep_until`.
    Sleep,
    /// `step.wait_for_event`.
    WaitForEvent,
    /// The compensation of the step of that name, run by the engine.
    Rollback,
}

/// Where a step in a [`StepHistory`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Started and not ended (retrying, sleeping, waiting).
    Running,
    /// Ended well: completed, slept, received its event, rolled back.
    Complete,
    /// Failed after its last attempt.
    Errored,
    /// A `wait_for_event` whose timeout passed.
    TimedOut,
}

/// One step of an instance's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepHistory {
    /// The step's name.
    pub name: String,
    /// The n-th step of this name and kind in the run, from 1 (what `restart` takes).
    pub count: u32,
    /// Its kind (`type` in JSON).
    #[serde(rename = "type")]
    pub kind: HistoryStepKind,
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts made so far (`do` and rollback steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Unix milliseconds.
    pub started_at: i64,
    /// When it ended, in Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// The last failed attempt's error, while the step retries or once it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// How long a sleep sleeps, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The event type a wait waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}

/// The fold: feed it events in order with [`History::apply`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The instance's status as its events tell it (absent before any workflow event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceState>,
    /// The instance's error, once it errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// Its steps, in the order they started; at most [`MAX_STEPS`].
    pub steps: Vec<StepHistory>,
    /// Steps that started past [`MAX_STEPS`], not listed.
    pub omitted_steps: u64,
    /// The last event folded in: resume after it (`Last-Event-ID` on the SSE stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<u64>,
    #[serde(skip)]
    index: HashMap<(HistoryStepKind, StepRef), usize>,
}

impl History {
    /// An empty history, before any event.
    pub fn new() -> Self {
        Self::default()
    }

    /// The step's entry, made when it is new and there is room. `starts`: this event
    /// starts the step (only those count a step that found no room).
    fn entry(&mut self, kind: HistoryStepKind, step: &StepRef, at: i64, starts: bool) -> Option<&mut StepHistory> {
        let key = (kind, step.clone());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None if self.steps.len() < MAX_STEPS => {
                self.steps.push(StepHistory {
                    name: step.name.clone(),
                    count: step.count,
                    kind,
                    status: StepStatus::Running,
                    attempts: matches!(kind, HistoryStepKind::Do | HistoryStepKind::Rollback).then_some(0),
                    started_at: at,
                    ended_at: None,
                    error: None,
                    duration_ms: None,
                    event_type: None,
                });
                self.index.insert(key, self.steps.len() - 1);
                self.steps.len() - 1
            }
            None => {
                if starts {
                    self.omitted_steps += 1;
                }
                return None;
            }
        };
        self.steps.get_mut(i)
    }

    fn attempt(&mut self, kind: HistoryStepKind, step: &StepRef, at: i64, attempt: u32) -> Option<&mut StepHistory> {
        let entry = self.entry(kind, step, at, false)?;
        entry.attempts = Some(entry.attempts.unwrap_or(0).max(attempt));
        Some(entry)
    }

    fn end(&mut self, kind: HistoryStepKind, step: &StepRef, at: i64, status: StepStatus) {
        if let Some(entry) = self.entry(kind, step, at, false) {
            entry.status = status;
            entry.ended_at = Some(at);
            if status == StepStatus::Complete {
                entry.error = None;
            }
        }
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &InstanceEvent) {
        use HistoryStepKind::{Do, Rollback, Sleep, WaitForEvent};
        self.last_event_id = Some(event.event_id);
        let at = event.timestamp;
        match &event.kind {
            EventKind::WorkflowQueued => self.status = Some(InstanceState::Queued),
            EventKind::WorkflowStarted { .. } | EventKind::WorkflowRunning => self.status = Some(InstanceState::Running),
            EventKind::WorkflowPaused => self.status = Some(InstanceState::Paused),
            EventKind::WorkflowWaitingForPause => self.status = Some(InstanceState::WaitingForPause),
            EventKind::WorkflowWaiting => self.status = Some(InstanceState::Waiting),
            EventKind::WorkflowCompleted { .. } => self.status = Some(InstanceState::Complete),
            EventKind::WorkflowErrored { error } => {
                self.status = Some(InstanceState::Errored);
                self.error = Some(error.clone());
            }
            EventKind::WorkflowTerminated => self.status = Some(InstanceState::Terminated),
            EventKind::RollbackStarted => self.status = Some(InstanceState::RollingBack),
            EventKind::StepStarted { step, .. } => {
                self.entry(Do, step, at, true);
            }
            EventKind::AttemptStarted { step, attempt } | EventKind::AttemptCompleted { step, attempt } => {
                self.attempt(Do, step, at, *attempt);
            }
            EventKind::AttemptErrored { step, attempt, error, .. } => {
                if let Some(entry) = self.attempt(Do, step, at, *attempt) {
                    entry.error = Some(error.clone());
                }
            }
            EventKind::StepCompleted { step, .. } => self.end(Do, step, at, StepStatus::Complete),
            EventKind::StepErrored { step } => self.end(Do, step, at, StepStatus::Errored),
            EventKind::SleepStarted { step, duration_ms } => {
                if let Some(entry) = self.entry(Sleep, step, at, true) {
                    entry.duration_ms = Some(*duration_ms);
                }
            }
            EventKind::SleepCompleted { step } => self.end(Sleep, step, at, StepStatus::Complete),
            EventKind::WaitStarted { step, event_type } => {
                if let Some(entry) = self.entry(WaitForEvent, step, at, true) {
                    entry.event_type = Some(event_type.clone());
                }
            }
            EventKind::WaitCompleted { step } => self.end(WaitForEvent, step, at, StepStatus::Complete),
            EventKind::WaitTimedOut { step } => self.end(WaitForEvent, step, at, StepStatus::TimedOut),
            EventKind::RollbackStepStarted { step, .. } => {
                self.entry(Rollback, step, at, true);
            }
            EventKind::RollbackAttemptStarted { step, attempt } | EventKind::RollbackAttemptCompleted { step, attempt } => {
                self.attempt(Rollback, step, at, *attempt);
            }
            EventKind::RollbackAttemptErrored { step, attempt, error, .. } => {
                if let Some(entry) = self.attempt(Rollback, step, at, *attempt) {
                    entry.error = Some(error.clone());
                }
            }
            EventKind::RollbackStepCompleted { step } => self.end(Rollback, step, at, StepStatus::Complete),
            EventKind::RollbackStepErrored { step, error } => {
                self.end(Rollback, step, at, StepStatus::Errored);
                if let (Some(error), Some(&i)) = (error, self.index.get(&(Rollback, step.clone()))) {
                    if let Some(entry) = self.steps.get_mut(i) {
                        entry.error = Some(error.clone());
                    }
                }
            }
            EventKind::RollbackCompleted | EventKind::RollbackErrored | EventKind::Other { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::instance_events::StepOutput;
    use serde_json::json;

    fn step(name: &str) -> StepRef {
        StepRef { name: name.into(), count: 1 }
    }

    fn fold(kinds: Vec<EventKind>) -> History {
        let mut h = History::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            h.apply(&InstanceEvent { event_id: i as u64 + 1, timestamp: 1000 + i as i64, kind });
        }
        h
    }

    fn err(message: &str) -> InstanceError {
        InstanceError { name: "Error".into(), message: message.into() }
    }

    #[test]
    fn a_flaky_payment_shows_three_attempts_and_steps_keep_their_order() {
        use EventKind::*;
        let pay = step("process-payment");
        let mut events = vec![WorkflowQueued, WorkflowStarted { params: None }, WorkflowRunning];
        events.extend([
            StepStarted { step: step("validate-inventory"), config: None },
            AttemptStarted { step: step("validate-inventory"), attempt: 1 },
            AttemptCompleted { step: step("validate-inventory"), attempt: 1 },
            StepCompleted { step: step("validate-inventory"), output: Some(StepOutput::Value(json!(true))) },
            StepStarted { step: pay.clone(), config: None },
        ]);
        for attempt in 1..=2 {
            events.push(AttemptStarted { step: pay.clone(), attempt });
            events.push(AttemptErrored { step: pay.clone(), attempt, error: err("503"), retry_delay_ms: Some(2000) });
        }
        events.extend([
            AttemptStarted { step: pay.clone(), attempt: 3 },
            AttemptCompleted { step: pay.clone(), attempt: 3 },
            StepCompleted { step: pay.clone(), output: Some(StepOutput::Redacted) },
            SleepStarted { step: step("wait-before-fulfillment"), duration_ms: 1000 },
            SleepCompleted { step: step("wait-before-fulfillment") },
            WorkflowCompleted { output: None },
        ]);
        let h = fold(events);
        assert_eq!(h.status, Some(InstanceState::Complete));
        let names: Vec<_> = h.steps.iter().map(|s| (s.name.as_str(), s.kind, s.status, s.attempts)).collect();
        assert_eq!(
            names,
            [
                ("validate-inventory", HistoryStepKind::Do, StepStatus::Complete, Some(1)),
                ("process-payment", HistoryStepKind::Do, StepStatus::Complete, Some(3)),
                ("wait-before-fulfillment", HistoryStepKind::Sleep, StepStatus::Complete, None),
            ]
        );
        assert_eq!(h.steps[1].error, None, "a step that succeeded in the end reports no error");
        assert_eq!((h.steps[1].started_at, h.steps[1].ended_at), (1007, Some(1014)));
        assert_eq!(h.steps[2].duration_ms, Some(1000));
        assert_eq!(h.last_event_id, Some(18));
        let served = serde_json::to_string(&h).unwrap();
        assert!(!served.contains("REDACTED") && !served.contains("output"), "no outputs in a history: {served}");
    }

    #[test]
    fn failures_waits_timeouts_and_rollbacks() {
        use EventKind::*;
        let h = fold(vec![
            WorkflowRunning,
            WaitStarted { step: step("approval"), event_type: "approval-response".into() },
            WaitTimedOut { step: step("approval") },
            StepStarted { step: step("ship"), config: None },
            AttemptStarted { step: step("ship"), attempt: 1 },
            AttemptErrored { step: step("ship"), attempt: 1, error: err("refused"), retry_delay_ms: None },
            StepErrored { step: step("ship") },
            RollbackStarted,
            RollbackStepStarted { step: step("charge"), config: None },
            RollbackAttemptStarted { step: step("charge"), attempt: 1 },
            RollbackAttemptErrored { step: step("charge"), attempt: 1, error: err("refund down"), retry_delay_ms: Some(1000) },
            RollbackAttemptStarted { step: step("charge"), attempt: 2 },
            RollbackAttemptCompleted { step: step("charge"), attempt: 2 },
            RollbackStepCompleted { step: step("charge") },
            RollbackCompleted,
            WorkflowErrored { error: err("refused") },
        ]);
        let s = |i: usize| (h.steps[i].kind, h.steps[i].status, h.steps[i].attempts);
        assert_eq!(s(0), (HistoryStepKind::WaitForEvent, StepStatus::TimedOut, None));
        assert_eq!(h.steps[0].event_type.as_deref(), Some("approval-response"));
        assert_eq!(s(1), (HistoryStepKind::Do, StepStatus::Errored, Some(1)));
        assert_eq!(h.steps[1].error, Some(err("refused")));
        assert_eq!(s(2), (HistoryStepKind::Rollback, StepStatus::Complete, Some(2)));
        assert_eq!((h.status, h.error), (Some(InstanceState::Errored), Some(err("refused"))));
    }

    #[test]
    fn steps_of_one_name_are_told_apart_by_count_and_kind() {
        use EventKind::*;
        let second = StepRef { name: "send".into(), count: 2 };
        let h = fold(vec![
            StepStarted { step: step("send"), config: None },
            StepStarted { step: second.clone(), config: None },
            AttemptStarted { step: second, attempt: 4 },
            SleepStarted { step: step("send"), duration_ms: 5 },
        ]);
        assert_eq!(h.steps.len(), 3);
        assert_eq!((h.steps[0].attempts, h.steps[1].attempts, h.steps[1].count), (Some(0), Some(4), 2));
        assert_eq!(h.steps[2].kind, HistoryStepKind::Sleep);
    }

    #[test]
    fn a_history_is_bounded() {
        let mut h = History::new();
        for i in 0..(MAX_STEPS as u64 + 5) {
            let s = StepRef { name: format!("s{i}"), count: 1 };
            h.apply(&InstanceEvent { event_id: 2 * i, timestamp: 0, kind: EventKind::StepStarted { step: s.clone(), config: None } });
            h.apply(&InstanceEvent { event_id: 2 * i + 1, timestamp: 0, kind: EventKind::AttemptStarted { step: s, attempt: 1 } });
        }
        assert_eq!((h.steps.len(), h.omitted_steps), (MAX_STEPS, 5));
        assert_eq!(serde_json::to_value(&h).unwrap()["omittedSteps"], 5);
    }
}
