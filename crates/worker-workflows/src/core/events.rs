//! The events a workflow waits for, declared once with their payload types: the wait
//! reads its event type from the payload type ([`Event::TYPE`]), and
//! `POST …/events/{type}` checks a payload against the declaration before the engine
//! gets it, so a malformed payload is a 400 rather than the end of a waiting instance.

use crate::core::validate::{typed_params, ParamsMismatch};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::any::TypeId;

/// An event's payload type, with the event type it is sent as.
///
/// ```
/// # use worker_workflows::core::events::Event;
/// #[derive(serde::Deserialize)]
/// struct ApprovalResponse { approved: bool }
/// impl Event for ApprovalResponse {
///     const TYPE: &'static str = "approval-response";
/// }
/// ```
pub trait Event: DeserializeOwned + 'static {
    /// The event type: `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`, at most 100 characters.
    const TYPE: &'static str;
}

/// One event a workflow waits for: its type (or any type) and its payload type.
#[derive(Clone, Copy)]
pub struct EventSpec {
    /// `None`: events of any type, for a workflow whose params name the types it waits for.
    pub event_type: Option<&'static str>,
    check: fn(&Value) -> Result<(), ParamsMismatch>,
    payload_type: fn() -> TypeId,
}

impl std::fmt::Debug for EventSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpec").field("event_type", &self.event_type).finish_non_exhaustive()
    }
}

fn check_payload<T: DeserializeOwned>(payload: &Value) -> Result<(), ParamsMismatch> {
    typed_params::<T>(payload).map(drop)
}

impl EventSpec {
    /// Events of `E::TYPE` with payloads of type `E`.
    pub const fn of<E: Event>() -> Self {
        EventSpec { event_type: Some(E::TYPE), check: check_payload::<E>, payload_type: TypeId::of::<E> }
    }

    /// Events of any type with payloads of type `T`.
    pub const fn any_type<T: DeserializeOwned + 'static>() -> Self {
        EventSpec { event_type: None, check: check_payload::<T>, payload_type: TypeId::of::<T> }
    }

    fn matches_type(&self, event_type: &str) -> bool {
        self.event_type.is_none_or(|t| t == event_type)
    }
}

/// Why an event cannot go to an instance of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventProblem {
    /// The workflow declares no event of this type.
    #[error("this workflow waits for no event of type {event_type:?}; it waits for {expected}")]
    UnknownType {
        /// The type given.
        event_type: String,
        /// The declared types, quoted and comma-separated, or `no events`.
        expected: String,
    },
    /// The payload does not read as the declared payload type.
    #[error("the {event_type} event's payload does not fit: {detail}")]
    InvalidPayload {
        /// The type given.
        event_type: String,
        /// What does not fit, naming the field.
        detail: String,
    },
}

/// The declared types, for messages: `"a", "b"` or `no events`.
fn expected(specs: &[EventSpec]) -> String {
    let types: Vec<String> = specs.iter().filter_map(|s| s.event_type).map(|t| format!("{t:?}")).collect();
    if types.is_empty() {
        "no events".into()
    } else {
        types.join(", ")
    }
}

/// Checks an event against a workflow's declared events: its type must be declared, and
/// its payload must read as the declared payload type (the message names the field).
pub fn check(specs: &[EventSpec], event_type: &str, payload: &Value) -> Result<(), EventProblem> {
    let spec = specs
        .iter()
        .find(|s| s.matches_type(event_type))
        .ok_or_else(|| EventProblem::UnknownType { event_type: event_type.into(), expected: expected(specs) })?;
    (spec.check)(payload).map_err(|e| EventProblem::InvalidPayload { event_type: event_type.into(), detail: e.0 })
}

/// Whether a wait for `event_type` with payloads of type `T` is declared: what the step
/// checks before it waits, so a wait that the HTTP check does not know of fails at once
/// (in `cargo test` too) instead of letting malformed payloads through.
pub fn declares<T: 'static>(specs: &[EventSpec], event_type: &str) -> Result<(), String> {
    match specs.iter().find(|s| s.matches_type(event_type)) {
        Some(spec) if (spec.payload_type)() == TypeId::of::<T>() => Ok(()),
        Some(_) => Err(format!(
            "the wait for {event_type:?} events reads a payload type other than the one its workflow declares in Workflow::EVENTS"
        )),
        None => Err(format!(
            "the workflow waits for {event_type:?} events but does not declare them: add EventSpec::of::<Payload>() to its Workflow::EVENTS"
        )),
    }
}

