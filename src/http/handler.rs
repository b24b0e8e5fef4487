//! The fetch handler: routes requests (`routes`), checks the API token (`auth`),
//! serves the four integration patterns and instance management, answers in JSON
//! (`api`), and logs one structured line per request.

use crate::bridge::instances;
use crate::bridge::NewInstance;
use crate::bridge::{js, Instance, WorkflowBinding, WorkflowEnv};
use crate::core::instance_batch::{CreateEntry, CreateOutcome};
use crate::core::instance_index;
use crate::core::status::{InstanceState, InstanceStatus};
use crate::core::{callback, callback_url, validate};
use crate::http::api::JobsRequest;
use crate::http::api::{self, ApiError, CreateRequest, CreatedResponse, InstanceResponse, MAX_BODY_BYTES};
use crate::http::api::{DeleteBatchRequest, RestartRequest, TerminateRequest};
use crate::http::auth;
use crate::http::poll;
use crate::http::routes::{self, ControlAction, Route, RouteError};
use crate::registry::{self, WorkflowSpec, WORKFLOWS};
use crate::triggers::jobs;
use crate::triggers::queue;
use crate::workflows;
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::{console_log, Delay, Env, Request, Response};

/// The workflow behind the seed demo's `/api/workflow/*` routes.
const DEMO_WORKFLOW: &str = "user-onboarding";

/// Serves one request. Only internal errors are logged here: with observability on,
/// Workers Logs already records every invocation with its status and duration.
pub async fn handle(mut req: Request, env: Env) -> worker::Result<Response> {
    let method = req.method();
    let path = req.path();
    let outcome = match routes::route(method.as_ref(), &path) {
        Ok(route) => match authorize(&route, &req, &env) {
            Ok(()) => serve(route, &mut req, &env).await,
            Err(e) => Err(e),
        },
        Err(RouteError::NotFound) => Err(ApiError::NotFound),
        Err(RouteError::MethodNotAllowed { allow }) => Err(ApiError::MethodNotAllowed { allow }),
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(error) => {
            if let ApiError::Internal(detail) = &error {
                console_log!("{}", json!({"level": "error", "method": method.as_ref(), "path": path, "error": detail}));
            }
            error_response(&error)
        }
    }
}

fn authorize(route: &Route, req: &Request, env: &Env) -> Result<(), ApiError> {
    if !route.requires_auth() {
        return Ok(());
    }
    let header = req.headers().get("authorization").ok().flatten();
    let token = env.secret("API_TOKEN").ok().map(|s| s.to_string());
    auth::check_bearer(header.as_deref(), token.as_deref()).map_err(|e| ApiError::Unauthorized(e.to_string()))
}

fn json_response<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    Response::from_json(body).map(|r| r.with_status(status)).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn error_response(error: &ApiError) -> worker::Result<Response> {
    let mut response = Response::from_json(&error.body())?.with_status(error.status());
    if let ApiError::MethodNotAllowed { allow } = error {
        response.headers_mut().set("allow", allow)?;
    }
    Ok(response)
}

async fn serve(route: Route, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    match route {
        Route::Health => json_response(200, &json!({"ok": true, "version": env!("CARGO_PKG_VERSION")})),
        Route::OpenApi => {
            let mut response = Response::ok(crate::http::openapi::DOCUMENT).map_err(internal)?;
            response.headers_mut().set("content-type", "application/json").map_err(internal)?;
            Ok(response)
        }
        Route::ListWorkflows => json_response(
            200,
            &json!({"workflows": WORKFLOWS.iter().map(|w| json!({"name": w.name, "className": w.class_name, "binding": w.binding})).collect::<Vec<_>>()}),
        ),
        Route::ListInstances { workflow } => list_instances(&workflow, req, env).await,
        Route::CreateInstance { workflow } => create_instance(&workflow, req, env).await,
        Route::CreateBatch { workflow } => create_batch(&workflow, req, env).await,
        Route::DeleteBatch { workflow } => delete_batch(&workflow, req, env).await,
        Route::GetInstance { workflow, id } => get_instance(&workflow, &id, env).await,
        Route::DeleteInstance { workflow, id } => delete_instance(&workflow, &id, env).await,
        Route::Control { workflow, id, action } => control_instance(&workflow, &id, action, req, env).await,
        Route::SendEvent { workflow, id, event_type } => send_event(&workflow, &id, &event_type, req, env).await,
        Route::SubmitJobs => submit_jobs(req, env).await,
        Route::SubmitRawJob => submit_raw_job(req, env).await,
        Route::ListDeadLetters => list_dead_letters(req, env).await,
        Route::DemoStart => demo_start(req, env).await,
        Route::DemoStatus { id } => get_instance(DEMO_WORKFLOW, &id, env).await,
    }
}

