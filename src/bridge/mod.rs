//! The bridge between the engine (JS) and workflows (Rust): the `Workflow` trait,
//! the step handle, the event, the Workflow binding, and values and errors across
//! the boundary.

pub mod binding;
pub mod event;
pub(crate) mod js;
pub mod step;

pub use binding::{Instance, NewInstance, WorkflowBinding};
pub use event::WorkflowEvent;
pub use step::{ReceivedEvent, Step, StepContext};

use crate::registry::WorkflowSpec;
use crate::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

/// A workflow: typed params in, typed output out, steps in between.
///
/// Implement it on a type named like the class in `wrangler.jsonc`, list it in
/// `src/registry.rs` and in `workflows!` (`src/workflows/mod.rs`), and export the
/// class from `shim/index.mjs`. `build.rs` checks the three agree.
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
/// against the engine's 1 MiB limit like a step result.
pub(crate) async fn run<W: Workflow>(spec: &WorkflowSpec, event: JsValue, step: JsValue, env: JsValue) -> Result<JsValue, JsValue> {
    let event = WorkflowEvent::<W::Params>::from_js(&event, spec.name)?;
    let step = Step::new(step.unchecked_into());
    let output = W::new(env.unchecked_into()).run(event, step).await?;
    let (value, size) = js::to_js(&output)?;
    StepError::check_result_size_n(size)?;
    Ok(value)
}
