//! Changing a workflow safely, on the test engine: params that a deploy changed, and
//! patches (`Step::patched`) through a simulated deploy (`TestEngine::upgrade`).

use super::*;
use crate::bridge::{Env, Step};
use serde_json::json;
use world::World;

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

/// Takes any JSON as params: what a forged envelope would get through.
struct AnyParams;

impl Workflow for AnyParams {
    type Params = serde_json::Value;
    type Output = ();
    fn new(_: Env) -> Self {
        AnyParams
    }
    async fn run(&self, _: &WorkflowEvent<serde_json::Value>, _: Step<'_>) -> Result<(), StepError> {
        Ok(())
    }
}

#[test]
fn a_create_cannot_forge_the_librarys_envelopes_even_where_the_type_takes_any_json() {
    let spec = crate::registry::WorkflowSpec::of::<AnyParams>();
    for forged in [
        json!({"$parent": {"workflow": "orders", "id": "o-1"}, "$params": {}}),
        json!({"$schedule": {"cron": "0 3 * * *", "scheduledTime": 1}, "$params": {}}),
        json!({"$callback": "https://example.com/hook", "$params": {}}),
    ] {
        let refused = spec.check_params(&forged).unwrap_err();
        assert!(refused.0.contains("$params"), "{refused}");
    }
    assert!(spec.check_params(&json!({"parent": "a", "params": {}})).is_ok());
}

crate::registered_for_tests!(Spawner, StrictChild, AnyParams);

// ----- patches

/// The shipping workflow as deployed first: charge, ship, wait for delivery, notify.
struct ShipV1;
/// The next deploy, unsafe: a fraud check before shipping, for every instance.
struct ShipV2Unpatched;
/// The next deploy, safe: the fraud check behind a patch.
struct ShipV2;
/// Later still: the patch removed, the fraud check kept.
struct ShipV3;

/// What a version of the shipping workflow does differently.
#[derive(Clone, Copy, PartialEq)]
enum FraudCheck {
    Never,
    Always,
    Patched,
    /// "ship" renamed "ship-order".
    Renamed,
    /// "notify" moved before "ship".
    Reordered,
    /// "notify" removed.
    Removed,
    /// The delivery wait made 3 days.
    LongerWait,
}

const PATCH: &str = "fraud-check-before-ship";

/// Runs the shipping steps, checking for fraud before shipping as `check` says.
async fn ship(step: &Step<'_>, check: FraudCheck) -> Result<Vec<String>, StepError> {
    let mut done: Vec<String> = vec![step.run("charge", |_| async { Ok("charged".to_string()) }).await?];
    let checks = match check {
        FraudCheck::Always => true,
        FraudCheck::Patched => step.patched(PATCH).await?,
        _ => false,
    };
    if checks {
        done.push(step.run("fraud-check", |_| async { Ok("checked".to_string()) }).await?);
    }
    let notify = || step.run("notify", |_| async { Ok("notified".to_string()) });
    if check == FraudCheck::Reordered {
        done.push(notify().await?);
    }
    let ship_name = if check == FraudCheck::Renamed { "ship-order" } else { "ship" };
    done.push(step.run(ship_name, |_| async { Ok("shipped".to_string()) }).await?);
    step.sleep("wait for delivery", if check == FraudCheck::LongerWait { "3 days" } else { "2 days" }).await?;
    if !matches!(check, FraudCheck::Reordered | FraudCheck::Removed) {
        done.push(notify().await?);
    }
    Ok(done)
}

macro_rules! shipping {
    ($($workflow:ident => $check:expr),+ $(,)?) => {$(
        impl Workflow for $workflow {
            type Params = ();
            type Output = Vec<String>;
            fn new(_: Env) -> Self {
                $workflow
            }
            async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Vec<String>, StepError> {
                ship(&step, $check).await
            }
        }
        // One workflow, deployed four times: every version has its name.
        impl crate::Registered for $workflow {
            const SETTINGS: crate::WorkflowSettings = crate::WorkflowSettings::new("shipping", "Shipping").binding("SHIPPING");
        }
    )+};
}

/// "ship" renamed.
struct ShipRenamed;
/// "notify" before "ship".
struct ShipReordered;
/// "notify" removed.
struct ShipRemoved;
/// A longer wait for delivery.
struct ShipLongerWait;

