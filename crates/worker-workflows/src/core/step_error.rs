//! The error of a step and of a workflow run, and how it maps to and from the
//! engine's JS errors (by `name`, which is how the engine tells them apart).

use crate::core::duration::DurationError;
use crate::core::step_config::StepConfigError;
use crate::core::validate::NameError;

/// The JS error name the engine treats as "fail the step now, do not retry".
pub const NON_RETRYABLE_NAME: &str = "NonRetryableError";
/// The JS error name the engine gives a timed-out step attempt or `waitForEvent`.
pub const TIMEOUT_NAME: &str = "WorkflowTimeoutError";

/// What can go wrong in a step or a workflow. Inside a step closure, return
/// [`StepError::Failed`] (or use `?`) to have the engine retry the attempt, and
/// [`StepError::NonRetryable`] to fail the step at once. Outside, match on what
/// `step.run`, `step.wait_for_event` and friends return: an uncaught error fails
/// the instance with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The attempt failed; the engine retries the step while retries remain.
    #[error("{0}")]
    Failed(String),
    /// Fails the step on the first attempt; uncaught, errors the instance with this message.
    #[error("{0}")]
    NonRetryable(String),
    /// A step attempt or a `wait_for_event` ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// Input to the step API that the engine would refuse (a duration, a name, a config),
    /// caught before anything reached the engine.
    #[error("{0}")]
    Invalid(String),
    /// A value that could not cross the boundary as JSON.
    #[error("{0}")]
    Serialization(String),
    /// A step result over the engine's 1 MiB limit.
    #[error("step result is {size} bytes serialised; the engine stores at most {MAX_STEP_RESULT_BYTES} bytes (1 MiB): store large data in R2 or KV and return a key")]
    ResultTooLarge {
        /// The result's size in bytes, as JSON.
        size: usize,
    },
    /// A streamed step's bytes (`Step::run_stream`) over this crate's cap: refused when
    /// the closure returns them, and when the engine's stream reads back longer.
    #[error(
        "streamed step output is over {MAX_STREAM_STEP_BYTES} bytes (32 MiB, read {size} so far): store large data in R2 and return a key"
    )]
    StreamTooLarge {
        /// The bytes read when the cap was passed.
        size: usize,
    },
}

/// The engine's limit on one step's serialised result.
pub const MAX_STEP_RESULT_BYTES: usize = 1024 * 1024;

/// The most bytes a streamed step may return, and the most the bridge reads back from
/// the engine's stream: the engine has no limit of its own below an instance's 1 GiB of
/// storage, but the bytes are held in memory (an isolate has 128 MB), so a cap keeps
/// any step, or a corrupt store, from costing an unbounded allocation.
pub const MAX_STREAM_STEP_BYTES: usize = 32 * 1024 * 1024;

impl StepError {
    /// A retryable failure with any message.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        StepError::Failed(message.to_string())
    }

    /// A failure that ends the step without retrying.
    pub fn non_retryable(message: impl std::fmt::Display) -> Self {
        StepError::NonRetryable(message.to_string())
    }

    /// Whether an attempt or a wait ran out of time ([`StepError::Timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, StepError::Timeout(_))
    }

    /// The wait a service asked for when it refused the attempt (its `Retry-After`),
    /// when the failure came from `ServiceCall`: what a retry delay function honours.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            StepError::Failed(message) | StepError::NonRetryable(message) => crate::core::service::retry_after_hint(message),
            _ => None,
        }
    }

    /// The JS error `name` this error is thrown with: anything that cannot succeed
    /// on a retry is non-retryable, so the engine does not try it again.
    pub fn js_name(&self) -> &'static str {
        match self {
            StepError::Failed(_) => "Error",
            StepError::Timeout(_) => TIMEOUT_NAME,
            StepError::NonRetryable(_)
            | StepError::Invalid(_)
            | StepError::Serialization(_)
            | StepError::ResultTooLarge { .. }
            | StepError::StreamTooLarge { .. } => NON_RETRYABLE_NAME,
        }
    }

    /// Reads an error the engine rejected with, by its JS `name` and `message`.
    pub fn from_engine(name: &str, message: &str) -> Self {
        let message = message.to_string();
        match name {
            NON_RETRYABLE_NAME => StepError::NonRetryable(message),
            TIMEOUT_NAME => StepError::Timeout(message),
            // Across JS RPC a custom name is lost and kept in the message instead:
            // `Error("NonRetryableError: <message>")`, `Error("WorkflowTimeoutError: <message>")`
            // (seen on the local runtime, tests/e2e/engine-parity.test.mjs).
            _ if message.starts_with(NON_RETRYABLE_NAME) => StepError::NonRetryable(strip_name(&message, NON_RETRYABLE_NAME)),
            _ if message.starts_with(TIMEOUT_NAME) => StepError::Timeout(strip_name(&message, TIMEOUT_NAME)),
            _ => StepError::Failed(message),
        }
    }

    /// Checks a serialised step result against the engine's limit.
    pub fn check_result_size(json: &str) -> Result<(), StepError> {
        Self::check_result_size_n(json.len())
    }

    /// Checks a streamed step's length against [`MAX_STREAM_STEP_BYTES`].
    pub fn check_stream_size(size: usize) -> Result<(), StepError> {
        if size > MAX_STREAM_STEP_BYTES {
            Err(StepError::StreamTooLarge { size })
        } else {
            Ok(())
        }
    }

    /// Checks a serialised size in bytes against the engine's limit.
    pub fn check_result_size_n(size: usize) -> Result<(), StepError> {
        if size > MAX_STEP_RESULT_BYTES {
            Err(StepError::ResultTooLarge { size })
        } else {
            Ok(())
        }
    }
}

