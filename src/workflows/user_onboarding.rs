//! `user-onboarding`: the seed demo's workflow behind `POST /api/workflow/start`.
//! Validates the user, creates the profile in D1 (idempotent on email), sends the
//! welcome email, writes default settings to KV, and starts the user's
//! `user-lifecycle` as a child instance without waiting for it.

use crate::bridge::{Step, Workflow, WorkflowEnv, WorkflowEvent};
use crate::bridge::outbound::ServiceCall;
use crate::core::records::is_valid_email;
use crate::core::service::join_url;
use crate::core::step_error::StepError;
use crate::bridge::instances;
use crate::registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use crate::bridge::js::random_uuid;
use wasm_bindgen::JsValue;
use worker::Env;

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

/// The settings every new user starts with.
fn default_settings() -> serde_json::Value {
    json!({"theme": "system", "language": "en", "notifications": {"email": true, "product": false}})
}

pub struct OnboardingWorkflow {
    env: Env,
}

impl OnboardingWorkflow {
    fn db_error(e: worker::Error) -> StepError {
        StepError::failed(format!("D1: {e}"))
    }
}

impl Workflow for OnboardingWorkflow {
    type Params = OnboardingParams;
    type Output = UserId;

    fn new(env: Env) -> Self {
        OnboardingWorkflow { env }
    }

    async fn run(&self, event: WorkflowEvent<OnboardingParams>, step: Step) -> Result<UserId, StepError> {
        let params = &event.payload;

        // Bad input cannot get better on a retry.
        let user: ValidUser = step
            .run("validate-user", |_| async {
                let email = params.email.trim().to_lowercase();
                let name = params.name.trim().to_string();
                if !is_valid_email(&email) {
                    return Err(StepError::non_retryable(format!("invalid email {:?}", params.email)));
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
                db.prepare(
                    "INSERT INTO users (id, email, name, avatar_url, created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(email) DO NOTHING",
                )
                .bind(&[
                    random_uuid().into(),
                    user.email.as_str().into(),
                    user.name.as_str().into(),
                    params.avatar_url.as_deref().map_or(JsValue::NULL, JsValue::from_str),
                    JsValue::from_f64(js_sys::Date::now()),
                ])
                .map_err(Self::db_error)?
                .run()
                .await
                .map_err(Self::db_error)?;
                db.prepare("SELECT id FROM users WHERE email = ?1")
                    .bind(&[user.email.as_str().into()])
                    .map_err(Self::db_error)?
                    .first::<String>(Some("id"))
                    .await
                    .map_err(Self::db_error)?
                    .ok_or_else(|| StepError::failed("the user row is missing after insert"))
            })
            .await?;

        step.run("send-welcome-email", |_| async {
            let notify = self.env.required_var("NOTIFY_URL")?;
            let message = format!("Welcome, {}!", user.name);
            ServiceCall::new("notifications", join_url(&notify, "send"))
                .post::<serde_json::Value, _>(&json!({"userId": user_id, "email": user.email, "message": message}))
                .await
                .map(drop)
        })
        .await?;

        step.run("initialize-settings", |_| async {
            let kv = self.env.kv("SETTINGS").map_err(|e| StepError::non_retryable(format!("the KV binding SETTINGS: {e}")))?;
            kv.put(&format!("settings:{user_id}"), default_settings().to_string())
                .map_err(|e| StepError::failed(format!("KV: {e}")))?
                .execute()
                .await
                .map_err(|e| StepError::failed(format!("KV: {e}")))
        })
        .await?;

        // The child runs on its own: started, not awaited. Its id is derived from the
        // user, so a replayed or repeated onboarding never starts a second one.
        step.run("start-lifecycle", |_| async {
            let spec = registry::workflow_by_name("user-lifecycle").ok_or_else(|| StepError::non_retryable("no user-lifecycle workflow"))?;
            let id = format!("lifecycle-{user_id}");
            instances::create(&self.env, spec, Some(&id), &json!({"userId": user_id, "email": user.email}))
                .await
                .map(|created| created.instance.id().to_string())
                .map_err(|e| StepError::failed(format!("starting {id}: {e}")))
        })
        .await?;

        Ok(UserId { user_id })
    }
}
