//! Step configuration: retries (limit, delay or a delay function, backoff), a per-attempt
//! timeout and sensitive outputs, turned into exactly the object the engine's
//! `step.do(name, config, fn)` takes.

use crate::core::duration::{self, DurationError, IntoDuration};
use crate::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

/// How the delay between attempts grows: constant `d`, linear `d·n`, exponential `d·2^(n-1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Every retry waits the base delay `d`.
    Constant,
    /// The n-th retry waits `d·n`.
    Linear,
    /// The n-th retry waits `d·2^(n-1)`: the default.
    #[default]
    Exponential,
}

/// The most retries the engine allows on one step.
pub const MAX_RETRY_LIMIT: u32 = 10_000;
/// The engine's documented default retry limit, used when a retry config leaves it unset.
pub const DEFAULT_RETRY_LIMIT: u32 = 5;
/// The engine's documented default retry delay, used when a retry config leaves it unset.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);

/// A retry delay computed when an attempt fails, from that attempt's number (1 for the
/// first) and its error: `Retries::delay_fn`. Plain code, called synchronously; it may
/// capture owned values but not borrow, since the engine may ask for it after the
/// step's own future is gone (a rollback's retries).
#[derive(Clone)]
pub struct DelayFn(Rc<DelayClosure>);

type DelayClosure = dyn Fn(u32, &StepError) -> Duration;

impl DelayFn {
    /// Wraps a delay function: `f(attempt, error)`.
    pub fn new(f: impl Fn(u32, &StepError) -> Duration + 'static) -> Self {
        DelayFn(Rc::new(f))
    }

    /// The delay before the attempt after `attempt`, which failed with `error`.
    pub fn delay(&self, attempt: u32, error: &StepError) -> Duration {
        (self.0)(attempt, error)
    }
}

impl fmt::Debug for DelayFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DelayFn(..)")
    }
}

/// Two delay functions are equal when they are the same function.
impl PartialEq for DelayFn {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DelayFn {}

/// The delay between attempts: fixed (then grown by the backoff), or computed per failure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RetryDelay {
    Fixed(Result<Duration, DurationError>),
    Dynamic(DelayFn),
}

/// Why a [`StepConfig`] was refused by [`StepConfig::to_engine`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepConfigError {
    /// The retry delay does not read as a duration.
    #[error("retry delay: {0}")]
    Delay(DurationError),
    /// The timeout does not read as a duration, or is zero.
    #[error("step timeout: {0}")]
    Timeout(DurationError),
    /// The retry limit is over [`MAX_RETRY_LIMIT`].
    #[error("retry limit {0} is over the engine's maximum of {MAX_RETRY_LIMIT}")]
    LimitTooHigh(u32),
}

/// Retries of one step: `limit` retries after the first attempt (so `limit + 1` attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    limit: u32,
    delay: RetryDelay,
    /// Unset: exponential for a fixed delay, constant for a delay function.
    backoff: Option<Backoff>,
}

impl Retries {
    /// `limit` retries with the default delay (10 seconds) and exponential backoff.
    pub fn new(limit: u32) -> Self {
        Retries { limit, delay: RetryDelay::Fixed(Ok(DEFAULT_RETRY_DELAY)), backoff: None }
    }

    /// No retries: the first failure fails the step.
    pub fn none() -> Self {
        Retries::new(0)
    }

    /// The base delay: "10 seconds", "1 minute", a `Duration` or milliseconds.
    pub fn delay(mut self, delay: impl IntoDuration) -> Self {
        self.delay = RetryDelay::Fixed(delay.into_duration());
        self
    }

    /// The delay computed when an attempt fails, from the attempt's number (1 for the
    /// first) and its error: to honour a service's `Retry-After`
    /// ([`StepError::retry_after`]), say. The engine still applies the backoff to what
    /// it returns, so the backoff is constant (the value is used as it is) unless set.
    /// A panic in it fails the step for good (the engine reports a failed delay function).
    pub fn delay_fn(mut self, f: impl Fn(u32, &StepError) -> Duration + 'static) -> Self {
        self.delay = RetryDelay::Dynamic(DelayFn::new(f));
        self
    }

