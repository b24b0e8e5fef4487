//! What managing an instance takes beyond its id, typed and checked, in the engine's
//! wire shape: the step a restart starts from (`restart({from})`) and terminate's
//! rollback (`terminate({rollback})`).

use crate::core::validate;
use serde::{Deserialize, Serialize};

/// The kind of step, as the engine names it in `restart({from: {type}})` and in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// `step.do` (`step.run` in Rust).
    Do,
    Sleep,
    WaitForEvent,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Do => "do",
            StepKind::Sleep => "sleep",
            StepKind::WaitForEvent => "waitForEvent",
        }
    }
}

/// Where `Instance::restart_from` starts again: the `count`-th step named `name` of
/// kind `kind` (the engine's defaults: the first, a `step.do`). Steps before it keep
/// their cached results; it and every step after it run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartFrom {
    pub name: String,
    /// 1 for the first step of that name (the engine's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartFromError {
    #[error(transparent)]
    Name(#[from] validate::NameError),
    #[error("from.count counts steps of one name from 1, so it cannot be 0")]
    ZeroCount,
}

impl RestartFrom {
    /// The first `step.run` (`step.do`) named `name`.
    pub fn step(name: impl Into<String>) -> Self {
        RestartFrom { name: name.into(), count: None, kind: None }
    }

    /// The first `step.sleep` named `name`.
    pub fn sleep(name: impl Into<String>) -> Self {
        RestartFrom { kind: Some(StepKind::Sleep), ..RestartFrom::step(name) }
    }

    /// The first `step.wait_for_event` named `name`.
    pub fn wait_for_event(name: impl Into<String>) -> Self {
        RestartFrom { kind: Some(StepKind::WaitForEvent), ..RestartFrom::step(name) }
    }

    /// The `count`-th step of this name and kind (from 1), when a name repeats.
    pub fn count(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    /// Checks what the engine does not: a step name it could have run, a count from 1.
    pub fn check(&self) -> Result<(), RestartFromError> {
        validate::step_name(&self.name)?;
        if self.count == Some(0) {
            return Err(RestartFromError::ZeroCount);
        }
        Ok(())
    }

    /// The engine's `restart` options: `{from: {name, count?, type?}}`.
    pub fn to_engine(&self) -> serde_json::Value {
        serde_json::json!({ "from": self })
    }
}

/// The engine's `terminate` options. Only `rollback: true` runs the compensations of
/// the steps that registered one (in reverse start order) before the instance ends.
pub fn terminate_options(rollback: bool) -> serde_json::Value {
    serde_json::json!({ "rollback": rollback })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restart_from_is_the_engines_shape() {
        assert_eq!(RestartFrom::step("create-shipment").to_engine(), json!({"from": {"name": "create-shipment"}}));
        assert_eq!(RestartFrom::sleep("nap").count(2).to_engine(), json!({"from": {"name": "nap", "count": 2, "type": "sleep"}}));
        assert_eq!(RestartFrom::wait_for_event("approval").to_engine(), json!({"from": {"name": "approval", "type": "waitForEvent"}}));
        let read: RestartFrom = serde_json::from_value(json!({"name": "a", "count": 3, "type": "do"})).unwrap();
        assert_eq!(read, RestartFrom::step("a").count(3).kind_do());
    }

    impl RestartFrom {
        fn kind_do(mut self) -> Self {
            self.kind = Some(StepKind::Do);
            self
        }
    }

    #[test]
    fn malformed_restart_points_are_refused() {
        for bad in [
            json!({"name": "a", "type": "loop"}),
            json!({"name": 5}),
            json!({"name": "a", "count": -1}),
            json!({"name": "a", "extra": 1}),
            json!({}),
        ] {
            assert!(serde_json::from_value::<RestartFrom>(bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(RestartFrom::step("a").count(0).check(), Err(RestartFromError::ZeroCount));
        assert!(matches!(RestartFrom::step("").check(), Err(RestartFromError::Name(_))));
        assert!(matches!(RestartFrom::step("a\nb").check(), Err(RestartFromError::Name(_))));
        assert!(RestartFrom::step("x".repeat(256)).check().is_ok());
        assert!(RestartFrom::step("x".repeat(257)).check().is_err());
    }

    #[test]
    fn step_kinds_use_the_engines_names() {
        for kind in [StepKind::Do, StepKind::Sleep, StepKind::WaitForEvent] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }

    #[test]
    fn terminate_sends_rollback_as_a_boolean() {
        assert_eq!(terminate_options(true), json!({"rollback": true}));
        assert_eq!(terminate_options(false), json!({"rollback": false}));
    }
}
