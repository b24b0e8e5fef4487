//! The real engine behind [`Step`](super::Step): the engine's `WorkflowStep` object.
//!
//! The engine calls a step's callback once per attempt; here that callback only queues
//! the attempt, and the `step.run` future itself polls the closure's future. So the
//! closure may borrow from the workflow, and a panic in an attempt is caught right there
//! and fails that attempt only, like any other error, for the engine to retry.

use super::engine::{AttemptFuture, EventRecord, LocalBoxFuture, StepCall, StepContext, StepEngine};
use super::js;
use crate::core::duration;
use crate::core::step_error::StepError;
use js_sys::{Function, Promise};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;
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

/// The engine's step object for one `run(event, step)` call.
pub struct JsStepEngine {
    js: JsWorkflowStep,
    instance_id: Rc<str>,
}

impl JsStepEngine {
    pub fn new(js: JsWorkflowStep, instance_id: &str) -> Self {
        JsStepEngine { js, instance_id: instance_id.into() }
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

    async fn run_attempts<'a>(&self, call: StepCall<'a>) -> Result<String, StepError> {
        let StepCall { name, config, attempt } = call;
        let config = match &config {
            Some(config) => Some(js::to_js(config)?.0),
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
                    Ok(Poll::Ready(Ok(text))) => match js::parse_json_text(&text) {
                        Ok(value) => {
                            let settled = resolve.call1(&JsValue::UNDEFINED, &value);
                            last_ok_text = Some(text);
                            settled
                        }
                        Err(error) => reject.call1(&JsValue::UNDEFINED, &error.into()),
                    },
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
            Ok(value) => match last_ok_text.filter(|_| attempts_started == 1) {
                Some(text) => Ok(text),
                None => js::json_text(&value),
            },
            Err(error) => Err(js::step_error_from_js(&error)),
        };
        self.log_exceptional(name, "do", attempts_started, result.as_ref().err());
        result
    }

    async fn settle_sleep(&self, name: &str, kind: &str, promise: Result<Promise, JsValue>) -> Result<(), StepError> {
        let promise = promise.map_err(|e| js::step_error_from_js(&e))?;
        let result = JsFuture::from(promise).await.map(drop).map_err(|e| js::step_error_from_js(&e));
        self.log_exceptional(name, kind, 0, result.as_ref().err());
        result
    }

    async fn wait(&self, name: &str, event_type: &str, timeout: Duration) -> Result<EventRecord, StepError> {
        let (options, _) = js::to_js(&serde_json::json!({
            "type": event_type,
            "timeout": duration::as_millis(timeout),
        }))?;
        let promise = self.js.wait_for_event(name, &options).map_err(|e| js::step_error_from_js(&e))?;
        let value = JsFuture::from(promise).await.map_err(|e| timeout_or_error(&e));
        self.log_exceptional(name, "waitForEvent", 0, value.as_ref().err());
        let value = value?;
        let timestamp = js::get(&value, "timestamp");
        let millis = match timestamp.dyn_ref::<js_sys::Date>() {
            Some(date) => date.get_time(),
            None => timestamp.as_f64().or_else(|| timestamp.as_string().map(|s| js_sys::Date::parse(&s))).unwrap_or(f64::NAN),
        };
        Ok(EventRecord {
            payload_json: js::json_text(&js::get(&value, "payload"))?,
            event_type: js::get(&value, "type").as_string().unwrap_or_default(),
            timestamp_millis: (millis.is_finite() && millis >= 0.0).then_some(millis as u64),
        })
    }
}

impl<'w> StepEngine<'w> for JsStepEngine {
    fn run<'a>(&'a self, call: StepCall<'a>) -> LocalBoxFuture<'a, Result<String, StepError>> {
        Box::pin(self.run_attempts(call))
    }

    fn sleep<'a>(&'a self, name: &'a str, duration: Duration) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(self.settle_sleep(name, "sleep", self.js.sleep(name, duration::as_millis(duration) as f64)))
    }

    fn sleep_until<'a>(&'a self, name: &'a str, epoch_millis: u64) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(self.settle_sleep(name, "sleepUntil", self.js.sleep_until(name, epoch_millis as f64)))
    }

    fn wait_for_event<'a>(
        &'a self,
        name: &'a str,
        event_type: &'a str,
        timeout: Duration,
    ) -> LocalBoxFuture<'a, Result<EventRecord, StepError>> {
        Box::pin(self.wait(name, event_type, timeout))
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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("step panicked: {text}")
}
