//! The bridge between the engine (JS) and workflows (Rust): the `Workflow` trait,
//! the step handle (`step`), the event (`event`), the Workflow binding (`binding`)
//! and the instance index's claimed creates (`instances`), the env (`env`), calls to
//! outside services (`outbound`), webhook delivery, and values and errors across the
//! boundary (`js`). Everything here is the wasm edge.
//!
//! May depend on: `core`, `registry`. Never on workflows, triggers or the HTTP API.

pub mod binding;
pub mod env;
pub mod event;
pub mod instances;
pub(crate) mod js;
pub mod outbound;
pub mod step;
mod webhook_delivery;

pub use binding::{Instance, NewInstance, WorkflowBinding};
pub use env::WorkflowEnv;
pub use event::WorkflowEvent;
pub use step::{ReceivedEvent, Step, StepContext};

use crate::core::callback;
use crate::core::step_error::StepError;
use crate::registry::WorkflowSpec;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

/// The message of a thrown JS value, for logs and errors.
pub(crate) fn js_error_text(value: &JsValue) -> String {
    format!("{}: {}", js::error_name(value), js::error_message(value))
}

/// A workflow: typed params in, typed output out, steps in between.
///
/// Implement it on a type named like its `class_name` in a file of `src/workflows/`
/// named after the workflow, and register it in `src/registry/mod.rs`.
pub trait Workflow: Sized + 'static {
    type Params: DeserializeOwned;
    type Output: Serialize;

    /// Builds the workflow for one run, with the Worker's bindings.
    fn new(env: Env) -> Self;

    /// The workflow itself. Everything with a side effect belongs in a step; code
    /// outside steps runs again whenever the engine replays the instance.
    fn run(&self, event: WorkflowEvent<Self::Params>, step: Step) -> impl Future<Output = Result<Self::Output, StepError>>;
}

/// Runs workflow `W` for one engine `run(event, step)` call. The output is checked
/// against the engine's 1 MiB limit like a step result. An instance created with a
/// callback URL then reports how it ended from a durable step; an errored instance
/// stays errored after its callback.
pub(crate) async fn run<W: Workflow>(spec: &WorkflowSpec, event: JsValue, step: JsValue, env: JsValue) -> Result<JsValue, JsValue> {
    let (event, callback_url) = WorkflowEvent::<W::Params>::from_js(&event, spec.name)?;
    let instance_id = event.instance_id.clone();
    let step = Step::new(step.unchecked_into(), &instance_id);
    let env: Env = env.unchecked_into();
    // The output is serialised once, to the JSON text the engine gets (parsed in JS).
    let outcome = async {
        let output = W::new(env.clone()).run(event, step.clone()).await?;
        let text =
            serde_json::to_string(&output).map_err(|e| StepError::Serialization(format!("workflow output cannot be serialised: {e}")))?;
        StepError::check_result_size(&text)?;
        Ok::<_, StepError>(text)
    }
    .await;
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
        // Owned copies: `report` borrows `outcome`, which is returned below.
        let body = callback::body(&instance_id, spec.name, &report);
        let delivered = webhook_delivery::send(&step, &env, spec.name, &instance_id, &url, body).await;
        if let (Ok(_), Err(e)) = (&outcome, delivered) {
            return Err(e.into());
        }
    }
    let text = outcome?;
    Ok(js::parse_json_text(&text)?)
}
