//! Workflows registered for this crate's tests, as a Worker's build.rs would: one
//! always there (`order-processing`) and a development probe (`probe`, enabled by
//! `ENABLE_PROBE`).

use serde::Deserialize;
use worker_workflows::{Env, Registered, Registry, Step, StepError, Workflow, WorkflowEvent, WorkflowSettings, WorkflowSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderParams {
    #[allow(dead_code)]
    pub order_id: String,
}

pub struct OrderWorkflow;

impl Workflow for OrderWorkflow {
    type Params = OrderParams;
    type Output = ();
    fn new(_env: Env) -> Self {
        OrderWorkflow
    }
    async fn run(&self, _event: &WorkflowEvent<OrderParams>, _step: Step<'_>) -> Result<(), StepError> {
        Ok(())
    }
}

impl Registered for OrderWorkflow {
    const SETTINGS: WorkflowSettings = WorkflowSettings::new("order-processing", "OrderWorkflow").binding("ORDER_WORKFLOW");
}

pub struct Probe;

impl Workflow for Probe {
    type Params = serde_json::Value;
    type Output = ();
    fn new(_env: Env) -> Self {
        Probe
    }
    async fn run(&self, _event: &WorkflowEvent<serde_json::Value>, _step: Step<'_>) -> Result<(), StepError> {
        Ok(())
    }
}

impl Registered for Probe {
    const SETTINGS: WorkflowSettings =
        WorkflowSettings { enabled_by: Some("ENABLE_PROBE"), ..WorkflowSettings::new("probe", "Probe").binding("PROBE") };
}

pub static WORKFLOWS: Registry = Registry::new(&[WorkflowSpec::of::<OrderWorkflow>(), WorkflowSpec::of::<Probe>()]);
