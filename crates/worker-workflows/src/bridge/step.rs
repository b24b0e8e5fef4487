//! `Step`: the Rust face of the engine's `WorkflowStep`, typed.
//!
//! `step.run` is `step.do` (a reserved word in Rust). The closure runs once per
//! attempt and may borrow from the workflow (`&self.env`, `&event.payload`) instead of
//! cloning into `'static` captures: the engine's callback only queues each attempt,
//! and the `step.run` future itself polls the closure's future (see `js_step`).
//! Results cross as JSON: maps as objects, `None` as null, and the serialised size
//! is known exactly, which the 1 MiB step-result limit needs.

use super::engine::{
    AttemptFuture, BytesAttemptFuture, EventRecord, LocalBoxFuture, RollbackCall, RollbackInput, StepCall, StepEngine, StreamCall,
};
use crate::core::duration::{self, IntoDuration, IntoEpochMillis};
use crate::core::events::{self, Event, EventSpec};
use crate::core::step_config::StepConfig;
use crate::core::step_error::StepError;
use crate::core::validate;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::engine::StepContext;
pub use crate::core::rollback::InstanceFailure;

/// A step's compensation: what undoes the step when the instance fails after it (or is
/// terminated with rollback). See [`Step::run_with_rollback`].
pub struct Rollback<F> {
    f: F,
    config: Option<StepConfig>,
}

impl<F> Rollback<F> {
    /// The closure runs once per attempt of the rollback, with a [`RollbackContext`].
    pub fn new(f: F) -> Self {
        Rollback { f, config: None }
    }

    /// The rollback's own retries and timeout (the engine's defaults otherwise: 5
    /// retries from 1 second, exponential, 10 minutes per attempt).
    pub fn config(mut self, config: StepConfig) -> Self {
        self.config = Some(config);
        self
    }
}

/// What a rollback attempt knows.
#[derive(Debug, Clone)]
pub struct RollbackContext<T> {
    /// The rollback's own attempt: 1, then 2 on its first retry, …
    pub attempt: u32,
    /// The error that failed the instance; on `terminate` with rollback, a `Terminated` one.
    pub error: InstanceFailure,
    /// The step's own output; `None` when the step did not complete (it is the step
    /// that failed, or it was running when the instance was terminated).
    pub output: Option<T>,
    /// The rolled-back step's context (name, count, its attempts, its config).
    pub step: StepContext,
}

/// An event received by [`Step::wait_for_event`].
#[derive(Debug, Clone)]
pub struct ReceivedEvent<T> {
    /// The event's payload, read as the declared payload type.
    pub payload: T,
    /// The event's type.
    pub event_type: String,
    /// When the event was sent (the Unix epoch when the engine reports no time).
    pub timestamp: SystemTime,
}

/// The step handle a workflow's `run` receives. Cheap to clone; clones drive the same
/// instance. `'w` is the lifetime of the workflow and its event.
#[derive(Clone)]
pub struct Step<'w> {
    pub(crate) engine: Rc<dyn StepEngine<'w> + 'w>,
    /// The events the workflow declares (`Workflow::EVENTS`): the only ones it may wait for.
    events: &'static [EventSpec],
    /// The instance this handle drives and its env, for child workflows (`children`).
    pub(crate) instance: Option<Rc<super::children::StepInstance>>,
    /// What [`Step::patched`] needs (`bridge::patch`); `None` where no engine set it.
    pub(crate) patches: Option<super::patch::PatchContext>,
}

impl<'w> Step<'w> {
    /// A step handle over an engine (the Worker's or the test engine's) that lets the
    /// workflow wait only for the `events` it declares. The engines make it; a workflow
    /// gets it as `run`'s argument.
    pub fn new(engine: Rc<dyn StepEngine<'w> + 'w>, events: &'static [EventSpec]) -> Self {
        Step { engine, events, instance: None, patches: None }
    }

    /// The same handle, with what [`Step::patched`] needs: the workflow, the instance's
    /// creation time, and where patches are recorded. The engines set it.
    pub fn with_patches(mut self, patches: super::patch::PatchContext) -> Self {
        self.patches = Some(patches);
        self
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
        self.run_step(name, None, None, f).await
    }

    /// Runs a step with its own retries and per-attempt timeout.
    pub async fn run_with<T, F, Fut>(&self, name: &str, config: StepConfig, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        self.run_step(name, Some(config), None, f).await
    }

