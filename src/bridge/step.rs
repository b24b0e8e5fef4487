//! `Step`: the Rust face of the engine's `WorkflowStep`, typed.
//!
//! `step.run` is `step.do` (a reserved word in Rust). The closure runs once per
//! attempt and may borrow from the workflow (`&self.env`, `&event.payload`) instead of
//! cloning into `'static` captures: the engine's callback only queues each attempt,
//! and the `step.run` future itself polls the closure's future (see `js_step`).
//! Results cross as JSON: maps as objects, `None` as null, and the serialised size
//! is known exactly, which the 1 MiB step-result limit needs.

use super::engine::{AttemptFuture, EventRecord, StepCall, StepEngine};
use crate::core::duration::{self, IntoDuration, IntoEpochMillis};
use crate::core::step_config::StepConfig;
use crate::core::step_error::StepError;
use crate::core::validate;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::engine::StepContext;

/// An event received by [`Step::wait_for_event`].
#[derive(Debug, Clone)]
pub struct ReceivedEvent<T> {
    pub payload: T,
    pub event_type: String,
    pub timestamp: SystemTime,
}

/// The step handle a workflow's `run` receives. Cheap to clone; clones drive the same
/// instance. `'w` is the lifetime of the workflow and its event.
#[derive(Clone)]
pub struct Step<'w> {
    engine: Rc<dyn StepEngine<'w> + 'w>,
}

impl<'w> Step<'w> {
    pub fn new(engine: Rc<dyn StepEngine<'w> + 'w>) -> Self {
        Step { engine }
    }

    /// Runs a step with the engine's default config (5 retries, exponential backoff).
    /// `f` runs once per attempt; its result is stored by the engine, so a replayed
    /// instance gets the stored value without running `f` again.
    pub async fn run<T, F, Fut>(&self, name: &str, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        self.run_step(name, None, f).await
    }

    /// Runs a step with its own retries and per-attempt timeout.
    pub async fn run_with<T, F, Fut>(&self, name: &str, config: StepConfig, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        self.run_step(name, Some(config), f).await
    }

    /// The typed part of a step, kept small because it is compiled once per call site:
    /// the closure's result goes to JSON here and comes back from JSON here; the rest is
    /// the engine's, compiled once.
    async fn run_step<T, F, Fut>(&self, name: &str, config: Option<StepConfig>, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        validate::step_name(name)?;
        let config = config.map(|c| c.to_engine()).transpose()?;
        let attempt = |context: StepContext| -> AttemptFuture<'_> {
            let future = f(context);
            Box::pin(async move { serialize_result(&future.await?) })
        };
        let text = self.engine.run(StepCall { name, config, attempt: &attempt }).await?;
        serde_json::from_str(&text).map_err(|e| StepError::Serialization(format!("step result does not read back: {e}")))
    }

    /// Sleeps for "5 seconds", "7 days", a `Duration` or milliseconds (at most 365 days).
    pub async fn sleep(&self, name: &str, duration: impl IntoDuration) -> Result<(), StepError> {
        validate::step_name(name)?;
        let duration = duration::within_sleep_limit(duration.into_duration()?)?;
        self.engine.sleep(name, duration).await
    }

    /// Sleeps until a `SystemTime` or a Unix time in milliseconds.
    pub async fn sleep_until(&self, name: &str, at: impl IntoEpochMillis) -> Result<(), StepError> {
        validate::step_name(name)?;
        self.engine.sleep_until(name, at.into_epoch_millis()).await
    }

    /// Waits for an event of `event_type` sent to this instance, for at most `timeout`.
    /// Running out of time is [`StepError::Timeout`], which workflow code can match and
    /// continue from. Events sent before the wait are buffered by the engine.
    pub async fn wait_for_event<T: DeserializeOwned>(
        &self,
        name: &str,
        event_type: &str,
        timeout: impl IntoDuration,
    ) -> Result<ReceivedEvent<T>, StepError> {
        validate::step_name(name)?;
        validate::event_type(event_type)?;
        let timeout = duration::within_sleep_limit(timeout.into_duration()?)?;
        let record: EventRecord = self.engine.wait_for_event(name, event_type, timeout).await?;
        let payload = serde_json::from_str(&record.payload_json)
            .map_err(|e| StepError::Serialization(format!("the {event_type} event's payload does not fit the expected type: {e}")))?;
        Ok(ReceivedEvent {
            payload,
            event_type: if record.event_type.is_empty() { event_type.to_string() } else { record.event_type },
            timestamp: UNIX_EPOCH + Duration::from_millis(record.timestamp_millis.unwrap_or(0)),
        })
    }
}

/// A step result as JSON text, refused over 1 MiB.
fn serialize_result<T: Serialize>(value: &T) -> Result<String, StepError> {
    let text = serde_json::to_string(value).map_err(|e| StepError::Serialization(format!("step result cannot be serialised: {e}")))?;
    StepError::check_result_size(&text)?;
    Ok(text)
}
