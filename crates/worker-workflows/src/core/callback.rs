//! The webhook-callback pattern: an instance created with a `callbackUrl` POSTs
//! `{id, workflow, status, output | error}` to it when it ends, from a durable step.
//! The URL travels with the instance in an envelope around its params
//! (`{"$callback": url, "$params": params}`), which the bridge unwraps before the
//! workflow sees its typed params, so no workflow has to know about callbacks.

use crate::core::duration;
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

const URL_KEY: &str = "$callback";
const PARAMS_KEY: &str = "$params";

/// The engine payload for params with a callback.
pub fn wrap(params: Value, url: &str) -> Value {
    json!({ URL_KEY: url, PARAMS_KEY: params })
}

/// Splits an engine payload into the workflow's params and the callback URL, if any.
pub fn unwrap(payload: Value) -> (Value, Option<String>) {
    match payload {
        Value::Object(mut map) if map.len() == 2 && map.contains_key(PARAMS_KEY) => match map.remove(URL_KEY) {
            Some(Value::String(url)) => (map.remove(PARAMS_KEY).unwrap_or(Value::Null), Some(url)),
            Some(other) => {
                map.insert(URL_KEY.to_string(), other);
                (Value::Object(map), None)
            }
            None => (Value::Object(map), None),
        },
        other => (other, None),
    }
}

/// How the instance ended, as the callback reports it.
pub enum Outcome<'a> {
    /// It completed with this output.
    Complete(&'a Value),
    /// It failed with this error.
    Errored {
        /// The error's name.
        name: &'a str,
        /// Its message.
        message: &'a str,
    },
}

/// The callback body: `{id, workflow, status, output}` or `{id, workflow, status, error}`.
pub fn body(instance_id: &str, workflow: &str, outcome: &Outcome) -> String {
    let body = match outcome {
        Outcome::Complete(output) => json!({"id": instance_id, "workflow": workflow, "status": "complete", "output": output}),
        Outcome::Errored { name, message } => {
            json!({"id": instance_id, "workflow": workflow, "status": "errored", "error": {"name": name, "message": message}})
        }
    };
    body.to_string()
}

/// `webhook-id`: one per run of an instance (`run` is drawn once per run, from a durable
/// step), so every attempt and replay of one run's callback carries the same id and
/// receivers can drop duplicates, while a restarted instance's new callback is not taken
/// for one of them.
pub fn message_id(workflow: &str, instance_id: &str, run: &str) -> String {
    format!("msg_{workflow}_{instance_id}_{run}")
}

/// The var that sets how many times a failed delivery is retried (default 10).
pub const RETRY_LIMIT_VAR: &str = "CALLBACK_RETRY_LIMIT";
/// The var that sets the delay before the first retry, doubling after each (default 10 s).
pub const RETRY_DELAY_VAR: &str = "CALLBACK_RETRY_DELAY";
/// How many times a failed delivery is retried when [`RETRY_LIMIT_VAR`] is unset.
pub const DEFAULT_RETRY_LIMIT: u32 = 10;
/// The delay before the first retry when [`RETRY_DELAY_VAR`] is unset.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);
/// The most retries [`RETRY_LIMIT_VAR`] may set. Bounds on the vars: more than this many
/// retries, or a first delay over an hour, is a typo rather than a policy (the engine caps
/// exponential delays anyway).
pub const MAX_RETRY_LIMIT: u32 = 30;
/// The longest first delay [`RETRY_DELAY_VAR`] may set.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);
/// Each delivery attempt may take this long.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the delivery's retry vars cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryConfigError {
    /// [`RETRY_LIMIT_VAR`] is not a whole number from 0 to [`MAX_RETRY_LIMIT`] (the text given).
    #[error("{RETRY_LIMIT_VAR} must be a whole number from 0 to {MAX_RETRY_LIMIT}, not {0:?}")]
    Limit(String),
    /// [`RETRY_DELAY_VAR`] is not a duration of at most [`MAX_RETRY_DELAY`] (the text given).
    #[error("{RETRY_DELAY_VAR} must be a duration of at most 1 hour (\"10 seconds\"), not {0:?}")]
    Delay(String),
}

/// How a callback's delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRetries {
    /// Retries after the first attempt.
    pub limit: u32,
    /// The delay before the first retry; it doubles after each.
    pub delay: Duration,
}

