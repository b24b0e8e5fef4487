//! Child workflows, the pure part: how a child is named, how it knows its parent, how it
//! tells the parent it ended, how long the parent waits and checks, and what the parent
//! gets back when a child does not complete.
//!
//! - **Exactly once.** A child's id is derived ([`child_id`]) from the parent's identity
//!   (workflow, id and creation time: one life of the parent) and the call (its step name,
//!   the step's count and the child's index in a fan-out). Replays, retries and restarts
//!   of the parent derive the same id, and a create of an id that exists never starts a
//!   second run; a new life of the parent's id (deleted, then created again) derives new ones.
//! - **The parent rides in the child's params**, as the callback URL does: an envelope
//!   `{"$parent": {workflow, id}, "$params": params}` ([`wrap`], [`unwrap`]) that the
//!   bridge takes off before the child's workflow sees its typed params.
//! - **Wake-up.** When a child's run ends (complete or errored), the bridge sends the
//!   parent an event of a type derived from the child ([`notice_type`]) with a
//!   [`ChildNotice`]; the parent waits for exactly that type. A terminate through this
//!   crate sends a `terminated` notice too.
//! - **Fallback.** The parent waits in slices ([`ChildOptions::check_every`]); after each
//!   slice without a notice it reads the child's status, so a lost notice costs at most one
//!   slice; at the deadline ([`ChildOptions::deadline`]) it gives up
//!   ([`ChildError::DeadlineExceeded`]), terminating the child unless told not to.

use crate::core::duration::{self, IntoDuration};
use crate::core::engine_error::BindingError;
use crate::core::status::{InstanceError, InstanceState, InstanceStatus};
use crate::core::step_error::StepError;
use crate::core::validate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// An instance of one of this Worker's workflows: its workflow's name and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceRef {
    /// The workflow's name (`data-pipeline`).
    pub workflow: String,
    /// The instance's id.
    pub id: String,
}

impl InstanceRef {
    /// The instance `id` of `workflow`.
    pub fn new(workflow: impl Into<String>, id: impl Into<String>) -> Self {
        InstanceRef { workflow: workflow.into(), id: id.into() }
    }

    /// A reference that could name an instance: a workflow name of 1 to 64 characters and
    /// a valid instance id. What an envelope holds is checked with it before it is trusted.
    pub fn is_well_formed(&self) -> bool {
        !self.workflow.is_empty() && self.workflow.len() <= 64 && validate::instance_id(&self.id).is_ok()
    }
}

impl fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} instance {}", self.workflow, self.id)
    }
}

const PARENT_KEY: &str = "$parent";
const PARAMS_KEY: &str = "$params";

/// The engine payload of a child: its params with its parent beside them.
pub fn wrap(params: Value, parent: &InstanceRef) -> Value {
    json!({ PARENT_KEY: parent, PARAMS_KEY: params })
}

/// Splits an engine payload into the workflow's params and its parent, if it is a child.
/// Anything but an exact envelope with a well-formed parent passes through unchanged.
pub fn unwrap(payload: Value) -> (Value, Option<InstanceRef>) {
    match payload {
        Value::Object(mut map) if map.len() == 2 && map.contains_key(PARAMS_KEY) => {
            let parent = map.get(PARENT_KEY).and_then(|p| serde_json::from_value::<InstanceRef>(p.clone()).ok());
            match parent.filter(InstanceRef::is_well_formed) {
                Some(parent) => (map.remove(PARAMS_KEY).unwrap_or(Value::Null), Some(parent)),
                None => (Value::Object(map), None),
            }
        }
        other => (other, None),
    }
}

/// The most children one call may start and await ([`Step::children`](crate::bridge::Step::children)):
/// the engine's batch create takes 100, and each child costs the parent a wait step.
pub const MAX_CHILDREN: usize = 100;

/// The most status checks one call makes before its deadline: a [`ChildOptions::check_every`]
/// that would make more is raised to `deadline / MAX_CHECKS`, so a call costs a bounded
/// number of steps however long it waits.
pub const MAX_CHECKS: u32 = 48;

/// The most bytes of a child's output a notice carries; a longer output (a workflow's
/// output may be up to 1 MiB) is left out, and the parent reads it from the child's status.
pub const MAX_NOTICE_OUTPUT_BYTES: usize = 1_000_000;