fn workflow_spec(name: &str) -> Result<&'static WorkflowSpec, ApiError> {
    registry::workflow_by_name(name).ok_or_else(|| ApiError::WorkflowNotFound(name.to_string()))
}

fn query(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    Ok(routes::query_pairs(&req.inner().url()))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))
}

/// The body, refused over 1 MiB (by Content-Length before reading when it is given).
async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = req.bytes().await.map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body)
}

/// The body, or `empty` when the body is blank.
async fn read_body_or(req: &mut Request, empty: &[u8]) -> Result<Vec<u8>, ApiError> {
    let body = read_body(req).await?;
    Ok(if body.iter().all(u8::is_ascii_whitespace) { empty.to_vec() } else { body })
}

/// A JSON body, or `empty` when the body is blank.
async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request, empty: &[u8]) -> Result<T, ApiError> {
    api::parse_body(&read_body_or(req, empty).await?)
}

fn instance_body(spec: &WorkflowSpec, id: &str, status: InstanceStatus) -> InstanceResponse {
    InstanceResponse {
        id: id.to_string(),
        workflow: spec.name.to_string(),
        status: status.status,
        output: status.output.filter(|_| status.status == InstanceState::Complete),
        error: status.error,
    }
}

async fn create_instance(workflow: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    let request: CreateRequest = read_json(req, b"{}").await?;
    if let Some(id) = &request.id {
        check_id(id)?;
    }
    let query = query(req)?;
    let wait = query.get("wait").map(|w| poll::parse_wait(w).map_err(|e| ApiError::InvalidWait(e.to_string()))).transpose()?;
    let respond_async = req.headers().get("prefer").ok().flatten().is_some_and(|p| p.to_ascii_lowercase().contains("respond-async"));
    let retention = api::parse_retention(request.retention.as_ref())?;
    let params = request.params.unwrap_or(Value::Null);
    workflows::check_workflow_params(spec.class_name, &params)?;
    let payload = match &request.callback_url {
        None => params,
        Some(url) => {
            callback_url::check(url, js::parse_url, env.flag("ALLOW_INSECURE_CALLBACKS"))
                .map_err(|e| ApiError::InvalidCallbackUrl(e.to_string()))?;
            if env.secret("WEBHOOK_SECRET").is_err() {
                return Err(ApiError::InvalidCallbackUrl(
                    "callbacks are not available: the secret WEBHOOK_SECRET is not configured".into(),
                ));
            }
            callback::wrap(params, url)
        }
    };

    let created = instances::create_with(env, spec, request.id.as_deref(), &payload, retention)
        .await
        .map_err(|e| ApiError::from_binding(spec.name, e))?;
    let id = created.instance.id().to_string();
    let status_url = api::status_url(spec.name, &id);
    if respond_async {
        return json_response(202, &json!({"id": id, "statusUrl": status_url}));
    }
    if let Some(wait) = wait {
        return wait_for_instance(spec, &created.instance, wait).await;
    }
    let status = created.instance.status().await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    let body = CreatedResponse { id, workflow: spec.name.to_string(), status: status.status, status_url, created: created.created };
    let mut response = json_response(if created.created { 201 } else { 200 }, &body)?;
    response.headers_mut().set("location", &body.status_url).map_err(internal)?;
    Ok(response)
}

