//! The host twins of `tests/e2e/engine-parity.test.mjs`: the same step-tour workflow with
//! the same params, on the test engine, giving the same counts and the same words the
//! real engine gives there.

use crate::services::from_json;
use rust_workflows::workflows::StepTourWorkflow;
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use worker_workflows::testing::{ErrorInfo, Request, Response, Status, TestEngine};

const CALL: &str = "https://standin.test/call/";
const SLOW: &str = "https://standin.test/slow/";

/// `/call/{key}` as the e2e stand-in answers it: 503 `{"error":"try again"}` for the
/// first `failures` calls, then `{key, attempt}`.
fn standin(failures: u32) -> TestEngine {
    let left = Rc::new(Cell::new(failures));
    TestEngine::new()
        .route(CALL, move |request: &Request| {
            if left.get() > 0 {
                left.set(left.get() - 1);
                return Response::json(503, &json!({"error": "try again"}));
            }
            Response::ok(&json!({"attempt": request.url.rsplit('=').next().unwrap_or_default().parse::<u32>().unwrap_or(0)}))
        })
        .route(SLOW, |_| Response::hang())
}

fn tour(actions: Value) -> rust_workflows::workflows::step_tour::TourParams {
    from_json(json!({ "actions": actions }))
}

#[test]
fn events_sent_before_their_wait_are_buffered_per_type_and_received_in_order() {
    let engine = standin(0);
    let actions = json!([
        {"sleep": {"name": "nap", "duration": "5 seconds"}},
        {"waitForEvent": {"name": "first", "eventType": "decision", "timeout": "1 minute"}},
        {"waitForEvent": {"name": "second", "eventType": "decision", "timeout": "1 minute"}},
    ]);
    engine.start::<StepTourWorkflow>("buffered", tour(actions));
    for n in [1, 2] {
        engine.send_event("buffered", "decision", &json!({"n": n}));
    }
    let run = engine.finish("buffered");
    let received: Vec<Value> = run.output::<Vec<Value>>()[1..].iter().map(|o| o["received"].clone()).collect();
    assert_eq!(received, [json!({"n": 1}), json!({"n": 2})]);
}

#[test]
fn a_wait_that_runs_out_throws_workflow_timeout_error_with_the_engines_message() {
    let run = standin(0).run::<StepTourWorkflow>(
        "wait-timeout",
        tour(json!([{"waitForEvent": {"name": "approval", "eventType": "decision", "timeout": "2 seconds"}}])),
    );
    assert_eq!(run.output::<Vec<Value>>()[0], json!({"name": "approval", "timedOut": true, "message": "Execution timed out after 2000ms"}));
}

#[test]
fn a_step_without_config_retries_after_the_local_default_of_1_second_doubling() {
    let engine = standin(2);
    let run = engine.run::<StepTourWorkflow>("defaults", tour(json!([{"call": {"name": "fetch", "url": format!("{CALL}defaults")}}])));
    assert_eq!(run.status, Status::Complete);
    assert_eq!(engine.requests().len(), 3);
    assert_eq!(run.step("fetch").retry_delays(), [Duration::from_secs(1), Duration::from_secs(2)]);
}

#[test]
fn a_step_makes_limit_plus_one_attempts_then_its_last_error_errors_the_instance_as_it_was() {
    let engine = standin(10);
    let retries = json!({"limit": 2, "delay": 300, "backoff": "constant"});
    let run = engine.run::<StepTourWorkflow>(
        "exhausted",
        tour(json!([{"call": {"name": "fetch", "url": format!("{CALL}exhausted"), "retries": retries}}])),
    );
    assert_eq!(run.error(), &ErrorInfo { name: "Error".into(), message: "service answered 503: {\"error\":\"try again\"}".into() });
    assert_eq!(engine.requests().len(), 3);
}

#[test]
fn an_attempt_over_its_timeout_fails_with_workflow_timeout_error() {
    let call = json!({"name": "slow", "url": format!("{SLOW}x?ms=4000"), "retries": {"limit": 0, "delay": 0}, "timeout": "1 second"});
    let run = standin(0).run::<StepTourWorkflow>("attempt-timeout", tour(json!([{"call": call}])));
    assert_eq!(run.error(), &ErrorInfo { name: "Error".into(), message: "WorkflowTimeoutError: Execution timed out after 1000ms".into() });
}

#[test]
fn sleep_until_a_time_in_the_past_errors_with_the_engines_message() {
    let run = standin(0).run::<StepTourWorkflow>("past", tour(json!([{"sleepUntil": {"name": "then", "at": 1000}}])));
    assert_eq!(run.error(), &ErrorInfo { name: "Error".into(), message: "You can't sleep until a time in the past, time-traveler".into() });
}

#[test]
fn a_panic_that_exhausts_the_retries_errors_the_instance_with_its_message() {
    let actions = json!([{"panic": {"name": "boom", "times": 99, "retries": {"limit": 1, "delay": 300}}}]);
    let run = standin(0).run::<StepTourWorkflow>("panic", tour(actions));
    assert_eq!(
        run.error(),
        &ErrorInfo { name: "Error".into(), message: "PanicError: step panicked: deliberate panic on attempt 2".into() }
    );
}

#[test]
fn an_uncaught_non_retryable_error_errors_the_instance_by_its_name_with_its_message() {
    let run = standin(0)
        .run::<StepTourWorkflow>("fatal", tour(json!([{"nonRetryable": {"name": "validate", "message": "email is not valid: x@"}}])));
    assert_eq!(run.error(), &ErrorInfo { name: "NonRetryableError".into(), message: "email is not valid: x@".into() });
}