/// `[A-Za-z0-9_-]` of `text`, anything else as `-`, at most `max` characters.
fn id_safe(text: &str, max: usize) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).take(max).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of child `index` (from 0) of the call `step`/`count` of one life of `parent`
/// (created at `parent_created_at_ms`): `{parent id}-{step}-{index}-{hash}`, the readable
/// parts cut to 40 and 24 characters and made id-safe, the hash (16 hex digits of SHA-256
/// over everything) telling apart what the cut parts do not. At most 90 characters.
pub fn child_id(parent: &InstanceRef, parent_created_at_ms: u64, step: &str, count: u32, index: usize) -> String {
    let digest =
        Sha256::digest(format!("child\0{}\0{}\0{parent_created_at_ms}\0{step}\0{count}\0{index}", parent.workflow, parent.id).as_bytes());
    format!("{}-{}-{index}-{}", id_safe(&parent.id, 40), id_safe(step, 24), hex(&digest[..8]))
}

const NOTICE_PREFIX: &str = "child-done-";

/// The event type of `child`'s notice to its parent: `child-done-` and 32 hex digits
/// derived from the child, so each child's wait gets its own child's notice, and anyone
/// who ends the child (its own run, a terminate) can send it.
pub fn notice_type(child: &InstanceRef) -> String {
    let digest = Sha256::digest(format!("notice\0{}\0{}", child.workflow, child.id).as_bytes());
    format!("{NOTICE_PREFIX}{}", hex(&digest[..16]))
}

/// Whether an event type is one of the notices children send their parents: reserved,
/// so the HTTP API refuses to send one (it would fake a child's outcome).
pub fn is_notice_type(event_type: &str) -> bool {
    event_type.starts_with(NOTICE_PREFIX)
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChildEnd {
    /// It completed with an output.
    Complete,
    /// It failed.
    Errored,
    /// It was terminated.
    Terminated,
}

impl ChildEnd {
    /// How an instance in `state` ended; `None` while it has not.
    pub fn of(state: InstanceState) -> Option<ChildEnd> {
        match state {
            InstanceState::Complete => Some(ChildEnd::Complete),
            InstanceState::Errored => Some(ChildEnd::Errored),
            InstanceState::Terminated => Some(ChildEnd::Terminated),
            _ => None,
        }
    }
}

/// What a child tells its parent when it ends: the payload of the [`notice_type`] event,
/// and what the parent's status checks make of the child's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildNotice {
    /// The child.
    pub child: InstanceRef,
    /// How it ended.
    pub status: ChildEnd,
    /// Its output, when it completed (and the output is at most [`MAX_NOTICE_OUTPUT_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error, when it errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// It completed with an output too long to carry: read it from its status.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_omitted: bool,
}

impl ChildNotice {
    /// A completed child's notice, its output (JSON text) carried when short enough.
    pub fn completed(child: InstanceRef, output_json: &str) -> Self {
        let output = (output_json.len() <= MAX_NOTICE_OUTPUT_BYTES).then(|| serde_json::from_str(output_json).ok()).flatten();
        let output_omitted = output.is_none();
        ChildNotice { child, status: ChildEnd::Complete, output, error: None, output_omitted }
    }

    /// An errored child's notice.
    pub fn errored(child: InstanceRef, name: &str, message: &str) -> Self {
        let error = Some(InstanceError { name: name.to_string(), message: message.to_string() });
        ChildNotice { child, status: ChildEnd::Errored, output: None, error, output_omitted: false }
    }

    /// A terminated child's notice.
    pub fn terminated(child: InstanceRef) -> Self {
        ChildNotice { child, status: ChildEnd::Terminated, output: None, error: None, output_omitted: false }
    }

    /// The notice a status says, `None` while the instance has not ended. A complete
    /// status always carries its output (`null` when it has none).
    pub fn from_status(child: InstanceRef, status: &InstanceStatus) -> Option<Self> {
        let end = ChildEnd::of(status.status)?;
        Some(match end {
            ChildEnd::Complete => ChildNotice {
                child,
                status: end,
                output: Some(status.output.clone().unwrap_or(Value::Null)),
                error: None,
                output_omitted: false,
            },
            ChildEnd::Errored => ChildNotice {
                child,
                status: end,
                output: None,
                error: Some(status.error.clone().unwrap_or(InstanceError { name: "Error".into(), message: String::new() })),
                output_omitted: false,
            },
            ChildEnd::Terminated => ChildNotice::terminated(child),
        })
    }

    /// The same notice without its output (what a status check keeps of a completed child
    /// before reading its output in a step of its own).
    pub fn without_output(&self) -> Self {
        let output_omitted = self.status == ChildEnd::Complete;
        ChildNotice { output: None, output_omitted, ..self.clone() }
    }
}