    /// How the delay grows from one retry to the next; unset, exponential for a fixed delay
    /// and constant for a delay function.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The backoff the engine applies: as set, or exponential for a fixed delay and
    /// constant for a delay function.
    fn effective_backoff(&self) -> Backoff {
        self.backoff.unwrap_or(match self.delay {
            RetryDelay::Fixed(_) => Backoff::Exponential,
            RetryDelay::Dynamic(_) => Backoff::Constant,
        })
    }
}

impl Default for Retries {
    fn default() -> Self {
        Retries::new(DEFAULT_RETRY_LIMIT)
    }
}

/// The config of one step; unset parts keep the engine's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepConfig {
    retries: Option<Retries>,
    timeout: Option<Result<Duration, DurationError>>,
    sensitive: bool,
}

impl StepConfig {
    /// A config with every part unset: the engine's defaults apply.
    pub fn new() -> Self {
        Self::default()
    }

    /// The step's retries; unset, the engine's defaults apply.
    pub fn retries(mut self, retries: Retries) -> Self {
        self.retries = Some(retries);
        self
    }

    /// The timeout of each attempt ("30 seconds", a `Duration`, milliseconds). A timed-out
    /// attempt fails and is retried like any other failure.
    pub fn timeout(mut self, timeout: impl IntoDuration) -> Self {
        self.timeout = Some(timeout.into_duration());
        self
    }

    /// Marks the step's output as sensitive (the engine's `sensitive: "output"`): it is
    /// stored and returned to the workflow as usual, but the engine shows `"[REDACTED]"`
    /// in its place wherever it reports the step (instance history, status, logs).
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// The object the engine takes, with every duration in milliseconds; any malformed
    /// part is an error here, before the engine sees it.
    pub fn to_engine(&self) -> Result<EngineStepConfig, StepConfigError> {
        let retries = match &self.retries {
            None => None,
            Some(r) => {
                if r.limit > MAX_RETRY_LIMIT {
                    return Err(StepConfigError::LimitTooHigh(r.limit));
                }
                let backoff = r.effective_backoff();
                Some(match &r.delay {
                    RetryDelay::Fixed(delay) => {
                        let delay = delay.clone().map_err(StepConfigError::Delay)?;
                        EngineRetries { limit: r.limit, delay: Some(duration::as_millis(delay)), delay_fn: None, backoff }
                    }
                    RetryDelay::Dynamic(f) => EngineRetries { limit: r.limit, delay: None, delay_fn: Some(f.clone()), backoff },
                })
            }
        };
        let timeout = match &self.timeout {
            None => None,
            Some(t) => {
                let t = t.clone().map_err(StepConfigError::Timeout)?;
                if t.is_zero() {
                    return Err(StepConfigError::Timeout(DurationError::Zero { input: "0".into() }));
                }
                Some(duration::as_millis(t))
            }
        };
        Ok(EngineStepConfig { retries, timeout, sensitive: self.sensitive })
    }
}

/// `WorkflowStepConfig` as the engine reads it. Serialised, it is that object except
/// for a delay function, which the engine side puts in `retries.delay` itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStepConfig {
    /// The retries; `None` keeps the engine's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<EngineRetries>,
    /// The timeout of each attempt in milliseconds; `None` keeps the engine's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `sensitive: "output"` when set; the key is left out otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not", serialize_with = "sensitive_output")]
    pub sensitive: bool,
}

fn sensitive_output<S: serde::Serializer>(_: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("output")
}

impl EngineStepConfig {
    /// How many attempts the engine makes at most: the retry limit (5 unless set) plus one.
    pub fn max_attempts(config: Option<&EngineStepConfig>) -> u32 {
        config.and_then(|c| c.retries.as_ref()).map_or(DEFAULT_RETRY_LIMIT, |r| r.limit).saturating_add(1)
    }
}

