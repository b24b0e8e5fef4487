//! The test engine's own semantics, each against the engine behaviour it copies.

use super::*;
use crate::bridge::outbound::ServiceCall;
use crate::bridge::{Env, Step};
use crate::core::step_config::{Backoff, Retries, StepConfig};
use serde_json::json;
use std::time::Duration;

const SERVICE: &str = "https://service.test/";

fn engine() -> TestEngine {
    TestEngine::new().route(SERVICE, |_| Response::ok(&json!({"ok": true})))
}

/// A GET to the stand-in service, from a step.
async fn call(env: &Env, path: &str) -> Result<Value, StepError> {
    ServiceCall::new(env, "service", format!("{SERVICE}{path}")).get::<Value>().await
}

/// Answers 503 to the first `failures` requests, then 200.
fn flaky(failures: u32) -> impl FnMut(&Request) -> Response {
    let mut seen = 0;
    move |_| {
        seen += 1;
        if seen <= failures {
            Response::json(503, &json!({"error": "busy"}))
        } else {
            Response::ok(&json!({"attempt": seen}))
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ----- steps, retries and replay

struct CallTwice {
    env: Env,
}

impl Workflow for CallTwice {
    type Params = ();
    type Output = Value;
    fn new(env: Env) -> Self {
        CallTwice { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Value, StepError> {
        let first: Value = step.run("first", |_| call(&self.env, "first")).await?;
        step.sleep("nap", "1 hour").await?;
        let second: Value = step.run("second", |_| call(&self.env, "second")).await?;
        Ok(json!([first, second]))
    }
}

#[test]
fn completed_steps_answer_from_the_history_on_replay() {
    let engine = engine();
    let run = engine.run::<CallTwice>("replayed", ());
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.runs, 2, "the sleep ends the first run; the second runs from the top");
    assert_eq!(engine.requests_to(SERVICE).len(), 2, "each step ran once: the replay got `first` from the history");
    assert_eq!(run.step_names(), ["first", "nap", "second"]);
    assert_eq!(run.step("nap").outcome, StepOutcome::Slept);
    assert_eq!(run.elapsed(), Some(secs(3600)), "the sleep moved the virtual clock");
    let second = &engine.requests_to(SERVICE)[1];
    assert_eq!(second.at, World::time(world::DEFAULT_START_MILLIS + 3_600_000));
    assert_eq!(second.step.as_ref().map(|s| (s.step.as_str(), s.attempt)), Some(("second", 1)));
}

struct Retried {
    env: Env,
}

#[derive(serde::Deserialize)]
struct RetriedParams {
    limit: Option<u32>,
    catch: bool,
}

impl Workflow for Retried {
    type Params = RetriedParams;
    type Output = Value;
    fn new(env: Env) -> Self {
        Retried { env }
    }
    async fn run(&self, event: &WorkflowEvent<RetriedParams>, step: Step<'_>) -> Result<Value, StepError> {
        let config = match event.payload.limit {
            Some(limit) => StepConfig::new().retries(Retries::new(limit).delay("10 seconds").backoff(Backoff::Linear)),
            None => StepConfig::new(),
        };
        let result =
            step.run_with("flaky", config, |ctx| async move { call(&self.env, &format!("flaky?attempt={}", ctx.attempt)).await }).await;
        match result {
            Err(e) if event.payload.catch => {
                step.sleep("after", "1 minute").await?;
                // A stored failure is thrown again on replay, without another attempt.
                Ok(json!({"caught": e.to_string()}))
            }
            other => other,
        }
    }
}

#[test]
fn retries_use_the_engines_defaults_and_formulas_on_the_virtual_clock() {
    let engine = TestEngine::new().route(SERVICE, flaky(3));
    let run = engine.run::<Retried>("defaults", RetriedParams { limit: None, catch: false });
    assert_eq!(run.status, Status::Complete);
    let step = run.step("flaky");
    assert_eq!(step.attempts.len(), 4);
    // No config: limit 5, 1 s, exponential (the local engine's defaults).
    assert_eq!(step.retry_delays(), [secs(1), secs(2), secs(4)]);
    assert_eq!(step.config.map(|c| (c.limit, c.timeout)), Some((5, secs(600))));
    assert_eq!(run.runs, 4, "every retry is a replay from the top");
    assert_eq!(run.elapsed(), Some(secs(7)));
    let attempts: Vec<String> = engine.requests_to(SERVICE).iter().map(|r| r.url.clone()).collect();
    assert_eq!(attempts, ["1", "2", "3", "4"].map(|n| format!("{SERVICE}flaky?attempt={n}")));
    assert_eq!(step.attempt_errors()[0].message, "service answered 503: {\"error\":\"busy\"}");
}

#[test]
fn a_step_makes_limit_plus_one_attempts_then_fails_for_good_and_its_error_is_stored() {
    let engine = TestEngine::new().route(SERVICE, flaky(99));
    let run = engine.run::<Retried>("exhausted", RetriedParams { limit: Some(2), catch: false });
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("flaky").attempts.len(), 3);
    assert_eq!(run.step("flaky").retry_delays(), [secs(10), secs(20)], "linear");
    assert_eq!(run.error(), &ErrorInfo { name: "Error".into(), message: "service answered 503: {\"error\":\"busy\"}".into() });

    let engine = TestEngine::new().route(SERVICE, flaky(99));
    let run = engine.run::<Retried>("stored", RetriedParams { limit: Some(0), catch: true });
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.output::<Value>(), json!({"caught": "service answered 503: {\"error\":\"busy\"}"}));
    assert_eq!(run.runs, 2);
    assert_eq!(engine.requests_to(SERVICE).len(), 1, "the replay got the stored error, no second attempt");
    assert!(matches!(run.step("flaky").outcome, StepOutcome::Failed(_)));
}

struct Fallible;

#[derive(serde::Deserialize)]
enum Failure {
    NonRetryable { catch: bool },
    Panic { times: u32 },
    Oversized,
    Hang,
}

impl Workflow for Fallible {
    type Params = Failure;
    type Output = Value;
    fn new(_: Env) -> Self {
        Fallible
    }
    async fn run(&self, event: &WorkflowEvent<Failure>, step: Step<'_>) -> Result<Value, StepError> {
        match &event.payload {
            Failure::NonRetryable { catch } => {
                let result = step.run("validate", |_| async { Err::<(), _>(StepError::non_retryable("email is not valid: x@")) }).await;
                match result {
                    Err(e) if *catch => {
                        step.sleep("after", "1 second").await?;
                        Ok(json!(e.to_string()))
                    }
                    other => other.map(|_| Value::Null),
                }
            }
            Failure::Panic { times } => {
                let config = StepConfig::new().retries(Retries::new(1).delay("1 second"));
                let attempt: u32 = step
                    .run_with("boom", config, |ctx| async move {
                        if ctx.attempt <= *times {
                            panic!("deliberate panic on attempt {}", ctx.attempt);
                        }
                        Ok(ctx.attempt)
                    })
                    .await?;
                Ok(json!(attempt))
            }
            Failure::Oversized => step.run("blob", |_| async { Ok(Value::String("x".repeat(1_100_000))) }).await,
            Failure::Hang => {
                let config = StepConfig::new().retries(Retries::new(1).delay("1 second").backoff(Backoff::Constant)).timeout("30 seconds");
                step.run_with("hang", config, |_| async { std::future::pending::<Result<Value, StepError>>().await }).await
            }
        }
    }
}

#[test]
fn a_non_retryable_error_fails_the_step_at_once_and_errors_the_instance_with_its_message() {
    let run = TestEngine::new().run::<Fallible>("fatal", Failure::NonRetryable { catch: false });
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("validate").attempts.len(), 1);
    assert_eq!(run.error(), &ErrorInfo { name: "NonRetryableError".into(), message: "email is not valid: x@".into() });
}

#[test]
fn a_caught_non_retryable_step_runs_again_on_replay_because_the_engine_does_not_store_it() {
    let run = TestEngine::new().run::<Fallible>("fatal-caught", Failure::NonRetryable { catch: true });
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.output::<Value>(), json!("email is not valid: x@"));
    assert_eq!(run.step("validate").attempts.len(), 2, "one attempt per run: the error is not stored");
    assert!(matches!(run.step("validate").outcome, StepOutcome::NonRetryable(_)));
}

