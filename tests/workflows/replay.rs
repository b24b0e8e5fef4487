//! Histories recorded on the real runtime, replayed against today's code. The fixture
//! `tests/fixtures/histories/order-processing.json` is an order as `wrangler dev`
//! recorded it (`GET …/history?format=replay`; `tests/e2e/evolve.test.mjs` records one on
//! every run and runs `a_history_just_recorded_on_wrangler_dev_replays` on it, and with
//! `RECORD_FIXTURES=1` refreshes the fixture). Today's order workflow must replay it;
//! changes to it that would break an order in flight must be caught, naming the step,
//! and the same change behind `step.patched` must pass.

use rust_workflows::workflows::order_processing::OrderParams;
use rust_workflows::workflows::OrderWorkflow;
use serde_json::{json, Value};
use std::time::Duration;
use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use worker_workflows::core::step_error::StepError;
use worker_workflows::testing::{RecordedHistory, ReplayEnd, ReplayError, ReplayReport, Status, TestEngine};
use worker_workflows::{Registered, WorkflowSettings};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/histories/order-processing.json");

fn fixture() -> RecordedHistory {
    RecordedHistory::from_file(FIXTURE).unwrap_or_else(|e| panic!("{e}"))
}

/// The order workflow reads its services' URLs outside its steps; the replay sends nothing.
fn engine() -> TestEngine {
    TestEngine::new()
        .var("INVENTORY_URL", "https://inventory.test")
        .var("PAYMENTS_URL", "https://payments.test")
        .var("SHIPPING_URL", "https://shipping.test")
        .var("NOTIFY_URL", "https://notify.test")
}

/// Today's order workflow does all the recorded order did, and returns what it returned.
fn replays_completely(history: &RecordedHistory) -> ReplayReport {
    let engine = engine();
    let report = engine.replay::<OrderWorkflow>(history);
    let recorded = history.history();
    assert_eq!(report.end, ReplayEnd::Completed(recorded.output.clone().expect("the recorded order completed")));
    assert_eq!((report.replayed, report.recorded), (5, 5));
    assert!(engine.requests().is_empty(), "every step came from the history: nothing was sent");
    report
}

#[test]
fn the_order_recorded_on_wrangler_dev_replays_against_todays_code() {
    let history = fixture();
    let steps: Vec<&str> = history.history().steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["validate-inventory", "process-payment", "wait-before-fulfillment", "create-shipment", "send-confirmation"]);
    replays_completely(&history);
}

#[test]
#[ignore = "run by tests/e2e/evolve.test.mjs with RECORDED_HISTORY set to the history it just recorded"]
fn a_history_just_recorded_on_wrangler_dev_replays() {
    let path = std::env::var("RECORDED_HISTORY").expect("RECORDED_HISTORY names a history recorded with GET …/history?format=replay");
    replays_completely(&RecordedHistory::from_file(&path).unwrap_or_else(|e| panic!("{e}")));
}

#[test]
fn an_order_created_before_a_deploy_removed_a_param_field_replays_and_a_create_refuses_the_field() {
    let mut recorded = serde_json::to_value(fixture().history()).unwrap();
    recorded["params"]["giftWrap"] = json!(true);
    let history = RecordedHistory::from_json(&recorded.to_string()).unwrap();
    let report = replays_completely(&history);
    assert_eq!(report.ignored_params, ["giftWrap"]);
    let spec = rust_workflows::WORKFLOWS.by_name("order-processing").expect("registered");
    let refused = spec.check_params(&recorded["params"]).unwrap_err();
    assert!(refused.0.starts_with("giftWrap: unknown field"), "{refused}");
}

/// How a new version of the order workflow differs from today's.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    /// `create-shipment` renamed `create-parcel`.
    Renamed,
    /// `send-confirmation` moved before `create-shipment`.
    Reordered,
    /// `send-confirmation` removed.
    Removed,
    /// A fraud check added before the shipment, for every instance.
    Inserted,
    /// The same fraud check, behind a patch.
    Patched,
}

const PATCH: &str = "fraud-check-before-shipment";

