//! The expense workflow on the test engine: the same code the Worker runs, with D1 on
//! SQLite (migrations/ applied) and a virtual clock, so a week's deadline takes no time.
//! Host only: the test engine is not part of the wasm build.
#![cfg(not(target_arch = "wasm32"))]

use my_workflows::workflows::expense::{Decision, ExpenseParams, Paid};
use my_workflows::workflows::ExpenseWorkflow;
use serde_json::{json, Value};
use std::time::Duration;
use worker_workflows::testing::{Status, TestEngine};

fn claim() -> ExpenseParams {
    serde_json::from_value(json!({"employee": "ada", "amountCents": 4200})).unwrap()
}

/// The state of the hold of instance `id` (its hold is keyed by the instance's life).
fn hold_state(engine: &TestEngine, id: &str) -> Value {
    engine.d1_rows("DB", &format!("SELECT state FROM holds WHERE id LIKE '{id}@%'"))[0]["state"].clone()
}

#[test]
fn an_approved_claim_is_paid() {
    let engine = TestEngine::new().d1("DB");
    engine.start::<ExpenseWorkflow>("claim-1", claim());
    assert_eq!(hold_state(&engine, "claim-1"), "held");
    engine.send_event("claim-1", "decision", &json!({"approved": true, "by": "grace"}));
    let run = engine.finish("claim-1");
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.output::<Paid>(), Paid { hold: run.instance_key(), approved_by: "grace".into() });
    assert_eq!(hold_state(&engine, "claim-1"), "paid");
}

#[test]
fn a_rejected_claim_fails_and_its_hold_is_released_by_the_rollback() {
    let engine = TestEngine::new().d1("DB");
    engine.start::<ExpenseWorkflow>("claim-2", claim());
    engine.send_event("claim-2", "decision", &json!({"approved": false, "by": "grace"}));
    let run = engine.finish("claim-2");
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().message, "rejected by grace");
    assert_eq!(run.rolled_back(), ["hold budget"]);
    assert_eq!(hold_state(&engine, "claim-2"), "released");
}

#[test]
fn a_claim_nobody_decides_fails_at_its_deadline_and_is_released() {
    let engine = TestEngine::new().d1("DB");
    let params: ExpenseParams = serde_json::from_value(json!({"employee": "ada", "amountCents": 1, "deadline": "2 days"})).unwrap();
    let run = engine.run::<ExpenseWorkflow>("claim-3", params);
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().message, "no decision within 2 days");
    assert_eq!(run.elapsed(), Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(hold_state(&engine, "claim-3"), "released");
}

#[test]
fn a_decision_is_read_as_its_declared_type() {
    let decision: Decision = serde_json::from_value(json!({"approved": true, "by": "grace"})).unwrap();
    assert!(decision.approved);
    let spec = my_workflows::WORKFLOWS.by_name("expense").unwrap();
    assert!(spec.check_event("decision", &json!({"approved": "yes", "by": "x"})).is_err(), "a payload that does not fit is refused");
    assert!(spec.check_event("other", &json!({})).is_err(), "an undeclared event type is refused");
}
