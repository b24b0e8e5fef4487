//! The test engine's rollbacks, step contexts, retry delay functions, sensitive and
//! streamed outputs, each against
//! the engine behaviour it copies (observed on the local engine; see README "Sagas and
//! compensation").

use super::*;
use crate::bridge::outbound::ServiceCall;
use crate::bridge::{Env, Rollback, RollbackContext, Step, StepContext};
use crate::core::step_config::{Retries, StepConfig};
use serde_json::json;
use std::cell::Cell;
use std::time::Duration;

const UNDO: &str = "https://undo.test/";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Booking {
    id: String,
}

#[derive(serde::Deserialize)]
struct SagaParams {
    /// The step that fails (non-retryable), after starting.
    fail: String,
    /// The rollback of "b" panics on its first attempt.
    #[serde(default)]
    panic_once: bool,
}

struct Saga {
    env: Env,
    panicked: Cell<bool>,
}

impl Workflow for Saga {
    type Params = SagaParams;
    type Output = ();
    fn new(env: Env) -> Self {
        Saga { env, panicked: Cell::new(false) }
    }
    async fn run<'w>(&'w self, event: &'w WorkflowEvent<SagaParams>, step: Step<'w>) -> Result<(), StepError> {
        for name in ["a", "b", "c"] {
            let undo = move |r: RollbackContext<Booking>| async move {
                if name == "b" && event.payload.panic_once && !self.panicked.replace(true) {
                    panic!("deliberate panic in the rollback of b");
                }
                let body = json!({"step": r.step.name, "attempt": r.attempt, "output": r.output, "error": r.error.message});
                ServiceCall::new(&self.env, "undo", format!("{UNDO}{name}")).post::<Value, _>(&body).await.map(drop)
            };
            let rollback = Rollback::new(undo).config(StepConfig::new().retries(Retries::new(2).delay("3 seconds")));
            step.run_with_rollback(
                name,
                StepConfig::new().retries(Retries::none()),
                |_| async move {
                    if event.payload.fail == name {
                        return Err(StepError::non_retryable(format!("{name} failed")));
                    }
                    Ok(Booking { id: format!("{name}-1") })
                },
                rollback,
            )
            .await?;
            step.sleep(&format!("after {name}"), "1 minute").await?;
        }
        Ok(())
    }
}

fn undo_engine(failures: u32) -> TestEngine {
    let mut seen = 0;
    TestEngine::new().route(UNDO, move |_| {
        seen += 1;
        if seen <= failures {
            Response::json(503, &json!({"error": "busy"}))
        } else {
            Response::ok(&json!({"undone": true}))
        }
    })
}

fn undo_bodies(engine: &TestEngine) -> Vec<Value> {
    engine.requests_to(UNDO).iter().map(|r| r.json::<Value>()).collect()
}

#[test]
fn a_failed_instance_rolls_back_its_started_steps_newest_first_with_their_typed_outputs() {
    let engine = undo_engine(0);
    let run = engine.run::<Saga>("saga", SagaParams { fail: "c".into(), panic_once: false });
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().message, "c failed", "the instance keeps its own error");
    assert_eq!(run.rolled_back(), ["c", "b", "a"]);
    assert_eq!(
        undo_bodies(&engine),
        [
            json!({"step": "c", "attempt": 1, "output": null, "error": "c failed"}),
            json!({"step": "b", "attempt": 1, "output": {"id": "b-1"}, "error": "c failed"}),
            json!({"step": "a", "attempt": 1, "output": {"id": "a-1"}, "error": "c failed"}),
        ]
    );
    // The rollbacks ran in the run that failed, after the replays that took a and b from the history.
    assert!(run.runs >= 3, "{} runs", run.runs);
    let request = &engine.requests_to(UNDO)[0];
    assert_eq!(request.step.as_ref().map(|s| (s.step.as_str(), s.rollback)), Some(("c", true)));
}

#[test]
fn a_step_that_never_started_is_not_rolled_back() {
    let engine = undo_engine(0);
    let run = engine.run::<Saga>("early", SagaParams { fail: "a".into(), panic_once: false });
    assert_eq!(run.rolled_back(), ["a"], "b and c never started");
}

#[test]
fn a_rollback_is_retried_per_its_config_with_its_own_attempts_and_a_panic_fails_one_attempt() {
    let engine = undo_engine(1);
    let run = engine.run::<Saga>("retried", SagaParams { fail: "c".into(), panic_once: true });
    assert_eq!(run.rolled_back(), ["c", "b", "a"]);
    // c's first call met the 503; b's first attempt panicked.
    let c = run.rollback("c");
    assert_eq!(c.attempts.len(), 2);
    assert_eq!(c.attempts[0].retry_delay, Some(secs(3)), "its own config: 3 s, exponential");
    let b = run.rollback("b");
    assert!(
        matches!(&b.attempts[0].outcome, AttemptOutcome::Failed(e) if e.name == "PanicError" && e.message.contains("rollback panicked"))
    );
    assert_eq!(b.outcome, RollbackOutcome::Succeeded);
    let attempts: Vec<(String, u64)> =
        undo_bodies(&engine).iter().map(|b| (b["step"].as_str().unwrap().to_string(), b["attempt"].as_u64().unwrap())).collect();
    assert_eq!(attempts, [("c".into(), 1), ("c".into(), 2), ("b".into(), 2), ("a".into(), 1)]);
}