    /// Runs a step that can be undone: when the instance later fails (or is terminated
    /// with rollback), the engine runs `rollback` for it, the rollbacks of all steps that
    /// started in reverse order of their starts, each retried per its own config, and
    /// stops at the first that fails for good. The rollback gets the step's output as
    /// `Option<T>` (`None` for the step that failed, which is rolled back too) and, like
    /// `f`, may borrow the workflow and its event (`'w`), but not a local of `run`.
    ///
    /// ```
    /// # use worker_workflows::bridge::{Rollback, Step, WorkflowEvent};
    /// # use worker_workflows::core::{step_config::StepConfig, step_error::StepError};
    /// async fn book<'w>(event: &'w WorkflowEvent<String>, step: Step<'w>) -> Result<u32, StepError> {
    ///     let room: u32 = step
    ///         .run_with_rollback(
    ///             "book room",
    ///             StepConfig::new(),
    ///             |_| async { Ok(42) },
    ///             Rollback::new(move |r: worker_workflows::bridge::RollbackContext<u32>| async move {
    ///                 let _cancel = (&event.payload, r.output); // borrows the event: fine
    ///                 Ok(())
    ///             }),
    ///         )
    ///         .await?;
    ///     Ok(room)
    /// }
    /// ```
    ///
    /// A rollback that borrows a local of the run does not compile: the local is gone
    /// by the time the engine calls it.
    ///
    /// ```compile_fail
    /// # use worker_workflows::bridge::{Rollback, Step, WorkflowEvent};
    /// # use worker_workflows::core::{step_config::StepConfig, step_error::StepError};
    /// async fn book<'w>(event: &'w WorkflowEvent<String>, step: Step<'w>) -> Result<u32, StepError> {
    ///     let local = event.payload.clone();
    ///     let local = &local;
    ///     let room: u32 = step
    ///         .run_with_rollback(
    ///             "book room",
    ///             StepConfig::new(),
    ///             |_| async { Ok(42) },
    ///             Rollback::new(move |r: worker_workflows::bridge::RollbackContext<u32>| async move {
    ///                 let _cancel = (local, r.output); // borrows a local of the run
    ///                 Ok(())
    ///             }),
    ///         )
    ///         .await?;
    ///     Ok(room)
    /// }
    /// ```
    pub async fn run_with_rollback<T, F, Fut, R, RFut>(
        &self,
        name: &str,
        config: StepConfig,
        f: F,
        rollback: Rollback<R>,
    ) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned + 'w,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
        R: Fn(RollbackContext<T>) -> RFut + 'w,
        RFut: Future<Output = Result<(), StepError>> + 'w,
    {
        let Rollback { f: undo, config: rollback_config } = rollback;
        let rollback_config = rollback_config.map(|c| c.to_engine()).transpose()?;
        let run = Box::new(move |input: RollbackInput| -> LocalBoxFuture<'w, Result<(), StepError>> {
            match rollback_context::<T>(input) {
                Ok(context) => Box::pin(undo(context)),
                Err(e) => Box::pin(std::future::ready(Err(e))),
            }
        });
        self.run_step(name, Some(config), Some(RollbackCall { run, config: rollback_config }), f).await
    }

    /// The typed part of a step, kept small because it is compiled once per call site:
    /// the closure's result goes to JSON here and comes back from JSON here; the rest is
    /// the engine's, compiled once.
    async fn run_step<T, F, Fut>(
        &self,
        name: &str,
        config: Option<StepConfig>,
        rollback: Option<RollbackCall<'w>>,
        f: F,
    ) -> Result<T, StepError>
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
        let text = self.engine.run(StepCall { name, config, attempt: &attempt, rollback }).await?;
        serde_json::from_str(&text).map_err(|e| StepError::Serialization(format!("step result does not read back: {e}")))
    }

    /// Runs a step whose output is bytes, handed to the engine as a stream (the engine's
    /// `ReadableStream` step outputs): not JSON and not bound by the 1 MiB limit of
    /// [`run`](Self::run), up to [`MAX_STREAM_STEP_BYTES`] (32 MiB). The engine stores
    /// the bytes in 256 KiB chunks; what comes back, live and on every replay, is what it
    /// stored, read back from its stream. More than 32 MiB, returned or read back, is
    /// [`StepError::StreamTooLarge`], never retried.
    ///
    /// A streamed step cannot have a rollback: the engine would pass a rollback the
    /// stream it already returned to the workflow, consumed. Return a key to the data
    /// from a plain step with [`run_with_rollback`](Self::run_with_rollback) to undo it.
    ///
    /// ```
    /// # use worker_workflows::bridge::Step;
    /// # use worker_workflows::core::step_error::StepError;
    /// async fn export(step: Step<'_>) -> Result<usize, StepError> {
    ///     let csv: Vec<u8> = step.run_stream("render export", |_| async { Ok(b"id,total\n1,42\n".repeat(100_000)) }).await?;
    ///     Ok(csv.len()) // 1.5 MB: over the 1 MiB a `run` step may return
    /// }
    /// ```
    ///
    /// [`MAX_STREAM_STEP_BYTES`]: crate::core::step_error::MAX_STREAM_STEP_BYTES
    pub async fn run_stream<B, F, Fut>(&self, name: &str, f: F) -> Result<Vec<u8>, StepError>
    where
        B: Into<Vec<u8>>,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<B, StepError>>,
    {
        self.stream_step(name, None, f).await
    }

    /// [`run_stream`](Self::run_stream) with its own retries, timeout (which bounds
    /// handing the bytes to the engine too) or `sensitive()`.
    pub async fn run_stream_with<B, F, Fut>(&self, name: &str, config: StepConfig, f: F) -> Result<Vec<u8>, StepError>
    where
        B: Into<Vec<u8>>,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<B, StepError>>,
    {
        self.stream_step(name, Some(config), f).await
    }

    async fn stream_step<B, F, Fut>(&self, name: &str, config: Option<StepConfig>, f: F) -> Result<Vec<u8>, StepError>
    where
        B: Into<Vec<u8>>,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<B, StepError>>,
    {
        validate::step_name(name)?;
        let config = config.map(|c| c.to_engine()).transpose()?;
        let attempt = |context: StepContext| -> BytesAttemptFuture<'_> {
            let future = f(context);
            Box::pin(async move {
                let bytes: Vec<u8> = future.await?.into();
                StepError::check_stream_size(bytes.len())?;
                Ok(bytes)
            })
        };
        self.engine.run_stream(StreamCall { name, config, attempt: &attempt }).await
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

    /// Waits for an event of type `E::TYPE` with an `E` payload, for at most `timeout`:
    /// the event type and payload type come from one declaration, the one `Workflow::EVENTS`
    /// lists (`EventSpec::of::<E>()`) and the HTTP API checks payloads against.
    pub async fn wait_for<E: Event>(&self, name: &str, timeout: impl IntoDuration) -> Result<ReceivedEvent<E>, StepError> {
        self.wait_for_event::<E>(name, E::TYPE, timeout).await
    }

    /// Waits for an event of `event_type` sent to this instance, for at most `timeout`.
    /// Running out of time is [`StepError::Timeout`], which workflow code can match and
    /// continue from. Events sent before the wait are buffered by the engine.
    ///
    /// The type must be declared with `T` in the workflow's `Workflow::EVENTS` (else the
    /// wait fails with [`StepError::Invalid`]); [`Step::wait_for`] takes the type from `T`.
    pub async fn wait_for_event<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        event_type: &str,
        timeout: impl IntoDuration,
    ) -> Result<ReceivedEvent<T>, StepError> {
        validate::step_name(name)?;
        validate::event_type(event_type)?;
        events::declares::<T>(self.events, event_type).map_err(StepError::Invalid)?;
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

/// A rollback's typed context. An output that does not read as the step's type can never
/// succeed, so it fails the rollback for good.
fn rollback_context<T: DeserializeOwned>(input: RollbackInput) -> Result<RollbackContext<T>, StepError> {
    let output = match &input.output_json {
        None => None,
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            StepError::Serialization(format!("the output of step {:?} does not read back for its rollback: {e}", input.step.name))
        })?),
    };
    Ok(RollbackContext { attempt: input.attempt, error: input.error, output, step: input.step })
}

