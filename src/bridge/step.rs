//! `step`: the Rust face of the engine's `WorkflowStep`.
//!
//! `step.run` is `step.do` (a reserved word in Rust). The engine calls the step's
//! callback once per attempt; here that callback only queues the attempt, and the
//! `step.run` future itself polls the closure's future. So the closure may borrow
//! from the workflow (`&self.env`, `&event.payload`) instead of cloning into
//! `'static` captures, and a panic in an attempt is caught right there and fails
//! that attempt only, like any other error, for the engine to retry.

use super::js;
use crate::core::duration::{self, IntoDuration, IntoEpochMillis};
use crate::core::step_config::StepConfig;
use crate::core::step_error::StepError;
use crate::core::validate;
use js_sys::{Function, Promise};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The engine's `WorkflowStep`.
    #[derive(Clone)]
    pub type JsWorkflowStep;

    #[wasm_bindgen(method, catch, js_name = "do")]
    fn do_plain(this: &JsWorkflowStep, name: &str, callback: &Function) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "do")]
    fn do_with_config(this: &JsWorkflowStep, name: &str, config: &JsValue, callback: &Function) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn sleep(this: &JsWorkflowStep, name: &str, millis: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "sleepUntil")]
    fn sleep_until(this: &JsWorkflowStep, name: &str, epoch_millis: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "waitForEvent")]
    fn wait_for_event(this: &JsWorkflowStep, name: &str, options: &JsValue) -> Result<Promise, JsValue>;
}

/// What a step closure knows about the attempt it is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    /// 1 on the first attempt, 2 on the first retry, …
    pub attempt: u32,
    /// The step's name.
    pub name: String,
}

/// An event received by [`Step::wait_for_event`].
#[derive(Debug, Clone)]
pub struct ReceivedEvent<T> {
    pub payload: T,
    pub event_type: String,
    pub timestamp: SystemTime,
}

#[derive(Deserialize)]
struct RawEvent<T> {
    payload: T,
    #[serde(rename = "type", default)]
    event_type: String,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// The step handle a workflow's `run` receives. Cheap to clone; clones drive the same instance.
#[derive(Clone)]
pub struct Step {
    js: JsWorkflowStep,
    instance_id: Rc<str>,
}

/// One call of the engine's callback, waiting for the `step.run` future to run it.
struct Attempt {
    context: JsValue,
    resolve: Function,
    reject: Function,
}

#[derive(Default)]
struct Inbox {
    attempts: RefCell<VecDeque<Attempt>>,
    waker: RefCell<Option<Waker>>,
}

/// One attempt of a step's closure: its result as the JS value to resolve with, and that
/// value's JSON text.
type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Result<(JsValue, String), StepError>> + 'a>>;

/// How the engine settled a step: the value, and our own JSON text of it when we know it.
struct Settled {
    value: JsValue,
    own_text: Option<String>,
}

impl Step {
    pub(crate) fn new(js: JsWorkflowStep, instance_id: &str) -> Self {
        Step { js, instance_id: instance_id.into() }
    }

    /// A structured log line for a step that failed or needed retries. Steps that
    /// succeed at once are not logged: the engine's own step history records them, and
    /// a log line costs more than the step itself (about 1 ms each under `wrangler dev`).
    fn log_exceptional(&self, name: &str, kind: &str, attempts: u32, error: Option<&StepError>) {
        if error.is_none() && attempts <= 1 {
            return;
        }
        let line = serde_json::json!({
            "type": "step",
            "instance": &*self.instance_id,
            "step": name,
            "kind": kind,
            "attempts": attempts,
            "outcome": if error.is_some() { "error" } else { "ok" },
            "error": error.map(|e| e.to_string()),
        });
        worker::console_log!("{line}");
    }

