//! The engine's `run(event, step)` for one workflow, in the Worker: the JS event, step
//! and env become the typed event, the [`Step`] over the real engine and the [`Env`]
//! over the Worker's bindings.
//!
//! A run is a *frame* that can outlive the promise it gives the engine: the engine calls
//! the steps' rollbacks after that promise has failed (or from `terminate` with rollback,
//! while the run still goes), and those closures borrow the workflow and its event, which
//! this frame owns. So the frame settles the promise when the workflow ends and then keeps
//! serving rollback calls until the engine is done with them (`core::rollback`), a newer
//! run of the same instance replaces it, or it has been idle past its limit.

use super::engine::LocalBoxFuture;
use super::{js, js_env, js_step, output_text, webhook_delivery, Env, Step, Workflow, WorkflowEvent};
use crate::core::callback;
use crate::core::rollback::{frames_to_end, is_engine_abort, FrameState, RunEnd, RunKey};
use crate::core::step_error::StepError;
use crate::core::validate;
use crate::registry::{Registry, WorkflowSpec};
use js_sys::{Function, Promise};
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};
use wasm_bindgen::{JsCast, JsValue};

/// A value from or for the engine, as the dispatch in `workflows` passes it along.
pub type EngineValue = JsValue;

/// The message of a thrown JS value, for logs and errors.
pub fn js_error_text(value: &JsValue) -> String {
    format!("{}: {}", js::error_name(value), js::error_message(value))
}

/// The promise `run()` gives the engine, settled once by the frame.
pub struct RunPromise {
    resolve: Function,
    reject: Function,
    settled: Cell<bool>,
}

impl RunPromise {
    /// Resolves the promise with `value`, unless it is settled already.
    pub fn resolve(&self, value: &JsValue) {
        if !self.settled.replace(true) {
            let _ = self.resolve.call1(&JsValue::UNDEFINED, value);
        }
    }

    /// Rejects the promise with `error`, unless it is settled already.
    pub fn reject(&self, error: &JsValue) {
        if !self.settled.replace(true) {
            let _ = self.reject.call1(&JsValue::UNDEFINED, error);
        }
    }
}

/// Starts a run: `frame` gets the promise's settler and runs in the background; the
/// promise goes to the engine. A panic outside the steps (they catch their own) rejects
/// the promise and ends the frame.
pub fn start<F: Future<Output = ()> + 'static>(frame: impl FnOnce(Rc<RunPromise>) -> F) -> Promise {
    let mut settle = None;
    let mut slot = AssertUnwindSafe(&mut settle);
    let promise = Promise::new(&mut move |resolve, reject| {
        let slot = &mut slot;
        *slot.0 = Some((resolve, reject));
    });
    let Some((resolve, reject)) = settle else { return promise };
    let run = Rc::new(RunPromise { resolve, reject, settled: Cell::new(false) });
    let future = frame(Rc::clone(&run));
    super::js_task::spawn(async move {
        let mut future = pin!(future);
        poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
                run.reject(&js::js_error("PanicError", &format!("workflow panicked: {}", text.unwrap_or_default())));
                Poll::Ready(())
            }
        })
        .await
    });
    promise
}

/// What every live frame shares with the others in this isolate: which run it serves,
/// whether it has been told to end, and, once its workflow ended, until when it lingers.
struct FrameControl {
    key: RunKey,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Set once the workflow ended and rollbacks may still come: the idle limit, and
    /// the last activity (ms since the epoch).
    linger: Cell<Option<(Duration, f64)>>,
}

