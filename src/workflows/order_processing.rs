//! `order-processing`: check stock, charge, wait, ship, confirm: a saga. The seeds'
//! OrderWorkflow, with its four services configured by vars (INVENTORY_URL,
//! PAYMENTS_URL, SHIPPING_URL, NOTIFY_URL).
//!
//! The shipment is the saga's pivot. Before it, the order can be undone: when shipping
//! fails for good (a 4xx, or its retries run out), the charge is refunded by the payment
//! step's rollback, once, and the instance ends errored. After it, the saga only goes
//! forward: goods on their way are not undone by a refund, so a confirmation that cannot
//! be sent is reported in the output (`confirmation: "failed"`), never an error.

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use worker_workflows::bridge::outbound::ServiceCall;
use worker_workflows::bridge::{Env, Rollback, RollbackContext, Step, Workflow, WorkflowEvent};
use worker_workflows::core::bounded;
use worker_workflows::core::duration::DurationParam;
use worker_workflows::core::service::{encode_uri_component, join_url, InstanceIdentity};
use worker_workflows::core::step_config::{Backoff, Retries, StepConfig};
use worker_workflows::core::step_error::StepError;

/// The most items an order may have: `validate-inventory` checks each with its own request
/// in one step, and 50 subrequests is what one invocation (here: a step) may make on the
/// Workers Free plan (1,000 on Paid).
pub const MAX_ITEMS: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderParams {
    pub order_id: String,
    pub user_id: String,
    /// At most [`MAX_ITEMS`]; more is 400 `invalid_params` naming `items`.
    #[serde(deserialize_with = "bounded::list_of_at_most::<_, _, MAX_ITEMS>")]
    pub items: Vec<OrderItem>,
    /// How long to wait between payment and shipment; "5 seconds" when absent.
    #[serde(default)]
    pub fulfillment_delay: Option<DurationParam>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    /// One path segment of the inventory URL (`{INVENTORY_URL}/check/{productId}`,
    /// percent-encoded): `.` and `..` are refused, since they would change the path.
    #[serde(deserialize_with = "worker_workflows::core::validate::path_segment_param")]
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum OrderOutput {
    #[serde(rename_all = "camelCase")]
    Completed { transaction_id: String, tracking_number: String, confirmation: Confirmation },
    Cancelled { reason: String },
}

/// Whether the customer was told the order shipped: `failed` when the notifications
/// service could not take the message in all the step's retries (the order stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirmation {
    Sent,
    Failed,
}

#[derive(Deserialize)]
struct Availability {
    available: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment {
    transaction_id: String,
}

/// What `process-payment` stores: the charge the service made, or its final refusal. A
/// refusal is an output rather than the step's error so that the refund can tell it from
/// a charge whose outcome is unknown (a step with no output). Untagged: a stored
/// `{"transactionId": …}` reads as before.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Charge {
    Made(Payment),
    Declined { declined: String },
}

/// The refund's body. `chargeIdempotencyKey` lets the service find the charge by the key
/// it was made under, also when the workflow never learnt its transaction id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundRequest<'a> {
    order_id: &'a str,
    charge_idempotency_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shipment {
    tracking_number: String,
}

const DEFAULT_FULFILLMENT_DELAY: Duration = Duration::from_secs(5);

pub struct OrderWorkflow {
    env: Env,
}

/// Charging is retried quickly (2 s, 4 s, 8 s, …) since checkout waits on it; the
/// idempotency key makes every retry safe.
fn payment_config() -> StepConfig {
    StepConfig::new()
        .retries(Retries::new(5).delay("2 seconds").backoff(Backoff::Exponential))
        .timeout("30 seconds")
}

/// A refund must happen: retried for about an hour (10 s doubling, 9 retries).
fn refund_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(9).delay("10 seconds").backoff(Backoff::Exponential)).timeout("30 seconds")
}

/// Shipping is retried 3 times (2 s, 4 s, 8 s); a 4xx (the carrier refuses the order) is final.
fn shipping_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(3).delay("2 seconds").backoff(Backoff::Exponential)).timeout("30 seconds")
}

/// The confirmation is retried 4 times (2 s, 4 s, 8 s, 16 s: about half a minute), then
/// reported as failed in the output.
fn confirmation_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(4).delay("2 seconds").backoff(Backoff::Exponential)).timeout("30 seconds")
}

/// The charge's `Idempotency-Key`, derived from the instance's life (its id and creation
/// time: a new order that reuses the id after a delete is charged afresh): the charge and
/// its refund (which names it) both compute it, the same on every attempt, replay and restart.
fn charge_key(instance: &InstanceIdentity) -> String {
    format!("order-payment-{}", instance.key())
}

/// How a charge attempt ended, by the service's answer. A 4xx (`payments answered 402: …`,
/// final with `client_errors_are_final`) is a decline: the service refused the charge and
/// made none, and no retry changes that. 409 is the exception: under an idempotency key it
/// says a request with this key is still in progress, an outcome not known yet, so the
/// attempt is retried. Anything else is the error it was.
fn charge_outcome(answer: Result<Payment, StepError>) -> Result<Charge, StepError> {
    let error = match answer {
        Ok(payment) => return Ok(Charge::Made(payment)),
        Err(error) => error,
    };
    let StepError::NonRetryable(message) = &error else { return Err(error) };
    let status = message.strip_prefix("payments answered ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(409) => Err(StepError::Failed(message.clone())),
        Some(400..=499) => Ok(Charge::Declined { declined: message.clone() }),
        _ => Err(error),
    }
}

