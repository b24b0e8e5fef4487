//! approval: a pending approval in D1, a wait for `approval-response`, the decision recorded.

use crate::services::from_json;
use rust_workflows::workflows::approval::{ApprovalOutput, ApprovalParams, Decision};
use rust_workflows::workflows::ApprovalWorkflow;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};
use worker_workflows::testing::{Status, StepOutcome, TestEngine};

fn params(timeout: Option<&str>) -> ApprovalParams {
    match timeout {
        Some(t) => from_json(json!({"userId": "u-1", "timeout": t})),
        None => from_json(json!({"userId": "u-1"})),
    }
}

fn row(engine: &TestEngine, id: &str) -> Value {
    engine
        .d1_rows("DB", &format!("SELECT status, decided_by, decided_at - created_at AS waited FROM approvals WHERE id = '{id}'"))
        .remove(0)
}

#[test]
fn approved_by_a_response_during_the_wait() {
    let engine = TestEngine::new().d1("DB");
    let waiting = engine.start::<ApprovalWorkflow>("ap-1", params(None));
    assert_eq!(waiting.status, Status::Waiting);
    assert_eq!(row(&engine, "ap-1")["status"], "pending");
    engine.advance("3 hours");
    engine.send_event("ap-1", "approval-response", &json!({"approved": true, "by": "ada"}));
    let run = engine.finish("ap-1");
    assert_eq!(run.output::<ApprovalOutput>().decision, Decision::Approved);
    assert_eq!(run.step_names(), ["create-approval", "wait-for-approval", "process-approval"]);
    assert_eq!(row(&engine, "ap-1"), json!({"status": "approved", "decided_by": "ada", "waited": 3 * 3_600_000}));
}

#[test]
fn rejected_by_a_response_sent_before_the_wait() {
    let engine = TestEngine::new().d1("DB");
    // Sent while the instance is still queued: the engine buffers it for the wait.
    engine.create::<ApprovalWorkflow>("ap-2", params(None));
    engine.send_event("ap-2", "approval-response", &json!({"approved": false, "by": "grace"}));
    let run = engine.finish("ap-2");
    assert_eq!(run.output::<ApprovalOutput>().decision, Decision::Rejected);
    assert!(run.has_step("handle-rejection"));
    assert_eq!(row(&engine, "ap-2"), json!({"status": "rejected", "decided_by": "grace", "waited": 0}));
    match &run.step("wait-for-approval").outcome {
        StepOutcome::Event { payload, sent_at, .. } => {
            assert_eq!(payload, &json!({"approved": false, "by": "grace"}));
            assert_eq!(*sent_at, run.created_at);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn timed_out_when_nobody_answers_in_time() {
    let engine = TestEngine::new().d1("DB");
    let run = engine.run::<ApprovalWorkflow>("ap-3", params(Some("1 hour")));
    assert_eq!(run.output::<ApprovalOutput>().decision, Decision::AutoRejected);
    assert_eq!(run.step("wait-for-approval").outcome, StepOutcome::TimedOut("Execution timed out after 3600000ms".into()));
    assert!(run.has_step("auto-reject"));
    assert_eq!(row(&engine, "ap-3"), json!({"status": "auto-rejected", "decided_by": "system", "waited": 3_600_000}));

    // Without a timeout in params: 48 hours.
    let run = engine.run::<ApprovalWorkflow>("ap-4", params(None));
    assert_eq!(run.output::<ApprovalOutput>().decision, Decision::AutoRejected);
    assert_eq!(run.elapsed(), Some(Duration::from_secs(48 * 3600)));
    let decided_at = engine.d1_rows("DB", "SELECT decided_at FROM approvals WHERE id = 'ap-4'")[0]["decided_at"].as_u64().unwrap();
    assert_eq!(UNIX_EPOCH + Duration::from_millis(decided_at), run.finished_at.unwrap());
}

#[test]
fn a_response_after_the_timeout_changes_nothing() {
    let engine = TestEngine::new().d1("DB");
    engine.send_event_after("2 hours", "ap-5", "approval-response", &json!({"approved": true}));
    let run = engine.run::<ApprovalWorkflow>("ap-5", params(Some("1 hour")));
    assert_eq!(run.output::<ApprovalOutput>().decision, Decision::AutoRejected);
    engine.advance("2 hours");
    assert_eq!(engine.instance("ap-5").status, Status::Complete);
    assert_eq!(row(&engine, "ap-5")["status"], "auto-rejected");
}

/// What `POST …/events/{type}` checks before an approval instance gets an event: the
/// type it declares and its payload type, naming the field that does not fit.
#[test]
fn events_are_checked_against_the_declared_approval_response() {
    use rust_workflows::WORKFLOWS;
    use worker_workflows::core::events::EventProblem;
    let check_workflow_event =
        |class: &str, event_type: &str, payload: &Value| WORKFLOWS.by_class(class).expect("registered").check_event(event_type, payload);
    let check = |event_type: &str, payload: Value| check_workflow_event("ApprovalWorkflow", event_type, &payload);
    assert_eq!(check("approval-response", json!({"approved": true, "by": "ada"})), Ok(()));
    assert_eq!(check("approval-response", json!({"approved": false})), Ok(()));
    let Err(EventProblem::InvalidPayload { detail, .. }) = check("approval-response", json!({"approved": "yes"})) else {
        panic!("a string for approved must be refused")
    };
    assert!(detail.starts_with("approved: invalid type: string \"yes\""), "{detail}");
    let Err(EventProblem::InvalidPayload { detail, .. }) = check("approval-response", json!({"by": "ada"})) else { panic!() };
    assert!(detail.contains("missing field `approved`"), "{detail}");
    let Err(EventProblem::UnknownType { expected, .. }) = check("approval", json!({"approved": true})) else { panic!() };
    assert_eq!(expected, "\"approval-response\"");
    // The probe waits for whatever types its params name: any type, any JSON.
    assert_eq!(check_workflow_event("StepTourWorkflow", "anything", &json!([1])), Ok(()));
    // A workflow that waits for nothing takes no event.
    assert!(matches!(check_workflow_event("OrderWorkflow", "x", &json!({})), Err(EventProblem::UnknownType { .. })));
}