/// `message` without a leading `"<name>:"`.
fn strip_name(message: &str, name: &str) -> String {
    message.trim_start_matches(name).trim_start_matches(':').trim_start().to_string()
}

impl From<serde_json::Error> for StepError {
    /// A JSON error inside a step (a malformed response, say) fails the attempt.
    fn from(e: serde_json::Error) -> Self {
        StepError::Failed(e.to_string())
    }
}

impl From<DurationError> for StepError {
    fn from(e: DurationError) -> Self {
        StepError::Invalid(e.to_string())
    }
}

impl From<NameError> for StepError {
    fn from(e: NameError) -> Self {
        StepError::Invalid(e.to_string())
    }
}

impl From<StepConfigError> for StepError {
    fn from(e: StepConfigError) -> Self {
        StepError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_by_name() {
        assert_eq!(StepError::from_engine("NonRetryableError", "card declined"), StepError::NonRetryable("card declined".into()));
        assert_eq!(
            StepError::from_engine("WorkflowTimeoutError", "waitForEvent timed out"),
            StepError::Timeout("waitForEvent timed out".into())
        );
        assert!(StepError::from_engine("WorkflowTimeoutError", "x").is_timeout());
        assert_eq!(StepError::from_engine("Error", "boom"), StepError::Failed("boom".into()));
        assert_eq!(StepError::from_engine("Error", "NonRetryableError: nope"), StepError::NonRetryable("nope".into()));
        assert_eq!(
            StepError::from_engine("Error", "WorkflowTimeoutError: Execution timed out after 2000ms"),
            StepError::Timeout("Execution timed out after 2000ms".into())
        );
    }

    #[test]
    fn only_retryable_failures_are_retried() {
        assert_eq!(StepError::failed("x").js_name(), "Error");
        assert_eq!(StepError::non_retryable("x").js_name(), NON_RETRYABLE_NAME);
        assert_eq!(StepError::Invalid("x".into()).js_name(), NON_RETRYABLE_NAME);
        assert_eq!(StepError::ResultTooLarge { size: 1 }.js_name(), NON_RETRYABLE_NAME);
        assert_eq!(StepError::non_retryable("card declined").to_string(), "card declined");
    }

    #[test]
    fn stream_size_cap_is_32_mib_and_not_retried() {
        assert!(StepError::check_stream_size(MAX_STREAM_STEP_BYTES).is_ok());
        let err = StepError::check_stream_size(MAX_STREAM_STEP_BYTES + 1).unwrap_err();
        assert_eq!(err, StepError::StreamTooLarge { size: MAX_STREAM_STEP_BYTES + 1 });
        assert_eq!(err.js_name(), NON_RETRYABLE_NAME);
        assert!(err.to_string().contains("32 MiB"), "{err}");
    }

    #[test]
    fn result_size_limit() {
        assert!(StepError::check_result_size(&"x".repeat(MAX_STEP_RESULT_BYTES)).is_ok());
        let err = StepError::check_result_size(&"x".repeat(MAX_STEP_RESULT_BYTES + 1)).unwrap_err();
        assert_eq!(err, StepError::ResultTooLarge { size: MAX_STEP_RESULT_BYTES + 1 });
        assert!(err.to_string().contains("1 MiB"));
    }

    #[test]
    fn conversions_for_question_mark() {
        let e: StepError = serde_json::from_str::<u32>("x").unwrap_err().into();
        assert!(matches!(e, StepError::Failed(_)));
        let e: StepError = crate::core::duration::parse("soon").unwrap_err().into();
        assert!(matches!(e, StepError::Invalid(m) if m.contains("soon")));
    }
}