/// The synchronous-poll pattern: 200 with the output, 500 with the error, or 202 when
/// the wait runs out first. Polls back off from 250 ms to every 2 s.
async fn wait_for_instance(spec: &WorkflowSpec, instance: &Instance, wait: std::time::Duration) -> Result<Response, ApiError> {
    let mut status = instance.status().await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    for delay in poll::poll_delays(wait) {
        if status.status.is_finished() {
            break;
        }
        Delay::from(delay).await;
        status = instance.status().await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    }
    let id = instance.id();
    match status.status {
        InstanceState::Complete => json_response(200, &instance_body(spec, id, status)),
        InstanceState::Errored | InstanceState::Terminated => json_response(500, &instance_body(spec, id, status)),
        state => {
            json_response(202, &json!({"id": id, "workflow": spec.name, "status": state, "statusUrl": api::status_url(spec.name, id)}))
        }
    }
}

/// Every entry is checked on its own; the valid ones go to the engine in one call. The
/// answer holds one result per entry, in order: created, existed, or failed with a code.
async fn create_batch(workflow: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    let items = api::parse_batch(&read_body(req).await?)?;
    let check_params = |params: &Value| workflows::check_workflow_params(spec.class_name, params).map_err(|e| e.to_string());
    let mut results: Vec<CreateEntry> = Vec::with_capacity(items.len());
    let mut valid: Vec<(usize, NewInstance<Value>)> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in items.into_iter().enumerate() {
        match api::check_batch_item(raw, check_params, &mut seen) {
            Ok(item) => valid.push((index, NewInstance { id: item.id, params: item.params, retention: Some(item.retention) })),
            Err((id, error)) => results.push(CreateEntry { index, id, outcome: CreateOutcome::Failed(error) }),
        }
    }
    if !valid.is_empty() {
        let (positions, batch): (Vec<usize>, Vec<NewInstance<Value>>) = valid.into_iter().unzip();
        let entries = instances::create_batch(env, spec, batch).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
        // The engine's entries count from 0 over the valid ones: back to the request's positions.
        results.extend(entries.into_iter().filter_map(|e| positions.get(e.index).map(|&index| CreateEntry { index, ..e })));
    }
    results.sort_by_key(|e| e.index);
    json_response(200, &json!({ "instances": results }))
}

async fn list_instances(workflow: &str, req: &Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    let query = query(req)?;
    let limit = instance_index::parse_limit(query.get("limit").map(String::as_str))
        .ok_or_else(|| ApiError::InvalidQuery("limit must be a whole number from 1 to 100".into()))?;
    let cursor = match query.get("cursor") {
        None => instance_index::first_page(),
        Some(c) => instance_index::Cursor::decode(c).ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API gave out".into()))?,
    };
    let (page, next) = instances::list(env, spec.name, &cursor, limit).await.map_err(internal)?;
    let binding = WorkflowBinding::from_env(env, spec.binding).map_err(|e| ApiError::from_binding(spec.name, e))?;
    let statuses = join_all(page.iter().map(|row| {
        let binding = binding.clone();
        async move {
            match binding.get(&row.id).await {
                Ok(instance) => instance.status().await.map(|s| s.status).unwrap_or(InstanceState::Unknown),
                Err(_) => InstanceState::Unknown,
            }
        }
    }))
    .await;
    let instances: Vec<Value> =
        page.iter().zip(statuses).map(|(row, status)| json!({"id": row.id, "createdAt": row.created_at, "status": status})).collect();
    json_response(200, &json!({"instances": instances, "cursor": next}))
}

async fn get_instance(workflow: &str, id: &str, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    check_id(id)?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    let status = instance.status().await.map_err(fail)?;
    json_response(200, &instance_body(spec, id, status))
}

/// `DELETE …/instances/{id}`: 204, or 404 when there is no such instance (its index row goes either way).
async fn delete_instance(workflow: &str, id: &str, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    check_id(id)?;
    instances::delete(env, spec, id).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    Response::empty().map(|r| r.with_status(204)).map_err(internal)
}

