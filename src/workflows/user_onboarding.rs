//! `user-onboarding`: the seed demo's workflow behind `POST /api/workflow/start`.
//! Validates the user (a sensitive step: its output, the profile, is redacted from
//! the instance's history), creates the profile in D1 (idempotent on email), sends the
//! welcome email, writes default settings to KV where the user has none, and starts the
//! user's `user-lifecycle` as a child instance without waiting for it.
//!
//! Personal data (the email, the name) stays out of what the engine shows: the validated
//! profile is sensitive, errors name the problem without the value, and the child is
//! given the user's id only (its params would show in its history), reading the address
//! from D1 where it sends to it.

use worker_workflows::bridge::outbound::ServiceCall;
use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use crate::records::{is_valid_email, without_answer_excerpt};
use worker_workflows::core::service::join_url;
use worker_workflows::core::step_config::StepConfig;
use worker_workflows::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnboardingParams {
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserId {
    pub user_id: String,
}

/// The user as validated: trimmed, email lower-cased (the profile is unique on it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ValidUser {
    email: String,
    name: String,
}

/// What a malformed email fails the instance with: the problem, not the value.
const INVALID_EMAIL: &str = "invalid email: not a valid address (the value is personal data, so it is not repeated here)";

/// The settings every new user starts with.
fn default_settings() -> serde_json::Value {
    json!({"theme": "system", "language": "en", "notifications": {"email": true, "product": false}})
}

pub struct OnboardingWorkflow {
    env: Env,
}

impl Workflow for OnboardingWorkflow {
    type Params = OnboardingParams;
    type Output = UserId;

    fn new(env: Env) -> Self {
        OnboardingWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<OnboardingParams>, step: Step<'_>) -> Result<UserId, StepError> {
        let params = &event.payload;

        // Bad input cannot get better on a retry. The validated profile (email and name)
        // is personal data: sensitive, so the engine's history, status and logs show
        // "[REDACTED]" in its place, while the steps below get the real value.
        let user: ValidUser = step
            .run_with("validate-user", StepConfig::new().sensitive(), |_| async {
                let email = params.email.trim().to_lowercase();
                let name = params.name.trim().to_string();
                if !is_valid_email(&email) {
                    // The error shows in the status, the history and the log: never the value.
                    return Err(StepError::non_retryable(INVALID_EMAIL));
                }
                if name.is_empty() {
                    return Err(StepError::non_retryable("name must not be empty"));
                }
                Ok(ValidUser { email, name })
            })
            .await?;

        // Idempotent on email: a retried (or repeated) create finds the existing row.
        let user_id: String = step
            .run("create-profile", |_| async {
                let db = self.env.database("DB")?;
                db.prepare("INSERT INTO users (id, email, name, avatar_url, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(email) DO NOTHING")
                    .bind([
                        self.env.random_uuid().into(),
                        user.email.as_str().into(),
                        user.name.as_str().into(),
                        params.avatar_url.as_deref().into(),
                        self.env.now_millis().into(),
                    ])
                    .run()
                    .await?;
                db.prepare("SELECT id FROM users WHERE email = ?1")
                    .bind([user.email.as_str().into()])
                    .first::<String>(Some("id"))
                    .await?
                    .ok_or_else(|| StepError::failed("the user row is missing after insert"))
            })
            .await?;

        step.run("send-welcome-email", |ctx| {
            let idempotency_key = ctx.idempotency_key(&event.identity());
            async {
                let notify = self.env.required_var("NOTIFY_URL")?;
                let message = format!("Welcome, {}!", user.name);
                ServiceCall::new(&self.env, "notifications", join_url(&notify, "send"))
                    .idempotency_key(idempotency_key)
                    .post_for_status(&json!({"userId": user_id, "email": user.email, "message": message}))
                    .await
                    .map_err(without_answer_excerpt)
            }
        })
        .await?;

        // Defaults only where the user has no settings: onboarding an existing user's email
        // again (the demo route is public) must not reset what that user chose. KV has no
        // conditional write, and a read may miss another location's write of the last
        // minute: only a change made that recently can still be lost.
        step.run("initialize-settings", |_| async {
            let kv = self.env.kv("SETTINGS")?;
            let key = format!("settings:{user_id}");
            if kv.get(&key).await?.is_none() {
                kv.put(&key, &default_settings().to_string()).await?;
            }
            Ok(())
        })
        .await?;

        // The child runs on its own: started, not awaited. Its id is derived from the
        // user, so a replayed or repeated onboarding never starts a second one. Its params
        // show in its history, so they carry the user's id only.
        step.run("start-lifecycle", |_| async {
            let id = format!("lifecycle-{user_id}");
            self.env.create_instance("user-lifecycle", &id, &json!({"userId": user_id})).await?;
            Ok(id)
        })
        .await?;

        Ok(UserId { user_id })
    }
}
