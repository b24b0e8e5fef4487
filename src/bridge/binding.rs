//! The Workflow binding (`env.ORDER_WORKFLOW`) in Rust: create, create_batch, get,
//! and per instance status, pause, resume, terminate (with or without rollback),
//! restart (from the start or from a step), send_event.
//! Engine errors come back typed ([`BindingError`]): a missing instance is
//! `NotFound`, never a panic.

use super::js;
use crate::core::engine_error::BindingError;
use crate::core::instance_options::{self, RestartFrom};
use crate::core::status::InstanceStatus;
use crate::core::validate;
use js_sys::{Array, Promise, Reflect};
use serde::Serialize;
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
}

/// Runs one binding call, mapping a throw or a rejection to a typed error about `id`.
async fn call(id: &str, promise: Result<Promise, JsValue>) -> Result<JsValue, BindingError> {
    let to_error = |e: JsValue| BindingError::from_engine(id, &js::error_name(&e), &js::error_message(&e));
    JsFuture::from(promise.map_err(to_error)?).await.map_err(to_error)
}

fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, BindingError> {
    js::to_js(value).map(|(v, _)| v).map_err(|e| BindingError::Serialization(e.to_string()))
}

/// One instance to create: an id (the engine makes a UUID when `None`) and params.
#[derive(Debug, Clone, Serialize)]
pub struct NewInstance<P> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub params: P,
}

/// A Workflow binding of this Worker.
#[derive(Clone)]
pub struct WorkflowBinding {
    js: JsWorkflow,
}

impl WorkflowBinding {
    pub fn from_env(env: &Env, binding: &str) -> Result<Self, BindingError> {
        let value = Reflect::get(env, &JsValue::from_str(binding)).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() || value.is_null() {
            return Err(BindingError::MissingBinding(binding.to_string()));
        }
        Ok(WorkflowBinding { js: value.unchecked_into() })
    }

    /// Creates an instance. An id that exists is [`BindingError::AlreadyExists`]: the
    /// engine refuses it atomically, so two racing creates give one instance.
    pub async fn create<P: Serialize>(&self, id: Option<&str>, params: &P) -> Result<Instance, BindingError> {
        if let Some(id) = id {
            validate::instance_id(id)?;
        }
        let options = to_js(&NewInstance { id: id.map(str::to_string), params })?;
        let instance = call(id.unwrap_or(""), self.js.create(&options)).await?;
        Ok(Instance::from_js(instance))
    }

    /// Creates 1 to 100 instances in one call; ids that already exist are skipped by the engine.
    pub async fn create_batch<P: Serialize>(&self, batch: &[NewInstance<P>]) -> Result<Vec<Instance>, BindingError> {
        BindingError::check_batch_size(batch.len())?;
        for id in batch.iter().filter_map(|n| n.id.as_deref()) {
            validate::instance_id(id)?;
        }
        let created = call("", self.js.create_batch(&to_js(batch)?)).await?;
        Ok(Array::from(&created).iter().map(Instance::from_js).collect())
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

    pub fn id(&self) -> &str {
        &self.id
    }

    pub async fn status(&self) -> Result<InstanceStatus, BindingError> {
        let status = call(&self.id, self.js.status()).await?;
        js::from_js(&status).map_err(|e| BindingError::Serialization(e.to_string()))
    }

    pub async fn pause(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.pause()).await.map(drop)
    }

    pub async fn resume(&self) -> Result<(), BindingError> {
        call(&self.id, self.js.resume()).await.map(drop)
    }

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

    /// Sends an event that a `wait_for_event` of the same type receives.
    pub async fn send_event<T: Serialize + ?Sized>(&self, event_type: &str, payload: &T) -> Result<(), BindingError> {
        validate::event_type(event_type)?;
        let event = to_js(&serde_json::json!({ "type": event_type, "payload": payload }))?;
        call(&self.id, self.js.send_event(&event)).await.map(drop)
    }
}
