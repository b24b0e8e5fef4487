//! user-lifecycle: welcome, the trial, then an expiration email to those who did not
//! convert. Given the user's id only: each email's address is read from D1 inside its step.

use crate::services::{engine, from_json};
use rust_workflows::workflows::user_lifecycle::{LifecycleOutput, LifecycleParams};
use rust_workflows::workflows::UserLifecycleWorkflow;
use serde_json::{json, Value};
use std::time::Duration;
use worker_workflows::testing::TestEngine;

fn params(user: &str) -> LifecycleParams {
    from_json(json!({"userId": user}))
}

fn with_user(status: Option<&str>) -> (TestEngine, crate::services::Knobs) {
    let (engine, knobs) = engine();
    let engine = engine.d1("DB");
    if let Some(status) = status {
        engine.d1_execute("DB", &format!("INSERT INTO users (id, email, name, subscription_status, created_at) VALUES ('u-1', 'u-1@example.com', 'U', '{status}', 0)"));
    }
    (engine, knobs)
}

fn messages(knobs: &crate::services::Knobs) -> Vec<Value> {
    knobs.notifications.borrow().iter().map(|n| n["message"].clone()).collect()
}

#[test]
fn converted_users_get_only_the_welcome_email() {
    let (engine, knobs) = with_user(Some("active"));
    let run = engine.run::<UserLifecycleWorkflow>("life-1", params("u-1"));
    assert_eq!(run.output::<LifecycleOutput>(), LifecycleOutput { converted: true });
    assert_eq!(messages(&knobs), [json!("Welcome! Your free trial has started.")]);
    assert_eq!(knobs.notifications.borrow()[0]["email"], "u-1@example.com", "the address on file");
    assert_eq!(run.elapsed(), Some(Duration::from_secs(7 * 24 * 3600)), "the default trial, on the virtual clock");
    assert!(!run.has_step("send-trial-expiration-email"));
}

#[test]
fn users_still_on_trial_get_the_expiration_email_after_the_trial() {
    let (engine, knobs) = with_user(Some("trial"));
    let run = engine.run::<UserLifecycleWorkflow>("life-2", from_json(json!({"userId": "u-1", "trialPeriod": "14 days"})));
    assert_eq!(run.output::<LifecycleOutput>(), LifecycleOutput { converted: false });
    assert_eq!(
        messages(&knobs),
        [json!("Welcome! Your free trial has started."), json!("Your free trial has ended. Subscribe to keep your account.")]
    );
    let sent: Vec<_> = engine.requests().iter().map(|r| r.at).collect();
    assert_eq!(sent[1].duration_since(sent[0]).unwrap(), Duration::from_secs(14 * 24 * 3600));
    let keys: Vec<_> = engine.requests().iter().map(|r| r.header("idempotency-key").unwrap_or_default().to_string()).collect();
    assert_eq!(keys, ["life-2@1767225600000:send-welcome-email:1", "life-2@1767225600000:send-trial-expiration-email:1"]);
}

#[test]
fn a_user_with_no_row_has_not_converted_and_gets_no_email_there_being_no_address() {
    let (engine, knobs) = with_user(None);
    let run = engine.run::<UserLifecycleWorkflow>("life-3", params("nobody"));
    assert_eq!(run.output::<LifecycleOutput>(), LifecycleOutput { converted: false });
    assert!(messages(&knobs).is_empty());
    assert!(engine.requests().is_empty());
    assert!(!run.step("send-welcome-email").value::<bool>(), "the step says nothing was sent");
    assert!(!run.step("send-trial-expiration-email").value::<bool>());
}

#[test]
fn an_email_is_not_taken_in_params() {
    use worker_workflows::core::validate::typed_params;
    let err = typed_params::<LifecycleParams>(&json!({"userId": "u-1", "email": "u-1@example.com"})).unwrap_err();
    assert!(err.0.contains("unknown field `email`"), "{}", err.0);
}

#[test]
fn each_email_goes_to_the_address_on_file_when_it_is_sent_and_no_step_keeps_it() {
    let (engine, knobs) = with_user(Some("trial"));
    engine.start::<UserLifecycleWorkflow>("life-5", params("u-1"));
    engine.advance("1 day");
    engine.d1_execute("DB", "UPDATE users SET email = 'new-u-1@example.com' WHERE id = 'u-1'");
    let run = engine.finish("life-5");
    assert_eq!(run.output::<LifecycleOutput>(), LifecycleOutput { converted: false });
    let to: Vec<Value> = knobs.notifications.borrow().iter().map(|n| n["email"].clone()).collect();
    assert_eq!(to, [json!("u-1@example.com"), json!("new-u-1@example.com")]);
    assert!(!format!("{:?}", run.steps).contains("@example.com"), "{:?}", run.steps);
}

#[test]
fn converting_during_the_trial_is_seen_by_the_check() {
    let (engine, knobs) = with_user(Some("trial"));
    engine.start::<UserLifecycleWorkflow>("life-4", params("u-1"));
    engine.advance("3 days");
    engine.d1_execute("DB", "UPDATE users SET subscription_status = 'active' WHERE id = 'u-1'");
    let run = engine.finish("life-4");
    assert_eq!(run.output::<LifecycleOutput>(), LifecycleOutput { converted: true });
    assert_eq!(messages(&knobs).len(), 1);
}

#[test]
fn a_notifications_answer_that_repeats_the_address_is_not_quoted_in_the_error() {
    let (engine, knobs) = with_user(Some("trial"));
    knobs.notify_echoes.set(true);
    let run = engine.run::<UserLifecycleWorkflow>("life-6", params("u-1"));
    assert_eq!(run.error().message, "notifications answered 422: [the answer is not quoted: it may repeat personal data]");
    let welcome = run.step("send-welcome-email");
    assert!(welcome.attempt_errors().iter().all(|e| !e.message.contains("u-1@")), "{:?}", welcome.attempt_errors());
}
