//! The real engine behind [`Step`](super::Step): the engine's `WorkflowStep` object.
//!
//! The engine calls a step's callback once per attempt; here that callback only queues
//! the attempt, and the `step.run` future itself polls the closure's future. So the
//! closure may borrow from the workflow, and a panic in an attempt is caught right there
//! and fails that attempt only, like any other error, for the engine to retry.
//!
//! Rollbacks work the same way, one level up: the function the engine gets for a step's
//! rollback only queues the call, and the run (`js_run`) serves the queue, polling the
//! rollback closures kept here, which borrow the workflow and its event. The engine may
//! call them after the run's promise has failed, so the run keeps serving them until the
//! engine is done (see `core::rollback`). A function called after that answers with an
//! error saying so.

use super::engine::{EventRecord, LocalBoxFuture, RollbackFn, RollbackInput, StepCall, StepContext, StepEngine, StreamCall};
use super::js_calls::{Callbacks, Handler, Promises};
use super::{js, js_bytes};
use crate::core::duration;
use crate::core::rollback::{AttemptEnd, InstanceFailure, RollbackLedger, RunEnd};
use crate::core::step_config::{DelayFn, EngineStepConfig};
use crate::core::step_error::StepError;
use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The engine's `WorkflowStep`.
    #[derive(Clone)]
    pub type JsWorkflowStep;

    #[wasm_bindgen(method, catch, js_name = "do")]
    fn do_plain(this: &JsWorkflowStep, name: &str, callback: &Function) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "do")]
    fn do_with_config(this: &JsWorkflowStep, name: &str, config: &JsValue, callback: &Function) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "do")]
    fn do_with_rollback(
        this: &JsWorkflowStep,
        name: &str,
        config: &JsValue,
        callback: &Function,
        rollback: &JsValue,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn sleep(this: &JsWorkflowStep, name: &str, millis: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "sleepUntil")]
    fn sleep_until(this: &JsWorkflowStep, name: &str, epoch_millis: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "waitForEvent")]
    fn wait_for_event(this: &JsWorkflowStep, name: &str, options: &JsValue) -> Result<Promise, JsValue>;
}

/// One call from the engine (an attempt, or a rollback attempt) waiting for a Rust
/// future to run it: what it passed, and how to settle the promise it got.
struct Queued {
    arg: JsValue,
    resolve: Function,
    reject: Function,
}

/// One attempt of a step, its value ready for the engine (JSON as a JS value, bytes as a stream).
type JsAttemptFuture<'a> = LocalBoxFuture<'a, Result<JsValue, StepError>>;

/// A promise for the engine, and its resolvers.
fn pending_promise() -> (Promise, Option<(Function, Function)>) {
    let mut settle = None;
    // The executor runs synchronously inside Promise::new; AssertUnwindSafe (captured
    // whole) lets it write the resolvers out under panic=unwind.
    let mut slot = AssertUnwindSafe(&mut settle);
    let promise = Promise::new(&mut move |resolve, reject| {
        let slot = &mut slot;
        *slot.0 = Some((resolve, reject));
    });
    (promise, settle)
}

#[derive(Default)]
struct Inbox {
    attempts: RefCell<VecDeque<Queued>>,
    waker: RefCell<Option<Waker>>,
}

/// The rollback calls of one run, queued by the functions the engine holds.
#[derive(Default)]
struct RollbackInbox {
    calls: RefCell<VecDeque<(usize, Queued)>>,
    waker: RefCell<Option<Waker>>,
    /// The run is gone: calls are answered with an error at once.
    closed: Cell<bool>,
}

impl RollbackInbox {
    /// The JS function the engine gets as rollback `id`: it queues the call and returns
    /// the promise the run settles. It holds only the inbox, so it stays callable (and
    /// answers) after the run is gone; the JS GC frees it with the engine's last reference.
    fn function(self: &Rc<Self>, id: usize, step: &str) -> JsValue {
        let inbox = Rc::clone(self);
        let step = step.to_string();
        Closure::<dyn FnMut(JsValue) -> Promise>::own_assert_unwind_safe(move |arg: JsValue| {
            if inbox.closed.get() {
                let message = format!("the rollback of step {step:?} can no longer run: the workflow run that registered it has ended");
                return Promise::reject(&js::js_error(crate::core::step_error::NON_RETRYABLE_NAME, &message));
            }
            let (promise, settle) = pending_promise();
            if let Some((resolve, reject)) = settle {
                inbox.calls.borrow_mut().push_back((id, Queued { arg, resolve, reject }));
                if let Some(waker) = inbox.waker.borrow_mut().take() {
                    waker.wake();
                }
            }
            promise
        })
        .into_js_value()
    }
}

