//! Every workflow this Worker defines, one per file, named after the workflow
//! (`order-processing` is `order_processing.rs`, holding `OrderWorkflow`).
//!
//! To add one: the file here and one `WorkflowSpec` in `src/registry/mod.rs` (plus the
//! `workflows` entry wrangler needs in `wrangler.jsonc`; the build prints it when it is
//! missing). `build.rs` declares the modules and calls `workflows!` below with every
//! registered type, and generates the shim's classes.
//!
//! May depend on: `bridge` (the engine, the env, outbound calls), `core`, `registry`.
//! Never on the HTTP API or the triggers.

use crate::bridge::Workflow;
use crate::core::events::EventProblem;
use crate::core::validate::{typed_params, ParamsMismatch};

macro_rules! workflows {
    ($($class:ident),* $(,)?) => {
        /// Runs the workflow whose shim class is `class_name`, settling `promise`.
        #[cfg(target_arch = "wasm32")]
        pub(crate) async fn dispatch(
            class_name: &str,
            event: crate::bridge::EngineValue,
            step: crate::bridge::EngineValue,
            env: crate::bridge::EngineValue,
            promise: std::rc::Rc<crate::bridge::RunPromise>,
        ) {
            let unknown = || crate::bridge::js::js_error("NonRetryableError", &format!("no Rust workflow for class {class_name}: register it in src/registry/mod.rs"));
            let Some(spec) = crate::registry::workflow_by_class(class_name) else { return promise.reject(&unknown()) };
            // Each run boxed behind one type: the caller polls one small future rather
            // than a state machine holding every workflow's.
            let run: crate::bridge::engine::LocalBoxFuture<'static, ()> = match class_name {
                $( stringify!($class) => Box::pin(crate::bridge::run::<$class>(spec, event, step, env, promise)), )*
                _ => return promise.reject(&unknown()),
            };
            run.await
        }

        /// Checks an event against the events the workflow with this class declares
        /// (`Workflow::EVENTS`): its type, and its payload against that type's.
        pub fn check_workflow_event(class_name: &str, event_type: &str, payload: &serde_json::Value) -> Result<(), EventProblem> {
            let declared = match class_name {
                $( stringify!($class) => <$class as Workflow>::EVENTS, )*
                _ => &[],
            };
            crate::core::events::check(declared, event_type, payload)
        }

        /// Checks params against the typed params of the workflow with this class.
        pub fn check_workflow_params(class_name: &str, params: &serde_json::Value) -> Result<(), ParamsMismatch> {
            match class_name {
                $( stringify!($class) => typed_params::<<$class as Workflow>::Params>(params).map(drop), )*
                _ => Err(ParamsMismatch(format!("no workflow has the class {class_name}"))),
            }
        }
    };
}

// The modules, re-exports and `workflows![…]` call generated from the registry.
include!(concat!(env!("OUT_DIR"), "/workflows.rs"));

/// README's "Writing a workflow" example, compiled here so it cannot drift from the API.
#[allow(dead_code)]
mod readme_example {
    include!(concat!(env!("OUT_DIR"), "/readme_example.rs"));
}

/// README's "Sagas and compensation" example, compiled likewise.
#[allow(dead_code)]
mod readme_saga_example {
    include!(concat!(env!("OUT_DIR"), "/readme_saga_example.rs"));
}