#[test]
fn a_panic_fails_one_attempt_which_is_retried() {
    let run = TestEngine::new().run::<Fallible>("panic-once", Failure::Panic { times: 1 });
    assert_eq!(run.output::<u32>(), 2);
    // Across RPC the engine gets the panic's name in the message.
    assert_eq!(
        run.step("boom").attempt_errors()[0],
        &ErrorInfo { name: "Error".into(), message: "PanicError: step panicked: deliberate panic on attempt 1".into() }
    );

    let run = TestEngine::new().run::<Fallible>("panic-always", Failure::Panic { times: 99 });
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("boom").attempts.len(), 2);
    assert_eq!(
        run.error(),
        &ErrorInfo { name: "Error".into(), message: "PanicError: step panicked: deliberate panic on attempt 2".into() }
    );
}

#[test]
fn a_result_over_1_mib_fails_the_step_without_retrying() {
    let run = TestEngine::new().run::<Fallible>("big", Failure::Oversized);
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.step("blob").attempts.len(), 1);
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.contains("1 MiB"), "{}", run.error().message);
}

#[test]
fn an_attempt_that_never_finishes_times_out_after_the_step_timeout() {
    let run = TestEngine::new().run::<Fallible>("hang", Failure::Hang);
    assert_eq!(run.status, Status::Errored);
    // The step's timeout reaches the workflow as StepError::Timeout; uncaught, the engine
    // records it as it arrives across RPC.
    assert_eq!(run.error(), &ErrorInfo { name: "Error".into(), message: "WorkflowTimeoutError: Execution timed out after 30000ms".into() });
    assert_eq!(
        run.step("hang").attempt_errors()[0],
        &ErrorInfo { name: "WorkflowTimeoutError".into(), message: "Execution timed out after 30000ms".into() }
    );
    let step = run.step("hang");
    assert_eq!(step.attempts.len(), 2);
    assert_eq!(step.retry_delays(), [secs(1)]);
    assert_eq!(step.attempts[1].started_at, World::time(world::DEFAULT_START_MILLIS + 31_000), "timed out at 30 s, retried 1 s later");
    assert_eq!(run.elapsed(), Some(secs(61)));
}