/// A registered rollback: the closure, and the delay function of its retries, which the
/// engine may call while it retries the rollback.
struct RollbackEntry<'w> {
    run: RollbackFn<'w>,
    _delay: Option<JsDelayFn>,
}

/// A retry delay function as the engine calls it.
type JsDelayFn = Closure<dyn FnMut(JsValue) -> JsValue>;

/// A rollback attempt in progress.
struct RunningRollback<'w> {
    id: usize,
    attempt: u32,
    future: LocalBoxFuture<'w, Result<(), StepError>>,
    resolve: Function,
    reject: Function,
}

/// The engine's step object for one `run(event, step)` call, with the rollbacks its
/// steps registered. `'w` is the lifetime of the workflow and its event.
pub struct JsStepEngine<'w> {
    js: JsWorkflowStep,
    instance_id: Rc<str>,
    rollbacks: RefCell<Vec<RollbackEntry<'w>>>,
    ledger: RefCell<RollbackLedger>,
    running: RefCell<Vec<RunningRollback<'w>>>,
    inbox: Rc<RollbackInbox>,
    /// The engine has called a rollback while the run was still going: it is being
    /// terminated with rollback.
    rollback_began: Cell<bool>,
    /// The engine's promises of this run, awaited.
    promises: Promises,
    /// The steps' callbacks the engine calls for each attempt.
    callbacks: Callbacks,
}