shipping! {
    ShipV1 => FraudCheck::Never,
    ShipV2Unpatched => FraudCheck::Always,
    ShipV2 => FraudCheck::Patched,
    ShipV3 => FraudCheck::Always,
    ShipRenamed => FraudCheck::Renamed,
    ShipReordered => FraudCheck::Reordered,
    ShipRemoved => FraudCheck::Removed,
    ShipLongerWait => FraudCheck::LongerWait,
}

/// An instance of the first code, in flight: charged and shipped, waiting for delivery.
fn in_flight(engine: &TestEngine, id: &str) {
    let run = engine.start::<ShipV1>(id, ());
    assert_eq!(run.step_names(), ["charge", "ship", "wait for delivery"]);
    engine.advance("1 day");
}

#[test]
fn an_unpatched_change_breaks_instances_in_flight_and_the_determinism_check_names_the_step() {
    let engine = TestEngine::new();
    in_flight(&engine, "order-1");
    engine.upgrade::<ShipV2Unpatched>("order-1", ());
    let error = engine.try_finish("order-1").unwrap_err();
    assert!(error.message.contains("call 2 was step \"fraud-check\", where the previous run called step \"ship\""), "{error}");
}

#[test]
fn a_patched_change_keeps_instances_in_flight_on_the_old_path_and_takes_new_ones_down_the_new() {
    let engine = TestEngine::new();
    in_flight(&engine, "old");
    engine.upgrade::<ShipV2>("old", ());
    let old = engine.finish("old");
    assert_eq!(old.output::<Vec<String>>(), ["charged", "shipped", "notified"], "no fraud check after shipping");
    // The patch's step joined the old instance's history, answering false, and the
    // determinism check let it in.
    assert!(!old.step(&format!("patched:{PATCH}")).value::<bool>());
    assert!(!old.has_step("fraud-check"));
    assert_eq!(engine.patch_first_seen::<ShipV2>(PATCH), Some(World::time(world::DEFAULT_START_MILLIS + 86_400_000)), "the deploy's time");

    let new = engine.run::<ShipV2>("new", ());
    assert_eq!(new.output::<Vec<String>>(), ["charged", "checked", "shipped", "notified"]);
    assert!(new.step(&format!("patched:{PATCH}")).value::<bool>());
    assert_eq!(new.runs, 2, "its replay after the sleep asked again and got the stored answer");
    assert_eq!(new.step(&format!("patched:{PATCH}")).attempts.len(), 1, "answered once, stored");
}

#[test]
fn an_instance_created_after_the_deploy_but_before_the_first_sighting_takes_the_old_path() {
    let engine = TestEngine::new();
    // A run of the Worker first asked for the patch a minute from now.
    engine.record_patch::<ShipV2>(PATCH, World::time(world::DEFAULT_START_MILLIS + 60_000));
    let between = engine.run::<ShipV2>("between", ());
    assert_eq!(between.output::<Vec<String>>(), ["charged", "shipped", "notified"]);
    engine.advance("1 minute");
    let after = engine.run::<ShipV2>("after", ());
    assert_eq!(after.output::<Vec<String>>(), ["charged", "checked", "shipped", "notified"]);
    // A first sighting never changes once recorded.
    engine.record_patch::<ShipV2>(PATCH, World::time(0));
    assert_eq!(engine.patch_first_seen::<ShipV2>(PATCH), Some(World::time(world::DEFAULT_START_MILLIS + 60_000)));
}

#[test]
fn removing_a_patch_is_safe_once_the_old_instances_are_gone_and_caught_while_one_is_in_flight() {
    let engine = TestEngine::new();
    in_flight(&engine, "old");
    engine.upgrade::<ShipV2>("old", ());
    let patched = engine.start::<ShipV2>("new", ());
    assert_eq!(patched.step_names(), ["charge", "patched:fraud-check-before-ship", "fraud-check", "ship", "wait for delivery"]);
    // The patch removed while both are in flight: the instance that took the new path
    // does not notice…
    engine.upgrade::<ShipV3>("old", ());
    engine.upgrade::<ShipV3>("new", ());
    assert_eq!(engine.finish("new").output::<Vec<String>>(), ["charged", "checked", "shipped", "notified"]);
    // …but the one still on the old path would run the fraud check after shipping: caught.
    let error = engine.try_finish("old").unwrap_err();
    assert!(error.message.contains("was step \"fraud-check\", where the previous run called step \"ship\""), "{error}");
}

