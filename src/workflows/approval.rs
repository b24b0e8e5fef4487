//! (being written)

use crate::bridge::{Step, Workflow, WorkflowEvent};
use crate::step_error::StepError;
use serde::{Deserialize, Serialize};
use worker::Env;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalParams {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {}

pub struct ApprovalWorkflow {
    _env: Env,
}

impl Workflow for ApprovalWorkflow {
    type Params = ApprovalParams;
    type Output = Decision;

    fn new(env: Env) -> Self {
        ApprovalWorkflow { _env: env }
    }

    async fn run(&self, _event: WorkflowEvent<ApprovalParams>, _step: Step) -> Result<Decision, StepError> {
        Err(StepError::non_retryable("not written yet"))
    }
}
