//! Every workflow this Worker defines, one per file, and the dispatch from the
//! shim's class name to the Rust type. To add one: a file here with a type named
//! like its class, an entry in `workflows!` below and in `src/registry.rs`, a
//! `workflows` entry in wrangler.jsonc, and a class line in shim/index.mjs.

pub mod approval;
pub mod cleanup;
pub mod data_pipeline;
pub mod onboarding;
pub mod order;
pub mod step_tour;
pub mod user_lifecycle;

use crate::api::{check_params, ApiError};
use crate::bridge::{self, js::js_error, Workflow};
use crate::registry;
use wasm_bindgen::JsValue;

pub use approval::ApprovalWorkflow;
pub use cleanup::CleanupWorkflow;
pub use data_pipeline::DataPipelineWorkflow;
pub use onboarding::OnboardingWorkflow;
pub use order::OrderWorkflow;
pub use step_tour::StepTourWorkflow;
pub use user_lifecycle::UserLifecycleWorkflow;

macro_rules! workflows {
    ($($class:ident),* $(,)?) => {
        $(
            const _: () = assert!(
                registry::has_class(stringify!($class)),
                concat!("workflow type ", stringify!($class), " is listed in workflows! but not in src/registry.rs")
            );
        )*

        /// Runs the workflow whose shim class is `class_name`.
        pub(crate) async fn dispatch(class_name: &str, event: JsValue, step: JsValue, env: JsValue) -> Result<JsValue, JsValue> {
            let unknown = || js_error("NonRetryableError", &format!("no Rust workflow for class {class_name}: list it in src/registry.rs and workflows!"));
            let spec = registry::workflow_by_class(class_name).ok_or_else(unknown)?;
            match class_name {
                $( stringify!($class) => bridge::run::<$class>(spec, event, step, env).await, )*
                _ => Err(unknown()),
            }
        }

        /// Checks params against the typed params of the workflow named `name`.
        pub(crate) fn check_workflow_params(class_name: &str, params: &serde_json::Value) -> Result<(), ApiError> {
            match class_name {
                $( stringify!($class) => check_params::<<$class as Workflow>::Params>(params).map(drop), )*
                _ => Err(ApiError::WorkflowNotFound(class_name.to_string())),
            }
        }
    };
}

workflows![
    OrderWorkflow,
    StepTourWorkflow,
    CleanupWorkflow,
    OnboardingWorkflow,
    ApprovalWorkflow,
    DataPipelineWorkflow,
    UserLifecycleWorkflow,
];