#[test]
fn a_patch_id_is_checked() {
    struct Bad;
    impl Workflow for Bad {
        type Params = ();
        type Output = bool;
        fn new(_: Env) -> Self {
            Bad
        }
        async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<bool, StepError> {
            step.patched("not valid").await
        }
    }
    crate::registered_for_tests!(Bad);
    let run = TestEngine::new().run::<Bad>("bad", ());
    assert!(run.error().message.contains("invalid patch id \"not valid\""), "{}", run.summary());
}

// ----- replaying recorded histories

/// A history of the first code as `GET …/history?format=replay` answers it: charged and
/// shipped, then (`delivered`) the wait and the notification, or still waiting.
fn recorded(delivered: bool) -> serde_json::Value {
    let step = |name: &str, at: i64, output: serde_json::Value| json!({"name": name, "count": 1, "type": "do", "status": "complete", "startedAt": at, "endedAt": at + 5, "attempts": 1, "output": output});
    let mut steps = vec![step("charge", 1_000, json!("charged")), step("ship", 1_010, json!("shipped"))];
    let mut wait = json!({"name": "wait for delivery", "count": 1, "type": "sleep", "status": "running", "startedAt": 1_020, "durationMs": 172_800_000});
    if delivered {
        wait["status"] = json!("complete");
        wait["endedAt"] = json!(172_801_020_i64);
        steps.push(wait);
        steps.push(step("notify", 172_801_030, json!("notified")));
    } else {
        steps.push(wait);
    }
    json!({
        "format": "worker-workflows/replay-history", "version": 1, "workflow": "shipping", "id": "order-7",
        "createdAt": 990, "params": null, "status": if delivered { "complete" } else { "waiting" },
        "steps": steps, "omittedSteps": 0, "truncated": false,
    })
}

fn history(value: serde_json::Value) -> RecordedHistory {
    RecordedHistory::from_json(&value.to_string()).unwrap()
}

#[test]
fn a_recorded_history_replays_against_the_code_that_made_it() {
    let engine = TestEngine::new();
    let done = engine.replay::<ShipV1>(&history(recorded(true)));
    assert_eq!(done.end, ReplayEnd::Completed(json!(["charged", "shipped", "notified"])));
    assert_eq!((done.replayed, done.recorded), (4, 4));
    let waiting = engine.replay::<ShipV1>(&history(recorded(false)));
    assert_eq!(waiting.end, ReplayEnd::Suspended { step: "sleep \"wait for delivery\" of 172800000 ms".into() });
    assert!(engine.requests().is_empty() && engine.created_instances().is_empty(), "no step ran");
}

fn diverges<W: crate::Registered>(history: &RecordedHistory) -> (usize, String)
where
    W::Params: 'static,
{
    match TestEngine::new().try_replay::<W>(history) {
        Err(ReplayError::Diverged { step, message, .. }) => (step, message),
        other => panic!("expected a divergence, got {other:?}"),
    }
}

#[test]
fn a_step_renamed_inserted_reordered_or_removed_is_named_where_the_code_diverges() {
    for delivered in [true, false] {
        let h = history(recorded(delivered));
        let (at, message) = diverges::<ShipRenamed>(&h);
        assert_eq!(at, 2, "{message}");
        assert!(
            message.starts_with(
                "the code calls step \"ship-order\", which the history does not have, where the history has step \"ship\" next"
            ),
            "{message}"
        );
        let (at, message) = diverges::<ShipV2Unpatched>(&h);
        assert_eq!(at, 2, "{message}");
        assert!(
            message.contains("calls step \"fraud-check\", which the history does not have") && message.contains("step.patched"),
            "{message}"
        );
    }
    let h = history(recorded(true));
    let (at, message) = diverges::<ShipReordered>(&h);
    assert_eq!(at, 2, "{message}");
    assert!(
        message.starts_with("the code calls step \"notify\" (the history's step 4) where the history has step \"ship\" next"),
        "{message}"
    );
    let (at, message) = diverges::<ShipRemoved>(&h);
    assert_eq!(at, 4, "{message}");
    assert!(message.starts_with("the code returned without calling step \"notify\", whose result the engine stored"), "{message}");
    let (at, message) = diverges::<ShipLongerWait>(&h);
    assert_eq!(at, 3, "{message}");
    assert!(message.contains("the history's sleep of that name slept 172800000 ms"), "{message}");
    let shown = TestEngine::new().seed(3).try_replay::<ShipRenamed>(&h).unwrap_err().to_string();
    assert!(shown.starts_with("the code diverges from the recorded history at its step 2: ") && shown.contains("seed 3"), "{shown}");
}

