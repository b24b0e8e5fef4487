//! Delivers an instance's callback from a durable, retried step, signed per
//! Standard Webhooks with the `WEBHOOK_SECRET` secret, and records how the delivery
//! ended in the instance index. A delivery that fails never changes the instance's own
//! outcome: the instance completes (or errors) as its workflow did.

use super::outbound::ServiceCall;
use super::{Env, Step};
use crate::core::callback::{self, DeliveryOutcome, DeliveryRetries};
use crate::core::rollback::is_engine_abort;
use crate::core::service::MAX_CALLBACK_ANSWER_BYTES;
use crate::core::step_config::{Retries, StepConfig};
use crate::core::step_error::StepError;
use crate::core::webhook::WebhookKey;
use crate::core::{instance_index, url_policy};

const INDEX_DB: &str = "DB";

/// Delivers the callback and records the outcome. Only an engine abort (pause,
/// terminate, restart while delivering) comes back as an error: the run must stop then.
pub(super) async fn deliver(
    step: &Step<'_>,
    env: &Env,
    workflow: &str,
    instance_id: &str,
    url: &str,
    body: String,
) -> Result<(), StepError> {
    // The run's id is drawn in a step of its own: stored by the engine, it is the same on
    // every retry and replay of this run, and new after a restart, which wipes the step
    // (a restart from `send-callback` keeps it: that re-sends this run's message). The
    // engine's event timestamp would not do: a restart runs with the same event.
    let outcome = match step.run("callback-id", |_| async { Ok(env.random_uuid()) }).await {
        Ok(run) => send(step, env, &callback::message_id(workflow, instance_id, &run), url, body).await?,
        Err(e) if is_engine_abort(&e.to_string()) => return Err(e),
        Err(e) => DeliveryOutcome::not_started(&callback::message_id(workflow, instance_id, "unknown"), &e),
    };
    record(step, env, workflow, instance_id, &outcome).await
}

/// What the delivery needs before its first attempt: the key, the checked URL and the
/// retries. Any of them missing means nothing is sent.
fn prepare(env: &Env, url: &str) -> Result<(WebhookKey, String, DeliveryRetries), StepError> {
    let secret = env.var("WEBHOOK_SECRET").ok_or_else(|| StepError::NonRetryable("callbacks need the secret WEBHOOK_SECRET".into()))?;
    let key = WebhookKey::from_secret(&secret).map_err(|e| StepError::NonRetryable(format!("WEBHOOK_SECRET: {e}")))?;
    // Checked again here: the URL may have been given to the binding directly.
    let url = url_policy::check(
        url,
        super::parse_url,
        &url_policy::PrivateHosts::parse(&env.var(url_policy::ALLOW_PRIVATE_HOSTS_VAR).unwrap_or_default()),
    )
    .map_err(|e| StepError::NonRetryable(e.to_string()))?;
    let retries = DeliveryRetries::from_vars(env.var(callback::RETRY_LIMIT_VAR).as_deref(), env.var(callback::RETRY_DELAY_VAR).as_deref())
        .map_err(|e| StepError::NonRetryable(e.to_string()))?;
    Ok((key, url.to_string(), retries))
}

async fn send(step: &Step<'_>, env: &Env, message_id: &str, url: &str, body: String) -> Result<DeliveryOutcome, StepError> {
    let (key, url, retries) = match prepare(env, url) {
        Ok(prepared) => prepared,
        Err(e) => return Ok(DeliveryOutcome::not_started(message_id, &e)),
    };
    let sent = step
        .run_with("send-callback", retries.step_config(), |ctx| {
            let (key, url, body) = (&key, &url, &body);
            async move {
                // Signed per attempt, so the timestamp is fresh for the receiver's tolerance window.
                let timestamp = env.now_millis() / 1000;
                let signed = key.sign(message_id, timestamp, body);
                // Only the status matters: at most 16 KiB of the answer is read. The key is the
                // message's id, so a receiver that honours it processes each message once.
                let mut call = ServiceCall::new(env, "callback receiver", url.clone())
                    .caller_given_url()
                    .max_response_bytes(MAX_CALLBACK_ANSWER_BYTES)
                    .idempotency_key(message_id.to_string());
                for (name, value) in signed.header_pairs() {
                    call = call.header(name, value.to_string());
                }
                // The attempt number rides in the error, so the failed step's error (which
                // the engine keeps) says how many attempts were made.
                call.post_text_for_status(body.clone()).await.map(|_| ctx.attempt).map_err(|e| callback::tag_attempt(ctx.attempt, e))
            }
        })
        .await;
    match sent {
        Ok(attempts) => Ok(DeliveryOutcome::delivered(message_id, attempts)),
        Err(e) if is_engine_abort(&e.to_string()) => Err(e),
        Err(e) => Ok(DeliveryOutcome::failed(message_id, &e, retries.max_attempts())),
    }
}

/// Writes the outcome to the instance's row of the index, from a step so it is written
/// once per run. A failure to record is logged by the engine's step log and otherwise
/// ignored: the instance's outcome matters more than the record of its callback.
async fn record(step: &Step<'_>, env: &Env, workflow: &str, instance_id: &str, outcome: &DeliveryOutcome) -> Result<(), StepError> {
    let Ok(outcome) = serde_json::to_string(outcome) else { return Ok(()) };
    let config = StepConfig::new().retries(Retries::new(3).delay("2 seconds"));
    let recorded = step
        .run_with("record-callback", config, |_| async {
            let db = env.database(INDEX_DB)?;
            let now = env.now_millis();
            db.prepare(instance_index::RECORD_CALLBACK)
                .bind([workflow.into(), instance_id.into(), now.into(), outcome.as_str().into()])
                .run()
                .await
                .map(drop)
        })
        .await;
    match recorded {
        Err(e) if is_engine_abort(&e.to_string()) => Err(e),
        _ => Ok(()),
    }
}