/// The order's steps as a new version would call them (outputs as `Value`: on a replay
/// they come from the history, and the closures never run).
async fn order(step: &Step<'_>, order: &OrderParams, change: Change) -> Result<Vec<String>, StepError> {
    let mut called = Vec::new();
    let mut run = |name: &'static str| {
        called.push(name.to_string());
        step.run(name, |_| async { Ok(Value::Null) })
    };
    run("validate-inventory").await?;
    run("process-payment").await?;
    step.sleep("wait-before-fulfillment", order.fulfillment_delay.map_or(Duration::from_secs(5), |d| d.0)).await?;
    let fraud_check = match change {
        Change::Inserted => true,
        Change::Patched => step.patched(PATCH).await?,
        _ => false,
    };
    if fraud_check {
        run("fraud-check").await?;
    }
    if change == Change::Reordered {
        run("send-confirmation").await?;
    }
    run(if change == Change::Renamed { "create-parcel" } else { "create-shipment" }).await?;
    if !matches!(change, Change::Reordered | Change::Removed) {
        run("send-confirmation").await?;
    }
    Ok(called)
}

macro_rules! order_versions {
    ($($version:ident => $change:expr),+ $(,)?) => {$(
        struct $version;
        impl Workflow for $version {
            type Params = OrderParams;
            type Output = Vec<String>;
            fn new(_: Env) -> Self {
                $version
            }
            async fn run(&self, event: &WorkflowEvent<OrderParams>, step: Step<'_>) -> Result<Vec<String>, StepError> {
                order(&step, &event.payload, $change).await
            }
        }
        // A new version of order-processing: the same workflow name.
        impl Registered for $version {
            const SETTINGS: WorkflowSettings = WorkflowSettings::new("order-processing", "OrderWorkflow").binding("ORDER_WORKFLOW");
        }
    )+};
}

order_versions! {
    OrderRenamed => Change::Renamed,
    OrderReordered => Change::Reordered,
    OrderRemoved => Change::Removed,
    OrderInserted => Change::Inserted,
    OrderPatched => Change::Patched,
}

fn divergence<W: Registered>() -> (usize, String)
where
    W::Params: 'static,
{
    match engine().try_replay::<W>(&fixture()) {
        Err(ReplayError::Diverged { step, message, .. }) => (step, message),
        other => panic!("expected the replay to diverge, got {other:?}"),
    }
}

#[test]
fn a_renamed_step_is_caught_naming_it() {
    let (step, message) = divergence::<OrderRenamed>();
    assert_eq!(step, 4);
    assert!(
        message.starts_with(
            "the code calls step \"create-parcel\", which the history does not have, where the history has step \"create-shipment\" next"
        ),
        "{message}"
    );
}

#[test]
fn a_reordered_step_is_caught_naming_it() {
    let (step, message) = divergence::<OrderReordered>();
    assert_eq!(step, 4);
    assert!(
        message.starts_with(
            "the code calls step \"send-confirmation\" (the history's step 5) where the history has step \"create-shipment\" next"
        ),
        "{message}"
    );
}

#[test]
fn a_removed_step_is_caught_naming_it() {
    let (step, message) = divergence::<OrderRemoved>();
    assert_eq!(step, 5);
    assert!(message.starts_with("the code returned without calling step \"send-confirmation\""), "{message}");
}

#[test]
fn an_inserted_step_is_caught_and_the_same_change_behind_a_patch_passes() {
    let (step, message) = divergence::<OrderInserted>();
    assert_eq!(step, 4);
    assert!(
        message.starts_with(
            "the code calls step \"fraud-check\", which the history does not have, where the history has step \"create-shipment\" next"
        ),
        "{message}"
    );

    // Behind a patch: the recorded order predates it, so it takes the old path.
    let report = engine().replay::<OrderPatched>(&fixture());
    assert_eq!(report.end, ReplayEnd::Completed(json!(["validate-inventory", "process-payment", "create-shipment", "send-confirmation"])));
    assert_eq!(report.patches, [(PATCH.to_string(), false)]);
    // A new order takes the new one.
    let params: OrderParams = serde_json::from_value(fixture().history().params.clone().unwrap()).unwrap();
    let new = engine().run::<OrderPatched>("new-order", params);
    assert_eq!(new.status, Status::Complete);
    assert_eq!(
        new.output::<Vec<String>>(),
        ["validate-inventory", "process-payment", "fraud-check", "create-shipment", "send-confirmation"]
    );
}