impl<'w> JsStepEngine<'w> {
    /// The engine of one run: `js` is the `step` object the engine passed, `instance_id` the
    /// running instance's id.
    pub fn new(js: JsWorkflowStep, instance_id: &str) -> Self {
        JsStepEngine {
            js,
            instance_id: instance_id.into(),
            rollbacks: RefCell::default(),
            ledger: RefCell::default(),
            running: RefCell::default(),
            inbox: Rc::default(),
            rollback_began: Cell::new(false),
            promises: Promises::new(),
            callbacks: Callbacks::new(step_gone),
        }
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

    /// The step's config as the engine takes it, with a delay function in place: the
    /// JS object, and the closure behind the function (to keep while the engine may call it).
    fn config_object(config: &EngineStepConfig) -> Result<(JsValue, Option<JsDelayFn>), StepError> {
        let object = js::to_js(config)?.0;
        let Some(delay) = config.retries.as_ref().and_then(|r| r.delay_fn.clone()) else { return Ok((object, None)) };
        let closure = delay_function(delay);
        js_sys::Reflect::set(&js::get(&object, "retries"), &"delay".into(), closure.as_ref())
            .map_err(|e| StepError::Serialization(js::error_message(&e)))?;
        Ok((object, Some(closure)))
    }

    /// Registers a step's rollback: the JS function for the engine, and the closure here.
    fn register_rollback(&self, name: &str, rollback: super::engine::RollbackCall<'w>) -> Result<JsValue, StepError> {
        let id = self.ledger.borrow_mut().register(name, rollback.config.as_ref());
        let options = js_sys::Object::new();
        let delay = match &rollback.config {
            Some(config) => {
                let (object, delay) = Self::config_object(config)?;
                js_sys::Reflect::set(&options, &"rollbackConfig".into(), &object)
                    .map_err(|e| StepError::Serialization(js::error_message(&e)))?;
                delay
            }
            None => None,
        };
        js_sys::Reflect::set(&options, &"rollback".into(), &self.inbox.function(id, name))
            .map_err(|e| StepError::Serialization(js::error_message(&e)))?;
        self.rollbacks.borrow_mut().push(RollbackEntry { run: rollback.run, _delay: delay });
        Ok(options.into())
    }

    async fn run_attempts<'a>(&'a self, call: StepCall<'a, 'w>) -> Result<String, StepError> {
        let StepCall { name, config, attempt, rollback } = call;
        // The JSON text of the last attempt that succeeded: when it is the only attempt,
        // the value the engine settles with is that one, so it is read back from this text
        // rather than stringified again.
        let last_ok_text: RefCell<Option<String>> = RefCell::default();
        let to_js = |context| -> JsAttemptFuture<'_> {
            let future = attempt(context);
            let last_ok_text = &last_ok_text;
            Box::pin(async move {
                let text = future.await?;
                let value = js::parse_json_text(&text)?;
                *last_ok_text.borrow_mut() = Some(text);
                Ok(value)
            })
        };
        let (outcome, attempts_started) = self.drive(name, config.as_ref(), rollback, &to_js).await?;
        let result = match outcome {
            Ok(value) if value.is_undefined() => Err(replaying_for_rollbacks(name)),
            Ok(value) => match last_ok_text.take().filter(|_| attempts_started == 1) {
                Some(text) => Ok(text),
                None => js::json_text(&value),
            },
            Err(error) => Err(js::step_error_from_js(&error)),
        };
        self.log_exceptional(name, "do", attempts_started, result.as_ref().err());
        result
    }

    /// A streamed step: each attempt's bytes go to the engine as a `ReadableStream`, and
    /// the stream the engine returns (its stored chunks, live and on replay) is read back.
    async fn run_stream_attempts<'a>(&'a self, call: StreamCall<'a>) -> Result<Vec<u8>, StepError> {
        let StreamCall { name, config, attempt } = call;
        // The sources of the streams handed to the engine: each holds its attempt's bytes
        // until the engine has settled the step (and so read or dropped every stream).
        let sources = RefCell::new(Vec::new());
        let to_js = |context| -> JsAttemptFuture<'_> {
            let future = attempt(context);
            let sources = &sources;
            Box::pin(async move {
                let (stream, source) = js_bytes::readable_stream(future.await?)?;
                sources.borrow_mut().push(source);
                Ok(stream)
            })
        };
        let driven = self.drive(name, config.as_ref(), None, &to_js).await;
        drop(sources.take());
        let (outcome, attempts_started) = driven?;
        let result = match outcome {
            Ok(value) if value.is_undefined() => Err(replaying_for_rollbacks(name)),
            Ok(value) => js_bytes::read_to_end(&value, name).await,
            Err(error) => Err(js::step_error_from_js(&error)),
        };
        self.log_exceptional(name, "do", attempts_started, result.as_ref().err());
        result
    }

    /// One `step.do` to its end, whatever its kind: issues it, runs each attempt the
    /// engine asks for (a panic caught and failing that attempt only), settles the
    /// attempt's promise with its JS value, and gives back how the engine settled the
    /// step and how many attempts ran here.
    async fn drive<'a>(
        &'a self,
        name: &'a str,
        config: Option<&EngineStepConfig>,
        rollback: Option<super::engine::RollbackCall<'w>>,
        attempt: &dyn Fn(StepContext) -> JsAttemptFuture<'a>,
    ) -> Result<(Result<JsValue, JsValue>, u32), StepError> {
        let (config_js, _delay) = match config {
            Some(config) => {
                let (object, delay) = Self::config_object(config)?;
                (Some(object), delay)
            }
            None => (None, None),
        };
        let rollback_js = rollback.map(|r| self.register_rollback(name, r)).transpose()?;

        let inbox = Rc::new(Inbox::default());
        let queue_attempt: Handler = {
            let inbox = Rc::clone(&inbox);
            Rc::new(move |context: JsValue| {
                let (promise, settle) = pending_promise();
                if let Some((resolve, reject)) = settle {
                    inbox.attempts.borrow_mut().push_back(Queued { arg: context, resolve, reject });
                    let waker = inbox.waker.borrow_mut().take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                promise
            })
        };
        let (callback_fn, registration) = self.callbacks.register(queue_attempt);
        let engine = match (&config_js, &rollback_js) {
            // The engine reads a null config as {}, but a null rollback option is an error.
            (config, Some(rollback)) => {
                let config = config.clone().unwrap_or_else(|| js_sys::Object::new().into());
                self.js.do_with_rollback(name, &config, &callback_fn, rollback)
            }
            (Some(config), None) => self.js.do_with_config(name, config, &callback_fn),
            (None, None) => self.js.do_plain(name, &callback_fn),
        }
        .map_err(|e| js::step_error_from_js(&e))?;
        let mut engine = self.promises.settled(&engine);

        let mut running: Vec<(JsAttemptFuture<'a>, Function, Function)> = Vec::new();
        let mut attempts_started = 0_u32;
        let outcome = poll_fn(|cx| {
            *inbox.waker.borrow_mut() = Some(cx.waker().clone());
            while let Some(queued) = inbox.attempts.borrow_mut().pop_front() {
                attempts_started += 1;
                let fallback = StepContext::resolved(name, 1, attempts_started, config);
                let context = match js::json_text(&queued.arg) {
                    Ok(text) => StepContext::from_engine_json(&text, fallback),
                    Err(_) => fallback,
                };
                running.push((attempt(context), queued.resolve, queued.reject));
            }
            running.retain_mut(|(future, resolve, reject)| {
                let settled = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => return true,
                    Ok(Poll::Ready(Ok(value))) => resolve.call1(&JsValue::UNDEFINED, &value),
                    Ok(Poll::Ready(Err(error))) => reject.call1(&JsValue::UNDEFINED, &error.into()),
                    Err(panic) => reject.call1(&JsValue::UNDEFINED, &js::js_error("PanicError", &panic_message("step", &*panic))),
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
        drop(registration);
        Ok((outcome, attempts_started))
    }

    async fn settle_sleep(&self, name: &str, kind: &str, promise: Result<Promise, JsValue>) -> Result<(), StepError> {
        let promise = promise.map_err(|e| js::step_error_from_js(&e))?;
        let result = self.promises.settled(&promise).await.map(drop).map_err(|e| js::step_error_from_js(&e));
        self.log_exceptional(name, kind, 0, result.as_ref().err());
        result
    }

    async fn wait(&self, name: &str, event_type: &str, timeout: Duration) -> Result<EventRecord, StepError> {
        let (options, _) = js::to_js(&serde_json::json!({
            "type": event_type,
            "timeout": duration::as_millis(timeout),
        }))?;
        let promise = self.js.wait_for_event(name, &options).map_err(|e| js::step_error_from_js(&e))?;
        let value = self.promises.settled(&promise).await.map_err(|e| timeout_or_error(&e));
        self.log_exceptional(name, "waitForEvent", 0, value.as_ref().err());
        let value = value?;
        if value.is_undefined() {
            // As for `step.do`: only a replay for rollbacks answers undefined.
            return Err(StepError::Failed(format!(
                "wait {name:?} has no event: the engine is replaying the instance to run its rollbacks"
            )));
        }
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

    /// Starts the rollback calls the engine has queued and polls those in progress,
    /// each attempt's panic caught and failing that attempt only. Called by the run on
    /// every wake, while the workflow runs and after it ended.
    pub(crate) fn poll_rollbacks(&self, cx: &mut Context<'_>) {
        *self.inbox.waker.borrow_mut() = Some(cx.waker().clone());
        let mut running = std::mem::take(&mut *self.running.borrow_mut());
        loop {
            let Some((id, call)) = self.inbox.calls.borrow_mut().pop_front() else { break };
            self.rollback_began.set(true);
            let (attempt, step) = {
                let mut ledger = self.ledger.borrow_mut();
                (ledger.begin(id), ledger.step(id).to_string())
            };
            let input = rollback_input(&call.arg, attempt, &step);
            let future = match self.rollbacks.borrow().get(id) {
                Some(entry) => (entry.run)(input),
                None => Box::pin(std::future::ready(Err(StepError::non_retryable("unknown rollback")))),
            };
            running.push(RunningRollback { id, attempt, future, resolve: call.resolve, reject: call.reject });
        }
        running.retain_mut(|r| {
            let result = match catch_unwind(AssertUnwindSafe(|| r.future.as_mut().poll(cx))) {
                Ok(Poll::Pending) => return true,
                Ok(Poll::Ready(result)) => result,
                Err(panic) => Err(StepError::Failed(panic_message("rollback", &*panic))),
            };
            let end = self.ledger.borrow_mut().end(r.id, &result);
            let _ = match &result {
                Ok(()) => r.resolve.call0(&JsValue::UNDEFINED),
                Err(e) => r.reject.call1(&JsValue::UNDEFINED, &js::js_error(e.js_name(), &e.to_string())),
            };
            self.log_rollback(r.id, r.attempt, end, result.as_ref().err());
            false
        });
        // A rollback's future may have started others meanwhile (it cannot: steps are
        // refused during rollbacks), but keep any that appeared rather than lose them.
        running.append(&mut self.running.borrow_mut());
        *self.running.borrow_mut() = running;
    }

    /// Every rollback outcome is logged: a compensation ran, or failed and left
    /// something undone.
    fn log_rollback(&self, id: usize, attempt: u32, end: AttemptEnd, error: Option<&StepError>) {
        let line = serde_json::json!({
            "type": "rollback",
            "instance": &*self.instance_id,
            "step": self.ledger.borrow().step(id),
            "attempt": attempt,
            "outcome": match end { AttemptEnd::Succeeded => "ok", AttemptEnd::WillRetry => "retry", AttemptEnd::FailedForGood => "failed" },
            "error": error.map(|e| e.to_string()),
        });
        if end == AttemptEnd::FailedForGood {
            worker::console_error!("{line}");
        } else {
            worker::console_log!("{line}");
        }
    }

    /// The engine called a rollback while the run was still going (terminate with rollback).
    pub(crate) fn rollback_began(&self) -> bool {
        self.rollback_began.get()
    }

    /// Whether a run that ended so must keep serving rollbacks, and for how long idle.
    pub(crate) fn linger(&self, end: RunEnd) -> Option<Duration> {
        if !self.running.borrow().is_empty() || !self.inbox.calls.borrow().is_empty() {
            return Some(crate::core::rollback::LINGER_IDLE);
        }
        self.ledger.borrow().linger(end)
    }
}

impl Drop for JsStepEngine<'_> {
    /// The run is gone: calls still queued or running are answered, later ones refused.
    fn drop(&mut self) {
        self.inbox.closed.set(true);
        let gone = || js::js_error(crate::core::step_error::NON_RETRYABLE_NAME, "the workflow run that registered this rollback has ended");
        for (_, call) in self.inbox.calls.borrow_mut().drain(..) {
            let _ = call.reject.call1(&JsValue::UNDEFINED, &gone());
        }
        for r in self.running.borrow_mut().drain(..) {
            let _ = r.reject.call1(&JsValue::UNDEFINED, &gone());
        }
    }
}

/// The answer to the engine calling a step's callback once nothing here can run its
/// attempt: the step settled, its future was dropped (the workflow stopped awaiting it, or
/// a rollback began and ended the workflow's body), or the run ended. Non-retryable, since
/// a retry could not run it either.
fn step_gone() -> Promise {
    Promise::reject(&js::js_error(
        crate::core::step_error::NON_RETRYABLE_NAME,
        "this step's attempt cannot run: the workflow no longer awaits the step, or the run that started it has ended",
    ))
}

/// What the engine passed a rollback (`{ctx, error, output, stepName}`) as plain data.
/// `output` is absent (undefined) for a step that did not complete; our steps' values
/// are JSON, never undefined, so that is `None`.
fn rollback_input(arg: &JsValue, attempt: u32, step: &str) -> RollbackInput {
    let fallback = StepContext::resolved(step, 1, 1, None);
    let context = match js::json_text(&js::get(arg, "ctx")) {
        Ok(text) => StepContext::from_engine_json(&text, fallback),
        Err(_) => fallback,
    };
    let error = js::get(arg, "error");
    let output = js::get(arg, "output");
    RollbackInput {
        attempt,
        step: context,
        error: InstanceFailure::from_engine(&js::error_name(&error), &js::error_message(&error)),
        output_json: if output.is_undefined() { None } else { js::json_text(&output).ok() },
    }
}

/// The function the engine calls for a retry delay with `{ctx, error}`: the delay in
/// milliseconds from the Rust function, given the attempt that failed and its error.
fn delay_function(delay: DelayFn) -> JsDelayFn {
    Closure::<dyn FnMut(JsValue) -> JsValue>::own_assert_unwind_safe(move |arg: JsValue| {
        let attempt = js::get(&js::get(arg.as_ref(), "ctx"), "attempt").as_f64().map_or(1, |a| a as u32);
        let error = js::step_error_from_js(&js::get(&arg, "error"));
        JsValue::from_f64(duration::as_millis(delay.delay(attempt, &error)) as f64)
    })
}

impl<'w> StepEngine<'w> for JsStepEngine<'w> {
    fn run<'a>(&'a self, call: StepCall<'a, 'w>) -> LocalBoxFuture<'a, Result<String, StepError>> {
        Box::pin(self.run_attempts(call))
    }

    fn run_stream<'a>(&'a self, call: StreamCall<'a>) -> LocalBoxFuture<'a, Result<Vec<u8>, StepError>> {
        Box::pin(self.run_stream_attempts(call))
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

/// Our steps' values are never undefined: the engine answers undefined only when it
/// replays the run to collect rollbacks (terminate with rollback after a restart) and
/// this step never completed. The replay ends here.
fn replaying_for_rollbacks(name: &str) -> StepError {
    StepError::Failed(format!("step {name:?} did not complete: the engine is replaying the instance to run its rollbacks"))
}

fn panic_message(what: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("{what} panicked: {text}")
}
