//! order-processing: check stock, charge, wait, ship, confirm; a saga that refunds the
//! charge when shipping fails for good (or when the charge's outcome is unknown), and goes
//! only forward once the order has shipped.

use crate::services::{engine, from_json, NOTIFY, PAYMENTS, SHIPPING};
use rust_workflows::workflows::order_processing::{OrderOutput, OrderParams};
use rust_workflows::workflows::OrderWorkflow;
use serde_json::{json, Value};
use std::time::Duration;
use worker_workflows::core::step_error::StepError;
use worker_workflows::testing::{RollbackOutcome, Status, StepOutcome};

fn order(id: &str, products: &[&str]) -> OrderParams {
    let items: Vec<Value> = products.iter().map(|p| json!({"productId": p, "quantity": 1})).collect();
    from_json(json!({"orderId": id, "userId": format!("user-{id}"), "items": items}))
}

#[test]
fn in_stock_it_charges_waits_ships_and_confirms() {
    let (engine, knobs) = engine();
    let run = engine.run::<OrderWorkflow>("o1", order("o1", &["p-1", "p-2"]));
    assert_eq!(
        run.output::<Value>(),
        json!({"status": "completed", "transactionId": "tx-o1", "trackingNumber": "trk-o1", "confirmation": "sent"})
    );
    assert_eq!(
        run.step_names(),
        ["validate-inventory", "process-payment", "wait-before-fulfillment", "create-shipment", "send-confirmation"]
    );
    assert!(run.steps.iter().all(|s| s.attempts.len() <= 1), "nothing retried");
    let charge = &engine.requests_to(&format!("{PAYMENTS}/charge"))[0];
    let ship = &engine.requests_to(&format!("{SHIPPING}/create"))[0];
    assert_eq!(ship.at.duration_since(charge.at).unwrap(), Duration::from_secs(5), "the default fulfillment delay, on the virtual clock");
    assert_eq!(ship.json::<Value>()["items"], json!([{"productId": "p-1", "quantity": 1}, {"productId": "p-2", "quantity": 1}]));
    assert_eq!(*knobs.notifications.borrow(), [json!({"userId": "user-o1", "message": "Order o1 shipped! Tracking: trk-o1"})]);
    assert_eq!(engine.requests_to(crate::services::INVENTORY).len(), 2, "both items checked, in the one step");
}

#[test]
fn out_of_stock_it_cancels_and_notifies_without_charging() {
    let (engine, knobs) = engine();
    let run = engine.run::<OrderWorkflow>("o2", order("o2", &["p-1", "oos-9"]));
    assert_eq!(run.output::<OrderOutput>(), OrderOutput::Cancelled { reason: "out_of_stock".into() });
    assert_eq!(run.step_names(), ["validate-inventory", "notify-out-of-stock"]);
    assert!(engine.requests_to(PAYMENTS).is_empty());
    assert_eq!(*knobs.notifications.borrow(), [json!({"userId": "user-o2", "message": "Items out of stock"})]);
}

