//! Child workflows in the catalogue, the host twins of `tests/e2e/children.test.mjs`:
//! step-tour's `children` action awaiting step-tour children (completion, a typed failure,
//! a terminated child, terminate with children), on the test engine's one clock.

use crate::services::from_json;
use rust_workflows::workflows::step_tour::TourParams;
use rust_workflows::workflows::StepTourWorkflow;
use serde_json::{json, Value};
use std::time::Duration;
use worker_workflows::bridge::TerminateOutcome;
use worker_workflows::testing::{Status, TestEngine};

fn tour(actions: Value) -> TourParams {
    from_json(json!({ "actions": actions }))
}

fn engine() -> TestEngine {
    TestEngine::new().workflow::<StepTourWorkflow>()
}

fn children(engine: &TestEngine) -> Vec<String> {
    engine.created_instances().into_iter().filter(|c| c.created).map(|c| c.id).collect()
}

#[test]
fn a_parent_awaits_its_children_and_gets_their_outputs_in_order() {
    let engine = engine();
    let run = engine.run::<StepTourWorkflow>(
        "tour-kids-1",
        tour(json!([{"children": {"name": "kids", "runs": [
            {"actions": [{"sleep": {"name": "nap", "duration": "2 seconds"}}]},
            {"actions": [{"noop": {"name": "quick", "count": 2}}]},
        ]}}])),
    );
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(
        run.output::<Value>(),
        json!([{"name": "kids", "children": [
            {"output": [{"name": "nap", "slept": true}]},
            {"output": [{"name": "quick", "steps": 2}]},
        ]}])
    );
    assert_eq!(run.elapsed(), Some(Duration::from_secs(2)));
    for created in engine.created_instances() {
        assert_eq!(created.parent.map(|p| p.id), Some("tour-kids-1".to_string()));
    }
}

#[test]
fn a_childs_failure_reaches_the_parent_typed_with_its_index_and_id() {
    let engine = engine();
    let run = engine.run::<StepTourWorkflow>(
        "tour-kids-2",
        tour(json!([{"children": {"name": "kids", "runs": [
            {"actions": []},
            {"actions": [{"nonRetryable": {"name": "refuse", "message": "chunk 1 is bad"}}]},
        ]}}])),
    );
    let ids = children(&engine);
    assert_eq!(
        run.output::<Value>()[0]["children"][1],
        json!({"error": {"kind": "failed", "child": {"index": 1, "id": ids[1]},
            "message": format!("child 1 of 2 (step-tour instance {}) errored: NonRetryableError: chunk 1 is bad", ids[1])}})
    );
}

#[test]
fn a_terminated_child_wakes_its_parent_typed() {
    let engine = engine();
    engine.start::<StepTourWorkflow>(
        "tour-kids-3",
        tour(json!([{"children": {"name": "kids", "runs": [
            {"actions": [{"waitForEvent": {"name": "never", "eventType": "go", "timeout": "1 day"}}]},
        ]}}])),
    );
    engine.advance("10 seconds");
    let kid = children(&engine)[0].clone();
    engine.terminate(&kid);
    let run = engine.finish("tour-kids-3");
    assert_eq!(run.output::<Value>()[0]["children"][0]["error"]["kind"], "terminated");
    assert_eq!(run.elapsed(), Some(Duration::from_secs(10)));
}

#[test]
fn terminating_a_parent_with_children_terminates_the_running_ones() {
    let engine = engine();
    engine.start::<StepTourWorkflow>(
        "tour-kids-4",
        tour(json!([{"children": {"name": "kids", "runs": [
            {"actions": [{"sleep": {"name": "long", "duration": "1 day"}}]},
            {"actions": []},
        ]}}])),
    );
    engine.advance("1 minute");
    let ids = children(&engine);
    let reached = engine.terminate_with_children("tour-kids-4");
    let outcomes: Vec<(String, TerminateOutcome)> = reached.into_iter().map(|t| (t.instance.id, t.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("tour-kids-4".to_string(), TerminateOutcome::Terminated),
            (ids[0].clone(), TerminateOutcome::Terminated),
            (ids[1].clone(), TerminateOutcome::Ended(worker_workflows::core::status::InstanceState::Complete)),
        ]
    );
    engine.advance("2 days");
    assert_eq!(engine.instance(&ids[0]).status, Status::Terminated);
    assert_eq!(engine.instance("tour-kids-4").status, Status::Terminated);
}
