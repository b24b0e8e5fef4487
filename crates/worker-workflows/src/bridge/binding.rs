//! The Workflow binding (`env.ORDER_WORKFLOW`) in Rust: create (with retention),
//! create_batch and delete_batch (answered per entry), get, and per instance status,
//! pause, resume, terminate (with or without rollback), restart (from the start or
//! from a step), send_event, delete, and subscribe (the instance's typed event history,
//! then its live events).
//! Engine errors come back typed ([`BindingError`]): a missing instance is
//! `NotFound`, never a panic.

use super::js;
use crate::core::engine_error::BindingError;
use crate::core::instance_batch::{self, codes, CreateEntry, CreateOutcome, DeleteEntry, DeleteOutcome, EngineEntryError, EntryError};
use crate::core::instance_events::{self as events, InstanceEvent};
use crate::core::instance_options::{self, EngineCreateOptions, EngineRetention, RestartFrom, Retention};
use crate::core::status::{InstanceState, InstanceStatus};
use crate::core::validate;
use js_sys::{Array, Promise, Reflect};
use serde::Serialize;
use std::collections::HashSet;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::Env;

#[wasm_bindgen]
extern "C" {
    #[derive(Clone)]
    type JsWorkflow;

    #[wasm_bindgen(method, catch)]
    fn create(this: &JsWorkflow, options: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "createBatch")]
    fn create_batch(this: &JsWorkflow, batch: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn get(this: &JsWorkflow, id: &str) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "deleteBatch")]
    fn delete_batch(this: &JsWorkflow, ids: &JsValue) -> Result<Promise, JsValue>;

    #[derive(Clone)]
    type JsInstance;

    #[wasm_bindgen(method, getter)]
    fn id(this: &JsInstance) -> JsValue;

    #[wasm_bindgen(method, catch)]
    fn status(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn pause(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn resume(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn terminate(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "terminate")]
    fn terminate_with(this: &JsInstance, options: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn restart(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "restart")]
    fn restart_with(this: &JsInstance, options: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "sendEvent")]
    fn send_event(this: &JsInstance, event: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = "delete")]
    fn delete_instance(this: &JsInstance) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn subscribe(this: &JsInstance, options: &JsValue) -> Result<Promise, JsValue>;

    /// The engine's `WorkflowInstanceSubscription`: an RPC stub with `next()` and dispose.
    type JsSubscription;

    #[wasm_bindgen(method, catch, js_name = "next")]
    fn next_event(this: &JsSubscription) -> Result<Promise, JsValue>;
}

/// Runs one binding call, mapping a throw or a rejection to a typed error about `id`.
async fn call(id: &str, promise: Result<Promise, JsValue>) -> Result<JsValue, BindingError> {
    let to_error = |e: JsValue| BindingError::from_engine(id, &js::error_name(&e), &js::error_message(&e));
    JsFuture::from(promise.map_err(to_error)?).await.map_err(to_error)
}

fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, BindingError> {
    js::to_js(value).map(|(v, _)| v).map_err(|e| BindingError::Serialization(e.to_string()))
}

/// Checks one batch entry: its id (made when absent; valid, not reserved, not seen
/// before in the batch) and its retention.
fn check_entry<P>(new: &NewInstance<P>, seen: &mut HashSet<String>) -> Result<(String, Option<EngineRetention>), EntryError> {
    let id = match &new.id {
        Some(id) => {
            validate::instance_id(id).map_err(|e| EntryError::new(codes::INVALID_ID, e.to_string()))?;
            id.clone()
        }
        None => js::random_uuid(),
    };
    if !seen.insert(id.clone()) {
        return Err(EntryError::new(codes::INVALID_ID, format!("instance id {id:?} appears twice in the batch")));
    }
    let retention = new.engine_retention().map_err(|e| EntryError::new(codes::INVALID_RETENTION, e.to_string()))?;
    Ok((id, retention))
}

/// One instance to create: an id (the engine makes a UUID when `None`), params, and
/// how long the engine keeps it once finished (unset: the account's default).
#[derive(Debug, Clone)]
pub struct NewInstance<P> {
    /// The instance id; `None` lets the engine make a UUID. Checked before the engine is called.
    pub id: Option<String>,
    /// The params, serialised as the instance's `event.payload`.
    pub params: P,
    /// How long the engine keeps the instance once finished; `None` keeps the default.
    pub retention: Option<Retention>,
    /// The region to run it near (the engine's `locationHint`); `None` lets it choose.
    pub location_hint: Option<String>,
}