#[test]
fn a_payment_failing_twice_is_retried_with_one_idempotency_key_then_paid() {
    let (engine, knobs) = engine();
    knobs.payment_failures.set(2);
    let run = engine.run::<OrderWorkflow>("o3", order("o3", &["p-1"]));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    let payment = run.step("process-payment");
    assert_eq!(payment.attempts.len(), 3);
    // The step's own config: 2 s, exponential.
    assert_eq!(payment.retry_delays(), [Duration::from_secs(2), Duration::from_secs(4)]);
    assert_eq!(payment.attempt_errors()[0].message, "payments answered 503: {\"error\":\"payments briefly unavailable\"}");
    let charges = engine.requests_to(&format!("{PAYMENTS}/charge"));
    let attempts: Vec<u32> = charges.iter().map(|c| c.step.as_ref().unwrap().attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(charges.iter().all(|c| c.header("idempotency-key") == Some("order-payment-o3@1767225600000")));
    // Replays after the sleep took the payment from the history: still three charges.
    assert!(run.runs >= 4, "{} runs", run.runs);
    assert_eq!(run.step("wait-before-fulfillment").outcome, StepOutcome::Slept);
}

#[test]
fn the_idempotency_key_is_the_same_when_the_instance_runs_again_from_the_start() {
    let (engine, _) = engine();
    engine.run::<OrderWorkflow>("o4", order("o4", &["p-1"]));
    let again = engine.restart("o4");
    assert_eq!(again.status, Status::Complete);
    let keys: Vec<String> =
        engine.requests_to(&format!("{PAYMENTS}/charge")).iter().map(|c| c.header("idempotency-key").unwrap().to_string()).collect();
    assert_eq!(
        keys,
        ["order-payment-o4@1767225600000", "order-payment-o4@1767225600000"],
        "a re-run charge is one the service can de-duplicate"
    );
}

#[test]
fn a_4xx_from_payments_is_final_after_one_attempt() {
    let (engine, knobs) = engine();
    knobs.payment_status.set(Some(402));
    let run = engine.run::<OrderWorkflow>("o5", order("o5", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert_eq!(run.error().name, "NonRetryableError");
    assert_eq!(run.error().message, "payments answered 402: {\"error\":\"card declined\"}");
    assert_eq!(run.step("process-payment").attempts.len(), 1);
    assert!(engine.requests_to(SHIPPING).is_empty());
    assert!(engine.requests_to(NOTIFY).is_empty());
}

#[test]
fn a_charge_whose_answer_is_lost_is_sent_again_with_the_same_key() {
    let (engine, _) = engine();
    let engine = engine.fail_step_after_running("process-payment", 1, StepError::Timeout("Execution timed out after 30000ms".into()));
    let run = engine.run::<OrderWorkflow>("o6", order("o6", &["p-1"]));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    let charges = engine.requests_to(&format!("{PAYMENTS}/charge"));
    assert_eq!(charges.len(), 2, "charged, answer lost, charged again");
    assert!(charges.iter().all(|c| c.header("idempotency-key") == Some("order-payment-o6@1767225600000")));
    assert_eq!(run.step("process-payment").attempt_errors()[0].message, "WorkflowTimeoutError: Execution timed out after 30000ms");
}

#[test]
fn a_shipment_the_carrier_refuses_refunds_the_charge_once_and_nothing_after_it_runs() {
    let (engine, knobs) = engine();
    knobs.shipping_status.set(Some(422));
    let run = engine.run::<OrderWorkflow>("o7", order("o7", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert!(run.error().message.starts_with("shipping answered 422"), "{}", run.summary());
    assert_eq!(run.step("create-shipment").attempts.len(), 1, "a 4xx from shipping is final");
    assert_eq!(
        *knobs.refunds.borrow(),
        [json!({"orderId": "o7", "transactionId": "tx-o7", "chargeIdempotencyKey": "order-payment-o7@1767225600000"})]
    );
    assert_eq!(*knobs.refund_answers.borrow(), [json!({"refunded": true, "transactionId": "tx-o7"})]);
    let refund = &engine.requests_to(&format!("{PAYMENTS}/refund"))[0];
    assert_eq!(refund.header("idempotency-key"), Some("order-refund-o7@1767225600000"));
    assert_eq!(run.rolled_back(), ["process-payment"], "the one step with a rollback");
    assert!(!run.has_step("send-confirmation"));
    assert!(knobs.notifications.borrow().is_empty());
}

#[test]
fn a_shipment_whose_retries_run_out_refunds_the_charge_once() {
    let (engine, knobs) = engine();
    knobs.shipping_failures.set(99);
    let run = engine.run::<OrderWorkflow>("o8", order("o8", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    let ship = run.step("create-shipment");
    assert_eq!(ship.attempts.len(), 4, "3 retries");
    assert_eq!(ship.retry_delays(), [Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)]);
    assert_eq!(knobs.refunds.borrow().len(), 1);
}

#[test]
fn a_declined_charge_is_not_refunded() {
    let (engine, knobs) = engine();
    knobs.payment_status.set(Some(402));
    let run = engine.run::<OrderWorkflow>("o9", order("o9", &["p-1"]));
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.rolled_back(), ["process-payment"], "its rollback ran, with no charge to refund");
    assert_eq!(run.rollback("process-payment").outcome, RollbackOutcome::Succeeded);
    assert!(knobs.refunds.borrow().is_empty());
    assert!(engine.requests_to(&format!("{PAYMENTS}/refund")).is_empty(), "not even asked");
}

/// The `Idempotency-Key` of every request to `prefix`, in order.
fn keys(engine: &worker_workflows::testing::TestEngine, prefix: &str) -> Vec<String> {
    engine.requests_to(prefix).iter().map(|r| r.header("idempotency-key").unwrap_or("(none)").to_string()).collect()
}

#[test]
fn a_shipment_failing_once_is_retried_under_one_key_derived_from_the_instance_and_step() {
    let (engine, knobs) = engine();
    knobs.shipping_failures.set(1);
    let run = engine.run::<OrderWorkflow>("o10", order("o10", &["p-1"]));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(run.step("create-shipment").attempts.len(), 2);
    assert_eq!(keys(&engine, SHIPPING), ["o10@1767225600000:create-shipment:1", "o10@1767225600000:create-shipment:1"]);
    assert_eq!(keys(&engine, NOTIFY), ["o10@1767225600000:send-confirmation:1"]);
}

#[test]
fn a_notification_whose_answer_is_lost_is_sent_again_under_the_same_key() {
    let (engine, knobs) = engine();
    let engine = engine.fail_step_after_running("notify-out-of-stock", 1, StepError::failed("answer lost"));
    let run = engine.run::<OrderWorkflow>("o11", order("o11", &["oos-1"]));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(knobs.notifications.borrow().len(), 2, "sent, answer lost, sent again");
    assert_eq!(keys(&engine, NOTIFY), ["o11@1767225600000:notify-out-of-stock:1", "o11@1767225600000:notify-out-of-stock:1"]);
}

#[test]
fn every_side_effect_has_its_own_key_and_the_same_ones_when_the_instance_runs_again() {
    let (engine, _) = engine();
    engine.run::<OrderWorkflow>("o12", order("o12", &["p-1"]));
    let posts = |engine: &worker_workflows::testing::TestEngine| -> Vec<String> {
        engine
            .requests()
            .iter()
            .filter(|r| r.method == worker_workflows::bridge::engine::HttpMethod::Post)
            .map(|r| r.header("idempotency-key").unwrap_or("(none)").to_string())
            .collect()
    };
    let first = posts(&engine);
    assert_eq!(first, ["order-payment-o12@1767225600000", "o12@1767225600000:create-shipment:1", "o12@1767225600000:send-confirmation:1"]);
    // Replays (after the sleep) re-ran no step, and a re-run from the start sends the same
    // keys, so services that keep them do not charge, ship or notify twice.
    engine.restart("o12");
    assert_eq!(posts(&engine)[3..], first[..]);
}

#[test]
fn a_product_id_cannot_change_the_inventory_path() {
    use worker_workflows::core::validate::typed_params;
    for bad in ["..", "."] {
        let params =
            json!({"orderId": "o", "userId": "u", "items": [{"productId": "p-1", "quantity": 1}, {"productId": bad, "quantity": 1}]});
        let err = typed_params::<OrderParams>(&params).unwrap_err();
        assert!(err.0.starts_with(&format!("items[1].productId: {bad:?} is not allowed")), "{}", err.0);
    }
    // Anything else is one encoded path segment: it cannot add segments, a query or a fragment.
    let (engine, _) = engine();
    let run = engine.run::<OrderWorkflow>("o13", order("o13", &["a/b?c#d", "%2e%2e", "..."]));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    let paths: Vec<String> = engine.requests_to(crate::services::INVENTORY).iter().map(|r| r.path()).collect();
    assert_eq!(paths, ["/check/a%2Fb%3Fc%23d", "/check/%252e%252e", "/check/..."]);
}

/// The refunds the payments service was asked for, and their `Idempotency-Key`s.
fn refund_keys(engine: &worker_workflows::testing::TestEngine) -> Vec<String> {
    keys(engine, &format!("{PAYMENTS}/refund"))
}

#[test]
fn a_confirmation_that_cannot_be_sent_does_not_undo_the_shipped_order() {
    let (engine, knobs) = engine();
    knobs.notify_status.set(Some(503));
    let run = engine.run::<OrderWorkflow>("o14", order("o14", &["p-1"]));
    // The shipment is the pivot: the order completes, and says the confirmation failed.
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(
        run.output::<Value>(),
        json!({"status": "completed", "transactionId": "tx-o14", "trackingNumber": "trk-o14", "confirmation": "failed"})
    );
    let confirm = run.step("send-confirmation");
    assert_eq!(confirm.attempts.len(), 5, "4 retries before giving up");
    assert_eq!(confirm.retry_delays(), [2, 4, 8, 16].map(Duration::from_secs));
    assert!(run.rolled_back().is_empty(), "nothing is compensated after the shipment: {:?}", run.rolled_back());
    assert!(knobs.refunds.borrow().is_empty());
    assert!(engine.requests_to(&format!("{PAYMENTS}/refund")).is_empty());
    assert_eq!(engine.requests_to(SHIPPING).len(), 1);
    assert_eq!(keys(&engine, NOTIFY), ["o14@1767225600000:send-confirmation:1"; 5], "every retry under the one key");
}

#[test]
fn a_charge_whose_every_answer_was_lost_is_refunded_by_the_charges_key() {
    // The service charged on every attempt, and every answer timed out on the way back: the
    // step has no output, and the money was taken.
    let (engine, knobs) = engine();
    let engine = engine.fail_step_after_running("process-payment", 99, StepError::Timeout("Execution timed out after 30000ms".into()));
    let run = engine.run::<OrderWorkflow>("o15", order("o15", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert_eq!(run.step("process-payment").attempts.len(), 6);
    assert_eq!(knobs.charges.borrow().len(), 1, "one charge, under one key, however often it was sent");
    assert_eq!(run.rolled_back(), ["process-payment"]);
    assert_eq!(run.rollback("process-payment").outcome, RollbackOutcome::Succeeded);
    // No transaction id is known: the refund names the charge by the key it was made under.
    assert_eq!(*knobs.refunds.borrow(), [json!({"orderId": "o15", "chargeIdempotencyKey": "order-payment-o15@1767225600000"})]);
    assert_eq!(*knobs.refund_answers.borrow(), [json!({"refunded": true, "transactionId": "tx-o15"})]);
    assert_eq!(refund_keys(&engine), ["order-refund-o15@1767225600000"], "the refund keeps its own key");
    assert!(engine.requests_to(SHIPPING).is_empty());
}

#[test]
fn a_charge_that_never_got_an_answer_is_refunded_and_the_service_finds_nothing_to_refund() {
    // Every attempt answered 503: the outcome is unknown to the workflow, so it asks; the
    // service made no charge under the key and says so with a 2xx, which ends the rollback.
    let (engine, knobs) = engine();
    knobs.payment_failures.set(99);
    let run = engine.run::<OrderWorkflow>("o16", order("o16", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert!(run.error().message.starts_with("payments answered 503"), "{}", run.summary());
    assert_eq!(run.step("process-payment").attempts.len(), 6);
    assert_eq!(*knobs.refunds.borrow(), [json!({"orderId": "o16", "chargeIdempotencyKey": "order-payment-o16@1767225600000"})]);
    assert_eq!(*knobs.refund_answers.borrow(), [json!({"refunded": false, "reason": "no charge under this key"})]);
    let rollback = run.rollback("process-payment");
    assert_eq!((rollback.attempts.len(), &rollback.outcome), (1, &RollbackOutcome::Succeeded), "nothing to refund is done, not retried");
}

#[test]
fn a_409_from_payments_is_an_outcome_not_known_yet_retried_and_then_refunded() {
    // 409 under an idempotency key: a request with this key is still in progress. Not a
    // decline, so it is retried, and when the retries run out the charge is refunded by key.
    let (engine, knobs) = engine();
    knobs.payment_status.set(Some(409));
    let run = engine.run::<OrderWorkflow>("o17", order("o17", &["p-1"]));
    assert_eq!(run.status, Status::Errored, "{}", run.summary());
    assert_eq!(run.step("process-payment").attempts.len(), 6, "retried like any failure that may pass");
    assert_eq!(knobs.refunds.borrow().len(), 1);
    assert_eq!(knobs.refunds.borrow()[0]["chargeIdempotencyKey"], "order-payment-o17@1767225600000");
}

#[test]
fn every_4xx_but_409_from_payments_is_a_decline_that_needs_no_refund() {
    for status in [400, 401, 402, 403, 404, 422] {
        let (engine, knobs) = engine();
        knobs.payment_status.set(Some(status));
        let id = format!("o18-{status}");
        let run = engine.run::<OrderWorkflow>(&id, order(&id, &["p-1"]));
        assert_eq!(run.status, Status::Errored, "{status}: {}", run.summary());
        assert_eq!(run.error().message, format!("payments answered {status}: {{\"error\":\"card declined\"}}"));
        assert_eq!(run.step("process-payment").attempts.len(), 1, "{status}");
        assert!(knobs.refunds.borrow().is_empty(), "{status}: a declined charge is not refunded");
    }
}

#[test]
fn items_are_at_most_50_and_more_is_refused_naming_the_field() {
    use worker_workflows::core::validate::typed_params;
    let items = |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"productId": format!("p-{i}"), "quantity": 1})).collect() };
    assert!(typed_params::<OrderParams>(&json!({"orderId": "o", "userId": "u", "items": items(50)})).is_ok());
    let err = typed_params::<OrderParams>(&json!({"orderId": "o", "userId": "u", "items": items(51)})).unwrap_err();
    assert_eq!(err.0, "items: 51 items are more than the 50 allowed");
    // The bound is checked as the list is read, before anything runs: 50 items check in one step.
    let (engine, _) = engine();
    let fifty: Vec<String> = (0..50).map(|i| format!("p-{i}")).collect();
    let run = engine.run::<OrderWorkflow>("o19", order("o19", &fifty.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    assert_eq!(engine.requests_to(crate::services::INVENTORY).len(), 50);
}