#[test]
fn a_rollback_that_fails_for_good_stops_the_rollbacks() {
    let engine = undo_engine(99);
    let run = engine.run::<Saga>("stuck", SagaParams { fail: "c".into(), panic_once: false });
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.rolled_back(), ["c"], "b and a are not attempted after c failed for good");
    let c = run.rollback("c");
    assert_eq!(c.attempts.len(), 3, "2 retries");
    assert!(matches!(&c.outcome, RollbackOutcome::Failed(e) if e.message.contains("undo answered 503")));
    assert_eq!(run.error().message, "c failed");
}

#[test]
fn a_completed_instance_runs_no_rollback() {
    let engine = undo_engine(0);
    let run = engine.run::<Saga>("fine", SagaParams { fail: "none".into(), panic_once: false });
    assert_eq!(run.status, Status::Complete);
    assert!(run.rollbacks.is_empty());
    assert!(engine.requests_to(UNDO).is_empty());
}

// ----- the step context

struct Contexts;

impl Workflow for Contexts {
    type Params = ();
    type Output = Vec<(String, u32, u32, Option<u64>, u32)>;
    fn new(_: Env) -> Self {
        Contexts
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Self::Output, StepError> {
        let seen = |ctx: StepContext| async move {
            let timeout = ctx.config.timeout.map(|t| t.as_millis() as u64);
            Ok((ctx.name, ctx.count, ctx.attempt, timeout, ctx.config.retries.limit))
        };
        let mut all = Vec::new();
        all.push(step.run("probe", seen).await?);
        all.push(step.run("probe", seen).await?);
        let config = StepConfig::new().retries(Retries::new(2)).timeout("30 seconds");
        all.push(step.run_with("tuned", config, seen).await?);
        Ok(all)
    }
}

#[test]
fn the_step_context_has_the_count_and_the_resolved_config() {
    let engine = TestEngine::new().allow_duplicate_step_names();
    let run = engine.run::<Contexts>("ctx", ());
    assert_eq!(
        run.output::<Vec<(String, u32, u32, Option<u64>, u32)>>(),
        [("probe".into(), 1, 1, Some(600_000), 5), ("probe".into(), 2, 1, Some(600_000), 5), ("tuned".into(), 1, 1, Some(30_000), 2)]
    );
}

// ----- retry delay functions

struct RateLimited {
    env: Env,
}

impl Workflow for RateLimited {
    type Params = ();
    type Output = Value;
    fn new(env: Env) -> Self {
        RateLimited { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Value, StepError> {
        let retries =
            Retries::new(3).delay_fn(|attempt, error| error.retry_after().unwrap_or(Duration::from_millis(100 * u64::from(attempt))));
        step.run_with("fetch", StepConfig::new().retries(retries), |_| async {
            ServiceCall::new(&self.env, "rates", "https://rates.test/".to_string()).get::<Value>().await
        })
        .await
    }
}

#[test]
fn a_delay_function_sets_each_wait_from_the_error_with_constant_backoff() {
    let mut seen = 0;
    let engine = TestEngine::new().route("https://rates.test/", move |_| {
        seen += 1;
        match seen {
            1 => Response::json(429, &json!({"error": "slow down"})).retry_after(secs(7)),
            2 => Response::json(503, &json!({"error": "busy"})),
            _ => Response::ok(&json!({"rate": 1})),
        }
    });
    let run = engine.run::<RateLimited>("rates", ());
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    let step = run.step("fetch");
    // 7 s from Retry-After, then the fallback for attempt 2 (200 ms): no exponential growth.
    assert_eq!(step.retry_delays(), [secs(7), Duration::from_millis(200)]);
    assert_eq!(step.config.unwrap().delay, None, "the engine reports no fixed delay");
    let at: Vec<_> = engine.requests_to("https://rates.test/").iter().map(|r| r.at).collect();
    assert_eq!(at[1].duration_since(at[0]).unwrap(), secs(7), "the virtual clock waited it");
}

struct PanickyDelay;

impl Workflow for PanickyDelay {
    type Params = ();
    type Output = ();
    fn new(_: Env) -> Self {
        PanickyDelay
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        let retries = Retries::new(3).delay_fn(|_, _| panic!("no delay today"));
        step.run_with("flaky", StepConfig::new().retries(retries), |_| async { Err::<(), _>(StepError::failed("try again")) }).await
    }
}

#[test]
fn a_panicking_delay_function_fails_the_step_for_good() {
    let run = TestEngine::new().run::<PanickyDelay>("panicky", ());
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("flaky").attempts.len(), 1, "no retry");
    assert!(run.error().message.contains("The delay function for step \"flaky-1\" threw an error"), "{}", run.summary());
}

// ----- sensitive and streamed outputs

struct Secretive;

impl Workflow for Secretive {
    type Params = ();
    type Output = String;
    fn new(_: Env) -> Self {
        Secretive
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<String, StepError> {
        let token: String = step.run_with("mint token", StepConfig::new().sensitive(), |_| async { Ok("tok-s3cr3t".to_string()) }).await?;
        step.sleep("nap", "1 minute").await?;
        let shown: String = step.run("public", |_| async { Ok("public value".to_string()) }).await?;
        Ok(format!("{token}/{shown}"))
    }
}

#[test]
fn a_sensitive_steps_output_is_redacted_from_the_history_yet_reaches_the_workflow_live_and_on_replay() {
    let run = TestEngine::new().run::<Secretive>("secret", ());
    assert_eq!(run.runs, 2, "the sleep ends the first run: the token comes back from the store");
    assert_eq!(run.output::<String>(), "tok-s3cr3t/public value", "the workflow got the real value after the replay");
    assert_eq!(run.step("mint token").outcome, StepOutcome::Redacted);
    assert_eq!(run.step("public").value::<String>(), "public value");
    assert!(!format!("{run:?}").replace("tok-s3cr3t/public value", "").contains("tok-s3cr3t"), "only the output shows it: {run:?}");
}

/// `len` deterministic bytes from `seed`.
fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

const BIG: usize = 5 * 1024 * 1024 + 7;

struct Streamer {
    env: Env,
}

impl Workflow for Streamer {
    type Params = usize;
    type Output = Value;
    fn new(env: Env) -> Self {
        Streamer { env }
    }
    async fn run(&self, event: &WorkflowEvent<usize>, step: Step<'_>) -> Result<Value, StepError> {
        let bytes = step
            .run_stream("render", |_| async {
                // Counts the closure's runs where the test can see them.
                ServiceCall::new(&self.env, "service", "https://service.test/rendered".to_string()).get::<Value>().await?;
                Ok(pseudo_random(event.payload, 42))
            })
            .await?;
        step.sleep("nap", "1 hour").await?;
        Ok(json!({"len": bytes.len(), "same": bytes == pseudo_random(event.payload, 42)}))
    }
}

#[test]
fn a_streamed_step_returns_more_than_a_mebibyte_and_the_replay_gets_the_stored_bytes() {
    let engine = TestEngine::new().route("https://service.test/", |_| Response::ok(&json!({})));
    let run = engine.run::<Streamer>("stream", BIG);
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.runs, 2, "the sleep ends the first run");
    assert_eq!(run.output::<Value>(), json!({"len": BIG, "same": true}), "the replay got every byte back");
    assert_eq!(engine.requests_to("https://service.test/").len(), 1, "the replay did not run the closure again");
    assert_eq!(run.step("render").outcome, StepOutcome::Stream { len: BIG });
}

struct TooBig;

impl Workflow for TooBig {
    type Params = ();
    type Output = usize;
    fn new(_: Env) -> Self {
        TooBig
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<usize, StepError> {
        let bytes = step.run_stream("huge", |_| async { Ok(vec![0_u8; crate::core::step_error::MAX_STREAM_STEP_BYTES + 1]) }).await?;
        Ok(bytes.len())
    }
}

#[test]
fn a_streamed_step_over_the_cap_fails_at_once_without_retries() {
    let run = TestEngine::new().run::<TooBig>("too-big", ());
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("huge").attempts.len(), 1, "not retried: the same bytes come back");
    assert!(run.error().message.contains("32 MiB"), "{}", run.summary());
}

struct SensitiveStream;

impl Workflow for SensitiveStream {
    type Params = ();
    type Output = usize;
    fn new(_: Env) -> Self {
        SensitiveStream
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<usize, StepError> {
        let bytes = step.run_stream_with("keys", StepConfig::new().sensitive(), |_| async { Ok(b"private key".to_vec()) }).await?;
        Ok(bytes.len())
    }
}

#[test]
fn a_sensitive_streamed_step_is_redacted_too() {
    let run = TestEngine::new().run::<SensitiveStream>("keys", ());
    assert_eq!(run.output::<usize>(), 11);
    assert_eq!(run.step("keys").outcome, StepOutcome::Redacted);
}

crate::registered_for_tests!(Saga, Contexts, RateLimited, PanickyDelay, Secretive, Streamer, TooBig, SensitiveStream);
