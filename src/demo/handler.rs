//! Serves the demo routes with the HTTP API's own pieces (bodies, params checks, claimed
//! creates, errors), so they answer as the API does.

use super::{route, DemoRoute, RETRY_AFTER_SECONDS, WORKFLOW};
use serde_json::{json, Value};
use worker::{Env, Request, Response};
use worker_workflows::bridge::instances;
use worker_workflows::bridge::js_env::WorkflowEnv;
use worker_workflows::bridge::WorkflowBinding;
use worker_workflows_api::http::api::{self, ApiError};
use worker_workflows_api::http::handler::{check_id, check_params, error_response, internal, json_response, read_json, workflow_spec};
use worker_workflows_api::Api;

/// Serves one request under `/api/workflow/`.
pub async fn handle(api: &'static Api, mut req: Request, env: Env) -> worker::Result<Response> {
    let outcome = match route(req.method().as_ref(), &req.path()) {
        Ok(Some(DemoRoute::Start)) => match gate(&req, &env, "DEMO_START_LIMITER").await {
            Ok(()) => start(api, &mut req, &env).await,
            Err(e) => Err(e),
        },
        Ok(Some(DemoRoute::Status { id })) => match gate(&req, &env, "DEMO_STATUS_LIMITER").await {
            Ok(()) => status(api, &id, &env).await,
            Err(e) => Err(e),
        },
        Ok(None) => Err(ApiError::NotFound),
        Err(allow) => Err(ApiError::MethodNotAllowed { allow }),
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(error) => error_response(&error),
    }
}

/// The routes exist only with `ENABLE_DEMO_ROUTES` = "true", and each client (by
/// `CF-Connecting-IP`) gets the requests its limiter allows.
async fn gate(req: &Request, env: &Env, limiter: &str) -> Result<(), ApiError> {
    if !env.flag("ENABLE_DEMO_ROUTES") {
        return Err(ApiError::NotFound);
    }
    let client = api::client_key(req.headers().get("cf-connecting-ip").ok().flatten().as_deref());
    let outcome = env.rate_limiter(limiter).map_err(internal)?.limit(client).await.map_err(internal)?;
    if outcome.success {
        Ok(())
    } else {
        Err(ApiError::RateLimited {
            message: "too many requests to the demo routes from this client; retry later".into(),
            retry_after: RETRY_AFTER_SECONDS,
        })
    }
}

/// `POST /api/workflow/start {email, name, avatarUrl?}` → `{workflowId}`.
async fn start(api: &Api, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(api, WORKFLOW, env)?;
    let params: Value = read_json(req, b"{}").await?;
    check_params(spec, &params, env)?;
    let created = instances::create(env, spec, None, &params).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    json_response(200, &json!({"workflowId": created.instance.id()}))
}

/// `GET /api/workflow/status/{id}`: public, so it shows the status only, never the
/// output or an error's text.
async fn status(api: &Api, id: &str, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(api, WORKFLOW, env)?;
    check_id(id)?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    let state = instance.state().await.map_err(fail)?;
    json_response(200, &json!({"id": id, "status": state}))
}