/// A step result as JSON text, refused over 1 MiB.
fn serialize_result<T: Serialize>(value: &T) -> Result<String, StepError> {
    let text = serde_json::to_string(value).map_err(|e| StepError::Serialization(format!("step result cannot be serialised: {e}")))?;
    StepError::check_result_size(&text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::step_context::StepContext;

    fn input(output_json: Option<&str>) -> RollbackInput {
        RollbackInput {
            attempt: 2,
            step: StepContext::resolved("reserve", 1, 3, None),
            error: InstanceFailure::from_engine("Error", "NonRetryableError: shipping refused"),
            output_json: output_json.map(str::to_string),
        }
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Reservation {
        id: String,
    }

    #[test]
    fn a_rollback_reads_the_steps_output_as_its_type() {
        let ctx = rollback_context::<Reservation>(input(Some(r#"{"id":"r-1"}"#))).unwrap();
        assert_eq!(ctx.output, Some(Reservation { id: "r-1".into() }));
        assert_eq!((ctx.attempt, ctx.step.attempt, ctx.step.name.as_str()), (2, 3, "reserve"));
        assert_eq!(ctx.error, InstanceFailure { name: "NonRetryableError".into(), message: "shipping refused".into() });
    }

    #[test]
    fn a_step_that_did_not_complete_has_no_output_and_a_null_one_is_some() {
        assert_eq!(rollback_context::<Reservation>(input(None)).unwrap().output, None);
        assert_eq!(rollback_context::<Option<u32>>(input(Some("null"))).unwrap().output, Some(None));
    }

    #[test]
    fn an_output_of_another_type_fails_the_rollback_for_good() {
        let err = rollback_context::<Reservation>(input(Some("42"))).unwrap_err();
        assert!(matches!(&err, StepError::Serialization(m) if m.contains("reserve")), "{err:?}");
        assert_eq!(err.js_name(), crate::core::step_error::NON_RETRYABLE_NAME);
    }
}