impl<P> NewInstance<P> {
    /// An instance with these params, a UUID for its id and the default retention.
    pub fn new(params: P) -> Self {
        NewInstance { id: None, params, retention: None, location_hint: None }
    }

    /// Sets the instance id (1 to 100 ASCII letters, digits, `-` and `_`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets how long the engine keeps the instance once finished.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The retention to send: none when unset or empty.
    fn engine_retention(&self) -> Result<Option<EngineRetention>, BindingError> {
        Ok(self.retention.as_ref().map(Retention::to_engine).transpose()?.filter(|r| *r != EngineRetention::default()))
    }
}

/// The object form of `createBatch`, which answers per entry.
#[derive(Serialize)]
struct EngineBatch<'a, P: Serialize> {
    instances: Vec<EngineCreateOptions<'a, P>>,
}

/// `{created: [WorkflowInstance], errors: [{index, id, code, message}]}`, at most 100 of each.
fn read_batch_answer(answer: &JsValue, list: &str) -> Result<(Vec<String>, Vec<EngineEntryError>), BindingError> {
    let listed = js::get(answer, list);
    let ids = if Array::is_array(&listed) {
        Array::from(&listed).iter().filter_map(|item| js::get(&item, "id").as_string()).collect()
    } else {
        Vec::new()
    };
    let errors = js::get(answer, "errors");
    let errors =
        if Array::is_array(&errors) { js::from_js(&errors).map_err(|e| BindingError::Serialization(e.to_string()))? } else { Vec::new() };
    Ok((ids, errors))
}

/// A Workflow binding of this Worker.
#[derive(Clone)]
pub struct WorkflowBinding {
    js: JsWorkflow,
}

impl WorkflowBinding {
    /// The Workflow binding named `binding` (`"ORDER_WORKFLOW"`) in the Worker's `env`, or
    /// [`BindingError::MissingBinding`].
    pub fn from_env(env: &Env, binding: &str) -> Result<Self, BindingError> {
        let value = Reflect::get(env, &JsValue::from_str(binding)).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() || value.is_null() {
            return Err(BindingError::MissingBinding(binding.to_string()));
        }
        Ok(WorkflowBinding { js: value.unchecked_into() })
    }

    /// Creates an instance. An id that exists is [`BindingError::AlreadyExists`]; the
    /// local engine checks, then creates, so two racing creates of one id may both be
    /// `Ok` (one run). `instances::create` claims the id first when that matters.
    pub async fn create<P: Serialize>(&self, id: Option<&str>, params: &P) -> Result<Instance, BindingError> {
        self.create_with(&NewInstance { id: id.map(str::to_string), params, retention: None, location_hint: None }).await
    }

    /// Creates an instance with everything `NewInstance` holds (id, params, retention).
    /// A malformed or reserved id and a bad retention are refused before the engine is called.
    pub async fn create_with<P: Serialize>(&self, new: &NewInstance<P>) -> Result<Instance, BindingError> {
        if let Some(id) = &new.id {
            validate::instance_id(id)?;
        }
        let options = EngineCreateOptions {
            id: new.id.as_deref(),
            params: &new.params,
            retention: new.engine_retention()?,
            location_hint: new.location_hint.as_deref(),
        };
        let instance = call(new.id.as_deref().unwrap_or(""), self.js.create(&to_js(&options)?)).await?;
        Ok(Instance::from_js(instance))
    }

