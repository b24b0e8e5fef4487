//! user-onboarding: validate, create the profile (idempotent on email), welcome email,
//! default settings (never over a user's own), and the user's lifecycle started as a
//! child that is given the user's id, never the email.

use crate::services::{engine, from_json, NOTIFY};
use rust_workflows::workflows::user_onboarding::{OnboardingParams, UserId};
use rust_workflows::workflows::{OnboardingWorkflow, UserLifecycleWorkflow};
use serde_json::{json, Value};
use worker_workflows::core::step_error::StepError;
use worker_workflows::testing::{Status, StepOutcome, TestEngine};

fn user(email: &str) -> OnboardingParams {
    from_json(json!({"email": email, "name": " Ada Lovelace "}))
}

fn onboarding_engine() -> TestEngine {
    engine().0.d1("DB").kv("SETTINGS")
}

fn onboarding_engine_with_knobs() -> (TestEngine, crate::services::Knobs) {
    let (engine, knobs) = engine();
    (engine.d1("DB").kv("SETTINGS"), knobs)
}

#[test]
fn it_creates_the_profile_welcomes_sets_defaults_and_starts_the_lifecycle() {
    let engine = onboarding_engine().workflow::<UserLifecycleWorkflow>();
    let run = engine.run::<OnboardingWorkflow>("on-1", user(" Ada@Example.COM "));
    let user_id = run.output::<UserId>().user_id;
    let rows = engine.d1_rows("DB", "SELECT id, email, name, subscription_status FROM users");
    assert_eq!(rows, [json!({"id": user_id, "email": "ada@example.com", "name": "Ada Lovelace", "subscription_status": "trial"})]);
    let settings: Value = serde_json::from_str(&engine.kv_get("SETTINGS", &format!("settings:{user_id}")).unwrap()).unwrap();
    assert_eq!(settings["theme"], "system");
    let welcome = &engine.requests_to(NOTIFY)[0];
    assert_eq!(welcome.json::<Value>(), json!({"userId": user_id, "email": "ada@example.com", "message": "Welcome, Ada Lovelace!"}));
    assert_eq!(welcome.header("idempotency-key"), Some("on-1@1767225600000:send-welcome-email:1"));
    let child = format!("lifecycle-{user_id}");
    let created = engine.created_instances();
    assert_eq!((created.len(), created[0].workflow.as_str(), created[0].id.as_str()), (1, "user-lifecycle", child.as_str()));
    assert_eq!(created[0].params, json!({"userId": user_id}), "the child is given the id; the email stays in D1");
    // The child runs on the same engine: it is in its 7-day trial now.
    assert_eq!(engine.instance(&child).status, Status::Running);
    let finished = engine.finish(&child);
    assert!(finished.output::<Value>()["converted"] == json!(false));
    // It read the address from D1 where it sent to it, and keeps it nowhere in its history.
    let to_child: Vec<Value> = engine
        .requests_to(NOTIFY)
        .iter()
        .filter(|r| r.header("idempotency-key").is_some_and(|k| k.starts_with(&child)))
        .map(|r| r.json::<Value>()["email"].clone())
        .collect();
    assert_eq!(to_child, [json!("ada@example.com"), json!("ada@example.com")]);
    assert!(!format!("{:?}", finished.steps).contains("ada@example.com"), "{:?}", finished.steps);
}

#[test]
fn an_invalid_email_fails_at_once_without_retries_or_side_effects() {
    let engine = onboarding_engine();
    let run = engine.run::<OnboardingWorkflow>("on-bad", user("x@"));
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().name, "NonRetryableError");
    assert_eq!(run.error().message, "invalid email: not a valid address (the value is personal data, so it is not repeated here)");
    assert_eq!(run.step("validate-user").attempts.len(), 1);
    assert_eq!(run.step_names(), ["validate-user"]);
    assert!(engine.d1_rows("DB", "SELECT * FROM users").is_empty());
    assert!(engine.requests().is_empty());
}

#[test]
fn the_profile_is_idempotent_on_email_and_the_child_starts_once() {
    let engine = onboarding_engine();
    let first = engine.run::<OnboardingWorkflow>("on-a", user("ada@example.com")).output::<UserId>();
    let second = engine.run::<OnboardingWorkflow>("on-b", user("ADA@example.com")).output::<UserId>();
    assert_eq!(first.user_id, second.user_id, "the second onboarding finds the existing profile");
    assert_eq!(engine.d1_rows("DB", "SELECT count(*) AS n FROM users"), [json!({"n": 1})]);
    let created: Vec<bool> = engine.created_instances().iter().map(|c| c.created).collect();
    assert_eq!(created, [true, false], "the child's id comes from the user: never a second one");
}

