//! `user-lifecycle`: welcome a new user, wait out the trial period (7 days by
//! default), check in D1 whether they subscribed, and send a trial-expiration
//! email only to those who did not. Emails go to `{NOTIFY_URL}/send`.
//!
//! Params carry the user's id only: params show in the instance's history, and an email
//! address is personal data. Each email step reads the address from D1 when it sends, so
//! it reaches the address on file then and no step result holds it.

use crate::records::without_answer_excerpt;
use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use worker_workflows::core::duration::DurationParam;
use worker_workflows::bridge::outbound::ServiceCall;
use worker_workflows::core::service::join_url;
use worker_workflows::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LifecycleParams {
    pub user_id: String,
    /// How long the trial lasts before the conversion check; "7 days" when absent.
    #[serde(default)]
    pub trial_period: Option<DurationParam>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleOutput {
    pub converted: bool,
}

const DEFAULT_TRIAL_PERIOD: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The `users.subscription_status` of a user who subscribed.
const ACTIVE: &str = "active";

const WELCOME_MESSAGE: &str = "Welcome! Your free trial has started.";
const TRIAL_EXPIRED_MESSAGE: &str = "Your free trial has ended. Subscribe to keep your account.";

const SUBSCRIPTION_STATUS: &str = "SELECT subscription_status FROM users WHERE id = ?1";
const EMAIL: &str = "SELECT email FROM users WHERE id = ?1";

pub struct UserLifecycleWorkflow {
    env: Env,
}

impl UserLifecycleWorkflow {
    /// One email through the notifications service, to the address D1 has for the user now;
    /// a failed call is retried by the engine, under the same `idempotency_key` each time, so
    /// the user gets it once. A user with no row (never created, or erased since) has no
    /// address: nothing is sent, and the step's result (`false`) says so.
    async fn send_email(&self, notify: &str, user_id: &str, message: &str, idempotency_key: String) -> Result<bool, StepError> {
        let db = self.env.database("DB")?;
        let Some(email) = db.prepare(EMAIL).bind([user_id.into()]).first::<String>(Some("email")).await? else { return Ok(false) };
        ServiceCall::new(&self.env, "notifications", join_url(notify, "send"))
            .idempotency_key(idempotency_key)
            .post_for_status(&json!({"userId": user_id, "email": email, "message": message}))
            .await
            .map_err(without_answer_excerpt)?;
        Ok(true)
    }

    /// Whether the user's subscription is active. A user with no row has not converted.
    async fn has_converted(&self, user_id: &str) -> Result<bool, StepError> {
        let db = self.env.database("DB")?;
        let status = db.prepare(SUBSCRIPTION_STATUS).bind([user_id.into()]).first::<Option<String>>(Some("subscription_status")).await?.flatten();
        Ok(status.as_deref() == Some(ACTIVE))
    }
}

impl Workflow for UserLifecycleWorkflow {
    type Params = LifecycleParams;
    type Output = LifecycleOutput;

    fn new(env: Env) -> Self {
        UserLifecycleWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<LifecycleParams>, step: Step<'_>) -> Result<LifecycleOutput, StepError> {
        let params = &event.payload;
        let notify = self.env.required_var("NOTIFY_URL")?;

        let user_id = params.user_id.as_str();
        // The result is whether it was sent: never the address.
        let _: bool =
            step.run("send-welcome-email", |ctx| self.send_email(&notify, user_id, WELCOME_MESSAGE, ctx.idempotency_key(&event.identity()))).await?;

        let trial = params.trial_period.map_or(DEFAULT_TRIAL_PERIOD, |d| d.0);
        step.sleep("trial-period", trial).await?;

        // A step, so a replay after the email below reuses this answer rather than asking again.
        let converted: bool = step.run("check-conversion", |_| self.has_converted(user_id)).await?;

        if !converted {
            let _: bool = step
                .run("send-trial-expiration-email", |ctx| {
                    self.send_email(&notify, user_id, TRIAL_EXPIRED_MESSAGE, ctx.idempotency_key(&event.identity()))
                })
                .await?;
        }

        Ok(LifecycleOutput { converted })
    }
}
