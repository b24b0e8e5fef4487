//! The fetch handler: routes requests (`routes`), checks the API token (`auth`),
//! serves the four integration patterns and instance management, answers in JSON
//! (`api`), and logs one structured line per request.

use crate::http::api::JobsRequest;
use crate::http::api::{self, ApiError, CreateRequest, CreatedResponse, InstanceResponse};
use crate::http::api::{DeleteBatchRequest, RestartRequest, TerminateRequest};
use crate::http::auth;
use crate::http::listing;
use crate::http::poll;
use crate::http::restart::{self, Read, Verdict};
use crate::http::routes::{self, ControlAction, Route, RouteError};
use crate::http::schema;
use crate::http::sse::{self, HistoryFormat};
use crate::http::Api;
use crate::triggers::jobs;
use crate::triggers::queue::{self, params_problem, private_hosts};
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use worker::{console_log, Delay, Env, Request, Response};
use worker_workflows::bridge::binding::Subscription;
use worker_workflows::bridge::instances;
use worker_workflows::bridge::NewInstance;
use worker_workflows::bridge::{Instance, WorkflowBinding, WorkflowEnv};
use worker_workflows::core::engine_error::{self, BindingError, InstanceAction};
use worker_workflows::core::history::History;
use worker_workflows::core::instance_batch::{CreateEntry, CreateOutcome};
use worker_workflows::core::instance_events::InstanceEvent;
use worker_workflows::core::instance_index;
use worker_workflows::core::replay_history::ReplayHistoryFold;
use worker_workflows::core::status::{InstanceState, InstanceStatus};
use worker_workflows::core::url_policy;
use worker_workflows::core::{callback, validate, webhook};
use worker_workflows::registry::WorkflowSpec;

impl Api {
    /// Serves one request: every route of the API (`routes::ROUTES`), a JSON 404 for any
    /// other path. Only internal errors are logged here: with observability on, Workers
    /// Logs already records every invocation with its status and duration.
    pub async fn handle(&'static self, req: Request, env: Env) -> worker::Result<Response> {
        handle(self, req, env).await
    }
}

async fn handle(api: &'static Api, mut req: Request, env: Env) -> worker::Result<Response> {
    let method = req.method();
    let path = req.path();
    let outcome = match routes::route(method.as_ref(), &path) {
        Ok(route) => match authorize(&route, &req, &env) {
            Ok(()) => serve(api, route, &mut req, &env).await,
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

/// A JSON response with this status.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    Response::from_json(body).map(|r| r.with_status(status)).map_err(internal)
}

/// An internal error (500, logged) from anything that displays.
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The response of an error: its status, `{"error": {code, message}}` and its headers.
pub fn error_response(error: &ApiError) -> worker::Result<Response> {
    let mut response = Response::from_json(&error.body())?.with_status(error.status());
    for (name, value) in error.headers() {
        response.headers_mut().set(name, &value)?;
    }
    Ok(response)
}

/// Checks params against the workflow's typed params, then every URL field in them
/// (`Workflow::URL_PARAMS`) against the URL policy.
pub fn check_params(spec: &WorkflowSpec, params: &Value, env: &Env) -> Result<(), ApiError> {
    params_problem(spec, params, env).map_err(ApiError::InvalidParams)
}

async fn serve(api: &'static Api, route: Route, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    match route {
        Route::Health => json_response(200, &json!({"ok": true, "version": env!("CARGO_PKG_VERSION")})),
        Route::OpenApi => {
            let mut response = Response::ok(api.openapi_document(|var| env.var(var).ok().map(|v| v.to_string()))).map_err(internal)?;
            response.headers_mut().set("content-type", "application/json").map_err(internal)?;
            Ok(response)
        }
        Route::ListWorkflows => json_response(
            200,
            &json!({"workflows": api.workflows
                .workflows()
                .iter()
                .filter(|w| queue::available_workflow(api.workflows, env, w.name).is_some())
                .map(|w| json!({"name": w.name, "className": w.class_name, "binding": w.binding}))
                .collect::<Vec<_>>()}),
        ),
        Route::GetWorkflow { workflow } => get_workflow(api, workflow_spec(api, &workflow, env)?, env).await,
        Route::ListInstances { workflow } => list_instances(workflow_spec(api, &workflow, env)?, req, env).await,
        Route::CreateInstance { workflow } => create_instance(workflow_spec(api, &workflow, env)?, req, env).await,
        Route::CreateBatch { workflow } => create_batch(workflow_spec(api, &workflow, env)?, req, env).await,
        Route::DeleteBatch { workflow } => delete_batch(workflow_spec(api, &workflow, env)?, req, env).await,
        Route::GetInstance { workflow, id } => get_instance(workflow_spec(api, &workflow, env)?, &id, env).await,
        Route::DeleteInstance { workflow, id } => delete_instance(workflow_spec(api, &workflow, env)?, &id, env).await,
        Route::History { workflow, id } => instance_history(workflow_spec(api, &workflow, env)?, &id, req, env).await,
        Route::Control { workflow, id, action } => control_instance(api, workflow_spec(api, &workflow, env)?, &id, action, req, env).await,
        Route::SendEvent { workflow, id, event_type } => send_event(workflow_spec(api, &workflow, env)?, &id, &event_type, req, env).await,
        Route::SubmitJobs => submit_jobs(api, req, env).await,
        Route::SubmitRawJob => submit_raw_job(req, env).await,
        Route::ListDeadLetters => list_dead_letters(req, env).await,
        Route::ListRetrying => list_retrying(req, env).await,
    }
}

/// A workflow this deployment serves (a development probe only where its var says so),
/// or 404 `workflow_not_found`.
pub fn workflow_spec(api: &Api, name: &str, env: &Env) -> Result<&'static WorkflowSpec, ApiError> {
    queue::available_workflow(api.workflows, env, name).ok_or_else(|| ApiError::WorkflowNotFound(name.to_string()))
}