/// How long a parent waits for a child and how often it checks on it. The defaults: a
/// deadline of 24 hours, a status check after every hour without a notice, and a child
/// still running at the deadline is terminated.
#[derive(Debug, Clone)]
pub struct ChildOptions {
    deadline: Result<Duration, String>,
    check_every: Result<Duration, String>,
    terminate_on_deadline: bool,
}

impl Default for ChildOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The default [`ChildOptions::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);
/// The default [`ChildOptions::check_every`].
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(60 * 60);
/// The shortest [`ChildOptions::check_every`].
pub const MIN_CHECK_EVERY: Duration = Duration::from_secs(1);

impl ChildOptions {
    /// The defaults: 24 hours, a check every hour, terminate at the deadline.
    pub fn new() -> Self {
        ChildOptions { deadline: Ok(DEFAULT_DEADLINE), check_every: Ok(DEFAULT_CHECK_EVERY), terminate_on_deadline: true }
    }

    /// How long the parent waits for its children in all (`"2 hours"`, a `Duration`,
    /// milliseconds; more than zero, at most 365 days). A child that has not ended by
    /// then is [`ChildError::DeadlineExceeded`].
    pub fn deadline(mut self, deadline: impl IntoDuration) -> Self {
        self.deadline = deadline.into_duration().map_err(|e| e.to_string());
        self
    }

    /// How long the parent waits for a notice before it reads the children's status
    /// (at least 1 second; raised so that one call makes at most [`MAX_CHECKS`] checks):
    /// the longest a lost notice delays the parent.
    pub fn check_every(mut self, every: impl IntoDuration) -> Self {
        self.check_every = every.into_duration().map_err(|e| e.to_string());
        self
    }

    /// Leaves a child that has not ended by the deadline running (by default it is
    /// terminated, with its own children, so nothing is left orphaned).
    pub fn keep_running_after_deadline(mut self) -> Self {
        self.terminate_on_deadline = false;
        self
    }

    /// Whether a child still running at the deadline is terminated.
    pub fn terminates_on_deadline(&self) -> bool {
        self.terminate_on_deadline
    }

    /// The deadline, checked.
    pub fn checked_deadline(&self) -> Result<Duration, StepError> {
        let deadline = self.deadline.clone().map_err(|e| StepError::Invalid(format!("child deadline: {e}")))?;
        if deadline.is_zero() {
            return Err(StepError::Invalid("child deadline: it must be more than zero".into()));
        }
        duration::within_sleep_limit(deadline).map_err(|e| StepError::Invalid(format!("child deadline: {e}")))
    }

    /// The waits before each status check, in order: slices of [`check_every`](Self::check_every)
    /// (raised as it says) summing to the deadline, the last one shorter when they do not divide.
    pub fn slices(&self) -> Result<Vec<Duration>, StepError> {
        let deadline = self.checked_deadline()?;
        let every = self.check_every.clone().map_err(|e| StepError::Invalid(format!("child check interval: {e}")))?;
        let total = duration::as_millis(deadline);
        let floor = total.div_ceil(u64::from(MAX_CHECKS)).max(duration::as_millis(MIN_CHECK_EVERY));
        let every = duration::as_millis(every).max(floor).min(total);
        let mut slices = Vec::new();
        let mut left = total;
        while left > 0 {
            let slice = every.min(left);
            slices.push(Duration::from_millis(slice));
            left -= slice;
        }
        Ok(slices)
    }
}

/// Which child of a call: its instance, and its place among the call's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    /// The child instance.
    pub instance: InstanceRef,
    /// Its index among the call's children (0 for a single child).
    pub index: usize,
    /// How many children the call started.
    pub of: usize,
}

impl fmt::Display for ChildRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.of > 1 {
            write!(f, "child {} of {} ({})", self.index, self.of, self.instance)
        } else {
            write!(f, "child {}", self.instance)
        }
    }
}

/// Why a child did not give its parent an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChildError {
    /// The child errored.
    #[error("{child} errored: {}: {}", error.name, error.message)]
    Failed {
        /// Which child.
        child: ChildRef,
        /// Its error, as its status shows it.
        error: InstanceError,
    },
    /// The child was terminated.
    #[error("{child} was terminated")]
    Terminated {
        /// Which child.
        child: ChildRef,
    },
    /// The child had not ended by the deadline (it was terminated, unless the options
    /// said to keep it running).
    #[error("{child} had not ended after {}", humantime::format_duration(*deadline))]
    DeadlineExceeded {
        /// Which child.
        child: ChildRef,
        /// The deadline.
        deadline: Duration,
    },
    /// The child completed, but its output does not read as its workflow's output type.
    #[error("{child} completed with an output that does not read as its workflow's output: {detail}")]
    OutputMismatch {
        /// Which child.
        child: ChildRef,
        /// What does not fit.
        detail: String,
    },
    /// The steps of the call failed (a child could not be started, a check could not be
    /// made), or the engine stopped the run (a pause, a terminate): not the child's outcome.
    #[error(transparent)]
    Step(#[from] StepError),
}

impl ChildError {
    /// The child it is about, when it is about one.
    pub fn child(&self) -> Option<&ChildRef> {
        match self {
            ChildError::Failed { child, .. }
            | ChildError::Terminated { child }
            | ChildError::DeadlineExceeded { child, .. }
            | ChildError::OutputMismatch { child, .. } => Some(child),
            ChildError::Step(_) => None,
        }
    }
}

/// A child's failure fails the parent's run with a message naming the child (no retry of
/// the parent's run would change how the child ended); a step error stays what it was, so
/// an engine abort reaches the engine unchanged.
impl From<ChildError> for StepError {
    fn from(error: ChildError) -> Self {
        match error {
            ChildError::Step(e) => e,
            other => StepError::NonRetryable(other.to_string()),
        }
    }
}

/// An error of the Workflow binding, inside a workflow: the engine's own errors may pass on
/// a retry; everything else (a missing instance, a state, a name, a bad value) would not.
impl From<BindingError> for StepError {
    fn from(error: BindingError) -> Self {
        match error {
            BindingError::Engine { .. } => StepError::Failed(error.to_string()),
            other => StepError::NonRetryable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> InstanceRef {
        InstanceRef::new("data-pipeline", "pipe-1")
    }

    #[test]
    fn child_ids_are_stable_per_parent_life_and_call_and_valid() {
        let a = child_id(&parent(), 1_000, "process chunks", 1, 3);
        assert_eq!(a, child_id(&parent(), 1_000, "process chunks", 1, 3), "a replay derives the same id");
        assert!(a.starts_with("pipe-1-process-chunks-3-"), "{a}");
        validate::instance_id(&a).unwrap();
        // Any part changed: another child.
        for other in [
            child_id(&parent(), 1_001, "process chunks", 1, 3),
            child_id(&parent(), 1_000, "process chunks!", 1, 3),
            child_id(&parent(), 1_000, "process chunks", 2, 3),
            child_id(&parent(), 1_000, "process chunks", 1, 4),
            child_id(&InstanceRef::new("other", "pipe-1"), 1_000, "process chunks", 1, 3),
        ] {
            assert_ne!(a, other);
        }
        // Long and odd names still give a valid id of bounded length.
        let long = child_id(&InstanceRef::new("w", "p".repeat(100)), 0, &"ü/ ".repeat(100), u32::MAX, MAX_CHILDREN - 1);
        validate::instance_id(&long).unwrap();
        assert!(long.len() <= 90, "{}", long.len());
    }

    #[test]
    fn notice_types_are_per_child_valid_and_reserved() {
        let t = notice_type(&InstanceRef::new("data-chunk", "c-1"));
        validate::event_type(&t).unwrap();
        assert!(is_notice_type(&t));
        assert_ne!(t, notice_type(&InstanceRef::new("data-chunk", "c-2")));
        assert_ne!(t, notice_type(&InstanceRef::new("other", "c-1")));
        assert!(!is_notice_type("approval-response"));
    }

    #[test]
    fn the_envelope_carries_the_parent_and_only_a_well_formed_one() {
        let params = json!({"key": "chunks/p/0.json"});
        assert_eq!(unwrap(wrap(params.clone(), &parent())), (params.clone(), Some(parent())));
        assert_eq!(unwrap(params.clone()), (params.clone(), None));
        for odd in [
            json!({"$parent": {"workflow": "w", "id": "bad id"}, "$params": 1}),
            json!({"$parent": "w/i", "$params": 1}),
            json!({"$parent": {"workflow": "", "id": "i"}, "$params": 1}),
            json!({"$parent": {"workflow": "w", "id": "i"}, "$params": 1, "x": 2}),
            json!({"$callback": "https://h/x", "$params": 1}),
        ] {
            assert_eq!(unwrap(odd.clone()), (odd, None));
        }
    }

    #[test]
    fn notices_from_statuses_and_outputs() {
        let child = InstanceRef::new("c", "c-1");
        let done = InstanceStatus { status: InstanceState::Complete, error: None, output: Some(json!({"n": 1})) };
        let notice = ChildNotice::from_status(child.clone(), &done).unwrap();
        assert_eq!((notice.status, notice.output.clone()), (ChildEnd::Complete, Some(json!({"n": 1}))));
        assert_eq!(notice.without_output(), ChildNotice { output: None, output_omitted: true, ..notice });
        let running = InstanceStatus { status: InstanceState::Waiting, error: None, output: None };
        assert_eq!(ChildNotice::from_status(child.clone(), &running), None);
        let failed = InstanceStatus {
            status: InstanceState::Errored,
            error: Some(InstanceError { name: "NonRetryableError".into(), message: "bad".into() }),
            output: None,
        };
        assert_eq!(
            ChildNotice::from_status(child.clone(), &failed).unwrap(),
            ChildNotice::errored(child.clone(), "NonRetryableError", "bad")
        );
        let long = format!("\"{}\"", "x".repeat(MAX_NOTICE_OUTPUT_BYTES));
        let omitted = ChildNotice::completed(child.clone(), &long);
        assert!(omitted.output_omitted && omitted.output.is_none());
        let text = serde_json::to_value(ChildNotice::completed(child.clone(), "[1,2]")).unwrap();
        assert_eq!(text, json!({"child": {"workflow": "c", "id": "c-1"}, "status": "complete", "output": [1, 2]}));
        let back: ChildNotice = serde_json::from_value(json!({"child": {"workflow": "c", "id": "c-1"}, "status": "terminated"})).unwrap();
        assert_eq!(back, ChildNotice::terminated(child));
    }

    #[test]
    fn waits_are_sliced_to_the_deadline_with_a_bounded_number_of_checks() {
        let slices = |o: ChildOptions| o.slices().unwrap().iter().map(|d| d.as_secs()).collect::<Vec<_>>();
        assert_eq!(slices(ChildOptions::new().deadline("10 minutes").check_every("3 minutes")), [180, 180, 180, 60]);
        assert_eq!(slices(ChildOptions::new().deadline("1 minute").check_every("1 hour")), [60]);
        assert_eq!(ChildOptions::new().slices().unwrap().len(), 24);
        // A check every second for a day would be 86,400 checks: raised to 48.
        let raised = ChildOptions::new().deadline("1 day").check_every("1 second").slices().unwrap();
        assert_eq!(raised.len(), MAX_CHECKS as usize);
        assert_eq!(raised.iter().sum::<Duration>(), Duration::from_secs(86_400));
        assert_eq!(slices(ChildOptions::new().deadline("3 seconds").check_every(0_u64)), [1, 1, 1]);
        for bad in
            [ChildOptions::new().deadline(0_u64), ChildOptions::new().deadline("5 fortnights"), ChildOptions::new().deadline("400 days")]
        {
            assert!(matches!(bad.slices(), Err(StepError::Invalid(m)) if m.starts_with("child deadline")), "{bad:?}");
        }
        assert!(matches!(ChildOptions::new().check_every("soon").slices(), Err(StepError::Invalid(_))));
    }

    #[test]
    fn a_childs_failure_names_the_child_and_a_step_error_passes_through() {
        let child = ChildRef { instance: InstanceRef::new("data-chunk", "c-1"), index: 1, of: 5 };
        let failed =
            ChildError::Failed { child: child.clone(), error: InstanceError { name: "NonRetryableError".into(), message: "gate".into() } };
        assert_eq!(failed.to_string(), "child 1 of 5 (data-chunk instance c-1) errored: NonRetryableError: gate");
        assert_eq!(StepError::from(failed.clone()), StepError::NonRetryable(failed.to_string()));
        assert_eq!(failed.child(), Some(&child));
        let single = ChildRef { of: 1, index: 0, ..child };
        assert_eq!(ChildError::Terminated { child: single.clone() }.to_string(), "child data-chunk instance c-1 was terminated");
        let late = ChildError::DeadlineExceeded { child: single, deadline: Duration::from_secs(3600) };
        assert_eq!(late.to_string(), "child data-chunk instance c-1 had not ended after 1h");
        let abort = StepError::Failed("Aborting engine: User called pause".into());
        assert_eq!(StepError::from(ChildError::Step(abort.clone())), abort);
        assert!(matches!(StepError::from(BindingError::NotFound("x".into())), StepError::NonRetryable(_)));
        assert!(matches!(StepError::from(BindingError::Engine { name: "Error".into(), message: "lost".into() }), StepError::Failed(_)));
    }
}