/// Whether `specs` declare events of `event_type` (or of any type): what a typed send
/// checks at compile time (`const { assert!(declares_type(W::EVENTS, E::TYPE)) }`), so a
/// workflow's handle refuses to compile a send of an event its workflow does not wait for.
pub const fn declares_type(specs: &[EventSpec], event_type: &str) -> bool {
    let mut i = 0;
    while i < specs.len() {
        match specs[i].event_type {
            None => return true,
            Some(declared) => {
                if const_str_eq(declared, event_type) {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Decision {
        approved: bool,
        by: Option<String>,
    }
    impl Event for Decision {
        const TYPE: &'static str = "decision";
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Note {
        text: String,
    }
    impl Event for Note {
        const TYPE: &'static str = "note";
    }

    const SPECS: &[EventSpec] = &[EventSpec::of::<Decision>(), EventSpec::of::<Note>()];

    #[test]
    fn a_declared_event_with_a_fitting_payload_passes() {
        assert_eq!(check(SPECS, "decision", &json!({"approved": true})), Ok(()));
        assert_eq!(check(SPECS, "decision", &json!({"approved": false, "by": "ann"})), Ok(()));
        assert_eq!(check(SPECS, "note", &json!({"text": "hi"})), Ok(()));
    }

    #[test]
    fn a_payload_that_does_not_fit_names_the_field() {
        let Err(EventProblem::InvalidPayload { event_type, detail }) = check(SPECS, "decision", &json!({"approved": "yes"})) else {
            panic!("a string for a bool must be refused")
        };
        assert_eq!(event_type, "decision");
        assert!(detail.starts_with("approved: invalid type: string \"yes\", expected a boolean"), "{detail}");
        let Err(problem) = check(SPECS, "decision", &json!({})) else { panic!() };
        assert!(problem.to_string().contains("missing field `approved`"), "{problem}");
        let Err(problem) = check(SPECS, "decision", &json!(null)) else { panic!() };
        assert!(matches!(problem, EventProblem::InvalidPayload { .. }), "{problem}");
        let Err(problem) = check(SPECS, "decision", &json!({"approved": true, "extra": 1})) else { panic!() };
        assert!(problem.to_string().contains("unknown field `extra`"), "{problem}");
    }

    #[test]
    fn an_undeclared_type_is_refused_naming_the_declared_ones() {
        let problem = check(SPECS, "approval", &json!({})).unwrap_err();
        assert_eq!(problem, EventProblem::UnknownType { event_type: "approval".into(), expected: "\"decision\", \"note\"".into() });
        assert!(matches!(check(&[], "x", &json!(1)), Err(EventProblem::UnknownType { expected, .. }) if expected == "no events"));
    }

    #[test]
    fn any_type_takes_every_type_with_its_payload_type() {
        let any: &[EventSpec] = &[EventSpec::any_type::<Value>()];
        assert_eq!(check(any, "whatever", &json!({"a": [1]})), Ok(()));
        assert_eq!(declares::<Value>(any, "whatever"), Ok(()));
        assert!(declares::<Decision>(any, "whatever").is_err());
    }

    #[test]
    fn a_wait_must_be_declared_with_its_payload_type() {
        assert_eq!(declares::<Decision>(SPECS, "decision"), Ok(()));
        assert!(declares::<Decision>(SPECS, "other").unwrap_err().contains("does not declare"));
        assert!(declares::<Note>(SPECS, "decision").unwrap_err().contains("payload type other than"));
    }

    #[test]
    fn declared_types_are_known_in_const_context() {
        const { assert!(declares_type(SPECS, "note") && !declares_type(SPECS, "notes")) };
        assert!(!declares_type(SPECS, "decisio") && !declares_type(&[], "note"));
        assert!(declares_type(&[EventSpec::any_type::<Value>()], "anything"));
    }
}
