//! Changing a workflow safely, on the test engine: params that a deploy changed, and
//! patches (`Step::patched`) through a simulated deploy (`TestEngine::upgrade`).

use super::*;
use crate::bridge::{Env, Step};
use serde_json::json;

/// Creates an instance of `StrictChild` with params a later deploy no longer knows all
/// of: the run path reads them as the Worker's does.
struct Spawner {
    env: Env,
}

impl Workflow for Spawner {
    type Params = ();
    type Output = bool;
    fn new(env: Env) -> Self {
        Spawner { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<bool, StepError> {
        step.run("spawn", |_| async {
            self.env.create_instance("StrictChild", "child-1", &json!({"n": 2, "removedByADeploy": {"x": 1}})).await
        })
        .await
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictParams {
    n: u64,
}

struct StrictChild;

impl Workflow for StrictChild {
    type Params = StrictParams;
    type Output = u64;
    fn new(_: Env) -> Self {
        StrictChild
    }
    async fn run(&self, event: &WorkflowEvent<StrictParams>, step: Step<'_>) -> Result<u64, StepError> {
        step.sleep("wait", "1 hour").await?;
        Ok(event.payload.n * 10)
    }
}

#[test]
fn a_run_reads_params_with_a_field_its_type_no_longer_has() {
    let engine = TestEngine::new().workflow::<StrictChild>();
    assert!(engine.run::<Spawner>("spawner", ()).output::<bool>());
    let child = engine.finish("child-1");
    assert_eq!(
        (child.status.clone(), child.output::<u64>(), child.runs),
        (Status::Complete, 20, 2),
        "read on its first run and its replay"
    );
    // What a create checks stays strict (the HTTP API's 400 for these params).
    let spec = crate::registry::WorkflowSpec::of::<StrictChild>();
    let refused = spec.check_params(&json!({"n": 2, "removedByADeploy": {"x": 1}})).unwrap_err();
    assert!(refused.0.starts_with("removedByADeploy: unknown field"), "{refused}");
}

crate::registered_for_tests!(Spawner, StrictChild);