impl DeliveryRetries {
    /// From the vars (`None` or blank: the default): 10 retries from 10 s, exponential.
    pub fn from_vars(limit: Option<&str>, delay: Option<&str>) -> Result<Self, DeliveryConfigError> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let limit = match given(limit) {
            None => DEFAULT_RETRY_LIMIT,
            Some(text) => {
                text.parse::<u32>().ok().filter(|n| *n <= MAX_RETRY_LIMIT).ok_or_else(|| DeliveryConfigError::Limit(text.into()))?
            }
        };
        let delay = match given(delay) {
            None => DEFAULT_RETRY_DELAY,
            Some(text) => {
                duration::parse(text).ok().filter(|d| *d <= MAX_RETRY_DELAY).ok_or_else(|| DeliveryConfigError::Delay(text.into()))?
            }
        };
        Ok(Self { limit, delay })
    }

    /// The `send-callback` step's config.
    pub fn step_config(&self) -> StepConfig {
        StepConfig::new().retries(Retries::new(self.limit).delay(self.delay).backoff(Backoff::Exponential)).timeout(ATTEMPT_TIMEOUT)
    }

    /// Attempts at most: the retries plus one.
    pub fn max_attempts(&self) -> u32 {
        self.limit.saturating_add(1)
    }
}

/// Whether the callback reached its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryState {
    /// The receiver accepted it.
    Delivered,
    /// Every attempt failed, or the delivery could not start.
    Failed,
}

/// How a callback's delivery ended, as the instance status shows it: recorded by the
/// instance itself, which completes (or errors) on its own terms either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOutcome {
    /// Whether the callback reached its receiver.
    pub state: DeliveryState,
    /// Attempts made: 0 when the delivery could not start (a refused URL, an unusable secret).
    pub attempts: u32,
    /// The last attempt's error, cut to [`MAX_ERROR_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The `webhook-id` the deliveries carried.
    pub webhook_id: String,
}

/// The longest error text kept with an outcome.
pub const MAX_ERROR_CHARS: usize = 1000;

impl DeliveryOutcome {
    /// A delivery that succeeded at attempt `attempts`.
    pub fn delivered(webhook_id: &str, attempts: u32) -> Self {
        Self { state: DeliveryState::Delivered, attempts, last_error: None, webhook_id: webhook_id.into() }
    }

    /// A delivery that failed for good with `error` (the failed step's error, tagged by
    /// [`tag_attempt`]), after at most `max_attempts`.
    pub fn failed(webhook_id: &str, error: &StepError, max_attempts: u32) -> Self {
        let (attempts, message) = attempts_of(error, max_attempts);
        let last_error = Some(message.chars().take(MAX_ERROR_CHARS).collect());
        Self { state: DeliveryState::Failed, attempts, last_error, webhook_id: webhook_id.into() }
    }

    /// A delivery that could not start: nothing was sent.
    pub fn not_started(webhook_id: &str, error: &StepError) -> Self {
        let last_error = Some(error.to_string().chars().take(MAX_ERROR_CHARS).collect());
        Self { state: DeliveryState::Failed, attempts: 0, last_error, webhook_id: webhook_id.into() }
    }
}

const ATTEMPT_TAG: &str = "attempt ";

/// An attempt's error with its attempt number in front (`attempt 3: …`): the engine
/// keeps the last attempt's error for a failed step, so the count survives replays
/// without any state of ours. The kind (retryable or not) is kept.
pub fn tag_attempt(attempt: u32, error: StepError) -> StepError {
    let tagged = |message: &dyn std::fmt::Display| format!("{ATTEMPT_TAG}{attempt}: {message}");
    match error {
        StepError::Failed(m) => StepError::Failed(tagged(&m)),
        StepError::Timeout(m) => StepError::Timeout(tagged(&m)),
        other => StepError::NonRetryable(tagged(&other)),
    }
}