fn query(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    Ok(routes::query_pairs(&req.inner().url()))
}

/// Checks an instance id from a path: 400 `invalid_id`.
pub fn check_id(id: &str) -> Result<(), ApiError> {
    validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))
}

/// The body, refused over 1 MiB: by Content-Length before reading when it is given, and
/// while streaming otherwise (a chunked upload is read chunk by chunk and refused as soon
/// as it passes the cap, never read whole).
async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    if api::declared_too_large(req.headers().get("content-length").ok().flatten().as_deref()) {
        return Err(ApiError::PayloadTooLarge);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req.stream().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidJson(format!("reading the request body: {e}")))?;
        api::append_chunk(&mut body, &chunk)?;
    }
    Ok(body)
}

/// The body, or `empty` when the body is blank.
async fn read_body_or(req: &mut Request, empty: &[u8]) -> Result<Vec<u8>, ApiError> {
    let body = read_body(req).await?;
    Ok(if body.iter().all(u8::is_ascii_whitespace) { empty.to_vec() } else { body })
}

/// A JSON body (at most 1 MiB), or `empty` when the body is blank.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: &mut Request, empty: &[u8]) -> Result<T, ApiError> {
    api::parse_body(&read_body_or(req, empty).await?)
}

fn instance_body(spec: &WorkflowSpec, id: &str, status: InstanceStatus) -> InstanceResponse {
    InstanceResponse {
        id: id.to_string(),
        workflow: spec.name.to_string(),
        status: status.status,
        output: status.output.filter(|_| status.status == InstanceState::Complete),
        error: status.error,
        callback: None,
        parent: None,
    }
}