#[test]
fn a_patched_change_replays_the_old_history_and_a_recorded_patch_answers_as_recorded() {
    let engine = TestEngine::new();
    let old = engine.replay::<ShipV2>(&history(recorded(true)));
    assert_eq!(old.end, ReplayEnd::Completed(json!(["charged", "shipped", "notified"])), "the old path");
    assert_eq!(old.patches, [(PATCH.to_string(), false)], "the instance predates the patch");
    // An instance created after the patch recorded its answer, true: replayed as such.
    let mut newer = recorded(true);
    let steps = newer["steps"].as_array_mut().unwrap();
    steps.insert(1, json!({"name": "patched:fraud-check-before-ship", "count": 1, "type": "do", "status": "complete", "startedAt": 1_005, "endedAt": 1_006, "output": true}));
    steps.insert(2, json!({"name": "fraud-check", "count": 1, "type": "do", "status": "complete", "startedAt": 1_007, "endedAt": 1_008, "output": "checked"}));
    let new = engine.replay::<ShipV2>(&history(newer.clone()));
    assert_eq!(new.end, ReplayEnd::Completed(json!(["charged", "checked", "shipped", "notified"])));
    assert_eq!(new.patches, [(PATCH.to_string(), true)]);
    // The patch removed later: that history still replays (its patch step is not called).
    assert!(matches!(engine.replay::<ShipV3>(&history(newer)).end, ReplayEnd::Completed(_)));
    // …and the old one does not: removing the patch was premature for it.
    assert_eq!(diverges::<ShipV3>(&history(recorded(true))).0, 2);
}

#[test]
fn code_past_the_end_of_the_history_is_where_it_stops() {
    let mut h = recorded(true);
    h["steps"].as_array_mut().unwrap().pop();
    h["steps"][2]["status"] = json!("complete");
    // The recorded instance had not called notify yet; the code would call it next.
    let report = TestEngine::new().replay::<ShipV1>(&history(h));
    assert_eq!(report.end, ReplayEnd::PastTheHistory { step: "step \"notify\"".into() });
}

#[test]
fn what_the_history_cannot_hold_needs_a_stand_in() {
    let mut h = recorded(true);
    h["steps"][0].as_object_mut().unwrap().remove("output");
    h["steps"][0]["outputRedacted"] = json!(true);
    let error = TestEngine::new().try_replay::<ShipV1>(&history(h.clone())).unwrap_err();
    assert_eq!(
        error,
        ReplayError::NeedsStandIn {
            step: "step \"charge\"".into(),
            reason: "it is sensitive: the engine reports \"[REDACTED]\" in its place".into()
        }
    );
    let report = TestEngine::new().replay::<ShipV1>(&history(h).stand_in("charge", &"charged"));
    assert_eq!(report.end, ReplayEnd::Completed(json!(["charged", "shipped", "notified"])));
    // A stand-in for an output the history holds is a mistake, not an override.
    let e = TestEngine::new().try_replay::<ShipV1>(&history(recorded(true)).stand_in("ship", &"x")).unwrap_err();
    assert!(matches!(&e, ReplayError::Format(m) if m.contains("\"ship\"")), "{e:?}");
}