/// The attempts made and the error's own message, from a failed step's error. An
/// untagged error did not come from an attempt of ours: a timeout or a retryable
/// failure ends the step only when every attempt was made; anything else came from the
/// engine before any attempt.
fn attempts_of(error: &StepError, max_attempts: u32) -> (u32, String) {
    let message = error.to_string();
    let tag = message.strip_prefix(ATTEMPT_TAG).and_then(|rest| rest.split_once(": ")).and_then(|(n, m)| Some((n.parse::<u32>().ok()?, m)));
    match tag {
        Some((attempts, rest)) => (attempts, rest.to_string()),
        None if matches!(error, StepError::Failed(_) | StepError::Timeout(_)) => (max_attempts, message),
        None => (0, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap() {
        let params = json!({"orderId": "1"});
        let wrapped = wrap(params.clone(), "https://h.example.com/x");
        assert_eq!(unwrap(wrapped), (params, Some("https://h.example.com/x".into())));
        assert_eq!(unwrap(wrap(Value::Null, "u")), (Value::Null, Some("u".into())));
        // Params that merely look similar pass through untouched.
        let plain = json!({"$params": 1});
        assert_eq!(unwrap(plain.clone()), (plain, None));
        let odd = json!({"$params": 1, "$callback": 2});
        assert_eq!(unwrap(odd.clone()), (odd, None));
        assert_eq!(unwrap(json!([1])), (json!([1]), None));
    }

    #[test]
    fn bodies() {
        let out = json!({"a": 1});
        let b: Value = serde_json::from_str(&body("i", "w", &Outcome::Complete(&out))).unwrap();
        assert_eq!(b, json!({"id": "i", "workflow": "w", "status": "complete", "output": {"a": 1}}));
        let b: Value = serde_json::from_str(&body("i", "w", &Outcome::Errored { name: "NonRetryableError", message: "no" })).unwrap();
        assert_eq!(b["error"], json!({"name": "NonRetryableError", "message": "no"}));
        assert_eq!(message_id("w", "i", "r1"), "msg_w_i_r1");
        assert_ne!(message_id("w", "i", "r1"), message_id("w", "i", "r2"));
    }

    #[test]
    fn delivery_retries_come_from_the_vars_with_documented_defaults() {
        let default = DeliveryRetries::from_vars(None, None).unwrap();
        assert_eq!(default, DeliveryRetries { limit: 10, delay: Duration::from_secs(10) });
        assert_eq!(DeliveryRetries::from_vars(Some(" "), Some("")).unwrap(), default);
        assert_eq!(
            DeliveryRetries::from_vars(Some("2"), Some("1 second")).unwrap(),
            DeliveryRetries { limit: 2, delay: Duration::from_secs(1) }
        );
        assert_eq!(DeliveryRetries::from_vars(Some("0"), None).unwrap().max_attempts(), 1);
        for bad in ["-1", "31", "two", "1.5"] {
            assert_eq!(DeliveryRetries::from_vars(Some(bad), None), Err(DeliveryConfigError::Limit(bad.into())), "{bad}");
        }
        for bad in ["soon", "2 hours"] {
            assert_eq!(DeliveryRetries::from_vars(None, Some(bad)), Err(DeliveryConfigError::Delay(bad.into())), "{bad}");
        }
        let engine = DeliveryRetries::from_vars(Some("3"), Some("2 seconds")).unwrap().step_config().to_engine().unwrap();
        let retries = engine.retries.unwrap();
        assert_eq!((retries.limit, retries.delay, retries.backoff), (3, Some(2000), Backoff::Exponential));
        assert_eq!(engine.timeout, Some(30_000));
    }

    #[test]
    fn a_failed_delivery_counts_its_attempts_from_the_tagged_error() {
        // A receiver that refused for good on the second attempt.
        let error = tag_attempt(2, StepError::NonRetryable("callback receiver answered 410 Gone".into()));
        assert!(matches!(error, StepError::NonRetryable(_)));
        let outcome = DeliveryOutcome::failed("msg_1", &error, 11);
        assert_eq!(outcome.attempts, 2);
        assert_eq!(outcome.last_error.as_deref(), Some("callback receiver answered 410 Gone"));
        assert_eq!(outcome.state, DeliveryState::Failed);
        // The kind of the attempt's error is kept: a retryable one stays retryable.
        assert!(matches!(tag_attempt(1, StepError::Failed("503".into())), StepError::Failed(m) if m == "attempt 1: 503"));
        assert!(matches!(tag_attempt(1, StepError::Timeout("slow".into())), StepError::Timeout(_)));
        assert!(matches!(tag_attempt(1, StepError::Invalid("x".into())), StepError::NonRetryable(_)));
        // Read back as the engine gives it: the name in front is stripped by from_engine.
        let thrown = tag_attempt(11, StepError::Failed("callback receiver answered 500".into()));
        let back = StepError::from_engine("Error", &thrown.to_string());
        assert_eq!(DeliveryOutcome::failed("m", &back, 11).attempts, 11);
        // An attempt timed out by the engine carries no tag: every attempt was made.
        let timeout = DeliveryOutcome::failed("m", &StepError::Timeout("WorkflowTimeoutError: attempt timed out".into()), 3);
        assert_eq!((timeout.attempts, timeout.last_error.as_deref()), (3, Some("WorkflowTimeoutError: attempt timed out")));
        // A non-retryable error without a tag came before any attempt.
        assert_eq!(DeliveryOutcome::failed("m", &StepError::NonRetryable("bad config".into()), 3).attempts, 0);
    }

    #[test]
    fn outcomes_serialise_as_the_status_shows_them() {
        let delivered = serde_json::to_value(DeliveryOutcome::delivered("msg_a", 2)).unwrap();
        assert_eq!(delivered, json!({"state": "delivered", "attempts": 2, "webhookId": "msg_a"}));
        let long = "e".repeat(5000);
        let failed = DeliveryOutcome::failed("msg_a", &tag_attempt(3, StepError::Failed(long)), 3);
        assert_eq!(failed.last_error.as_ref().map(|e| e.chars().count()), Some(MAX_ERROR_CHARS));
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(serde_json::from_str::<DeliveryOutcome>(&text).unwrap(), failed);
        let refused = DeliveryOutcome::not_started("msg_a", &StepError::NonRetryable("URL refused".into()));
        assert_eq!(
            serde_json::to_value(refused).unwrap(),
            json!({"state": "failed", "attempts": 0, "lastError": "URL refused", "webhookId": "msg_a"})
        );
    }
}
