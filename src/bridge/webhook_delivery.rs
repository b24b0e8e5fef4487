//! Delivers an instance's callback from a durable, retried step, signed per
//! Standard Webhooks with the `WEBHOOK_SECRET` secret.

use super::outbound::ServiceCall;
use super::{Env, Step};
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use crate::core::webhook::WebhookKey;
use crate::core::{callback, url_policy};

/// Receivers get 10 tries over about 1.5 hours (10 s doubling, engine-capped).
fn delivery_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(10).delay("10 seconds").backoff(Backoff::Exponential)).timeout("30 seconds")
}

pub(super) async fn send(step: &Step<'_>, env: &Env, workflow: &str, instance_id: &str, url: &str, body: String) -> Result<(), StepError> {
    let secret = env.var("WEBHOOK_SECRET").ok_or_else(|| StepError::NonRetryable("callbacks need the secret WEBHOOK_SECRET".into()))?;
    let key = WebhookKey::from_secret(&secret).map_err(|e| StepError::NonRetryable(format!("WEBHOOK_SECRET: {e}")))?;
    // Checked again here: the URL may have been given to the binding directly.
    let url = url_policy::check(
        url,
        super::parse_url,
        &url_policy::PrivateHosts::parse(&env.var(url_policy::ALLOW_PRIVATE_HOSTS_VAR).unwrap_or_default()),
    )
    .map_err(|e| StepError::NonRetryable(e.to_string()))?;
    let message_id = callback::message_id(workflow, instance_id);
    step.run_with("send-callback", delivery_config(), |_| async {
        // Signed per attempt, so the timestamp is fresh for the receiver's tolerance window.
        let timestamp = env.now_millis() / 1000;
        let signed = key.sign(&message_id, timestamp, &body);
        let mut call = ServiceCall::new(env, "callback receiver", url.to_string());
        for (name, value) in signed.header_pairs() {
            call = call.header(name, value.to_string());
        }
        call.post_text::<serde_json::Value>(body.clone()).await.map(drop)
    })
    .await
}