    /// Creates 1 to 100 instances in one engine call and answers per entry, in order:
    /// created, already existed, or failed with a code and message. Entries with a
    /// malformed, reserved or repeated id or a bad retention fail here and are not sent
    /// (the engine would refuse the whole batch for one of them); the rest are. An entry
    /// without an id gets a UUID. Only a failure of the whole call is an `Err`.
    pub async fn create_batch<P: Serialize>(&self, batch: &[NewInstance<P>]) -> Result<Vec<CreateEntry>, BindingError> {
        BindingError::check_batch_size(batch.len())?;
        let mut entries = Vec::with_capacity(batch.len());
        // (index in `batch`, id, retention) of each entry sent to the engine.
        let mut sent: Vec<(usize, String, Option<EngineRetention>)> = Vec::with_capacity(batch.len());
        let mut seen = HashSet::new();
        for (index, new) in batch.iter().enumerate() {
            match check_entry(new, &mut seen) {
                Ok((id, retention)) => sent.push((index, id, retention)),
                Err(error) => entries.push(CreateEntry { index, id: new.id.clone(), outcome: CreateOutcome::Failed(error) }),
            }
        }
        if !sent.is_empty() {
            let instances: Vec<EngineCreateOptions<P>> = sent
                .iter()
                .map(|(index, id, retention)| EngineCreateOptions {
                    id: Some(id),
                    params: &batch[*index].params,
                    retention: *retention,
                    location_hint: batch[*index].location_hint.as_deref(),
                })
                .collect();
            let answer = call("", self.js.create_batch(&to_js(&EngineBatch { instances })?)).await?;
            let (created, errors) = read_batch_answer(&answer, "created")?;
            let ids: Vec<String> = sent.iter().map(|(_, id, _)| id.clone()).collect();
            let outcomes = instance_batch::create_outcomes(&ids, &created, &errors);
            entries.extend(sent.into_iter().zip(outcomes).map(|((index, id, _), outcome)| CreateEntry { index, id: Some(id), outcome }));
        }
        entries.sort_by_key(|e| e.index);
        Ok(entries)
    }

    /// Deletes 1 to 100 instances in one engine call and answers per id, in order:
    /// deleted, not found, or failed. A malformed id fails here and is not sent.
    pub async fn delete_batch<S: AsRef<str>>(&self, ids: &[S]) -> Result<Vec<DeleteEntry>, BindingError> {
        BindingError::check_batch_size(ids.len())?;
        let mut entries = Vec::with_capacity(ids.len());
        let mut sent: Vec<(usize, String)> = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().map(AsRef::as_ref).enumerate() {
            match validate::instance_id(id) {
                Ok(()) => sent.push((index, id.to_string())),
                Err(e) => entries.push(DeleteEntry {
                    index,
                    id: id.to_string(),
                    outcome: DeleteOutcome::Failed(EntryError::new(codes::INVALID_ID, e.to_string())),
                }),
            }
        }
        if !sent.is_empty() {
            let ids: Vec<String> = sent.iter().map(|(_, id)| id.clone()).collect();
            let answer = call("", self.js.delete_batch(&to_js(&ids)?)).await?;
            let (deleted, errors) = read_batch_answer(&answer, "deleted")?;
            let outcomes = instance_batch::delete_outcomes(&ids, &deleted, &errors);
            entries.extend(sent.into_iter().zip(outcomes).map(|((index, id), outcome)| DeleteEntry { index, id, outcome }));
        }
        entries.sort_by_key(|e| e.index);
        Ok(entries)
    }

    /// The instance with this id, or [`BindingError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<Instance, BindingError> {
        validate::instance_id(id)?;
        let instance = call(id, self.js.get(id)).await?;
        if instance.is_undefined() || instance.is_null() {
            return Err(BindingError::NotFound(id.to_string()));
        }
        Ok(Instance::from_js(instance))
    }
}

/// A handle on one workflow instance.
#[derive(Clone)]
pub struct Instance {
    js: JsInstance,
    id: String,
}

impl Instance {
    fn from_js(value: JsValue) -> Self {
        let js: JsInstance = value.unchecked_into();
        let id = js.id().as_string().unwrap_or_default();
        Instance { js, id }
    }

    /// The instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The instance's status, error and output. Bounded before it is copied into Rust:
    /// the local engine's `__LOCAL_DEV_STEP_OUTPUTS` (every step's output, which grows
    /// with the instance's history) is dropped unread, and an output over 1 MiB of JSON
    /// (more than a workflow of this crate can return) is dropped too.
    pub async fn status(&self) -> Result<InstanceStatus, BindingError> {
        let status = call(&self.id, self.js.status()).await?;
        if status.is_object() {
            let object = status.unchecked_ref::<js_sys::Object>();
            let _ = Reflect::delete_property(object, &JsValue::from_str("__LOCAL_DEV_STEP_OUTPUTS"));
            let output = js::get(&status, "output");
            if !output.is_undefined() && json_chars(&output).is_none_or(|n| n as usize > events::MAX_VALUE_CHARS) {
                let _ = Reflect::delete_property(object, &JsValue::from_str("output"));
            }
            cut_error_message(&js::get(&status, "error"));
        }
        js::from_js(&status).map_err(|e| BindingError::Serialization(e.to_string()))
    }

