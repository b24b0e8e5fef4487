//! The determinism check on a workflow written the wrong way: a report named after the
//! clock read outside a step. It runs fine once; the engine replays it after its sleep,
//! the name differs, and the stored result no longer matches. The test engine catches
//! it on the first replay, naming the step; the fixed twin passes.

use std::time::UNIX_EPOCH;
use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use worker_workflows::core::step_error::StepError;
use worker_workflows::testing::{Status, TestEngine};

pub struct DailyReport {
    env: Env,
}

impl Workflow for DailyReport {
    type Params = ();
    type Output = String;

    fn new(env: Env) -> Self {
        DailyReport { env }
    }

    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<String, StepError> {
        // Wrong: outside a step, the clock reads differently on every replay.
        let day = self.env.now_millis() / 86_400_000;
        let report: String = step.run(&format!("build report {day}"), |_| async move { Ok(format!("report of day {day}")) }).await?;
        step.sleep("wait for the office to open", "1 day").await?;
        step.run("send report", |_| async { Ok(report.clone()) }).await
    }
}

pub struct FixedDailyReport {
    env: Env,
}

impl Workflow for FixedDailyReport {
    type Params = ();
    type Output = String;

    fn new(env: Env) -> Self {
        FixedDailyReport { env }
    }

    async fn run(&self, event: &WorkflowEvent<()>, step: Step<'_>) -> Result<String, StepError> {
        // Right: the instance's own timestamp is the same on every replay (or read the clock in a step).
        let day = event.timestamp.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() / 86_400_000;
        let _ = &self.env;
        let report: String = step.run(&format!("build report {day}"), |_| async move { Ok(format!("report of day {day}")) }).await?;
        step.sleep("wait for the office to open", "1 day").await?;
        step.run("send report", |_| async { Ok(report.clone()) }).await
    }
}

#[test]
fn a_step_named_after_the_clock_is_caught_on_the_first_replay() {
    let error = TestEngine::new().try_run::<DailyReport>("report-1", ()).unwrap_err();
    assert_eq!(error.run.status, Status::NonDeterministic);
    assert!(
        error.message.starts_with(
            "non-deterministic workflow: on replay 1 (run 2 of instance report-1) call 1 was step \"build report 20455\", where the \
             previous run called step \"build report 20454\""
        ),
        "{error}"
    );
    assert!(!error.run.has_step("send report"));
}

#[test]
fn the_fixed_workflow_passes() {
    let run = TestEngine::new().run::<FixedDailyReport>("report-2", ());
    assert_eq!(run.output::<String>(), "report of day 20454");
    assert_eq!(run.runs, 2);
}

worker_workflows::registered_for_tests!(DailyReport, FixedDailyReport);
