//! Changing a workflow safely, on the test engine: params that a deploy changed, and
//! patches (`Step::patched`) through a simulated deploy (`TestEngine::upgrade`).

use super::*;
use crate::bridge::{Env, Step};
use serde_json::json;

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

crate::registered_for_tests!(Spawner, StrictChild);

// ----- patches

/// The shipping workflow as deployed first: charge, ship, wait for delivery, notify.
struct ShipV1;
/// The next deploy, unsafe: a fraud check before shipping, for every instance.
struct ShipV2Unpatched;
/// The next deploy, safe: the fraud check behind a patch.
struct ShipV2;
/// Later still: the patch removed, the fraud check kept.
struct ShipV3;

/// Whether a version of the shipping workflow checks for fraud before shipping.
#[derive(Clone, Copy)]
enum FraudCheck {
    Never,
    Always,
    Patched,
}

const PATCH: &str = "fraud-check-before-ship";

/// Runs the shipping steps, checking for fraud before shipping as `check` says.
async fn ship(step: &Step<'_>, check: FraudCheck) -> Result<Vec<String>, StepError> {
    let mut done: Vec<String> = vec![step.run("charge", |_| async { Ok("charged".to_string()) }).await?];
    let checks = match check {
        FraudCheck::Never => false,
        FraudCheck::Always => true,
        FraudCheck::Patched => step.patched(PATCH).await?,
    };
    if checks {
        done.push(step.run("fraud-check", |_| async { Ok("checked".to_string()) }).await?);
    }
    done.push(step.run("ship", |_| async { Ok("shipped".to_string()) }).await?);
    step.sleep("wait for delivery", "2 days").await?;
    done.push(step.run("notify", |_| async { Ok("notified".to_string()) }).await?);
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

shipping! {
    ShipV1 => FraudCheck::Never,
    ShipV2Unpatched => FraudCheck::Always,
    ShipV2 => FraudCheck::Patched,
    ShipV3 => FraudCheck::Always,
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