// ----- overrides

#[test]
fn overrides_fail_replace_or_time_out_a_step_without_running_its_closure() {
    let failing = TestEngine::new().route(SERVICE, flaky(0)).fail_step("flaky", 2, StepError::failed("injected"));
    let run = failing.run::<Retried>("fail-twice", RetriedParams { limit: Some(3), catch: false });
    assert_eq!(run.step("flaky").attempts.len(), 3);
    assert_eq!(run.step("flaky").attempt_errors()[1].message, "injected");
    assert_eq!(failing.requests().len(), 1, "only the third attempt ran the closure");

    let replaced = TestEngine::new().replace_step_result("flaky", &json!({"mocked": true}));
    let run = replaced.run::<Retried>("replaced", RetriedParams { limit: None, catch: false });
    assert_eq!(run.output::<Value>(), json!({"mocked": true}));
    assert!(replaced.requests().is_empty());

    let forever = TestEngine::new().fail_step_always("flaky", StepError::failed("down"));
    let run = forever.run::<Retried>("down", RetriedParams { limit: Some(1), catch: false });
    assert_eq!((run.status.clone(), run.step("flaky").attempts.len()), (Status::Errored, 2));

    let slow = TestEngine::new().route(SERVICE, flaky(0)).time_out_step("flaky", 1);
    let run = slow.run::<Retried>("slow", RetriedParams { limit: None, catch: false });
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.step("flaky").attempt_errors()[0].message, "Execution timed out after 600000ms");
    assert_eq!(run.elapsed(), Some(secs(601)));
}

