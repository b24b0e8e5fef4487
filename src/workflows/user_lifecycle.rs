//! (being written)

use crate::bridge::{Step, Workflow, WorkflowEvent};
use crate::step_error::StepError;
use serde::{Deserialize, Serialize};
use worker::Env;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleParams {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleOutput {}

pub struct UserLifecycleWorkflow {
    _env: Env,
}

impl Workflow for UserLifecycleWorkflow {
    type Params = LifecycleParams;
    type Output = LifecycleOutput;

    fn new(env: Env) -> Self {
        UserLifecycleWorkflow { _env: env }
    }

    async fn run(&self, _event: WorkflowEvent<LifecycleParams>, _step: Step) -> Result<LifecycleOutput, StepError> {
        Err(StepError::non_retryable("not written yet"))
    }
}