impl Workflow for OrderWorkflow {
    type Params = OrderParams;
    type Output = OrderOutput;

    fn new(env: Env) -> Self {
        OrderWorkflow { env }
    }

    // `'w` named: the refund (a rollback) borrows the workflow's env and the order.
    async fn run<'w>(&'w self, event: &'w WorkflowEvent<OrderParams>, step: Step<'w>) -> Result<OrderOutput, StepError> {
        let order = &event.payload;
        let inventory = self.env.required_var("INVENTORY_URL")?;
        let payments = self.env.required_var("PAYMENTS_URL")?;
        let shipping = self.env.required_var("SHIPPING_URL")?;
        let notify = self.env.required_var("NOTIFY_URL")?;

        let in_stock: bool = step
            .run("validate-inventory", |_| async {
                let checks = order.items.iter().map(|item| {
                    let url = join_url(&inventory, &format!("check/{}", encode_uri_component(&item.product_id)));
                    async move { ServiceCall::new(&self.env, "inventory", url).get::<Availability>().await }
                });
                Ok(try_join_all(checks).await?.iter().all(|a| a.available))
            })
            .await?;

        if !in_stock {
            step.run("notify-out-of-stock", |ctx| {
                let idempotency_key = ctx.idempotency_key(&event.identity());
                async {
                    let message = serde_json::json!({"userId": order.user_id, "message": "Items out of stock"});
                    ServiceCall::new(&self.env, "notifications", join_url(&notify, "send"))
                        .idempotency_key(idempotency_key)
                        .post_for_status(&message)
                        .await
                }
            })
            .await?;
            return Ok(OrderOutput::Cancelled { reason: "out_of_stock".into() });
        }

        // Undone by a refund if a later step fails for good (or the instance is terminated
        // with rollback). The refund's own key is derived from the instance too, so its
        // retries (and the engine's) refund once.
        let refund = Rollback::new(move |undo: RollbackContext<Charge>| async move {
            // Whether to refund: only a charge the service declined for good (a 4xx answer
            // to the charge itself, stored as `Declined`) surely took no money. Any other
            // end may have charged: the step completed, or it has no output because every
            // attempt failed or timed out (perhaps after the service charged) or the
            // instance was terminated while it ran. Those are refunded by the charge's key;
            // a service that made no charge under it answers that there was nothing to refund.
            let transaction_id = match &undo.output {
                Some(Charge::Declined { .. }) => return Ok(()),
                Some(Charge::Made(payment)) => Some(payment.transaction_id.as_str()),
                None => None,
            };
            let payments = self.env.required_var("PAYMENTS_URL")?;
            let charge_key = charge_key(&event.identity());
            let body = RefundRequest { order_id: &order.order_id, charge_idempotency_key: &charge_key, transaction_id };
            ServiceCall::new(&self.env, "payments", join_url(&payments, "refund"))
                .idempotency_key(format!("order-refund-{}", event.identity().key()))
                .post_for_status(&body)
                .await
        })
        .config(refund_config());
        let charge: Charge = step
            .run_with_rollback(
                "process-payment",
                payment_config(),
                |_| async {
                    let answer = ServiceCall::new(&self.env, "payments", join_url(&payments, "charge"))
                        .client_errors_are_final()
                        .idempotency_key(charge_key(&event.identity()))
                        .post(&serde_json::json!({"orderId": order.order_id, "userId": order.user_id}))
                        .await;
                    charge_outcome(answer)
                },
                refund,
            )
            .await?;
        // A decline ends the order with the service's answer; its rollback refunds nothing.
        let payment = match charge {
            Charge::Made(payment) => payment,
            Charge::Declined { declined } => return Err(StepError::NonRetryable(declined)),
        };

        let delay = order.fulfillment_delay.map_or(DEFAULT_FULFILLMENT_DELAY, |d| d.0);
        step.sleep("wait-before-fulfillment", delay).await?;

        let shipment: Shipment = step
            .run_with("create-shipment", shipping_config(), |ctx| {
                // The carrier creates one shipment however often this step is tried.
                let idempotency_key = ctx.idempotency_key(&event.identity());
                async {
                    ServiceCall::new(&self.env, "shipping", join_url(&shipping, "create"))
                        .client_errors_are_final()
                        .idempotency_key(idempotency_key)
                        .post(&serde_json::json!({"orderId": order.order_id, "items": order.items}))
                        .await
                }
            })
            .await?;

        // The pivot is behind us: from here the saga goes forward only. A confirmation that
        // cannot be sent must not fail the instance, since failing it would run the refund
        // and the customer would keep the goods and get the money back.
        let sent = step
            .run_with("send-confirmation", confirmation_config(), |ctx| {
                let idempotency_key = ctx.idempotency_key(&event.identity());
                async {
                    let message = format!("Order {} shipped! Tracking: {}", order.order_id, shipment.tracking_number);
                    ServiceCall::new(&self.env, "notifications", join_url(&notify, "send"))
                        .idempotency_key(idempotency_key)
                        .post_for_status(&serde_json::json!({"userId": order.user_id, "message": message}))
                        .await
                }
            })
            .await;
        let confirmation = if sent.is_ok() { Confirmation::Sent } else { Confirmation::Failed };

        Ok(OrderOutput::Completed { transaction_id: payment.transaction_id, tracking_number: shipment.tracking_number, confirmation })
    }
}