    /// Runs a step with the engine's default config (5 retries, 10 s exponential).
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
    /// the closure's result goes to JSON here and comes back from JSON here, and all the
    /// rest is [`Step::run_attempts`], compiled once.
    async fn run_step<T, F, Fut>(&self, name: &str, config: Option<StepConfig>, f: F) -> Result<T, StepError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(StepContext) -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let attempt = |context: StepContext| -> AttemptFuture<'_> {
            let future = f(context);
            Box::pin(async move { serialize_result(&future.await?) })
        };
        let settled = self.run_attempts(name, config, &attempt).await?;
        match &settled.own_text {
            Some(text) => serde_json::from_str(text).map_err(|e| StepError::Serialization(format!("step result does not read back: {e}"))),
            None => js::from_js(&settled.value),
        }
    }

    async fn run_attempts<'a>(
        &self,
        name: &str,
        config: Option<StepConfig>,
        attempt: &'a dyn Fn(StepContext) -> AttemptFuture<'a>,
    ) -> Result<Settled, StepError> {
        validate::step_name(name)?;
        let config = match config {
            Some(config) => Some(js::to_js(&config.to_engine()?)?.0),
            None => None,
        };

        let inbox = Rc::new(Inbox::default());
        let callback = {
            let inbox = Rc::clone(&inbox);
            Closure::<dyn FnMut(JsValue) -> Promise>::own_assert_unwind_safe(move |context: JsValue| {
                let mut settle = None;
                // The executor runs synchronously inside Promise::new; AssertUnwindSafe (captured
                // whole) lets it write the resolvers out under panic=unwind.
                let mut slot = AssertUnwindSafe(&mut settle);
                let promise = Promise::new(&mut move |resolve, reject| {
                    let slot = &mut slot;
                    *slot.0 = Some((resolve, reject));
                });
                if let Some((resolve, reject)) = settle {
                    inbox.attempts.borrow_mut().push_back(Attempt { context, resolve, reject });
                    if let Some(waker) = inbox.waker.borrow_mut().take() {
                        waker.wake();
                    }
                }
                promise
            })
        };
        let callback_fn: &Function = callback.as_ref().unchecked_ref();
        let engine = match &config {
            Some(config) => self.js.do_with_config(name, config, callback_fn),
            None => self.js.do_plain(name, callback_fn),
        }
        .map_err(|e| js::step_error_from_js(&e))?;
        let mut engine = JsFuture::from(engine);

        let mut running: Vec<(AttemptFuture<'a>, Function, Function)> = Vec::new();
        let mut attempts_started = 0_u32;
        // The JSON text of the last attempt that succeeded: when it is the only attempt,
        // the value the engine settles with is that one, so it is read back from this text
        // rather than stringified again.
        let mut last_ok_text: Option<String> = None;
        let outcome = poll_fn(|cx| {
            *inbox.waker.borrow_mut() = Some(cx.waker().clone());
            while let Some(queued) = inbox.attempts.borrow_mut().pop_front() {
                attempts_started += 1;
                let context = StepContext {
                    attempt: js::get(&queued.context, "attempt").as_f64().map_or(attempts_started, |a| a as u32),
                    name: name.to_string(),
                };
                running.push((attempt(context), queued.resolve, queued.reject));
            }
            running.retain_mut(|(future, resolve, reject)| {
                let settled = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => return true,
                    Ok(Poll::Ready(Ok((value, text)))) => {
                        last_ok_text = Some(text);
                        resolve.call1(&JsValue::UNDEFINED, &value)
                    }
                    Ok(Poll::Ready(Err(error))) => reject.call1(&JsValue::UNDEFINED, &error.into()),
                    Err(panic) => reject.call1(&JsValue::UNDEFINED, &js::js_error("PanicError", &panic_message(&*panic))),
                };
                let _ = settled;
                false
            });
            Pin::new(&mut engine).poll(cx)
        })
        .await;
        // The engine has settled the step: attempts still running (timed out) are dropped
        // before the callback, which the engine will not call again.
        drop(running);
        drop(callback);
        let result = match outcome {
            Ok(value) => Ok(Settled { value, own_text: last_ok_text.filter(|_| attempts_started == 1) }),
            Err(error) => Err(js::step_error_from_js(&error)),
        };
        self.log_exceptional(name, "do", attempts_started, result.as_ref().err());
        result
    }

    /// Sleeps for "5 seconds", "7 days", a `Duration` or milliseconds (at most 365 days).
    pub async fn sleep(&self, name: &str, duration: impl IntoDuration) -> Result<(), StepError> {
        validate::step_name(name)?;
        let duration = duration::within_sleep_limit(duration.into_duration()?)?;
        let promise = self.js.sleep(name, duration::as_millis(duration) as f64).map_err(|e| js::step_error_from_js(&e))?;
        let result = JsFuture::from(promise).await.map(drop).map_err(|e| js::step_error_from_js(&e));
        self.log_exceptional(name, "sleep", 0, result.as_ref().err());
        result
    }

    /// Sleeps until a `SystemTime` or a Unix time in milliseconds.
    pub async fn sleep_until(&self, name: &str, at: impl IntoEpochMillis) -> Result<(), StepError> {
        validate::step_name(name)?;
        let promise = self.js.sleep_until(name, at.into_epoch_millis() as f64).map_err(|e| js::step_error_from_js(&e))?;
        let result = JsFuture::from(promise).await.map(drop).map_err(|e| js::step_error_from_js(&e));
        self.log_exceptional(name, "sleepUntil", 0, result.as_ref().err());
        result
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
        let (options, _) = js::to_js(&serde_json::json!({
            "type": event_type,
            "timeout": duration::as_millis(timeout),
        }))?;
        let promise = self.js.wait_for_event(name, &options).map_err(|e| js::step_error_from_js(&e))?;
        let value = JsFuture::from(promise).await.map_err(|e| timeout_or_error(&e));
        self.log_exceptional(name, "waitForEvent", 0, value.as_ref().err());
        let value = value?;
        let raw: RawEvent<T> = js::from_js(&value)?;
        let millis = match raw.timestamp {
            Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(serde_json::Value::String(s)) => js_sys::Date::parse(&s),
            _ => 0.0,
        };
        Ok(ReceivedEvent {
            payload: raw.payload,
            event_type: if raw.event_type.is_empty() { event_type.to_string() } else { raw.event_type },
            timestamp: UNIX_EPOCH + Duration::from_millis(if millis.is_finite() { millis.max(0.0) as u64 } else { 0 }),
        })
    }
}

/// A `waitForEvent` rejection: the engine's timeout is [`StepError::Timeout`] whatever
/// name this engine version gives it.
fn timeout_or_error(error: &JsValue) -> StepError {
    match js::step_error_from_js(error) {
        StepError::Failed(message)
            if message.to_ascii_lowercase().contains("timed out") || message.to_ascii_lowercase().contains("timeout") =>
        {
            StepError::Timeout(message)
        }
        other => other,
    }
}

/// A step result as the JS value the engine stores and its JSON text, refused over 1 MiB.
fn serialize_result<T: Serialize>(value: &T) -> Result<(JsValue, String), StepError> {
    let text = serde_json::to_string(value).map_err(|e| StepError::Serialization(format!("step result cannot be serialised: {e}")))?;
    StepError::check_result_size(&text)?;
    Ok((js::parse_json_text(&text)?, text))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("step panicked: {text}")
}