// ----- sleeps and events

struct Clock {
    env: Env,
}

#[derive(serde::Deserialize)]
struct ClockParams {
    until: u64,
}

impl Workflow for Clock {
    type Params = ClockParams;
    type Output = Vec<u64>;
    fn new(env: Env) -> Self {
        Clock { env }
    }
    async fn run(&self, event: &WorkflowEvent<ClockParams>, step: Step<'_>) -> Result<Vec<u64>, StepError> {
        let t0: u64 = step.run("t0", |_| async { Ok(self.env.now_millis()) }).await?;
        step.sleep("nap", Duration::from_secs(90)).await?;
        let t1: u64 = step.run("t1", |_| async { Ok(self.env.now_millis()) }).await?;
        step.sleep_until("alarm", event.payload.until).await?;
        let t2: u64 = step.run("t2", |_| async { Ok(self.env.now_millis()) }).await?;
        Ok(vec![t0, t1, t2])
    }
}

#[test]
fn sleep_and_sleep_until_move_the_clock() {
    let start = world::DEFAULT_START_MILLIS;
    let run = TestEngine::new().run::<Clock>("clock", ClockParams { until: start + 86_400_000 });
    assert_eq!(run.output::<Vec<u64>>(), [start, start + 90_000, start + 86_400_000]);

    let past = TestEngine::new().run::<Clock>("past", ClockParams { until: start });
    assert_eq!(
        past.error(),
        &ErrorInfo { name: "Error".into(), message: "You can't sleep until a time in the past, time-traveler".into() }
    );
}

struct Approval;

#[derive(serde::Deserialize)]
struct ApprovalParams {
    timeout: String,
    waits: u32,
}

impl Workflow for Approval {
    type Params = ApprovalParams;
    type Output = Vec<Value>;
    const EVENTS: &'static [crate::core::events::EventSpec] = &[crate::core::events::EventSpec::any_type::<Value>()];
    fn new(_: Env) -> Self {
        Approval
    }
    async fn run(&self, event: &WorkflowEvent<ApprovalParams>, step: Step<'_>) -> Result<Vec<Value>, StepError> {
        let mut seen = Vec::new();
        for i in 0..event.payload.waits {
            match step.wait_for_event::<Value>(&format!("wait {i}"), "decision", event.payload.timeout.as_str()).await {
                Ok(received) => seen.push(
                    json!({"payload": received.payload, "at": received.timestamp.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64}),
                ),
                Err(StepError::Timeout(message)) => seen.push(json!({"timedOut": message})),
                Err(other) => return Err(other),
            }
        }
        Ok(seen)
    }
}

#[test]
fn events_sent_before_the_wait_are_buffered_per_type_in_order() {
    let engine = TestEngine::new();
    engine.create::<Approval>("early", ApprovalParams { timeout: "1 hour".into(), waits: 2 });
    engine.send_event("early", "decision", &json!(1));
    engine.send_event("early", "other-type", &json!("ignored"));
    engine.send_event("early", "decision", &json!(2));
    let run = engine.finish("early");
    let payloads: Vec<Value> = run.output::<Vec<Value>>().into_iter().map(|v| v["payload"].clone()).collect();
    assert_eq!(payloads, [json!(1), json!(2)]);
    assert_eq!(run.elapsed(), Some(Duration::ZERO));
}