    /// Only the instance's state, for listings: its output and error are never copied
    /// out of the engine's answer (a page of 100 could otherwise hold 100 MiB of outputs).
    pub async fn state(&self) -> Result<InstanceState, BindingError> {
        let status = call(&self.id, self.js.status()).await?;
        let state = js::get(&status, "status");
        js::from_js(&state).map_err(|e| BindingError::Serialization(e.to_string()))
    }

    /// Pauses the instance: it stops once its running step ends, until [`resume`](Self::resume).
    pub async fn pause(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.pause()).await.map(drop)
    }

    /// Resumes a paused instance.
    pub async fn resume(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.resume()).await.map(drop)
    }

    /// Terminates the instance at once; no rollbacks run (see
    /// [`terminate_with_rollback`](Self::terminate_with_rollback)).
    pub async fn terminate(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.terminate()).await.map(drop)
    }

    /// Terminates the instance after running, in reverse start order, the rollbacks of
    /// its steps that registered one (`terminate({rollback: true})`). The engine runs
    /// them inside this call, so it returns when they are done; the instance ends
    /// `terminated` whatever their outcome.
    pub async fn terminate_with_rollback(&self) -> Result<(), BindingError> {
        let options = to_js(&instance_options::terminate_options(true))?;
        call(&self.id, self.js.terminate_with(&options)).await.map(drop)
    }

    /// Runs the instance again from the start (its params stay; every step runs again).
    pub async fn restart(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.restart()).await.map(drop)
    }

    /// Runs the instance again from one step: the steps before it keep their cached
    /// results, it and every later step run again. A step the instance's history does
    /// not hold is [`BindingError::StepNotFound`] and changes nothing.
    pub async fn restart_from(&self, from: &RestartFrom) -> Result<(), BindingError> {
        from.check()?;
        let options = to_js(&from.to_engine())?;
        call(&self.id, self.js.restart_with(&options)).await.map(drop)
    }

    /// Deletes the instance and everything the engine holds of it (status, output,
    /// history), in any state; a running instance stops.
    pub async fn delete(self) -> Result<(), BindingError> {
        call(&self.id, self.js.delete_instance()).await.map(drop)
    }

    /// The instance's events: every event after `cursor` (an event id, exclusive; `None`
    /// from the start) in order, then its live events until it finishes. Resuming with
    /// the last event id seen gives no duplicates and no gaps (within one run: a restart
    /// numbers events again).
    pub async fn subscribe(&self, cursor: Option<u64>) -> Result<Subscription, BindingError> {
        let options = match cursor {
            Some(cursor) => to_js(&serde_json::json!({ "cursor": cursor }))?,
            None => JsValue::UNDEFINED,
        };
        let js = call(&self.id, self.js.subscribe(&options)).await?;
        Ok(Subscription { js: js.unchecked_into(), id: self.id.clone(), pending: None, finished: false })
    }

    /// Sends an event that a `wait_for_event` of the same type receives.
    pub async fn send_event<T: Serialize + ?Sized>(&self, event_type: &str, payload: &T) -> Result<(), BindingError> {
        validate::event_type(event_type)?;
        let event = to_js(&serde_json::json!({ "type": event_type, "payload": payload }))?;
        call(&self.id, self.js.send_event(&event)).await.map(drop)
    }
}

/// An instance's events, from [`Instance::subscribe`]: [`Subscription::next`] gives them
/// one at a time, each bounded (see `core::instance_events`), and `None` once the
/// instance has finished. Dropping it closes the engine's side.
pub struct Subscription {
    js: JsSubscription,
    id: String,
    /// The engine's `next()` in flight: kept across a cancelled [`Subscription::next`],
    /// so waiting for an event can be raced against a timer without losing one.
    pending: Option<JsFuture>,
    finished: bool,
}