impl FrameControl {
    fn close(&self) {
        self.closed.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

thread_local! {
    static FRAMES: RefCell<Vec<Weak<FrameControl>>> = const { RefCell::new(Vec::new()) };
}

/// Registers a new frame for a run of `key`, ending the frames `frames_to_end` names.
fn register_frame(key: RunKey) -> Rc<FrameControl> {
    let now = js_sys::Date::now();
    let frame = Rc::new(FrameControl { key, closed: Cell::new(false), waker: RefCell::default(), linger: Cell::new(None) });
    FRAMES.with(|frames| {
        let mut frames = frames.borrow_mut();
        let live: Vec<Rc<FrameControl>> = frames.iter().filter_map(Weak::upgrade).collect();
        let states: Vec<FrameState<'_>> = live.iter().map(|f| FrameState { key: &f.key, linger: f.linger.get() }).collect();
        let end = frames_to_end(&states, &frame.key, now);
        let mut kept = Vec::with_capacity(live.len() + 1);
        for (other, end) in live.iter().zip(end) {
            if end {
                other.close();
            } else {
                kept.push(Rc::downgrade(other));
            }
        }
        kept.push(Rc::downgrade(&frame));
        *frames = kept;
    });
    frame
}

/// The engine's event before its params are typed: the params (a callback envelope
/// unwrapped) and the callback URL beside them. Read once for every workflow.
struct EngineEvent {
    params: serde_json::Value,
    callback_url: Option<String>,
    /// The parent, for a child workflow (`core::child`).
    parent: Option<crate::core::child::InstanceRef>,
    /// The cron tick that started it (`core::schedule`).
    schedule: Option<crate::core::schedule::ScheduledRun>,
    timestamp_millis: f64,
    instance_id: String,
    workflow_name: String,
}

fn engine_event(event: &JsValue, workflow_name: &str) -> Result<EngineEvent, StepError> {
    let (params, callback_url) = callback::unwrap(js::from_js(&js::get(event, "payload"))?);
    let (params, parent) = crate::core::child::unwrap(params);
    // The Worker's crons put the tick in an envelope; the engine's schedules in `event.schedule`.
    let (params, scheduled) = crate::core::schedule::unwrap(params);
    let schedule = scheduled.or_else(|| {
        let engine = js::get(event, "schedule");
        (!engine.is_undefined() && !engine.is_null())
            .then(|| js::from_js(&engine).ok())
            .flatten()
            .and_then(|v| crate::core::schedule::ScheduledRun::from_json(&v))
    });
    let timestamp = js::get(event, "timestamp");
    Ok(EngineEvent {
        params,
        callback_url,
        parent,
        schedule,
        timestamp_millis: match timestamp.dyn_ref::<js_sys::Date>() {
            Some(date) => date.get_time(),
            None => timestamp.as_f64().unwrap_or(0.0),
        },
        instance_id: js::get(event, "instanceId").as_string().unwrap_or_default(),
        workflow_name: js::get(event, "workflowName").as_string().unwrap_or_else(|| workflow_name.to_string()),
    })
}

/// The typed event. Params are read tolerantly (`validate::typed_params_tolerant`): a
/// field `P` no longer has is dropped, since a deploy may have removed it after the
/// instance was created (creates stay strict). Params that still do not match `P` can
/// never succeed, so they are a non-retryable error naming the mismatch.
fn typed_event<P: DeserializeOwned>(event: EngineEvent) -> Result<(WorkflowEvent<P>, Option<String>), StepError> {
    let payload = validate::typed_params_tolerant(&event.params).map_err(params_mismatch)?.params;
    let typed = WorkflowEvent {
        payload,
        timestamp: UNIX_EPOCH + Duration::from_millis(event.timestamp_millis.max(0.0) as u64),
        instance_id: event.instance_id,
        workflow_name: event.workflow_name,
        schedule: event.schedule,
    };
    Ok((typed, event.callback_url))
}

#[inline(never)]
fn params_mismatch(e: validate::ParamsMismatch) -> StepError {
    StepError::NonRetryable(format!("params do not match the workflow's params: {e}"))
}

/// The workflow and its callback, until they end.
type BodyFuture<'a> = Pin<Box<dyn Future<Output = Result<String, StepError>> + 'a>>;

/// What a registered workflow's run is to the dispatch: one boxed future per run, so the
/// dispatch polls one small future rather than a state machine holding every workflow's.
pub type RunFn = fn(&'static Registry, &'static WorkflowSpec, JsValue, JsValue, JsValue, Rc<RunPromise>) -> LocalBoxFuture<'static, ()>;

/// Runs workflow `W` for one engine `run(event, step)` call, settling `promise` when the
/// workflow ends, as one boxed future: what [`WorkflowSpec::of`] stores.
pub fn run_boxed<W: Workflow>(
    registry: &'static Registry,
    spec: &'static WorkflowSpec,
    event: JsValue,
    step: JsValue,
    env: JsValue,
    promise: Rc<RunPromise>,
) -> LocalBoxFuture<'static, ()> {
    Box::pin(run::<W>(registry, spec, event, step, env, promise))
}

/// `run(event, step)` of the registered workflow whose shim class is `class_name`: what the
/// generated `run_workflow` export calls. A panic anywhere in the run rejects the promise
/// (with the panic-unwind build) instead of aborting the isolate; the run may go on after
/// the promise settles, to serve its steps' rollbacks. A class no workflow has, and a
/// development probe whose var is not `"true"`, fail the run at once, never retried.
pub fn dispatch(registry: &'static Registry, class_name: String, event: JsValue, step: JsValue, env: JsValue) -> Promise {
    start(move |promise| async move {
        let Some(spec) = registry.by_class(&class_name) else {
            let message = format!("no Rust workflow for class {class_name}: register it in build.rs (worker-workflows-build)");
            return promise.reject(&js::js_error("NonRetryableError", &message));
        };
        if let Some(flag) = spec.settings.enabled_by {
            if js::get(&env, flag).as_string().as_deref() != Some("true") {
                let message = format!("workflow {} is disabled in this deployment (its var {flag} is not \"true\")", spec.name);
                return promise.reject(&js::js_error("NonRetryableError", &message));
            }
        }
        (spec.run)(registry, spec, event, step, env, promise).await
    })
}

/// Runs workflow `W` for one engine `run(event, step)` call, settling `promise` when the
/// workflow ends and serving rollback calls for as long as the engine may make them. Only
/// what depends on `W` is here; the rest is compiled once, in `serve` and `report`.
async fn run<W: Workflow>(
    registry: &'static Registry,
    spec: &'static WorkflowSpec,
    event: JsValue,
    step: JsValue,
    env: JsValue,
    promise: Rc<RunPromise>,
) {
    let parsed = engine_event(&event, spec.name).and_then(|mut engine| {
        let parent = engine.parent.take();
        typed_event::<W::Params>(engine).map(|(typed, callback_url)| (typed, callback_url, parent))
    });
    let (event, callback_url, parent) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return promise.reject(&e.into()),
    };
    let env = worker_env(env, registry);
    let workflow = W::new(env.clone());
    let engine = step_engine(step, &event.instance_id);
    let step = Step::new(engine.clone(), W::EVENTS).with_instance(env.clone(), &event).with_patches(patch_context(
        spec.name,
        event.timestamp,
        &env,
    ));
    let body = async {
        let outcome = async { output_text(&workflow.run(&event, step.clone()).await?) }.await;
        let outcome = report(&step, &env, spec, &event.instance_id, callback_url, outcome).await;
        super::js_handles::notify_parent(&step, &env, spec, &event.instance_id, parent, &outcome).await?;
        outcome
    };
    serve(spec.name, &event.instance_id, &engine, Box::pin(body), &promise).await;
}

