//! Step configuration: retries (limit, delay, backoff) and a per-attempt timeout,
//! turned into exactly the object the engine's `step.do(name, config, fn)` takes.

use crate::core::duration::{self, DurationError, IntoDuration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the delay between attempts grows: constant `d`, linear `d·n`, exponential `d·2^(n-1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Constant,
    Linear,
    #[default]
    Exponential,
}

/// The most retries the engine allows on one step.
pub const MAX_RETRY_LIMIT: u32 = 10_000;
/// The engine's documented defaults, used for the parts of a retry config left unset.
pub const DEFAULT_RETRY_LIMIT: u32 = 5;
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepConfigError {
    #[error("retry delay: {0}")]
    Delay(DurationError),
    #[error("step timeout: {0}")]
    Timeout(DurationError),
    #[error("retry limit {0} is over the engine's maximum of {MAX_RETRY_LIMIT}")]
    LimitTooHigh(u32),
}

/// Retries of one step: `limit` retries after the first attempt (so `limit + 1` attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    limit: u32,
    delay: Result<Duration, DurationError>,
    backoff: Backoff,
}

impl Retries {
    /// `limit` retries with the default delay (10 seconds) and exponential backoff.
    pub fn new(limit: u32) -> Self {
        Retries { limit, delay: Ok(DEFAULT_RETRY_DELAY), backoff: Backoff::default() }
    }

    /// No retries: the first failure fails the step.
    pub fn none() -> Self {
        Retries::new(0)
    }

    /// The base delay: "10 seconds", "1 minute", a `Duration` or milliseconds.
    pub fn delay(mut self, delay: impl IntoDuration) -> Self {
        self.delay = delay.into_duration();
        self
    }

    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
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
}

impl StepConfig {
    pub fn new() -> Self {
        Self::default()
    }

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

    /// The object the engine takes, with every duration in milliseconds; any malformed
    /// part is an error here, before the engine sees it.
    pub fn to_engine(&self) -> Result<EngineStepConfig, StepConfigError> {
        let retries = match &self.retries {
            None => None,
            Some(r) => {
                if r.limit > MAX_RETRY_LIMIT {
                    return Err(StepConfigError::LimitTooHigh(r.limit));
                }
                let delay = r.delay.clone().map_err(StepConfigError::Delay)?;
                Some(EngineRetries { limit: r.limit, delay: duration::as_millis(delay), backoff: r.backoff })
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
        Ok(EngineStepConfig { retries, timeout })
    }
}

/// `WorkflowStepConfig` as the engine reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStepConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<EngineRetries>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineRetries {
    pub limit: u32,
    pub delay: u64,
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
