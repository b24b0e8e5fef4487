//! Child workflows and typed handles on the test engine: children run on the parent's
//! clock, a lost notice is found by the parent's status checks, a child's failure names
//! the child, and no replay, retry or restart starts a second child.

use super::*;
use crate::bridge::{Env, Step, TerminateOutcome};
use crate::core::child::{ChildError, ChildOptions, InstanceRef};
use crate::core::engine_error::BindingError;
use crate::core::events::{Event, EventSpec};
use crate::core::status::InstanceState;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KidParams {
    n: u64,
    #[serde(default)]
    sleep: Option<String>,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    fail: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Poke {
    by: String,
}
impl Event for Poke {
    const TYPE: &'static str = "poke";
}

/// A child: sleeps, waits for a poke, or fails, as asked; returns `n * 10`.
struct Kid;

impl Workflow for Kid {
    type Params = KidParams;
    type Output = u64;
    const EVENTS: &'static [EventSpec] = &[EventSpec::of::<Poke>()];
    fn new(_: Env) -> Self {
        Kid
    }
    async fn run(&self, event: &WorkflowEvent<KidParams>, step: Step<'_>) -> Result<u64, StepError> {
        let p = &event.payload;
        if let Some(sleep) = &p.sleep {
            step.sleep("nap", sleep.as_str()).await?;
        }
        if p.wait {
            step.wait_for::<Poke>("poke", "30 days").await?;
        }
        if p.fail {
            step.run("refuse", |_| async { Err::<(), _>(StepError::non_retryable(format!("kid {} refuses", p.n))) }).await?;
        }
        Ok(p.n * 10)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ParentParams {
    kids: Vec<KidParams>,
    #[serde(default)]
    fan_out: bool,
    #[serde(default)]
    deadline: Option<String>,
    #[serde(default)]
    check_every: Option<String>,
    #[serde(default)]
    keep_running: bool,
}

/// A child's error as JSON: which variant, which child, and the message.
fn error_json(e: &ChildError) -> Value {
    let kind = match e {
        ChildError::Failed { .. } => "failed",
        ChildError::Terminated { .. } => "terminated",
        ChildError::DeadlineExceeded { .. } => "deadline",
        ChildError::OutputMismatch { .. } => "output",
        ChildError::Step(_) => "step",
    };
    let child = e.child().map(|c| json!({"index": c.index, "id": c.instance.id}));
    json!({"kind": kind, "child": child, "message": e.to_string()})
}

/// Awaits its kids (one with `child`, several with `children_settled`) and reports each
/// outcome, typed errors as JSON.
struct Parent;

impl Workflow for Parent {
    type Params = ParentParams;
    type Output = Value;
    fn new(_: Env) -> Self {
        Parent
    }
    async fn run(&self, event: &WorkflowEvent<ParentParams>, step: Step<'_>) -> Result<Value, StepError> {
        let p = &event.payload;
        let mut options = ChildOptions::new();
        if let Some(d) = &p.deadline {
            options = options.deadline(d.as_str());
        }
        if let Some(c) = &p.check_every {
            options = options.check_every(c.as_str());
        }
        if p.keep_running {
            options = options.keep_running_after_deadline();
        }
        let outcome = |r: Result<u64, ChildError>| match r {
            Ok(n) => json!({"output": n}),
            Err(ChildError::Step(e)) => json!({"stepError": e.to_string()}),
            Err(e) => json!({"error": error_json(&e)}),
        };
        if !p.fan_out {
            let result = step.child_with::<Kid>("kid", &p.kids[0], options).await;
            if let Err(ChildError::Step(e)) = result {
                return Err(e);
            }
            return Ok(outcome(result));
        }
        let settled = step.children_settled::<Kid>("kids", &p.kids, options).await?;
        Ok(Value::Array(settled.into_iter().map(outcome).collect()))
    }
}

/// Fans out with `children`, failing on the first child (by index) that did not complete.
struct StrictParent;

impl Workflow for StrictParent {
    type Params = Vec<KidParams>;
    type Output = Vec<u64>;
    fn new(_: Env) -> Self {
        StrictParent
    }
    async fn run(&self, event: &WorkflowEvent<Vec<KidParams>>, step: Step<'_>) -> Result<Vec<u64>, StepError> {
        Ok(step.children::<Kid>("kids", &event.payload).await?)
    }
}

/// Starts a kid through the typed handle (not awaited) and reads its typed status later.
struct Starter {
    env: Env,
}

impl Workflow for Starter {
    type Params = ();
    type Output = Option<u64>;
    fn new(env: Env) -> Self {
        Starter { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Option<u64>, StepError> {
        let kids = self.env.workflow::<Kid>();
        step.run("start", |_| async { Ok(kids.create("free-kid", &KidParams { n: 4, ..KidParams::default() }).await?.created) }).await?;
        step.sleep("later", "1 minute").await?;
        step.run("read", |_| async { Ok(kids.get("free-kid").await?.status().await?.output) }).await
    }
}

crate::registered_for_tests!(Kid, Parent, StrictParent, Starter);

fn kid(n: u64) -> KidParams {
    KidParams { n, ..KidParams::default() }
}

fn sleepy(n: u64, sleep: &str) -> KidParams {
    KidParams { n, sleep: Some(sleep.into()), ..KidParams::default() }
}

fn engine() -> TestEngine {
    TestEngine::new().workflow::<Kid>()
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

/// The children the engine recorded as created (not the creates that found them existing).
fn started(engine: &TestEngine) -> Vec<CreatedInstance> {
    engine.created_instances().into_iter().filter(|c| c.created).collect()
}

#[test]
fn a_child_runs_on_the_parents_clock_and_its_typed_output_wakes_the_parent() {
    let engine = engine();
    let run = engine.run::<Parent>("p-1", ParentParams { kids: vec![sleepy(3, "50 minutes")], ..ParentParams::default() });
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.output::<Value>(), json!({"output": 30}));
    // Woken by the notice when the child ended, 50 minutes in: no check, no polling.
    assert_eq!(run.elapsed(), Some(minutes(50)));
    assert_eq!(run.step_names(), ["kid", "kid: wait 1"]);
    let kids = started(&engine);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].parent, Some(InstanceRef::new("Parent", "p-1")));
    assert_eq!(
        kids[0].params,
        json!({"n": 3, "sleep": "50 minutes", "wait": false, "fail": false}),
        "the child sees its params, not the envelope"
    );
    assert_eq!(kids[0].by.as_ref().map(|b| b.step.as_str()), Some("kid"));
    assert!(kids[0].id.starts_with("p-1-kid-0-"), "{}", kids[0].id);
    let child = engine.status::<Kid>(&kids[0].id);
    assert_eq!((child.status, child.output), (InstanceState::Complete, Some(30)));
}

#[test]
fn a_fan_out_returns_outputs_in_the_order_given_whatever_order_they_end_in() {
    let engine = engine();
    let kids = vec![sleepy(1, "30 minutes"), sleepy(2, "10 minutes"), kid(3), sleepy(4, "20 minutes")];
    let run = engine.run::<StrictParent>("fan-1", kids);
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.output::<Vec<u64>>(), [10, 20, 30, 40]);
    assert_eq!(run.elapsed(), Some(minutes(30)), "done when the slowest is");
    assert_eq!(started(&engine).len(), 4);
    assert_eq!(run.step_names(), ["kids", "kids #0: wait 1", "kids #1: wait 1", "kids #2: wait 1", "kids #3: wait 1"]);
    assert!(run.violation.is_none());
}

#[test]
fn a_childs_failure_reaches_the_parent_typed_and_names_the_child() {
    let engine = engine();
    let kids = vec![kid(1), KidParams { fail: true, ..kid(2) }, sleepy(3, "1 hour"), KidParams { fail: true, ..kid(4) }];
    let run = engine.run::<StrictParent>("fan-2", kids.clone());
    assert_eq!(run.status, Status::Errored);
    let failing = started(&engine)[1].id.clone();
    assert_eq!(
        run.error().message,
        format!("child 1 of 4 (Kid instance {failing}) errored: NonRetryableError: kid 2 refuses"),
        "the first failure in the order given, with its index and id"
    );
    // Every child had ended when the parent did: nothing is left running.
    for kid in started(&engine) {
        assert!(engine.instance(&kid.id).status.is_finished(), "{} {:?}", kid.id, engine.instance(&kid.id).status);
    }

    // Per child, typed.
    let engine = self::engine();
    let run = engine.run::<Parent>("fan-3", ParentParams { kids, fan_out: true, ..ParentParams::default() });
    let ids: Vec<String> = started(&engine).into_iter().map(|c| c.id).collect();
    assert_eq!(
        run.output::<Value>(),
        json!([
            {"output": 10},
            {"error": {"kind": "failed", "child": {"index": 1, "id": ids[1]}, "message": format!("child 1 of 4 (Kid instance {}) errored: NonRetryableError: kid 2 refuses", ids[1])}},
            {"output": 30},
            {"error": {"kind": "failed", "child": {"index": 3, "id": ids[3]}, "message": format!("child 3 of 4 (Kid instance {}) errored: NonRetryableError: kid 4 refuses", ids[3])}},
        ])
    );
}

#[test]
fn a_lost_notice_is_found_by_the_next_status_check() {
    let params = ParentParams {
        kids: vec![sleepy(5, "25 minutes")],
        deadline: Some("2 hours".into()),
        check_every: Some("10 minutes".into()),
        ..ParentParams::default()
    };
    let engine = engine().lose_child_notices();
    let run = engine.run::<Parent>("lost-1", params.clone());
    assert_eq!(run.output::<Value>(), json!({"output": 50}));
    // Ended at 25 minutes, unheard; the check after the third slice found it.
    assert_eq!(run.elapsed(), Some(minutes(30)));
    assert_eq!(
        run.step_names(),
        ["kid", "kid: wait 1", "kid: check 1", "kid: wait 2", "kid: check 2", "kid: wait 3", "kid: check 3", "kid: result"]
    );

    // With the notice, the same parent wakes when the child ends, without a check.
    let heard = self::engine().run::<Parent>("lost-2", params);
    assert_eq!(heard.elapsed(), Some(minutes(25)));
    assert_eq!(heard.step_names(), ["kid", "kid: wait 1", "kid: check 1", "kid: wait 2", "kid: check 2", "kid: wait 3"]);

    // A failure is found the same way, typed.
    let engine = self::engine().lose_child_notices();
    let failing = ParentParams {
        kids: vec![KidParams { fail: true, ..kid(6) }],
        deadline: Some("1 hour".into()),
        check_every: Some("5 minutes".into()),
        ..ParentParams::default()
    };
    let run = engine.run::<Parent>("lost-3", failing);
    assert_eq!(run.output::<Value>()["error"]["kind"], "failed");
    assert_eq!(run.elapsed(), Some(minutes(5)));
}

#[test]
fn at_the_deadline_a_child_still_running_is_terminated_and_the_parent_told() {
    let engine = engine();
    let params = ParentParams {
        kids: vec![sleepy(7, "3 hours")],
        deadline: Some("1 hour".into()),
        check_every: Some("30 minutes".into()),
        ..ParentParams::default()
    };
    let run = engine.run::<Parent>("late-1", params.clone());
    let kid_id = started(&engine)[0].id.clone();
    assert_eq!(
        run.output::<Value>(),
        json!({"error": {"kind": "deadline", "child": {"index": 0, "id": kid_id}, "message": format!("child Kid instance {kid_id} had not ended after 1h")}})
    );
    assert_eq!(run.elapsed(), Some(minutes(60)));
    assert_eq!(run.step_names(), ["kid", "kid: wait 1", "kid: check 1", "kid: wait 2", "kid: deadline"]);
    assert_eq!(engine.instance(&kid_id).status, Status::Terminated);

    let engine = self::engine();
    engine.run::<Parent>("late-2", ParentParams { keep_running: true, ..params });
    let kid_id = started(&engine)[0].id.clone();
    assert_eq!(engine.instance(&kid_id).status, Status::Running, "kept running");
    assert_eq!(engine.finish(&kid_id).output::<u64>(), 70);
}

#[test]
fn a_terminated_child_is_a_typed_error_at_once() {
    let engine = engine();
    engine.start::<Parent>("t-1", ParentParams { kids: vec![KidParams { wait: true, ..kid(8) }], ..ParentParams::default() });
    engine.advance("5 minutes");
    let kid_id = started(&engine)[0].id.clone();
    assert_eq!(engine.instance(&kid_id).status, Status::Waiting);
    engine.terminate(&kid_id);
    let run = engine.finish("t-1");
    assert_eq!(run.output::<Value>()["error"]["kind"], "terminated");
    assert_eq!(run.elapsed(), Some(minutes(5)), "told by the terminate, not by a check an hour later");
}

#[test]
fn no_replay_retry_or_restart_starts_a_second_child() {
    // The create happens, its answer is lost: the retry finds the child and starts nothing.
    let engine = engine().fail_step_after_running("kid", 1, StepError::failed("connection reset"));
    let params = ParentParams { kids: vec![sleepy(9, "2 hours")], check_every: Some("30 minutes".into()), ..ParentParams::default() };
    let run = engine.run::<Parent>("once-1", params);
    assert_eq!(run.output::<Value>(), json!({"output": 90}));
    assert_eq!(run.step("kid").attempts.len(), 2);
    assert!(run.runs >= 5, "replayed after the retry delay and every slice: {}", run.runs);
    let creates: Vec<bool> = engine.created_instances().iter().map(|c| c.created).collect();
    assert_eq!(creates, [true, false], "the retry found it");
    let kid_id = started(&engine)[0].id.clone();
    assert_eq!(engine.instance(&kid_id).runs, 2, "the child ran once (and replayed once after its sleep)");

    // A restart from the start derives the same id: the child is found, ended, and its
    // output read from its status; nothing new starts.
    let again = engine.restart("once-1");
    assert_eq!(again.output::<Value>(), json!({"output": 90}));
    assert_eq!(again.step_names(), ["kid", "kid: result"]);
    assert_eq!(engine.created_instances().iter().filter(|c| c.created).count(), 1);
    assert_eq!(engine.instance(&kid_id).runs, 2);

    // A fan-out whose create is retried: every child once.
    let engine = self::engine().fail_step_after_running("kids", 2, StepError::failed("lost"));
    let run = engine.run::<StrictParent>("once-2", vec![kid(1), kid(2), kid(3)]);
    assert_eq!(run.output::<Vec<u64>>(), [10, 20, 30]);
    assert_eq!(started(&engine).len(), 3);
    assert_eq!(engine.created_instances().len(), 9, "three attempts of three creates");
}

#[test]
fn a_new_life_of_the_parents_id_starts_new_children() {
    // The same parent id in two lives (created at different times, as after a delete or
    // retention): each life starts its own children; the same life derives the same ones.
    let kids_of = |created_at: u64| -> Vec<String> {
        let engine = engine().start_time(UNIX_EPOCH + Duration::from_millis(created_at));
        let run = engine.run::<Parent>("p", ParentParams { kids: vec![kid(1), kid(2)], fan_out: true, ..ParentParams::default() });
        assert_eq!(run.status, Status::Complete);
        engine.created_instances().into_iter().filter(|c| c.created).map(|c| c.id).collect()
    };
    let first_life = kids_of(1_795_400_000_000);
    let second_life = kids_of(1_795_500_000_000);
    assert_eq!(first_life.len(), 2, "{first_life:?}");
    assert_eq!(second_life.len(), 2, "{second_life:?}");
    assert!(first_life.iter().all(|id| !second_life.contains(id)), "{first_life:?} {second_life:?}");
    assert_eq!(kids_of(1_795_400_000_000), first_life, "the same life finds the same children");
}

#[test]
fn terminating_a_parent_with_its_children_leaves_nothing_running() {
    let engine = engine();
    engine.start::<Parent>(
        "tree-1",
        ParentParams {
            kids: vec![KidParams { wait: true, ..kid(1) }, kid(2), sleepy(3, "1 day")],
            fan_out: true,
            ..ParentParams::default()
        },
    );
    engine.advance("1 minute");
    let kids: Vec<String> = started(&engine).into_iter().map(|c| c.id).collect();
    let reached = engine.terminate_with_children("tree-1");
    let outcomes: Vec<(&str, &TerminateOutcome)> = reached.iter().map(|t| (t.instance.id.as_str(), &t.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("tree-1", &TerminateOutcome::Terminated),
            (kids[0].as_str(), &TerminateOutcome::Terminated),
            (kids[1].as_str(), &TerminateOutcome::Ended(InstanceState::Complete)),
            (kids[2].as_str(), &TerminateOutcome::Terminated),
        ]
    );
    for id in ["tree-1", &kids[0], &kids[2]] {
        assert_eq!(engine.instance(id).status, Status::Terminated, "{id}");
    }
    engine.advance("2 days");
    assert_eq!(engine.instance(&kids[2]).status, Status::Terminated, "a terminated child never runs again");
}

#[test]
fn typed_handles_create_read_and_send_from_a_workflow_and_from_the_test() {
    let engine = engine();
    let run = engine.run::<Starter>("starter", ());
    assert_eq!(run.output::<Option<u64>>(), Some(40), "the status the handle read, typed");
    let created = engine.created_instances();
    assert_eq!((created[0].id.as_str(), created[0].parent.clone()), ("free-kid", None), "not a child: nothing waits for it");

    // From outside any workflow, as a fetch handler would.
    let env = engine.env();
    let kids = env.workflow::<Kid>();
    assert_eq!(kids.name(), "Kid");
    let made = engine.block_on(kids.create("waiting-kid", &KidParams { wait: true, ..kid(5) })).unwrap();
    assert!(made.created);
    assert!(!engine.block_on(kids.create("waiting-kid", &kid(6))).unwrap().created, "an id that exists is not started again");
    engine.advance("1 second");
    let waiting = engine.block_on(kids.get("waiting-kid")).unwrap();
    assert_eq!(engine.block_on(waiting.status()).unwrap().status, InstanceState::Waiting);
    engine.block_on(waiting.send(&Poke { by: "test".into() })).unwrap();
    engine.finish("waiting-kid");
    let done = engine.block_on(waiting.status()).unwrap();
    assert_eq!((done.status, done.output), (InstanceState::Complete, Some(50)));
    assert!(matches!(engine.block_on(waiting.send(&Poke { by: "late".into() })), Err(BindingError::InvalidState { .. })));
    assert!(matches!(engine.block_on(kids.get("nobody")), Err(BindingError::NotFound(id)) if id == "nobody"));
    assert!(matches!(engine.block_on(waiting.terminate()), Err(BindingError::InvalidState { .. })), "it has finished");

    let batch = engine.block_on(kids.create_batch(&[("b-1", &kid(1)), ("waiting-kid", &kid(2)), ("b-1", &kid(3))])).unwrap();
    let outcomes: Vec<&str> = batch
        .iter()
        .map(|e| match &e.outcome {
            crate::core::instance_batch::CreateOutcome::Created => "created",
            crate::core::instance_batch::CreateOutcome::AlreadyExists => "existed",
            crate::core::instance_batch::CreateOutcome::Failed(_) => "failed",
        })
        .collect();
    assert_eq!(outcomes, ["created", "existed", "failed"]);
    engine.advance(0_u64); // starts what the handles created
    assert_eq!(engine.finish("b-1").output::<u64>(), 10);
    assert_eq!(engine.status::<Kid>("b-1").output, Some(10));
}

#[test]
fn a_handle_on_a_workflow_the_engine_does_not_know_is_refused() {
    let engine = TestEngine::new();
    let err = engine.block_on(engine.env().workflow::<Kid>().create("k", &kid(1))).unwrap_err();
    assert!(matches!(&err, BindingError::MissingBinding(m) if m.contains("Kid")), "{err:?}");
    let run = engine.run::<StrictParent>("no-kids", vec![kid(1)]);
    assert_eq!(run.status, Status::Errored);
    assert!(run.error().message.contains("Kid"), "{}", run.error().message);
}

#[test]
fn bad_calls_fail_before_anything_starts() {
    let engine = engine();
    let too_many = vec![kid(1); crate::core::child::MAX_CHILDREN + 1];
    let run = engine.run::<StrictParent>("too-many", too_many);
    assert!(run.error().message.contains("at most 100 child workflows"), "{}", run.error().message);
    let run = engine.run::<Parent>(
        "bad-deadline",
        ParentParams { kids: vec![kid(1)], deadline: Some("5 fortnights".into()), ..ParentParams::default() },
    );
    assert!(run.error().message.starts_with("child deadline"), "{}", run.error().message);
    assert!(engine.created_instances().is_empty());
    assert_eq!(engine.run::<StrictParent>("none", vec![]).output::<Vec<u64>>(), Vec::<u64>::new());
}