/// The `retries` of [`EngineStepConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineRetries {
    /// Retries after the first attempt.
    pub limit: u32,
    /// The fixed delay in milliseconds; `None` with a delay function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// The delay function, when the delay is computed per failure; never serialised (the
    /// engine side puts it in `retries.delay`).
    #[serde(skip)]
    pub delay_fn: Option<DelayFn>,
    /// How the delay grows.
    pub backoff: Backoff,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_config_becomes_the_engine_object() {
        let config = StepConfig::new().retries(Retries::new(3).delay("5 seconds").backoff(Backoff::Linear)).timeout("30 seconds");
        let engine = serde_json::to_value(config.to_engine().unwrap()).unwrap();
        assert_eq!(engine, json!({"retries": {"limit": 3, "delay": 5000, "backoff": "linear"}, "timeout": 30000}));
    }

    #[test]
    fn unset_parts_are_left_to_the_engine_and_retry_defaults_are_documented_ones() {
        assert_eq!(serde_json::to_value(StepConfig::new().to_engine().unwrap()).unwrap(), json!({}));
        let engine = StepConfig::new().retries(Retries::default()).to_engine().unwrap();
        assert_eq!(serde_json::to_value(engine).unwrap(), json!({"retries": {"limit": 5, "delay": 10000, "backoff": "exponential"}}));
        let none = StepConfig::new().retries(Retries::none()).to_engine().unwrap();
        assert_eq!(none.retries.unwrap().limit, 0);
    }

    #[test]
    fn a_delay_function_is_left_out_of_the_json_and_defaults_to_constant_backoff() {
        let config =
            StepConfig::new().retries(Retries::new(3).delay_fn(|attempt, _| Duration::from_secs(u64::from(attempt)))).to_engine().unwrap();
        assert_eq!(serde_json::to_value(&config).unwrap(), json!({"retries": {"limit": 3, "backoff": "constant"}}));
        let f = config.retries.unwrap().delay_fn.expect("the function rides beside the JSON");
        assert_eq!(f.delay(2, &StepError::failed("x")), Duration::from_secs(2));
        // An explicit backoff is kept, in either order.
        let linear = Retries::new(1).backoff(Backoff::Linear).delay_fn(|_, _| Duration::ZERO);
        assert_eq!(StepConfig::new().retries(linear).to_engine().unwrap().retries.unwrap().backoff, Backoff::Linear);
        // A fixed delay set after a function replaces it, and backs off exponentially again.
        let fixed = Retries::new(1).delay_fn(|_, _| Duration::ZERO).delay("1 second");
        let fixed = StepConfig::new().retries(fixed).to_engine().unwrap().retries.unwrap();
        assert_eq!((fixed.delay, fixed.delay_fn.is_none(), fixed.backoff), (Some(1000), true, Backoff::Exponential));
    }

    #[test]
    fn sensitive_is_the_engines_output_marker() {
        let config = StepConfig::new().sensitive().timeout("1 minute").to_engine().unwrap();
        assert_eq!(serde_json::to_value(config).unwrap(), json!({"timeout": 60000, "sensitive": "output"}));
    }

    #[test]
    fn max_attempts_is_the_limit_plus_one_with_the_engines_default() {
        assert_eq!(EngineStepConfig::max_attempts(None), 6);
        assert_eq!(EngineStepConfig::max_attempts(Some(&StepConfig::new().to_engine().unwrap())), 6);
        let two = StepConfig::new().retries(Retries::new(1)).to_engine().unwrap();
        assert_eq!(EngineStepConfig::max_attempts(Some(&two)), 2);
    }

    #[test]
    fn malformed_parts_are_errors_before_the_engine() {
        let bad_delay = StepConfig::new().retries(Retries::new(1).delay("soonish")).to_engine();
        assert!(matches!(bad_delay, Err(StepConfigError::Delay(DurationError::Malformed { .. }))));
        assert!(bad_delay.unwrap_err().to_string().contains("soonish"));
        let bad_timeout = StepConfig::new().timeout("ten minutes").to_engine();
        assert!(matches!(bad_timeout, Err(StepConfigError::Timeout(_))));
        assert!(matches!(StepConfig::new().timeout(0_u64).to_engine(), Err(StepConfigError::Timeout(_))));
        assert_eq!(StepConfig::new().retries(Retries::new(10_001)).to_engine(), Err(StepConfigError::LimitTooHigh(10_001)));
    }
}
