//! What creating and managing an instance takes beyond its id and params, typed and
//! checked, in the engine's wire shape: retention (`create({retention})`), the step a
//! restart starts from (`restart({from})`) and terminate's rollback (`terminate({rollback})`).

use crate::core::duration::{self, DurationError, IntoDuration};
use crate::core::validate;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest retention accepted here (an account's own maximum applies in production).
pub const MAX_RETENTION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How long the engine keeps an instance once it has finished (its status, output and
/// history), after which it is deleted: `success` for a completed instance, `error` for
/// an errored or terminated one. Unset parts keep the workflow's default (the
/// registry's `RETENTION`) or else the account's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    success: Option<Result<Duration, DurationError>>,
    error: Option<Result<Duration, DurationError>>,
}

/// Why a [`Retention`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// The HTTP API's `retention` is not a JSON object.
    #[error("retention must be an object {{\"successRetention\"?, \"errorRetention\"?}}")]
    NotAnObject,
    /// The object has a field other than `successRetention` and `errorRetention` (its name,
    /// at most 64 characters).
    #[error("retention has no field {0:?} (it takes successRetention and errorRetention)")]
    UnknownField(String),
    /// A part is neither a string nor whole milliseconds.
    #[error("retention.{field}: a duration such as \"7 days\" or a whole number of milliseconds, not {value}")]
    NotADuration {
        /// The part: `successRetention` or `errorRetention`.
        field: &'static str,
        /// The value given (at most 64 characters of its JSON).
        value: String,
    },
    /// A part's string is not a duration.
    #[error("retention.{field}: {source}")]
    Malformed {
        /// The part: `successRetention` or `errorRetention`.
        field: &'static str,
        /// Why it does not read as a duration.
        source: DurationError,
    },
    /// A part is zero.
    #[error("retention.{field} must be longer than zero")]
    Zero {
        /// The part: `successRetention` or `errorRetention`.
        field: &'static str,
    },
    /// A part is longer than [`MAX_RETENTION`].
    #[error("retention.{field} is longer than 365 days")]
    TooLong {
        /// The part: `successRetention` or `errorRetention`.
        field: &'static str,
    },
}

/// Retention as the engine takes it: whole milliseconds (the engine would read an
/// unknown unit such as "5 fortnights" as 5 ms, so no string of ours reaches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineRetention {
    /// How long a completed instance is kept, in milliseconds; unset keeps the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_retention: Option<u64>,
    /// How long an errored or terminated instance is kept, in milliseconds; unset keeps the
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_retention: Option<u64>,
}

const SUCCESS: &str = "successRetention";
const ERROR: &str = "errorRetention";

impl Retention {
    /// A retention with neither part set: the workflow's default applies.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a completed instance is kept: "7 days", a `Duration` or milliseconds.
    pub fn success(mut self, keep: impl IntoDuration) -> Self {
        self.success = Some(keep.into_duration());
        self
    }

    /// How long an errored or terminated instance is kept.
    pub fn error(mut self, keep: impl IntoDuration) -> Self {
        self.error = Some(keep.into_duration());
        self
    }

    /// A retention from optional duration strings (the registry's defaults).
    pub fn from_parts(success: Option<&str>, error: Option<&str>) -> Self {
        Retention { success: success.map(duration::parse), error: error.map(duration::parse) }
    }

    /// Whether neither part is set.
    pub fn is_empty(&self) -> bool {
        self.success.is_none() && self.error.is_none()
    }

    /// These parts, and `default`'s where these are unset.
    pub fn or(self, default: Retention) -> Retention {
        Retention { success: self.success.or(default.success), error: self.error.or(default.error) }
    }

    /// Checks both parts (each more than zero, at most 365 days) and gives the engine's form.
    pub fn to_engine(&self) -> Result<EngineRetention, RetentionError> {
        let check = |field: &'static str, part: &Option<Result<Duration, DurationError>>| -> Result<Option<u64>, RetentionError> {
            let Some(part) = part else { return Ok(None) };
            let keep = part.clone().map_err(|source| RetentionError::Malformed { field, source })?;
            let ms = duration::as_millis(keep);
            if ms == 0 {
                Err(RetentionError::Zero { field })
            } else if keep > MAX_RETENTION {
                Err(RetentionError::TooLong { field })
            } else {
                Ok(Some(ms))
            }
        };
        Ok(EngineRetention { success_retention: check(SUCCESS, &self.success)?, error_retention: check(ERROR, &self.error)? })
    }

    /// Reads the HTTP API's `retention` object, `{successRetention?, errorRetention?}`,
    /// each a duration string or whole milliseconds, and checks it.
    pub fn from_json(value: &serde_json::Value) -> Result<Retention, RetentionError> {
        let object = value.as_object().ok_or(RetentionError::NotAnObject)?;
        if let Some(unknown) = object.keys().find(|k| *k != SUCCESS && *k != ERROR) {
            return Err(RetentionError::UnknownField(unknown.chars().take(64).collect()));
        }
        let part = |field: &'static str| -> Result<Option<Result<Duration, DurationError>>, RetentionError> {
            match object.get(field) {
                None => Ok(None),
                Some(serde_json::Value::String(text)) => Ok(Some(duration::parse(text))),
                Some(serde_json::Value::Number(n)) => match n.as_u64() {
                    Some(ms) => Ok(Some(Ok(Duration::from_millis(ms)))),
                    None => Err(RetentionError::NotADuration { field, value: n.to_string() }),
                },
                Some(other) => Err(RetentionError::NotADuration { field, value: other.to_string().chars().take(64).collect() }),
            }
        };
        let retention = Retention { success: part(SUCCESS)?, error: part(ERROR)? };
        retention.to_engine()?;
        Ok(retention)
    }
}