async fn create_instance(spec: &'static WorkflowSpec, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let request: CreateRequest = read_json(req, b"{}").await?;
    if let Some(id) = &request.id {
        check_id(id)?;
    }
    let query = query(req)?;
    let wait = query.get("wait").map(|w| poll::parse_wait(w).map_err(|e| ApiError::InvalidWait(e.to_string()))).transpose()?;
    let respond_async = req.headers().get("prefer").ok().flatten().is_some_and(|p| p.to_ascii_lowercase().contains("respond-async"));
    let retention = api::parse_retention(request.retention.as_ref())?;
    let params = request.params.unwrap_or(Value::Null);
    check_params(spec, &params, env)?;
    let payload = match &request.callback_url {
        None => params,
        Some(url) => {
            url_policy::check(url, worker_workflows::bridge::parse_url, &private_hosts(env))
                .map_err(|e| ApiError::InvalidCallbackUrl(format!("callbackUrl: {e}")))?;
            // The key is checked now, so a bad secret is refused here rather than failing
            // the delivery when the instance ends.
            webhook::configured_key(env.secret("WEBHOOK_SECRET").ok().map(|s| s.to_string()).as_deref())
                .map_err(|e| ApiError::CallbacksUnavailable(e.to_string()))?;
            let var = |name| env.var(name).ok().map(|v| v.to_string());
            callback::DeliveryRetries::from_vars(var(callback::RETRY_LIMIT_VAR).as_deref(), var(callback::RETRY_DELAY_VAR).as_deref())
                .map_err(|e| ApiError::CallbacksUnavailable(e.to_string()))?;
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
async fn create_batch(spec: &'static WorkflowSpec, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let items = api::parse_batch(&read_body(req).await?)?;
    let check_params = |params: &Value| params_problem(spec, params, env);
    let mut results: Vec<CreateEntry> = Vec::with_capacity(items.len());
    let mut valid: Vec<(usize, NewInstance<Value>)> = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in items.into_iter().enumerate() {
        match api::check_batch_item(raw, check_params, &mut seen) {
            Ok(item) => {
                valid.push((index, NewInstance { id: item.id, params: item.params, retention: Some(item.retention), location_hint: None }))
            }
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

/// Each indexed instance's state, from the engine (`unknown` where it cannot say).
async fn states_of(spec: &WorkflowSpec, rows: &[instance_index::IndexedInstance], env: &Env) -> Result<Vec<InstanceState>, ApiError> {
    let binding = WorkflowBinding::from_env(env, spec.binding).map_err(|e| ApiError::from_binding(spec.name, e))?;
    Ok(join_all(rows.iter().map(|row| {
        let binding = binding.clone();
        async move {
            match binding.get(&row.id).await {
                Ok(instance) => instance.state().await.unwrap_or(InstanceState::Unknown),
                Err(_) => InstanceState::Unknown,
            }
        }
    }))
    .await)
}

/// A page of instances, newest first; with `?status=`, only those in the states named,
/// from at most `listing::SCAN` index rows read (the page may be short and still have a
/// `cursor`: the listing goes on from where the reading stopped).
async fn list_instances(spec: &'static WorkflowSpec, req: &Request, env: &Env) -> Result<Response, ApiError> {
    let query = query(req)?;
    let limit = instance_index::parse_limit(query.get("limit").map(String::as_str))
        .ok_or_else(|| ApiError::InvalidQuery("limit must be a whole number from 1 to 100".into()))?;
    let cursor = match query.get("cursor") {
        None => instance_index::first_page(),
        Some(c) => instance_index::Cursor::decode(c).ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API gave out".into()))?,
    };
    let filter = listing::parse_status_filter(query.get("status").map(String::as_str)).map_err(ApiError::InvalidQuery)?;
    let read = if filter.is_some() { listing::SCAN } else { limit };
    let (page, mut next) = instances::list(env, spec.name, &cursor, read).await.map_err(internal)?;
    let states = states_of(spec, &page, env).await?;
    let entry = |i: usize| json!({"id": page[i].id, "createdAt": page[i].created_at, "status": states[i]});
    let instances: Vec<Value> = match &filter {
        None => (0..page.len()).map(entry).collect(),
        Some(wanted) => {
            let (taken, stopped) = listing::take_matching(&states, wanted, limit as usize);
            if let Some(i) = stopped {
                next = Some(instance_index::Cursor { created_at: page[i].created_at, id: page[i].id.clone() }.encode());
            }
            taken.into_iter().map(entry).collect()
        }
    };
    json_response(200, &json!({"instances": instances, "cursor": next}))
}

/// `GET /workflows/{name}`: the workflow (name, class, binding), the schemas the Worker
/// gave for its params and events, and its instances: the total in the index, and the
/// newest `listing::COUNTED` counted by state.
async fn get_workflow(api: &Api, spec: &'static WorkflowSpec, env: &Env) -> Result<Response, ApiError> {
    let mut body = schema::describe(spec, api.schemas_of(spec.name));
    let total: Option<f64> = env
        .d1(INDEX_DB)
        .and_then(|db| db.prepare(COUNT_INSTANCES).bind(&[spec.name.into()]))
        .map_err(internal)?
        .first(Some("n"))
        .await
        .map_err(internal)?;
    let (page, _) = instances::list(env, spec.name, &instance_index::first_page(), listing::COUNTED).await.map_err(internal)?;
    let states = states_of(spec, &page, env).await?;
    body["instances"] = json!({"total": total.unwrap_or(0.0) as u64, "counted": page.len(), "byStatus": listing::counts(&states)});
    json_response(200, &body)
}

/// The D1 database of the instance index, and how many instances of a workflow it holds.
const INDEX_DB: &str = "DB";
const COUNT_INSTANCES: &str = "SELECT COUNT(*) AS n FROM instances WHERE workflow = ?1";

/// `GET …/instances/{id}`. A finished instance's status is recorded in its index row the
/// first time it is read from the engine and answered from there afterwards (for up to
/// [`instance_index::FINAL_STATUS_MAX_AGE_MS`]) without calling the engine; a restart,
/// terminate or delete through the API clears it. Any other instance is asked every time.
async fn get_instance(spec: &'static WorkflowSpec, id: &str, env: &Env) -> Result<Response, ApiError> {
    check_id(id)?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    // One index read gives the recorded status (if any), the callback's outcome and the parent.
    let mut row = instances::status_row(env, spec.name, id).await;
    let now = js_sys::Date::now();
    let status = match row.as_ref().and_then(|row| row.fresh_final(now)) {
        Some(status) => status,
        None => {
            let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
            let status = instance.status().await.map_err(fail)?;
            if let Some(read) = &row {
                // Recorded against the row as it was before the engine's answer (a restart
                // meanwhile counted its generation up, and the record is refused).
                instances::record_final(env, spec.name, id, read, &status, now).await;
                if status.status.is_finished() {
                    // The run records its callback's outcome before it ends: read the row
                    // again, so an outcome recorded after the first read is shown.
                    row = instances::status_row(env, spec.name, id).await.or(row);
                }
            }
            status
        }
    };
    // A run records its callback's outcome before it ends, so only an ended run has one
    // to show (a restarted instance's earlier record is not its current run's).
    let ended = matches!(status.status, InstanceState::Complete | InstanceState::Errored);
    let callback = row.as_ref().filter(|_| ended).and_then(|r| r.callback.as_deref()).and_then(|t| serde_json::from_str(t).ok());
    let parent = row.and_then(|r| match (r.parent_workflow, r.parent_id) {
        (Some(workflow), Some(id)) => Some(worker_workflows::core::child::InstanceRef::new(workflow, id)),
        _ => None,
    });
    json_response(200, &InstanceResponse { callback, parent, ..instance_body(spec, id, status) })
}

/// How long the JSON history waits for a further event of an instance that has not
/// finished before answering with what it has (it has then read all there is, as far
/// as anyone can tell), and the most time it spends reading.
const HISTORY_IDLE: std::time::Duration = std::time::Duration::from_millis(500);
const HISTORY_DEADLINE_MS: f64 = 20_000.0;
/// An idle event stream sends a comment this often, so proxies keep it open.
const KEEP_ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

enum Next {
    Event(InstanceEvent),
    End,
    Failed(BindingError),
    Idle,
}

/// The next event, or `Idle` when none comes within `idle` (nothing is lost: the
/// subscription keeps the engine's call in flight for the next try).
async fn next_or_idle(events: &mut Subscription, idle: Option<std::time::Duration>) -> Next {
    let next = Box::pin(events.next());
    let result = match idle {
        None => next.await,
        Some(idle) => match futures_util::future::select(next, Box::pin(Delay::from(idle))).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right(_) => return Next::Idle,
        },
    };
    match result {
        Ok(Some(event)) => Next::Event(event),
        Ok(None) => Next::End,
        Err(e) => Next::Failed(e),
    }
}

/// Reads an instance's events from the first, handing each to `fold`: a finished
/// instance's to their end, a live one's until none comes for a moment (all there is, as
/// far as anyone can tell); either way reading stops at the deadline (an instance
/// restarted meanwhile would otherwise be followed for as long as it runs). True when
/// the deadline cut it short.
async fn read_history(instance: &Instance, mut fold: impl FnMut(&InstanceEvent)) -> Result<bool, BindingError> {
    let finished = instance.state().await?.is_finished();
    let mut events = instance.subscribe(None).await?;
    let started = js_sys::Date::now();
    loop {
        let left = HISTORY_DEADLINE_MS - (js_sys::Date::now() - started);
        if left <= 0.0 {
            return Ok(true);
        }
        let left = std::time::Duration::from_millis(left as u64);
        let wait = if finished { left } else { left.min(HISTORY_IDLE) };
        match next_or_idle(&mut events, Some(wait)).await {
            Next::Event(event) => fold(&event),
            Next::End => return Ok(false),
            // Quiet for a moment: all there is of a live instance, as far as anyone can tell.
            Next::Idle if !finished && wait == HISTORY_IDLE => return Ok(false),
            Next::Idle => return Ok(true),
            Next::Failed(e) => return Err(e),
        }
    }
}

/// `GET …/instances/{id}/history`: with `Accept: text/event-stream`, the instance's
/// events as SSE (from after `Last-Event-ID`, then live until it finishes); with
/// `?format=replay`, the history a replay needs (`core::replay_history`: steps with their
/// outputs, params, creation time); otherwise its steps as JSON. An `Accept` allowing
/// none of what was asked is 400 `invalid_accept`, another `format` 400 `invalid_query`.
async fn instance_history(spec: &'static WorkflowSpec, id: &str, req: &Request, env: &Env) -> Result<Response, ApiError> {
    check_id(id)?;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let query = query(req)?;
    let format = sse::choose(query.get("format").map(String::as_str), header("accept").as_deref())?;
    let cursor = match format {
        HistoryFormat::EventStream => sse::last_event_id(header("last-event-id").as_deref())?,
        HistoryFormat::Json | HistoryFormat::Replay => None,
    };
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    match format {
        HistoryFormat::Json => {
            let mut history = History::new();
            let truncated = read_history(&instance, |event| history.apply(event)).await.map_err(fail)?;
            let mut body = serde_json::to_value(&history).map_err(internal)?;
            if let Some(map) = body.as_object_mut() {
                map.insert("id".into(), id.into());
                map.insert("workflow".into(), spec.name.into());
                map.insert("truncated".into(), truncated.into());
            }
            json_response(200, &body)
        }
        HistoryFormat::Replay => {
            let mut history = ReplayHistoryFold::new(spec.name, id);
            let truncated = read_history(&instance, |event| history.apply(event)).await.map_err(fail)?;
            json_response(200, &history.finish(truncated))
        }
        HistoryFormat::EventStream => {
            let events = instance.subscribe(cursor).await.map_err(fail)?;
            let frames = futures_util::stream::unfold(Some(events), |events| async move {
                let mut events = events?;
                let frame = match next_or_idle(&mut events, Some(KEEP_ALIVE_EVERY)).await {
                    Next::Event(event) => sse::frame(event.event_id, event.kind.type_name(), &event.to_json()),
                    Next::Idle => sse::KEEP_ALIVE.to_string(),
                    Next::End => return None,
                    Next::Failed(e) => {
                        console_log!("{}", json!({"level": "error", "what": "instance event stream", "error": e.to_string()}));
                        return Some((
                            Ok::<Vec<u8>, worker::Error>(sse::error_frame("reading the instance's events failed").into_bytes()),
                            None,
                        ));
                    }
                };
                Some((Ok(frame.into_bytes()), Some(events)))
            });
            let mut response = Response::from_stream(frames).map_err(internal)?;
            let headers = response.headers_mut();
            for (name, value) in [("content-type", sse::EVENT_STREAM), ("cache-control", "no-cache"), ("x-accel-buffering", "no")] {
                headers.set(name, value).map_err(internal)?;
            }
            Ok(response)
        }
    }
}

/// `DELETE …/instances/{id}`: 204, or 404 when there is no such instance (its index row goes either way).
async fn delete_instance(spec: &'static WorkflowSpec, id: &str, env: &Env) -> Result<Response, ApiError> {
    check_id(id)?;
    instances::delete(env, spec, id).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    Response::empty().map(|r| r.with_status(204)).map_err(internal)
}

/// `POST …/instances/delete` `{ids}`: one result per id, in order.
async fn delete_batch(spec: &'static WorkflowSpec, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let request = DeleteBatchRequest::parse(&read_body(req).await?)?;
    let results = instances::delete_batch(env, spec, &request.ids).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    json_response(200, &json!({ "results": results }))
}

async fn control_instance(
    api: &'static Api,
    spec: &'static WorkflowSpec,
    id: &str,
    action: ControlAction,
    req: &mut Request,
    env: &Env,
) -> Result<Response, ApiError> {
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
    let state = instance.state().await.map_err(fail)?;
    let checked = match action {
        ControlAction::Pause => InstanceAction::Pause,
        ControlAction::Resume => InstanceAction::Resume,
        ControlAction::Terminate => InstanceAction::Terminate,
        ControlAction::Restart => InstanceAction::Restart,
    };
    // A finished parent's running children can still be terminated.
    if !(action == ControlAction::Terminate && terminate.children) {
        refuse_in_state(id, checked, state)?;
    }
    if action == ControlAction::Restart {
        match compensations_started(&instance, state).await.map_err(fail)? {
            Verdict::Allowed => {}
            Verdict::CompensationsStarted => {
                return Err(ApiError::InvalidState(format!(
                    "instance {id}'s compensations (rollbacks) have started: a restart would reuse results they undid; create a new instance"
                )))
            }
            Verdict::Unverified => {
                return Err(ApiError::Unavailable {
                    message: format!(
                        "instance {id}'s history could not be read to its end within {} seconds to check that none of its compensations (rollbacks) has started; the restart was refused, not made",
                        restart::DEADLINE.as_secs()
                    ),
                    retry_after: worker_workflows::core::platform_limits::UNAVAILABLE_RETRY_AFTER_SECONDS,
                })
            }
        }
    }
    match action {
        ControlAction::Pause => instance.pause().await,
        ControlAction::Resume => instance.resume().await,
        ControlAction::Terminate => {
            // Through the library's terminate: a parent waiting for this instance is told,
            // and with `children` every descendant that has not ended is terminated after it.
            let reached = instances::terminate(env, api.workflows, spec, id, terminate.rollback, terminate.children).await.map_err(fail)?;
            let state = instance.state().await.map_err(fail)?;
            let mut body = json!({"id": id, "status": state});
            if terminate.children {
                body["children"] = serde_json::to_value(reached.get(1..).unwrap_or_default()).map_err(internal)?;
            }
            return json_response(200, &body);
        }
        ControlAction::Restart => {
            match &restart.from {
                Some(from) => instance.restart_from(from).await,
                None => instance.restart().await,
            }
            .map_err(fail)?;
            // After the engine's restart, so a status read before it cannot be recorded after it.
            instances::forget_final(env, spec.name, id).await;
            Ok(())
        }
    }
    .map_err(fail)?;
    let state = instance.state().await.map_err(fail)?;
    json_response(200, &json!({"id": id, "status": state}))
}

/// Refuses, 409 `invalid_state`, an operation the instance's state does not allow
/// (`engine_error::state_refuses`): a caller's mistake, which the local engine would
/// otherwise accept and drop.
fn refuse_in_state(id: &str, action: InstanceAction, state: InstanceState) -> Result<(), ApiError> {
    match engine_error::state_refuses(action, state) {
        Some(why) => Err(ApiError::InvalidState(format!("instance {id}: {why}"))),
        None => Ok(()),
    }
}

/// Whether the instance's compensations (rollbacks) have started, running or done (a
/// `rollback_started` in its history, in any state: a `running` instance may be rolling
/// back on the local runtime). Its steps' cached results then describe work that was
/// undone (a refunded charge), so the API refuses to restart it; the Rust
/// `Instance::restart*` stay as the engine has them. Fails closed: a history that cannot
/// be read to its end in time is [`Verdict::Unverified`], never "none started".
async fn compensations_started(instance: &Instance, state: InstanceState) -> Result<Verdict, BindingError> {
    let scan = match restart::Scan::start(state) {
        Ok(scan) => scan,
        Err(verdict) => return Ok(verdict),
    };
    let mut events = instance.subscribe(None).await?;
    let started = js_sys::Date::now();
    loop {
        let left = restart::DEADLINE.as_millis() as f64 - (js_sys::Date::now() - started);
        if left <= 0.0 {
            return Ok(scan.out_of_time());
        }
        let wait = scan.wait(std::time::Duration::from_millis(left as u64));
        let verdict = match next_or_idle(&mut events, Some(wait)).await {
            Next::Event(event) => scan.next(Read::Event(&event.kind), wait),
            Next::End => scan.next(Read::End, wait),
            Next::Idle => scan.next(Read::Idle, wait),
            Next::Failed(e) => return Err(e),
        };
        if let Some(verdict) = verdict {
            return Ok(verdict);
        }
    }
}

async fn send_event(spec: &'static WorkflowSpec, id: &str, event_type: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    check_id(id)?;
    validate::event_type(event_type).map_err(|e| ApiError::InvalidEventType(e.to_string()))?;
    // Only a child's own run (or a terminate) tells its parent how it ended.
    if worker_workflows::core::child::is_notice_type(event_type) {
        return Err(ApiError::UnknownEventType(format!(
            "{} events are the notices child workflows send their parents; they cannot be sent through the API",
            validate::excerpt(event_type)
        )));
    }
    let payload: Value = read_json(req, b"null").await?;
    // Checked before the engine gets it: a payload the wait cannot read would end the instance.
    spec.check_event(event_type, &payload).map_err(ApiError::from_event_problem)?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = WorkflowBinding::from_env(env, spec.binding).map_err(fail)?.get(id).await.map_err(fail)?;
    // An event a finished instance would store and never read is refused, not accepted.
    refuse_in_state(id, InstanceAction::SendEvent, instance.state().await.map_err(fail)?)?;
    instance.send_event(event_type, &payload).await.map_err(fail)?;
    json_response(202, &json!({"id": id, "type": event_type}))
}

/// `POST /jobs`: every job is checked like a create request; one bad job queues nothing.
async fn submit_jobs(api: &Api, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let request: JobsRequest = read_json(req, b"[]").await?;
    let jobs = request.into_jobs()?;
    for (i, job) in jobs.iter().enumerate() {
        jobs::check(job, |name| queue::available_workflow(api.workflows, env, name), |spec, params| params_problem(spec, params, env))
            .map_err(|poison| match poison {
                // Like every route that names a workflow: 404, also for a development probe
                // this deployment does not serve.
                jobs::Poison::UnknownWorkflow(name) => ApiError::WorkflowNotFound(name),
                jobs::Poison::InvalidParams(m) => ApiError::InvalidParams(format!("job {i}: {m}")),
                other => ApiError::from(other),
            })?;
    }
    queue::send(env, &jobs).await.map_err(|e| match e {
        queue::SendError::TooLarge(too_large) => ApiError::JobTooLarge(too_large.to_string()),
        queue::SendError::Queue(message) => ApiError::from_platform("the job queue", &message),
    })?;
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
    queue::send_raw(env, &String::from_utf8_lossy(&body)).await.map_err(|e| ApiError::from_platform("the job queue", &e))?;
    json_response(202, &json!({"queued": 1}))
}

async fn list_dead_letters(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let limit = instance_index::parse_limit(query(req)?.get("limit").map(String::as_str))
        .ok_or_else(|| ApiError::InvalidQuery("limit must be a whole number from 1 to 100".into()))?;
    let letters = queue::dead_letters(env, limit).await.map_err(internal)?;
    json_response(200, &json!({"deadLetters": letters}))
}

/// `GET /jobs/retrying`: the jobs whose last delivery failed and that the queue will deliver
/// again, newest failure first, with the reason and the attempts so far.
async fn list_retrying(req: &Request, env: &Env) -> Result<Response, ApiError> {
    let limit = instance_index::parse_limit(query(req)?.get("limit").map(String::as_str))
        .ok_or_else(|| ApiError::InvalidQuery("limit must be a whole number from 1 to 100".into()))?;
    let failures = queue::retrying(env, limit).await.map_err(internal)?;
    json_response(200, &json!({"retrying": failures}))
}