#[test]
fn an_event_sent_during_the_wait_resolves_it_at_that_time() {
    let engine = TestEngine::new();
    let started = engine.start::<Approval>("during", ApprovalParams { timeout: "1 hour".into(), waits: 1 });
    assert_eq!(started.status, Status::Waiting);
    engine.advance("10 minutes");
    assert_eq!(engine.instance("during").status, Status::Waiting);
    engine.send_event("during", "decision", &json!({"approved": true}));
    let run = engine.instance("during");
    assert_eq!(run.status, Status::Complete, "the event runs the instance at once");
    let sent_at = world::DEFAULT_START_MILLIS + 600_000;
    assert_eq!(run.output::<Vec<Value>>(), [json!({"payload": {"approved": true}, "at": sent_at})]);
    assert_eq!(run.elapsed(), Some(secs(600)));
}

#[test]
fn a_wait_times_out_on_the_virtual_clock_with_the_engines_message() {
    let engine = TestEngine::new();
    engine.send_event_after("2 hours", "late", "decision", &json!("too late"));
    let run = engine.run::<Approval>("late", ApprovalParams { timeout: "1 hour".into(), waits: 1 });
    assert_eq!(run.output::<Vec<Value>>(), [json!({"timedOut": "Execution timed out after 3600000ms"})]);
    assert_eq!(run.step("wait 0").outcome, StepOutcome::TimedOut("Execution timed out after 3600000ms".into()));
    assert_eq!(run.elapsed(), Some(secs(3600)));

    // A timeout of 0 is the engine's default of 24 hours.
    let run = TestEngine::new().run::<Approval>("zero", ApprovalParams { timeout: "0".into(), waits: 1 });
    assert_eq!(run.output::<Vec<Value>>(), [json!({"timedOut": "Execution timed out after 86400000ms"})]);
}

// ----- the determinism check

struct ClockInName {
    env: Env,
}