impl Subscription {
    /// The next event, waiting for it if the instance has not produced it yet; `None`
    /// after the event that ends the instance. Cancel-safe: dropping the future before it
    /// is ready loses nothing.
    pub async fn next(&mut self) -> Result<Option<InstanceEvent>, BindingError> {
        if self.finished {
            return Ok(None);
        }
        let to_error = |e: JsValue| BindingError::from_engine(&self.id, &js::error_name(&e), &js::error_message(&e));
        if self.pending.is_none() {
            self.pending = Some(JsFuture::from(self.js.next_event().map_err(to_error)?));
        }
        let result = match self.pending.as_mut() {
            Some(pending) => pending.await,
            None => return Ok(None),
        };
        self.pending = None;
        let result = result.map_err(|e| {
            self.finished = true;
            to_error(e)
        })?;
        if js::get(&result, "done").as_bool() == Some(true) {
            self.finished = true;
            return Ok(None);
        }
        let event = read_event(js::get(&result, "value"))?;
        if event.kind.is_terminal() {
            self.finished = true;
        }
        Ok(Some(event))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // `[Symbol.dispose]()` ends the engine's side (it stops waiting for new events).
        let dispose = Reflect::get(&self.js, &js_sys::Symbol::dispose().into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        if let Some(dispose) = dispose {
            let _ = dispose.call0(&self.js);
        }
    }
}

/// The length of `value`'s JSON in characters, read without copying it into Rust.
fn json_chars(value: &JsValue) -> Option<u32> {
    js_sys::JSON::stringify(value).ok().and_then(|s| s.dyn_into::<js_sys::JsString>().ok()).map(|s| s.length())
}

/// Cuts an `{name, message}` error's message to `MAX_ERROR_MESSAGE_CHARS` in place.
fn cut_error_message(error: &JsValue) {
    if let Some(message) = js::get(error, "message").dyn_ref::<js_sys::JsString>() {
        if message.length() as usize > events::MAX_ERROR_MESSAGE_CHARS {
            let _ = Reflect::set(error, &"message".into(), &message.slice(0, events::MAX_ERROR_MESSAGE_CHARS as u32).into());
        }
    }
}

fn is_stream(value: &JsValue) -> bool {
    value.is_object() && js::get(value, "getReader").is_function()
}

/// Reads one event, bounded before anything is copied into Rust: a stream output is
/// never serialised, an output or params over `MAX_VALUE_CHARS` is replaced by its
/// size, an error message is cut to `MAX_ERROR_MESSAGE_CHARS`, a callback envelope
/// around params is unwrapped, and an event still too large keeps only its type and ids.
fn read_event(value: JsValue) -> Result<InstanceEvent, BindingError> {
    let set = |key: &str, v: &JsValue| {
        let _ = Reflect::set(&value, &JsValue::from_str(key), v);
    };
    let remove = |key: &str| {
        let _ = Reflect::delete_property(value.unchecked_ref::<js_sys::Object>(), &JsValue::from_str(key));
    };
    for (key, marker) in [("output", events::OUTPUT_OMITTED_CHARS), ("params", events::PARAMS_OMITTED_CHARS)] {
        let field = js::get(&value, key);
        if field.is_undefined() {
            continue;
        }
        if key == "output" && is_stream(&field) {
            remove(key);
            set(events::OUTPUT_IS_STREAM, &JsValue::TRUE);
            continue;
        }
        match json_chars(&field) {
            Some(chars) if chars as usize <= events::MAX_VALUE_CHARS => {}
            chars => {
                remove(key);
                set(marker, &JsValue::from_f64(f64::from(chars.unwrap_or(0))));
            }
        }
    }
    cut_error_message(&js::get(&value, "error"));
    let text = js_sys::JSON::stringify(&value).ok().and_then(|s| s.dyn_into::<js_sys::JsString>().ok());
    let text = match text {
        Some(text) if (text.length() as usize) <= events::MAX_EVENT_CHARS => String::from(text),
        _ => {
            // Pathological: keep what identifies the event.
            let minimal = js_sys::Object::new();
            for key in ["type", "eventId", "timestamp", "instanceId", "stepName"] {
                let _ = Reflect::set(&minimal, &key.into(), &js::get(&value, key));
            }
            js_sys::JSON::stringify(&minimal).ok().map(String::from).unwrap_or_default()
        }
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BindingError::Serialization(format!("an instance event: {e}")))?;
    let mut event = InstanceEvent::from_json(&json).map_err(|e| BindingError::Serialization(e.to_string()))?;
    if let events::EventKind::WorkflowStarted { params: Some(events::StepOutput::Value(params)) } = &mut event.kind {
        *params = crate::core::callback::unwrap(std::mem::take(params)).0;
        *params = crate::core::child::unwrap(std::mem::take(params)).0;
        *params = crate::core::schedule::unwrap(std::mem::take(params)).0;
    }
    Ok(event)
}
