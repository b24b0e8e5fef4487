//! `order-processing`: check stock, charge, wait, ship, confirm: a saga. The seeds'
//! OrderWorkflow, with its four services configured by vars (INVENTORY_URL,
//! PAYMENTS_URL, SHIPPING_URL, NOTIFY_URL). When shipping fails for good (a 4xx, or
//! its retries run out), the charge is refunded by the payment step's rollback, once,
//! and the instance ends errored.

use worker_workflows::bridge::{Env, Rollback, Step, Workflow, WorkflowEvent};
use worker_workflows::core::duration::DurationParam;
use worker_workflows::bridge::outbound::ServiceCall;
use worker_workflows::core::service::{encode_uri_component, join_url};
use worker_workflows::core::step_config::{Backoff, Retries, StepConfig};
use worker_workflows::core::step_error::StepError;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderParams {
    pub order_id: String,
    pub user_id: String,
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
    Completed { transaction_id: String, tracking_number: String },
    Cancelled { reason: String },
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
                let idempotency_key = ctx.idempotency_key(&event.instance_id);
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

        let idempotency_key = format!("order-payment-{}", event.instance_id);
        // Undone by a refund if a later step fails for good. The refund's own key is
        // derived from the instance too, so its retries (and the engine's) refund once.
        let refund = Rollback::new(move |undo: worker_workflows::bridge::RollbackContext<Payment>| async move {
            // No output: the charge itself failed, so there is nothing to refund.
            let Some(payment) = undo.output else { return Ok(()) };
            let payments = self.env.required_var("PAYMENTS_URL")?;
            ServiceCall::new(&self.env, "payments", join_url(&payments, "refund"))
                .idempotency_key(format!("order-refund-{}", event.instance_id))
                .post_for_status(&serde_json::json!({"orderId": order.order_id, "transactionId": payment.transaction_id}))
                .await
        })
        .config(refund_config());
        let payment: Payment = step
            .run_with_rollback(
                "process-payment",
                payment_config(),
                |_| async {
                    ServiceCall::new(&self.env, "payments", join_url(&payments, "charge"))
                        .client_errors_are_final()
                        .idempotency_key(idempotency_key.clone())
                        .post(&serde_json::json!({"orderId": order.order_id, "userId": order.user_id}))
                        .await
                },
                refund,
            )
            .await?;

        let delay = order.fulfillment_delay.map_or(DEFAULT_FULFILLMENT_DELAY, |d| d.0);
        step.sleep("wait-before-fulfillment", delay).await?;

        let shipment: Shipment = step
            .run_with("create-shipment", shipping_config(), |ctx| {
                // The carrier creates one shipment however often this step is tried.
                let idempotency_key = ctx.idempotency_key(&event.instance_id);
                async {
                    ServiceCall::new(&self.env, "shipping", join_url(&shipping, "create"))
                        .client_errors_are_final()
                        .idempotency_key(idempotency_key)
                        .post(&serde_json::json!({"orderId": order.order_id, "items": order.items}))
                        .await
                }
            })
            .await?;

        step.run("send-confirmation", |ctx| {
            let idempotency_key = ctx.idempotency_key(&event.instance_id);
            async {
                let message = format!("Order {} shipped! Tracking: {}", order.order_id, shipment.tracking_number);
                ServiceCall::new(&self.env, "notifications", join_url(&notify, "send"))
                    .idempotency_key(idempotency_key)
                    .post_for_status(&serde_json::json!({"userId": order.user_id, "message": message}))
                    .await
            }
        })
        .await?;

        Ok(OrderOutput::Completed { transaction_id: payment.transaction_id, tracking_number: shipment.tracking_number })
    }
}