impl Workflow for ClockInName {
    type Params = ();
    type Output = ();
    fn new(env: Env) -> Self {
        ClockInName { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        // The bug: the clock read outside a step names the step.
        let report = format!("report {}", self.env.now_millis());
        step.run(&report, |_| async { Ok(()) }).await?;
        step.sleep("nap", "1 day").await?;
        step.run("done", |_| async { Ok(()) }).await
    }
}

#[test]
fn a_step_named_differently_on_replay_is_caught_naming_it() {
    let error = TestEngine::new().seed(5).try_run::<ClockInName>("clock-name", ()).unwrap_err();
    // Outside a step, each run's clock is the virtual time plus that run's offset (0 to 999 ms).
    let (start, offset) = (world::DEFAULT_START_MILLIS, |run| seed::clock_offset_ms(5, run));
    assert!(error.message.starts_with("non-deterministic workflow: on replay 1"), "{error}");
    assert!(error.message.contains(&format!("call 1 was step \"report {}\"", start + 86_400_000 + offset(2))), "{error}");
    assert!(error.message.contains(&format!("the previous run called step \"report {}\"", start + offset(1))), "{error}");
    assert!(
        error.to_string().contains("test engine seed 5: TestEngine::new().seed(5) or WORKER_WORKFLOWS_SEED=5 reproduces it"),
        "{error}"
    );
    assert_eq!(error.run.status, Status::NonDeterministic);
    assert!(!error.run.has_step("done"), "stopped at the divergence");
}

struct Shuffled {
    env: Env,
}

impl Workflow for Shuffled {
    type Params = ();
    type Output = ();
    fn new(env: Env) -> Self {
        Shuffled { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        // The bug: an order decided outside a step, by a fresh UUID's first character
        // (like a HashMap's seed): it differs from run to run as a real one does.
        let mut names = vec!["a", "b"];
        if self.env.random_uuid().as_str() < "8" {
            names.reverse();
        }
        for name in names {
            step.run(name, |_| async { Ok(()) }).await?;
        }
        step.sleep("nap", "1 minute").await
    }
}

/// A seed under which the first two UUIDs fall on either side of "8" (first "8" or more,
/// then less): the first run calls a then b, the replay b then a.
fn seed_splitting_the_first_two_uuids() -> u64 {
    (0..1000)
        .find(|&s| {
            let rng = seed::Rng::new(s);
            rng.uuid().as_str() >= "8" && rng.uuid().as_str() < "8"
        })
        .expect("some seed splits them")
}

#[test]
fn steps_called_in_another_order_on_replay_are_caught() {
    let seed = seed_splitting_the_first_two_uuids();
    let error = TestEngine::new().seed(seed).try_run::<Shuffled>("shuffled", ()).unwrap_err();
    assert!(
        error.message.contains("on replay 1 (run 2 of instance shuffled) call 1 was step \"b\", where the previous run called step \"a\""),
        "{error}"
    );
    assert_eq!(error.seed, seed);
    // The same seed, the same failure: it reproduces.
    let again = TestEngine::new().seed(seed).try_run::<Shuffled>("shuffled", ()).unwrap_err();
    assert_eq!(again.message, error.message);
}

/// A branch on a UUID's first characters outside a step: with UUIDs random in every
/// position (a counter behind a fixed prefix never changed them, so this was never
/// caught), most seeds catch it on the first replay, and every catch names its seed.
#[test]
fn a_branch_on_a_uuids_first_characters_outside_a_step_is_caught() {
    let caught: Vec<Nondeterminism> =
        (0..40).filter_map(|seed| TestEngine::new().seed(seed).try_run::<Shuffled>("shuffled", ()).err()).collect();
    // Each seed is caught when its first two UUIDs fall on either side of "8": about half.
    assert!(caught.len() >= 10, "caught with only {} of 40 seeds", caught.len());
    for error in &caught {
        assert!(error.to_string().contains(&format!("test engine seed {}:", error.seed)), "{error}");
    }
}

/// A branch on the clock's millisecond outside a step: the virtual clock moves in whole
/// seconds here, so without a per-run offset both runs read an even millisecond and it
/// was never caught.
struct ClockParity {
    env: Env,
}

impl Workflow for ClockParity {
    type Params = ();
    type Output = u64;
    fn new(env: Env) -> Self {
        ClockParity { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<u64, StepError> {
        let name = if self.env.now_millis().is_multiple_of(2) { "even" } else { "odd" };
        step.run(name, |_| async { Ok(()) }).await?;
        step.sleep("nap", "1 minute").await?;
        // Inside a step the clock is the virtual time, exactly.
        step.run("read the clock", |_| async { Ok(self.env.now_millis()) }).await
    }
}

#[test]
fn a_branch_on_the_clock_outside_a_step_is_caught_and_inside_a_step_the_clock_is_exact() {
    let runs: Vec<Result<TestRun, Nondeterminism>> =
        (0..40).map(|seed| TestEngine::new().seed(seed).try_run::<ClockParity>("parity", ())).collect();
    let caught = runs.iter().filter(|r| r.is_err()).count();
    assert!(caught >= 10, "caught with only {caught} of 40 seeds");
    for run in runs.iter().flatten() {
        assert_eq!(run.output::<u64>(), world::DEFAULT_START_MILLIS + 60_000, "the step read the virtual time");
    }
    let error = runs.into_iter().find_map(Result::err).expect("some seed caught it");
    assert!(error.message.contains("call 1 was step"), "{error}");
}

struct Inserted {
    env: Env,
}

impl Workflow for Inserted {
    type Params = ();
    type Output = ();
    fn new(env: Env) -> Self {
        Inserted { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        step.run("a", |_| async { Ok(()) }).await?;
        // After the nap (the clock outside steps runs up to a second ahead in every run).
        if self.env.now_millis() >= world::DEFAULT_START_MILLIS + 60_000 {
            step.run("only on replay", |_| async { Ok(()) }).await?;
        }
        step.sleep("nap", "1 minute").await?;
        step.run("b", |_| async { Ok(()) }).await
    }
}

#[test]
fn a_step_inserted_on_replay_is_caught() {
    let error = TestEngine::new().try_run::<Inserted>("inserted", ()).unwrap_err();
    assert!(error.message.contains("call 2 was step \"only on replay\", where the previous run called sleep \"nap\""), "{error}");
}

struct Duplicated;

impl Workflow for Duplicated {
    type Params = ();
    type Output = ();
    fn new(_: Env) -> Self {
        Duplicated
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        for _ in 0..2 {
            step.run("send", |_| async { Ok(()) }).await?;
        }
        Ok(())
    }
}

#[test]
fn a_name_used_twice_in_one_run_is_reported_unless_allowed() {
    let error = TestEngine::new().try_run::<Duplicated>("dup", ()).unwrap_err();
    assert!(error.message.starts_with("step \"send\" (call 2 of that name): the name is used 2 times in one run"), "{error}");
    let run = TestEngine::new().allow_duplicate_step_names().run::<Duplicated>("dup-ok", ());
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.step_n("send", 2).count, 2);
}

struct OutsideStep {
    env: Env,
}

impl Workflow for OutsideStep {
    type Params = ();
    type Output = Value;
    fn new(env: Env) -> Self {
        OutsideStep { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, _step: Step<'_>) -> Result<Value, StepError> {
        call(&self.env, "outside").await
    }
}

#[test]
fn a_side_effect_outside_any_step_is_reported() {
    let error = engine().try_run::<OutsideStep>("outside", ()).unwrap_err();
    assert!(
        error.message.contains("side effects outside any step run again on every replay: fetch GET https://service.test/outside"),
        "{error}"
    );
}

/// Two branches in flight at once: one retries while the other sleeps, so replays see
/// cached results in another interleaving than the first run did.
struct Branches {
    env: Env,
}

impl Workflow for Branches {
    type Params = bool;
    type Output = Value;
    fn new(env: Env) -> Self {
        Branches { env }
    }
    async fn run(&self, event: &WorkflowEvent<bool>, step: Step<'_>) -> Result<Value, StepError> {
        let retrying = async {
            let config = StepConfig::new().retries(Retries::new(3).delay("1 second").backoff(Backoff::Constant));
            let first: Value = step.run_with("retrying", config, |_| call(&self.env, "flaky")).await?;
            let then: Value = step.run("after retrying", |_| async { Ok(json!("then")) }).await?;
            Ok::<_, StepError>(json!([first, then]))
        };
        let sleeping = async {
            // The bug variant names a step after the clock, in a branch.
            let name = if event.payload { format!("quick {}", self.env.now_millis()) } else { "quick".to_string() };
            step.run(&name, |_| async { Ok(()) }).await?;
            step.sleep("long", "10 seconds").await?;
            step.run("after sleeping", |_| async { Ok(json!("slept")) }).await
        };
        let (a, b) = futures_util::future::try_join(retrying, sleeping).await?;
        Ok(json!([a, b]))
    }
}

#[test]
fn steps_in_flight_at_once_replay_in_any_interleaving_without_a_false_alarm() {
    let engine = TestEngine::new().route(SERVICE, flaky(2));
    let run = engine.run::<Branches>("branches", false);
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.output::<Value>(), json!([[{"attempt": 3}, "then"], "slept"]));
    assert_eq!(run.step_names(), ["retrying", "quick", "long", "after retrying", "after sleeping"]);
}

#[test]
fn a_step_renamed_on_replay_inside_concurrent_branches_is_caught() {
    let engine = TestEngine::new().seed(11).route(SERVICE, flaky(2));
    let error = engine.try_run::<Branches>("branches-bug", true).unwrap_err();
    let (start, offset) = (world::DEFAULT_START_MILLIS, |run| seed::clock_offset_ms(11, run));
    assert!(error.message.contains(&format!("did not call step \"quick {}\"", start + offset(1))), "{error}");
    assert!(error.message.contains(&format!("(it called step \"quick {}\" instead)", start + 1000 + offset(2))), "{error}");
}

/// A join that fails fast: after the failure is caught, a replay does not poll the
/// other branch again, which is deterministic and must not be reported.
struct FailFast {
    env: Env,
}

impl Workflow for FailFast {
    type Params = ();
    type Output = String;
    fn new(env: Env) -> Self {
        FailFast { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<String, StepError> {
        let config = StepConfig::new().retries(Retries::new(1).delay("1 second"));
        let failing = step.run_with("failing", config, |_| call(&self.env, "down"));
        let fine = step.run("fine", |_| async { Ok(1) });
        let joined: Result<(Value, u32), StepError> = futures_util::future::try_join(failing, fine).await;
        let message = joined.err().map(|e| e.to_string()).unwrap_or_default();
        step.sleep("then", "1 minute").await?;
        Ok(message)
    }
}

#[test]
fn a_join_that_fails_fast_on_replay_is_not_a_false_alarm() {
    let engine = TestEngine::new().route(SERVICE, |_| Response::json(500, &json!("down")));
    let run = engine.run::<FailFast>("fail-fast", ());
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.output::<String>(), "service answered 500: \"down\"");
}

struct Limited;

impl Workflow for Limited {
    type Params = ();
    type Output = ();
    fn new(_: Env) -> Self {
        Limited
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        for i in 0..4 {
            step.run(&format!("step {i}"), |_| async { Ok(()) }).await?;
        }
        Ok(())
    }
}

#[test]
fn the_step_limit_counts_calls_per_run() {
    let run = TestEngine::new().step_limit(3).run::<Limited>("limited", ());
    assert_eq!(
        run.error().message,
        "WorkflowFatalError: The limit of 3 steps has been reached. This limit can be changed in your worker configuration."
    );
}

// ----- other workflows' instances

struct Parent {
    env: Env,
}

impl Workflow for Parent {
    type Params = ();
    type Output = bool;
    fn new(env: Env) -> Self {
        Parent { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<bool, StepError> {
        step.run("start child", |_| async { self.env.create_instance("Child", "child-1", &json!({"n": 2})).await }).await
    }
}

struct Child;

#[derive(serde::Deserialize)]
struct ChildParams {
    n: u64,
}

impl Workflow for Child {
    type Params = ChildParams;
    type Output = u64;
    fn new(_: Env) -> Self {
        Child
    }
    async fn run(&self, event: &WorkflowEvent<ChildParams>, step: Step<'_>) -> Result<u64, StepError> {
        step.sleep("wait", "1 hour").await?;
        Ok(event.payload.n * 10)
    }
}

#[test]
fn created_instances_are_recorded_and_run_on_the_same_clock_when_registered() {
    let engine = TestEngine::new().workflow::<Child>();
    let run = engine.run::<Parent>("parent", ());
    assert!(run.output::<bool>());
    let created = engine.created_instances();
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].workflow.as_str(), created[0].id.as_str(), created[0].params.clone()), ("Child", "child-1", json!({"n": 2})));
    assert_eq!(created[0].by.as_ref().map(|b| b.step.as_str()), Some("start child"));
    assert_eq!(engine.instance("child-1").status, Status::Running, "sleeping");
    let child = engine.finish("child-1");
    assert_eq!(child.output::<u64>(), 20);
    assert_eq!(child.elapsed(), Some(secs(3600)));

    let unknown = TestEngine::new().run::<Parent>("parent-alone", ());
    assert_eq!(unknown.error(), &ErrorInfo { name: "NonRetryableError".into(), message: "no workflow named \"Child\"".into() });
}

crate::registered_for_tests!(
    CallTwice,
    Retried,
    Fallible,
    Clock,
    Approval,
    ClockInName,
    Shuffled,
    ClockParity,
    Inserted,
    Duplicated,
    OutsideStep,
    Branches,
    FailFast,
    Limited,
    Parent,
    Child
);