// The run's env and step engine over the engine's JS values. Not inlined: they would be
// compiled into every workflow's `run` again.

#[inline(never)]
fn worker_env(env: JsValue, registry: &'static Registry) -> Env {
    Env::new(Rc::new(js_env::WorkerEnv::new(env.unchecked_into(), registry)))
}

/// `Step::patched`'s context: first sightings in the Worker's D1 database.
#[inline(never)]
fn patch_context(workflow: &str, created_at: std::time::SystemTime, env: &Env) -> super::patch::PatchContext {
    super::patch::PatchContext::new(workflow, created_at, Rc::new(super::patch::D1Patches::new(env.clone())))
}

#[inline(never)]
fn step_engine<'w>(step: JsValue, instance_id: &str) -> Rc<js_step::JsStepEngine<'w>> {
    Rc::new(js_step::JsStepEngine::new(step.unchecked_into(), instance_id))
}

/// An instance created with a callback URL reports how it ended from a durable step; a
/// completed instance stays complete with its output whether or not the callback could
/// be delivered, and an errored one stays errored. A paused (or restarted) run has
/// not ended: no callback for it.
async fn report(
    step: &Step<'_>,
    env: &Env,
    spec: &WorkflowSpec,
    instance_id: &str,
    callback_url: Option<String>,
    outcome: Result<String, StepError>,
) -> Result<String, StepError> {
    let aborted = matches!(&outcome, Err(e) if is_engine_abort(&e.to_string()));
    let Some(url) = callback_url.filter(|_| !aborted) else { return outcome };
    let output = match &outcome {
        Ok(text) => serde_json::from_str(text).map_err(|e| StepError::Serialization(format!("workflow output does not read back: {e}"))),
        Err(e) => Err(e.clone()),
    };
    let report = match &output {
        Ok(output) => callback::Outcome::Complete(output),
        Err(e) => callback::Outcome::Errored { name: e.js_name(), message: &e.to_string() },
    };
    let body = callback::body(instance_id, spec.name, &report);
    // A delivery that fails is recorded, never the instance's failure; only an engine
    // abort while delivering stops the run.
    webhook_delivery::deliver(step, env, spec.name, instance_id, &url, body).await?;
    outcome
}