/// `POST …/instances/delete` `{ids}`: one result per id, in order.
async fn delete_batch(workflow: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    let request = DeleteBatchRequest::parse(&read_body(req).await?)?;
    let results = instances::delete_batch(env, spec, &request.ids).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    json_response(200, &json!({ "results": results }))
}

async fn control_instance(workflow: &str, id: &str, action: ControlAction, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    check_id(id)?;
    // Restart and terminate take options; their body is checked before the instance is touched.
    let restart = match action {
        ControlAction::Restart => RestartRequest::parse(&read_body_or(req, b"{}").await?)?,
        _ => RestartRequest::default(),
    };
    let terminate: TerminateRequest = match action {
        ControlAction::Terminate => TerminateRequest::parse(&read_body_or(req, b"{}").await?)?,
        _ => TerminateRequest::default(),
    };
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    match action {
        ControlAction::Pause => instance.pause().await,
        ControlAction::Resume => instance.resume().await,
        ControlAction::Terminate if terminate.rollback => instance.terminate_with_rollback().await,
        ControlAction::Terminate => instance.terminate().await,
        ControlAction::Restart => match &restart.from {
            Some(from) => instance.restart_from(from).await,
            None => instance.restart().await,
        },
    }
    .map_err(fail)?;
    let status = instance.status().await.map_err(fail)?;
    json_response(200, &json!({"id": id, "status": status.status}))
}

async fn send_event(workflow: &str, id: &str, event_type: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    check_id(id)?;
    validate::event_type(event_type).map_err(|e| ApiError::InvalidEventType(e.to_string()))?;
    let payload: Value = read_json(req, b"null").await?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    instance.send_event(event_type, &payload).await.map_err(fail)?;
    json_response(202, &json!({"id": id, "type": event_type}))
}

/// The seed demo's `POST /api/workflow/start {email, name, avatarUrl?}` → `{workflowId}`.
async fn demo_start(req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(DEMO_WORKFLOW)?;
    let params: Value = read_json(req, b"{}").await?;
    workflows::check_workflow_params(spec.class_name, &params)?;
    let created = instances::create(env, spec, None, &params).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    json_response(200, &json!({"workflowId": created.instance.id()}))
}

/// `POST /jobs`: every job is checked like a create request; one bad job queues nothing.
async fn submit_jobs(req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let request: JobsRequest = read_json(req, b"[]").await?;
    let jobs = request.into_jobs()?;
    for (i, job) in jobs.iter().enumerate() {
        jobs::check(job, |spec, params| workflows::check_workflow_params(spec.class_name, params).map_err(|e| e.to_string())).map_err(
            |poison| match poison {
                // The workflow is a field of the body here, so an unknown one is a 400.
                jobs::Poison::UnknownWorkflow(_) => ApiError::InvalidJson(format!("job {i}: {poison}")),
                jobs::Poison::InvalidParams(m) => ApiError::InvalidParams(format!("job {i}: {m}")),
                other => ApiError::from(other),
            },
        )?;
    }
    queue::send(env, &jobs).await.map_err(internal)?;
    json_response(202, &json!({"queued": jobs.len()}))
}

/// `POST /jobs/raw`: the body, as text, becomes one message, unchecked, as another
/// producer on the queue might send it. Only with the var `ENABLE_RAW_JOBS` = "true"
/// (local development and tests).
async fn submit_raw_job(req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    if !env.flag("ENABLE_RAW_JOBS") {
        return Err(ApiError::NotFound);
    }
    let body = read_body(req).await?;
    queue::send_raw(env, &String::from_utf8_lossy(&body)).await.map_err(internal)?;
    json_response(202, &json!({"queued": 1}))
}

async fn list_dead_letters(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let limit = instance_index::parse_limit(query(req)?.get("limit").map(String::as_str))
        .ok_or_else(|| ApiError::InvalidQuery("limit must be a whole number from 1 to 100".into()))?;
    let letters = queue::dead_letters(env, limit).await.map_err(internal)?;
    json_response(200, &json!({"deadLetters": letters}))
}