#[test]
fn a_create_profile_attempt_whose_answer_is_lost_is_retried_without_a_second_user() {
    let engine = onboarding_engine().fail_step_after_running("create-profile", 1, StepError::failed("D1 answer lost"));
    let run = engine.run::<OnboardingWorkflow>("on-retry", user("ada@example.com"));
    assert_eq!(run.step("create-profile").attempts.len(), 2, "the first attempt inserted, then failed");
    let rows = engine.d1_rows("DB", "SELECT id FROM users");
    assert_eq!(rows, [json!({"id": run.output::<UserId>().user_id})]);
}

#[test]
fn onboarding_again_from_the_start_keeps_one_user_and_one_child() {
    let engine = onboarding_engine();
    let first = engine.run::<OnboardingWorkflow>("on-again", user("ada@example.com")).output::<UserId>();
    let again = engine.restart("on-again").output::<UserId>();
    assert_eq!(first.user_id, again.user_id);
    assert_eq!(engine.d1_rows("DB", "SELECT count(*) AS n FROM users"), [json!({"n": 1})]);
    let created: Vec<bool> = engine.created_instances().iter().map(|c| c.created).collect();
    assert_eq!(created, [true, false]);
}

#[test]
fn the_validated_profile_is_sensitive_redacted_from_the_history_but_used_by_the_later_steps() {
    let engine = onboarding_engine();
    let run = engine.run::<OnboardingWorkflow>("on-secret", user(" Grace@Example.COM "));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.step("validate-user").outcome, StepOutcome::Redacted, "the history shows no profile");
    assert!(!format!("{:?}", run.steps).contains("grace@example.com"), "no step record holds the email: {:?}", run.steps);
    // The steps after it got the real, validated value.
    let user_id = run.output::<UserId>().user_id;
    assert_eq!(engine.d1_rows("DB", "SELECT email FROM users"), [json!({"email": "grace@example.com"})]);
    assert_eq!(engine.requests_to(NOTIFY)[0].json::<Value>()["email"], "grace@example.com");
    assert_eq!(run.step("create-profile").value::<String>(), user_id, "steps that are not sensitive show their output");
}

#[test]
fn an_invalid_email_is_named_in_the_error_without_echoing_it() {
    // The error goes to the instance's status, its history and the Worker's log.
    for bad in ["ada.lovelace@example", "Ada Lovelace <ada@example.com>", "ada@@example.com"] {
        let engine = onboarding_engine();
        let run = engine.run::<OnboardingWorkflow>("on-echo", user(bad));
        assert_eq!(run.status, Status::Errored, "{bad}");
        assert!(run.error().message.starts_with("invalid email"), "{}", run.error().message);
        let errors: Vec<String> = run.step("validate-user").attempt_errors().iter().map(|e| e.message.clone()).collect();
        for text in errors.iter().chain([&run.error().message]) {
            assert!(!text.contains(bad) && !text.contains("ada"), "{bad:?} is echoed: {text}");
        }
    }
}

#[test]
fn onboarding_never_overwrites_the_settings_of_an_existing_user() {
    let engine = onboarding_engine();
    let user_id = engine.run::<OnboardingWorkflow>("on-first", user("ada@example.com")).output::<UserId>().user_id;
    let key = format!("settings:{user_id}");
    let defaults: Value = serde_json::from_str(&engine.kv_get("SETTINGS", &key).unwrap()).unwrap();
    assert_eq!(defaults["theme"], "system", "a new user gets the defaults");
    // The user changes their settings; then the same email is onboarded again (the demo
    // route is public: anyone may send an existing user's email).
    let own = r#"{"theme":"dark","language":"fr","notifications":{"email":false,"product":false}}"#;
    engine.kv_put("SETTINGS", &key, own);
    let again = engine.run::<OnboardingWorkflow>("on-again-2", user("ADA@example.com"));
    assert_eq!(again.status, Status::Complete, "{}", again.summary());
    assert_eq!(again.output::<UserId>().user_id, user_id);
    assert_eq!(engine.kv_get("SETTINGS", &key).as_deref(), Some(own), "the user's own settings stay");
}

#[test]
fn a_notifications_answer_that_repeats_the_address_is_not_quoted_in_the_error() {
    let (engine, knobs) = onboarding_engine_with_knobs();
    knobs.notify_echoes.set(true);
    let run = engine.run::<OnboardingWorkflow>("on-echoed", user("ada@example.com"));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert_eq!(run.error().message, "notifications answered 422: [the answer is not quoted: it may repeat personal data]");
    let welcome = run.step("send-welcome-email");
    assert_eq!(welcome.attempts.len(), 6, "retried as before");
    assert!(welcome.attempt_errors().iter().all(|e| !e.message.contains("ada@")), "{:?}", welcome.attempt_errors());
}
