//! The event a workflow instance runs with.

use super::js;
use crate::core::callback;
use crate::core::step_error::StepError;
use crate::core::validate;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasm_bindgen::JsValue;

/// `WorkflowEvent<P>`: the typed params the instance was created with, and who it is.
#[derive(Debug, Clone)]
pub struct WorkflowEvent<P> {
    pub payload: P,
    /// When the instance was created.
    pub timestamp: SystemTime,
    pub instance_id: String,
    pub workflow_name: String,
}

impl<P: DeserializeOwned> WorkflowEvent<P> {
    /// Reads the engine's event, unwrapping a callback envelope (`callback`), and
    /// returns the callback URL beside it. Params that do not match `P` can never
    /// succeed, so they are a non-retryable error naming the mismatch.
    pub(crate) fn from_js(event: &JsValue, workflow_name: &str) -> Result<(Self, Option<String>), StepError> {
        let (params, callback_url) = callback::unwrap(js::from_js(&js::get(event, "payload"))?);
        let payload = validate::typed_params(&params)
            .map_err(|e| StepError::NonRetryable(format!("params do not match the workflow's params: {e}")))?;
        let timestamp = js::get(event, "timestamp");
        let millis = if let Some(date) = wasm_bindgen::JsCast::dyn_ref::<js_sys::Date>(&timestamp) {
            date.get_time()
        } else {
            timestamp.as_f64().unwrap_or(0.0)
        };
        let event = WorkflowEvent {
            payload,
            timestamp: UNIX_EPOCH + Duration::from_millis(millis.max(0.0) as u64),
            instance_id: js::get(event, "instanceId").as_string().unwrap_or_default(),
            workflow_name: js::get(event, "workflowName").as_string().unwrap_or_else(|| workflow_name.to_string()),
        };
        Ok((event, callback_url))
    }
}
