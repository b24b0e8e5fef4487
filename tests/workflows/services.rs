//! Stand-ins for the services the catalogue calls, as routes on the test engine (the
//! same behaviour as `tests/e2e/standin.mjs`), with knobs a test turns.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use worker_workflows::testing::{Request, Response, TestEngine};

pub const INVENTORY: &str = "https://inventory.test";
pub const PAYMENTS: &str = "https://payments.test";
pub const SHIPPING: &str = "https://shipping.test";
pub const NOTIFY: &str = "https://notify.test";

/// Params (or anything) from JSON, as the API would read them.
pub fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the test's params match the workflow's")
}

/// Knobs of the stand-ins.
#[derive(Clone, Default)]
pub struct Knobs {
    /// Charges still to answer 503.
    pub payment_failures: Rc<Cell<u32>>,
    /// A status every charge answers with (a decline), instead of a transaction.
    pub payment_status: Rc<Cell<Option<u16>>>,
    /// Shipments still to answer 503.
    pub shipping_failures: Rc<Cell<u32>>,
    /// A status every shipment answers with (the carrier refuses the order), instead of a tracking number.
    pub shipping_status: Rc<Cell<Option<u16>>>,
    /// The refunds asked of the payments service (their bodies), in order.
    pub refunds: Rc<RefCell<Vec<Value>>>,
    /// The payments service's answers to those refunds, in the same order.
    pub refund_answers: Rc<RefCell<Vec<Value>>>,
    /// Charges the payments service made, by their `Idempotency-Key`: the transaction id.
    pub charges: Rc<RefCell<HashMap<String, String>>>,
    /// Charge keys a refund named before any charge under them: a later charge under one
    /// is refused, so a charge still on its way cannot land after its refund.
    pub cancelled_charges: Rc<RefCell<HashSet<String>>>,
    /// A status every notification answers with (the service is down), instead of sending.
    pub notify_status: Rc<Cell<Option<u16>>>,
    /// Every notification is refused with a 422 that repeats the address it was sent.
    pub notify_echoes: Rc<Cell<bool>>,
    /// The messages sent through the notifications service, in order.
    pub notifications: Rc<RefCell<Vec<Value>>>,
}

fn take_one(left: &Cell<u32>) -> bool {
    let n = left.get();
    left.set(n.saturating_sub(1));
    n > 0
}

/// A POST without an `Idempotency-Key` is refused, as the e2e stand-ins refuse it: every
/// test that calls a service with a side effect thereby checks the key is sent.
fn missing_key(request: &Request) -> Option<Response> {
    request.header("idempotency-key").is_none().then(|| Response::json(400, &json!({"error": "missing Idempotency-Key"})))
}

/// An engine with the four service vars pointed at the stand-ins.
pub fn engine() -> (TestEngine, Knobs) {
    let knobs = Knobs::default();
    let (payments, shipping, notify, refunds) = (knobs.clone(), knobs.clone(), knobs.clone(), knobs.clone());
    let engine = TestEngine::new()
        .registry(&rust_workflows::WORKFLOWS)
        .var("INVENTORY_URL", INVENTORY)
        .var("PAYMENTS_URL", PAYMENTS)
        .var("SHIPPING_URL", SHIPPING)
        .var("NOTIFY_URL", NOTIFY)
        .route(&format!("{INVENTORY}/check/"), |request: &Request| {
            let product = request.path().rsplit('/').next().unwrap_or_default().to_string();
            Response::ok(&json!({"available": !product.starts_with("oos-")}))
        })
        .route(&format!("{PAYMENTS}/charge"), move |request: &Request| {
            if let Some(refused) = missing_key(request) {
                return refused;
            }
            let order = request.json::<Value>()["orderId"].as_str().unwrap_or_default().to_string();
            if let Some(status) = payments.payment_status.get() {
                return Response::json(status, &json!({"error": "card declined"}));
            }
            if take_one(&payments.payment_failures) {
                return Response::json(503, &json!({"error": "payments briefly unavailable"}));
            }
            let key = request.header("idempotency-key").unwrap_or_default().to_string();
            if payments.cancelled_charges.borrow().contains(&key) {
                return Response::json(422, &json!({"error": "a refund cancelled this charge before it was made"}));
            }
            // Idempotent on the key: a repeated charge answers the first one's transaction.
            let transaction = payments.charges.borrow_mut().entry(key).or_insert_with(|| format!("tx-{order}")).clone();
            Response::ok(&json!({"transactionId": transaction}))
        })
        .route(&format!("{PAYMENTS}/refund"), move |request: &Request| {
            if let Some(refused) = missing_key(request) {
                return refused;
            }
            let body: Value = request.json();
            refunds.refunds.borrow_mut().push(body.clone());
            // Found by the charge's own key, as a real service finds a charge it may or may
            // not have made; none under it is nothing to refund (a 2xx saying so), and the
            // key is cancelled so a charge still on its way is refused.
            let Some(charge_key) = body["chargeIdempotencyKey"].as_str().map(str::to_string) else {
                return Response::json(400, &json!({"error": "chargeIdempotencyKey missing"}));
            };
            let answer = match refunds.charges.borrow().get(&charge_key) {
                Some(transaction) => json!({"refunded": true, "transactionId": transaction}),
                None => {
                    refunds.cancelled_charges.borrow_mut().insert(charge_key);
                    json!({"refunded": false, "reason": "no charge under this key"})
                }
            };
            refunds.refund_answers.borrow_mut().push(answer.clone());
            Response::ok(&answer)
        })
        .route(&format!("{SHIPPING}/create"), move |request: &Request| {
            if let Some(refused) = missing_key(request) {
                return refused;
            }
            if let Some(status) = shipping.shipping_status.get() {
                return Response::json(status, &json!({"error": "carrier refuses the order"}));
            }
            if take_one(&shipping.shipping_failures) {
                return Response::json(503, &json!({"error": "shipping busy"}));
            }
            Response::ok(&json!({"trackingNumber": format!("trk-{}", request.json::<Value>()["orderId"].as_str().unwrap_or_default())}))
        })
        .route(&format!("{NOTIFY}/send"), move |request: &Request| {
            if let Some(refused) = missing_key(request) {
                return refused;
            }
            if let Some(status) = notify.notify_status.get() {
                return Response::json(status, &json!({"error": "notifications unavailable"}));
            }
            if notify.notify_echoes.get() {
                let to = request.json::<Value>()["email"].as_str().unwrap_or_default().to_string();
                return Response::json(422, &json!({"error": format!("no mailbox for {to}")}));
            }
            notify.notifications.borrow_mut().push(request.json());
            Response::ok(&json!({"sent": true}))
        });
    (engine, knobs)
}
