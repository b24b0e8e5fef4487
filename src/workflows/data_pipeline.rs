//! (being written)

use crate::bridge::{Step, Workflow, WorkflowEvent};
use crate::step_error::StepError;
use serde::{Deserialize, Serialize};
use worker::Env;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineParams {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineOutput {}

pub struct DataPipelineWorkflow {
    _env: Env,
}

impl Workflow for DataPipelineWorkflow {
    type Params = PipelineParams;
    type Output = PipelineOutput;

    fn new(env: Env) -> Self {
        DataPipelineWorkflow { _env: env }
    }

    async fn run(&self, _event: WorkflowEvent<PipelineParams>, _step: Step) -> Result<PipelineOutput, StepError> {
        Err(StepError::non_retryable("not written yet"))
    }
}