/// The frame's loop, the same for every workflow: polls the workflow (`body`) and the
/// rollback calls the engine queues, settles `promise` when the workflow ends, and
/// returns when the engine is done with the rollbacks, or the frame is closed.
async fn serve<'w>(workflow: &str, instance_id: &str, engine: &js_step::JsStepEngine<'w>, body: BodyFuture<'_>, promise: &RunPromise) {
    let frame = register_frame(RunKey { workflow: workflow.to_string(), instance_id: instance_id.to_string() });
    let mut body = Some(body);
    let mut end: Option<RunEnd> = None;

    poll_fn(|cx| {
        *frame.waker.borrow_mut() = Some(cx.waker().clone());
        if frame.closed.get() {
            return Poll::Ready(());
        }
        engine.poll_rollbacks(cx);
        if let Some(future) = body.as_mut() {
            if engine.rollback_began() {
                // Terminated with rollback while running: the workflow must not go on
                // (its next step would fail in the rollback phase, and that failure
                // would start the engine's rollbacks a second time). The engine ends the
                // instance itself, so the promise is left for it.
                body = None;
                end = Some(RunEnd::Terminated);
            } else if let Poll::Ready(outcome) = future.as_mut().poll(cx) {
                body = None;
                end = Some(match outcome {
                    Ok(text) => match js::parse_json_text(&text) {
                        Ok(value) => {
                            promise.resolve(&value);
                            RunEnd::Completed
                        }
                        Err(e) => {
                            promise.reject(&e.into());
                            RunEnd::Failed
                        }
                    },
                    Err(e) => {
                        // An abort error reaches the engine with its message unchanged: the
                        // engine tells a pause from a failure by it.
                        let aborted = is_engine_abort(&e.to_string());
                        promise.reject(&e.into());
                        if aborted {
                            RunEnd::Aborted
                        } else {
                            RunEnd::Failed
                        }
                    }
                });
                // A rollback may have been queued while the workflow was polled.
                engine.poll_rollbacks(cx);
            }
        }
        match end {
            None => Poll::Pending,
            Some(end) => match engine.linger(end) {
                None => Poll::Ready(()),
                Some(limit) => {
                    frame.linger.set(Some((limit, js_sys::Date::now())));
                    Poll::Pending
                }
            },
        }
    })
    .await;
}
