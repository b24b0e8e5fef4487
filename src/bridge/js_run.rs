//! The engine's `run(event, step)` for one workflow, in the Worker: the JS event, step
//! and env become the typed event, the [`Step`] over the real engine and the [`Env`]
//! over the Worker's bindings.

use super::{js, js_env, js_step, output_text, webhook_delivery, Env, Step, Workflow, WorkflowEvent};
use crate::core::callback;
use crate::core::step_error::StepError;
use crate::core::validate;
use crate::registry::WorkflowSpec;
use serde::de::DeserializeOwned;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use wasm_bindgen::{JsCast, JsValue};

/// A value from or for the engine, as the dispatch in `workflows` passes it along.
pub type EngineValue = JsValue;

/// The message of a thrown JS value, for logs and errors.
pub(crate) fn js_error_text(value: &JsValue) -> String {
    format!("{}: {}", js::error_name(value), js::error_message(value))
}

/// Reads the engine's event, unwrapping a callback envelope (`callback`), and returns the
/// callback URL beside it. Params that do not match `P` can never succeed, so they are a
/// non-retryable error naming the mismatch.
fn event_from_js<P: DeserializeOwned>(event: &JsValue, workflow_name: &str) -> Result<(WorkflowEvent<P>, Option<String>), StepError> {
    let (params, callback_url) = callback::unwrap(js::from_js(&js::get(event, "payload"))?);
    let payload =
        validate::typed_params(&params).map_err(|e| StepError::NonRetryable(format!("params do not match the workflow's params: {e}")))?;
    let timestamp = js::get(event, "timestamp");
    let millis = match timestamp.dyn_ref::<js_sys::Date>() {
        Some(date) => date.get_time(),
        None => timestamp.as_f64().unwrap_or(0.0),
    };
    let event = WorkflowEvent {
        payload,
        timestamp: UNIX_EPOCH + Duration::from_millis(millis.max(0.0) as u64),
        instance_id: js::get(event, "instanceId").as_string().unwrap_or_default(),
        workflow_name: js::get(event, "workflowName").as_string().unwrap_or_else(|| workflow_name.to_string()),
    };
    Ok((event, callback_url))
}

/// Runs workflow `W` for one engine `run(event, step)` call. An instance created with a
/// callback URL then reports how it ended from a durable step; an errored instance stays
/// errored after its callback.
pub(crate) async fn run<W: Workflow>(spec: &WorkflowSpec, event: JsValue, step: JsValue, env: JsValue) -> Result<JsValue, JsValue> {
    let (event, callback_url) = event_from_js::<W::Params>(&event, spec.name)?;
    let env = Env::new(Rc::new(js_env::WorkerEnv::new(env.unchecked_into())));
    let workflow = W::new(env.clone());
    let engine = Rc::new(js_step::JsStepEngine::new(step.unchecked_into(), &event.instance_id));
    let step = Step::new(engine);
    let outcome = async { output_text(&workflow.run(&event, step.clone()).await?) }.await;
    if let Some(url) = callback_url {
        let output = match &outcome {
            Ok(text) => {
                serde_json::from_str(text).map_err(|e| StepError::Serialization(format!("workflow output does not read back: {e}")))
            }
            Err(e) => Err(e.clone()),
        };
        let report = match &output {
            Ok(output) => callback::Outcome::Complete(output),
            Err(e) => callback::Outcome::Errored { name: e.js_name(), message: &e.to_string() },
        };
        let body = callback::body(&event.instance_id, spec.name, &report);
        let delivered = webhook_delivery::send(&step, &env, spec.name, &event.instance_id, &url, body).await;
        if let (Ok(_), Err(e)) = (&outcome, delivered) {
            return Err(e.into());
        }
    }
    let text = outcome?;
    Ok(js::parse_json_text(&text)?)
}