#[test]
fn a_recorded_failure_is_replayed_as_the_error_the_code_saw() {
    let mut h = recorded(true);
    let steps = h["steps"].as_array_mut().unwrap();
    steps.truncate(2);
    steps[1] = json!({"name": "ship", "count": 1, "type": "do", "status": "errored", "startedAt": 1_010, "endedAt": 1_020, "attempts": 6,
                       "error": {"name": "Error", "message": "carrier down"}});
    h["status"] = json!("errored");
    let report = TestEngine::new().replay::<ShipV1>(&history(h));
    assert_eq!(report.end, ReplayEnd::Errored(ErrorInfo { name: "Error".into(), message: "carrier down".into() }));
}

#[test]
fn recorded_params_are_read_as_a_run_reads_them() {
    let mut h = recorded(true);
    h["workflow"] = json!("StrictChild");
    h["params"] = json!({"n": 4, "removedByADeploy": true});
    h["steps"] =
        json!([{"name": "wait", "count": 1, "type": "sleep", "status": "complete", "startedAt": 1, "endedAt": 2, "durationMs": 3_600_000}]);
    let report = TestEngine::new().replay::<StrictChild>(&history(h.clone()));
    assert_eq!((report.end, report.ignored_params), (ReplayEnd::Completed(json!(40)), vec!["removedByADeploy".to_string()]));
    h["params"] = json!({"removedByADeploy": true});
    let error = TestEngine::new().try_replay::<StrictChild>(&history(h)).unwrap_err();
    assert_eq!(error, ReplayError::Params("missing field `n`".into()));
}

#[test]
fn a_history_of_another_workflow_or_format_is_refused() {
    let error = TestEngine::new().try_replay::<StrictChild>(&history(recorded(true))).unwrap_err();
    assert_eq!(error, ReplayError::Format("the history is of workflow \"shipping\", and the code is \"StrictChild\"".into()));
    let mut v2 = recorded(true);
    v2["version"] = json!(2);
    assert!(matches!(RecordedHistory::from_json(&v2.to_string()), Err(ReplayError::Format(m)) if m.contains("version 2")));
    assert!(matches!(RecordedHistory::from_json("{}"), Err(ReplayError::Format(_))));
}

/// Branches outside a step on a UUID: the two replays of one history disagree.
struct Coin {
    env: Env,
}

impl Workflow for Coin {
    type Params = ();
    type Output = ();
    fn new(env: Env) -> Self {
        Coin { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<(), StepError> {
        let name = if self.env.random_uuid().as_str() < "8" { "charge" } else { "ship" };
        step.run(name, |_| async { Ok(()) }).await
    }
}

#[test]
fn a_replay_that_depends_on_something_outside_steps_is_reported() {
    let mut h = recorded(true);
    h["workflow"] = json!("Coin");
    h["steps"] = json!([]);
    let errors: Vec<ReplayError> =
        (0..20).filter_map(|seed| TestEngine::new().seed(seed).try_replay::<Coin>(&history(h.clone())).err()).collect();
    assert!(errors.len() >= 5, "{errors:?}");
    for error in errors {
        assert!(
            matches!(&error, ReplayError::Nondeterministic { message, .. } if message.starts_with("two replays of the history differ at call 1")),
            "{error:?}"
        );
    }
}

crate::registered_for_tests!(Coin);

#[test]
fn a_workers_migrations_missing_the_patches_one_are_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("worker-workflows-migrations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for migration in crate::MIGRATIONS.iter().filter(|m| m.file_name != crate::PATCHES_MIGRATION.file_name) {
        std::fs::write(dir.join(migration.file_name), migration.sql).unwrap();
    }
    let Err(refused) = std::panic::catch_unwind(|| super::TestEngine::new().d1_with_migrations("DB", &dir)) else {
        panic!("a folder without the patches migration was accepted");
    };
    let message = refused.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains(crate::PATCHES_MIGRATION.file_name), "{message}");
    // With it, the engine opens; another binding than the library's is the Worker's own.
    std::fs::write(dir.join(crate::PATCHES_MIGRATION.file_name), crate::PATCHES_MIGRATION.sql).unwrap();
    let _ = super::TestEngine::new().d1_with_migrations("DB", &dir);
    std::fs::remove_file(dir.join(crate::PATCHES_MIGRATION.file_name)).unwrap();
    let _ = super::TestEngine::new().d1_with_migrations("OTHER", &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