/// The options of the engine's `create` (and of each `createBatch` entry): the id (the
/// engine makes a UUID when absent), the params, and the retention when set.
#[derive(Debug, Serialize)]
pub struct EngineCreateOptions<'a, P: Serialize> {
    /// The instance id; `None` lets the engine make a UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// The params, as the workflow's `event.payload` will read them.
    pub params: &'a P,
    /// How long the instance is kept once finished; `None` keeps the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<EngineRetention>,
    /// The region to run it near (`locationHint`); `None` lets the engine choose.
    #[serde(rename = "locationHint", skip_serializing_if = "Option::is_none")]
    pub location_hint: Option<&'a str>,
}

/// The kind of step, as the engine names it in `restart({from: {type}})` and in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// `step.do` (`step.run` in Rust).
    Do,
    /// `step.sleep` and `step.sleep_until`.
    Sleep,
    /// `step.wait_for_event`.
    WaitForEvent,
}

impl StepKind {
    /// The engine's name for the kind (`"do"`, `"sleep"`, `"waitForEvent"`).
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
    /// The step's name.
    pub name: String,
    /// 1 for the first step of that name (the engine's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The step's kind; `None` is the engine's default, a `step.do`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
}

/// Why a [`RestartFrom`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartFromError {
    /// The name is not one a step could have.
    #[error(transparent)]
    Name(#[from] validate::NameError),
    /// `count` is 0.
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

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn retention_becomes_whole_milliseconds() {
        let r = Retention::new().success("7 days").error(Duration::from_secs(3600));
        assert_eq!(r.to_engine(), Ok(EngineRetention { success_retention: Some(7 * DAY_MS), error_retention: Some(3_600_000) }));
        assert_eq!(
            serde_json::to_value(r.to_engine().unwrap()).unwrap(),
            json!({"successRetention": 604_800_000, "errorRetention": 3_600_000})
        );
        assert_eq!(serde_json::to_value(Retention::new().error(1500_u64).to_engine().unwrap()).unwrap(), json!({"errorRetention": 1500}));
        assert!(Retention::new().is_empty());
        assert_eq!(Retention::new().to_engine(), Ok(EngineRetention::default()));
    }

    #[test]
    fn unset_parts_fall_back_to_the_default() {
        let default = Retention::new().success("7 days").error("30 days");
        let merged = Retention::new().success("1 day").or(default.clone()).to_engine().unwrap();
        assert_eq!(merged, EngineRetention { success_retention: Some(DAY_MS), error_retention: Some(30 * DAY_MS) });
        assert_eq!(Retention::new().or(default.clone()), default);
    }

    #[test]
    fn retention_is_refused_where_the_engine_would_misread_it() {
        // The engine reads an unknown unit as x1: "5 fortnights" would keep an instance 5 ms.
        let e = Retention::new().success("5 fortnights").to_engine().unwrap_err();
        assert!(matches!(e, RetentionError::Malformed { field: "successRetention", .. }), "{e:?}");
        assert!(e.to_string().contains("fortnights"), "{e}");
        assert_eq!(Retention::new().error(0_u64).to_engine(), Err(RetentionError::Zero { field: "errorRetention" }));
        assert_eq!(Retention::new().error("366 days").to_engine(), Err(RetentionError::TooLong { field: "errorRetention" }));
        assert!(Retention::new().error("365 days").to_engine().is_ok());
    }

    #[test]
    fn retention_from_the_http_body() {
        let r = Retention::from_json(&json!({"successRetention": "1 day", "errorRetention": 3_600_000})).unwrap();
        assert_eq!(r.to_engine().unwrap(), EngineRetention { success_retention: Some(DAY_MS), error_retention: Some(3_600_000) });
        assert_eq!(Retention::from_json(&json!({})).unwrap(), Retention::new());
        for (bad, expected) in [
            (json!("7 days"), RetentionError::NotAnObject),
            (json!({"success": "1 day"}), RetentionError::UnknownField("success".into())),
            (json!({"successRetention": -5}), RetentionError::NotADuration { field: "successRetention", value: "-5".into() }),
            (json!({"successRetention": 1.5}), RetentionError::NotADuration { field: "successRetention", value: "1.5".into() }),
            (json!({"errorRetention": true}), RetentionError::NotADuration { field: "errorRetention", value: "true".into() }),
            (json!({"errorRetention": 0}), RetentionError::Zero { field: "errorRetention" }),
        ] {
            assert_eq!(Retention::from_json(&bad), Err(expected), "{bad}");
        }
        assert!(matches!(Retention::from_json(&json!({"errorRetention": "soon"})), Err(RetentionError::Malformed { .. })));
    }

    #[test]
    fn create_options_are_the_engines_shape() {
        let params = json!({"orderId": "1"});
        let retention = Retention::new().success("1 hour").to_engine().unwrap();
        let options = EngineCreateOptions { id: Some("o-1"), params: &params, retention: Some(retention), location_hint: Some("weur") };
        assert_eq!(
            serde_json::to_value(&options).unwrap(),
            json!({"id": "o-1", "params": {"orderId": "1"}, "retention": {"successRetention": 3_600_000}, "locationHint": "weur"})
        );
        let bare = EngineCreateOptions { id: None, params: &params, retention: None, location_hint: None };
        assert_eq!(serde_json::to_value(&bare).unwrap(), json!({"params": {"orderId": "1"}}));
    }

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
