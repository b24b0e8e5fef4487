//! The queue consumer and producer: `workflow-jobs` messages become workflow
//! instances (one `create_batch` per workflow per batch), and messages that can
//! never succeed, or that exhausted their retries (`workflow-jobs-dlq`), are
//! recorded as dead letters. Bound to the raw JS objects, since the queue's own
//! `attempts` and structured-clone bodies are what this needs.

use crate::triggers::jobs::{self, DeadLetter, Job, Poison};
use js_sys::{Array, Promise, JSON};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::{console_log, console_warn, Env};
use worker_workflows::bridge::instances;
use worker_workflows::bridge::NewInstance;
use worker_workflows::core::instance_batch::{codes, CreateOutcome, EntryError};
use worker_workflows::core::url_policy::{self, PrivateHosts};
use worker_workflows::registry::{Registry, WorkflowSpec};

/// Deliveries of a dead letter before the dead-letter queue gives up (`max_retries` + 1
/// of its consumer in wrangler.jsonc).
const DEAD_LETTER_QUEUE_ATTEMPTS: u32 = 101;

#[wasm_bindgen]
extern "C" {
    /// The `MessageBatch` the runtime passes to the queue handler, as JS holds it.
    pub type JsMessageBatch;
    #[wasm_bindgen(method, getter)]
    fn queue(this: &JsMessageBatch) -> String;
    #[wasm_bindgen(method, getter)]
    fn messages(this: &JsMessageBatch) -> Array;

    type JsMessage;
    #[wasm_bindgen(method, getter)]
    fn id(this: &JsMessage) -> String;
    #[wasm_bindgen(method, getter)]
    fn body(this: &JsMessage) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn attempts(this: &JsMessage) -> f64;
    #[wasm_bindgen(method)]
    fn ack(this: &JsMessage);
    #[wasm_bindgen(method)]
    fn retry(this: &JsMessage, options: &JsValue);

    type JsQueue;
    #[wasm_bindgen(method, catch, js_name = "sendBatch")]
    fn send_batch(this: &JsQueue, messages: &JsValue) -> Result<Promise, JsValue>;
}

/// A workflow this deployment serves (`Registry::available` with the env's vars).
pub fn available_workflow(workflows: &Registry, env: &Env, name: &str) -> Option<&'static WorkflowSpec> {
    workflows.available(name, |var| env.var(var).ok().map(|v| v.to_string()))
}

/// The private hosts this deployment may call anyway (`ALLOW_PRIVATE_HOSTS`; none in production).
pub fn private_hosts(env: &Env) -> PrivateHosts {
    PrivateHosts::parse(&env.var(url_policy::ALLOW_PRIVATE_HOSTS_VAR).map(|v| v.to_string()).unwrap_or_default())
}

/// What is wrong with a job's or a request's params, naming the field: the workflow's typed
/// params, then every URL field (`Workflow::URL_PARAMS`) against the URL policy. The HTTP
/// API and the consumer check through this one function.
pub fn params_problem(spec: &WorkflowSpec, params: &Value, env: &Env) -> Result<(), String> {
    spec.check_params(params).map_err(|e| e.0)?;
    url_policy::check_params_urls(params, spec.url_params, worker_workflows::bridge::parse_url, &private_hosts(env))
        .map_err(|e| e.to_string())
}

/// The JSON text of a message body: a string body is taken as the text it is.
fn body_text(message: &JsMessage) -> String {
    let body = message.body();
    match body.as_string() {
        Some(text) => text,
        None => JSON::stringify(&body).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "undefined".into()),
    }
}

fn log_error(what: &str, detail: impl std::fmt::Display) {
    console_log!("{}", json!({"level": "error", "type": "queue", "what": what, "error": detail.to_string()}));
}

/// Sends message bodies to `JOBS` as plain JSON values (never JS Maps).
async fn send_bodies(env: &Env, bodies: Vec<Value>) -> Result<(), String> {
    let queue: JsQueue = js_sys::Reflect::get(env, &"JOBS".into()).map_err(|_| "no JOBS binding".to_string())?.unchecked_into();
    let messages: Vec<Value> = bodies.into_iter().map(|body| json!({ "body": body })).collect();
    let messages = JSON::parse(&Value::Array(messages).to_string()).map_err(|e| worker_workflows::bridge::js_error_text(&e))?;
    let promise = queue.send_batch(&messages).map_err(|e| worker_workflows::bridge::js_error_text(&e))?;
    JsFuture::from(promise).await.map(drop).map_err(|e| worker_workflows::bridge::js_error_text(&e))
}

/// Why jobs were not queued.
pub enum SendError {
    /// One job is over the queue's message size: nothing was sent.
    TooLarge(jobs::JobTooLarge),
    /// The queue refused (its message, for `ApiError::from_platform`).
    Queue(String),
}

/// Sends jobs to `JOBS`, in as many `sendBatch` calls as the queue's limits need. Every
/// job is measured before the first is sent, so an oversized one queues none.
pub async fn send(env: &Env, jobs: &[Job]) -> Result<(), SendError> {
    let bodies: Vec<Value> = jobs.iter().map(|job| json!(job)).collect();
    let texts: Vec<String> = bodies.iter().map(Value::to_string).collect();
    let groups = jobs::send_groups(&texts).map_err(SendError::TooLarge)?;
    for group in groups {
        send_bodies(env, bodies[group].to_vec()).await.map_err(SendError::Queue)?;
    }
    Ok(())
}

/// Sends one message body exactly as given (a string), as another producer could.
pub async fn send_raw(env: &Env, body: &str) -> Result<(), String> {
    send_bodies(env, vec![Value::String(body.to_string())]).await
}

/// Records a dead letter; false when it could not be recorded (then the message is
/// retried rather than lost).
async fn record_dead_letter(env: &Env, queue: &str, message: &JsMessage, reason: &str, attempts: u32) -> bool {
    let letter = DeadLetter {
        message_id: message.id(),
        queue: queue.to_string(),
        body: body_text(message),
        reason: reason.to_string(),
        attempts,
        recorded_at: js_sys::Date::now() as i64,
    };
    if jobs::dead_letter_write_fault(test_fault_limit(env), &letter.body, message.attempts() as u32) {
        log_test_fault("dead-letter write failed", &letter.message_id, message.attempts());
        return false;
    }
    let result = async {
        env.d1("DB")?
            .prepare(jobs::INSERT_DEAD_LETTER)
            .bind(&[
                letter.message_id.as_str().into(),
                letter.queue.as_str().into(),
                letter.body.as_str().into(),
                letter.reason.as_str().into(),
                JsValue::from_f64(f64::from(letter.attempts)),
                JsValue::from_f64(letter.recorded_at as f64),
            ])?
            .run()
            .await
    }
    .await;
    match result {
        Ok(_) => {
            console_log!("{}", json!({"type": "dead-letter", "queue": queue, "message": letter.message_id, "reason": reason}));
            true
        }
        Err(e) => {
            log_error("recording a dead letter", e);
            false
        }
    }
}

fn retry_later(message: &JsMessage) {
    let delay = jobs::retry_delay_seconds(message.attempts() as u32);
    message.retry(&JSON::parse(&json!({ "delaySeconds": delay }).to_string()).unwrap_or(JsValue::UNDEFINED));
}

/// Retries a message after a transient failure, first remembering why (`job_failures`),
/// so that if the queue gives up, its dead letter keeps this reason and attempt count.
async fn retry_after_failure(env: &Env, message: &JsMessage, reason: &str) {
    let result = async {
        env.d1("DB")?
            .prepare(jobs::REMEMBER_FAILURE)
            .bind(&[message.id().into(), reason.into(), JsValue::from_f64(message.attempts()), JsValue::from_f64(js_sys::Date::now())])?
            .run()
            .await
    }
    .await;
    if let Err(e) = result {
        log_error("remembering a transient failure", e);
    }
    retry_later(message);
}

/// The failure remembered for a message, if any: its reason and attempt count.
async fn remembered_failure(env: &Env, message_id: &str) -> worker::Result<Option<(String, u32)>> {
    #[derive(serde::Deserialize)]
    struct Row {
        reason: String,
        attempts: f64,
    }
    let row: Option<Row> = env.d1("DB")?.prepare(jobs::RECALL_FAILURE).bind(&[message_id.into()])?.first(None).await?;
    Ok(row.map(|r| (r.reason, r.attempts as u32)))
}

/// Forgets a message's remembered failure once it no longer matters (best effort: a
/// leftover row only costs space, but lists the job under `GET /jobs/retrying`).
async fn forget_failure(env: &Env, message: &JsMessage) {
    let result = async { env.d1("DB")?.prepare(jobs::FORGET_FAILURE).bind(&[message.id().into()])?.run().await }.await;
    if let Err(e) = result {
        log_error("forgetting a transient failure", e);
    }
}

/// The test-fault switch (`jobs::TestFault`): the var `TEST_FLAKY_JOB_ATTEMPTS`, 0 when unset.
fn test_fault_limit(env: &Env) -> u32 {
    env.var("TEST_FLAKY_JOB_ATTEMPTS").ok().and_then(|v| v.to_string().parse::<u32>().ok()).unwrap_or(0)
}

fn log_test_fault(what: &str, id: &str, attempts: f64) {
    console_log!(
        "{}",
        json!({"level": "warn", "type": "queue", "testFault": what, "id": id, "attempts": attempts, "at": js_sys::Date::now()})
    );
}

/// [`consume`] as a promise: what the queue export of
/// [`export_queue_consumer!`](crate::export_queue_consumer) returns to the runtime.
pub fn consume_promise(workflows: &'static Registry, batch: JsValue, env: JsValue) -> Promise {
    wasm_bindgen_futures::future_to_promise(std::panic::AssertUnwindSafe(async move {
        consume(workflows, batch.unchecked_into(), env.unchecked_into()).await;
        Ok(JsValue::UNDEFINED)
    }))
}

/// A checked job waiting for its workflow's `create_batch`: message, instance id, params.
type PendingJob = (JsMessage, String, Value);

/// Consumes one batch of the jobs queue (instances created, poison recorded as dead
/// letters) or of its dead-letter queue (dead letters recorded), for the workflows of
/// `workflows`.
pub async fn consume(workflows: &'static Registry, batch: JsMessageBatch, env: Env) {
    let queue = batch.queue();
    let messages: Vec<JsMessage> = batch.messages().iter().map(JsCast::unchecked_into).collect();
    if queue == jobs::DEAD_LETTER_QUEUE {
        for message in &messages {
            let recorded = match remembered_failure(&env, &message.id()).await {
                Ok(remembered) => {
                    let (reason, attempts) = jobs::exhausted(remembered, message.attempts() as u32);
                    record_dead_letter(&env, &queue, message, &reason, attempts).await
                }
                Err(e) => {
                    log_error("reading a remembered failure", e);
                    false
                }
            };
            if recorded {
                // Also on the dead-letter queue's first delivery: the row was written
                // while the job was retried on the jobs queue.
                forget_failure(&env, message).await;
                message.ack();
            } else {
                // Retried with a growing delay, like any transient failure; the last
                // attempt logs the whole message, so even then nothing is lost unseen.
                if message.attempts() >= f64::from(DEAD_LETTER_QUEUE_ATTEMPTS) {
                    log_error(
                        "a dead letter could not be recorded on its last attempt",
                        format!("message {}: {}", message.id(), body_text(message)),
                    );
                }
                retry_later(message);
            }
        }
        return;
    }

    let mut by_workflow: BTreeMap<&'static str, (&'static WorkflowSpec, Vec<PendingJob>)> = BTreeMap::new();
    for message in messages {
        let checked = jobs::parse(&body_text(&message)).and_then(|job| {
            let spec =
                jobs::check(&job, |name| available_workflow(workflows, &env, name), |spec, params| params_problem(spec, params, &env))?;
            Ok::<_, Poison>((spec, jobs::instance_id(&job, &message.id()), job.params))
        });
        match checked {
            Ok((spec, id, params)) => {
                by_workflow.entry(spec.name).or_insert_with(|| (spec, Vec::new())).1.push((message, id, params));
            }
            Err(poison) => {
                if record_dead_letter(&env, &queue, &message, &poison.to_string(), message.attempts() as u32).await {
                    if message.attempts() > 1.0 {
                        forget_failure(&env, &message).await;
                    }
                    message.ack();
                } else {
                    retry_later(&message);
                }
            }
        }
    }

    for (spec, items) in by_workflow.into_values() {
        create_jobs(&env, spec, items).await;
    }
}

/// Creates one workflow's jobs with one `create_batch` and settles each message by its
/// own entry: created or already existing → ack; failed → that message alone is retried
/// later, its siblings are not. A job id twice in the batch (a redelivered job beside
/// its original) is sent once and both messages share its outcome.
async fn create_jobs(env: &Env, spec: &'static WorkflowSpec, items: Vec<PendingJob>) {
    let fault_limit = test_fault_limit(env);
    let mut outcome: HashMap<String, Option<EntryError>> = HashMap::new();
    let mut sending: Vec<NewInstance<Value>> = Vec::new();
    for (message, id, params) in &items {
        if outcome.contains_key(id) {
            continue;
        }
        if fault_limit > 0
            && jobs::test_fault(fault_limit, id, &body_text(message), message.attempts() as u32) == jobs::TestFault::BeforeCreate
        {
            // The test fault fails a job as an entry of the engine's answer would, unsent.
            log_test_fault("transient failure before create", id, message.attempts());
            outcome.insert(id.clone(), Some(EntryError::new(codes::ENGINE_ERROR, format!("simulated transient failure creating {id}"))));
        } else {
            outcome.insert(id.clone(), None);
            sending.push(NewInstance::new(params.clone()).with_id(id.clone()));
        }
    }
    if !sending.is_empty() {
        let ids: Vec<String> = sending.iter().filter_map(|n| n.id.clone()).collect();
        match instances::create_batch(env, spec, sending).await {
            Ok(entries) => {
                for entry in entries {
                    if let (Some(id), CreateOutcome::Failed(error)) = (entry.id.or_else(|| ids.get(entry.index).cloned()), entry.outcome) {
                        outcome.insert(id, Some(error));
                    }
                }
            }
            Err(e) => {
                log_error("creating a batch of instances", &e);
                for id in ids {
                    outcome.insert(id, Some(EntryError::new(codes::ENGINE_ERROR, e.to_string())));
                }
            }
        }
    }
    let acked: Vec<&str> = items.iter().map(|(_, id, _)| id.as_str()).filter(|id| matches!(outcome.get(*id), Some(None))).collect();
    for (message, id, _) in &items {
        match outcome.get(id) {
            Some(None) => {
                if fault_limit > 0
                    && jobs::test_fault(fault_limit, id, &body_text(message), message.attempts() as u32) == jobs::TestFault::AfterCreate
                {
                    log_test_fault("redelivery after create", id, message.attempts());
                    retry_after_failure(env, message, &format!("simulated redelivery after creating {id}")).await;
                    continue;
                }
                if message.attempts() > 1.0 {
                    forget_failure(env, message).await; // a first delivery left nothing to forget
                }
                message.ack();
            }
            failed => {
                // One line per retried job, naming the jobs of its batch that were acked.
                console_warn!(
                    "{}",
                    json!({"level": "warn", "type": "queue", "what": "job retried", "workflow": spec.name, "instance": id,
                           "attempts": message.attempts() as u32, "error": failed.cloned().flatten(), "ackedInSameBatch": acked})
                );
                let reason = match failed.cloned().flatten() {
                    Some(error) => error.message,
                    None => "no outcome for this job".to_string(),
                };
                retry_after_failure(env, message, &reason).await;
            }
        }
    }
}

/// The newest dead letters.
pub async fn dead_letters(env: &Env, limit: u32) -> worker::Result<Vec<DeadLetter>> {
    #[derive(serde::Deserialize)]
    struct Row {
        message_id: String,
        queue: String,
        body: String,
        reason: String,
        attempts: f64,
        recorded_at: f64,
    }
    let rows: Vec<Row> =
        env.d1("DB")?.prepare(jobs::LIST_DEAD_LETTERS).bind(&[JsValue::from_f64(f64::from(limit))])?.all().await?.results()?;
    Ok(rows
        .into_iter()
        .map(|r| DeadLetter {
            message_id: r.message_id,
            queue: r.queue,
            body: r.body,
            reason: r.reason,
            attempts: r.attempts as u32,
            recorded_at: r.recorded_at as i64,
        })
        .collect())
}

/// The jobs being retried after a failed delivery, newest failure first.
pub async fn retrying(env: &Env, limit: u32) -> worker::Result<Vec<jobs::RetryingJob>> {
    #[derive(serde::Deserialize)]
    struct Row {
        message_id: String,
        reason: String,
        attempts: f64,
        failed_at: f64,
    }
    let rows: Vec<Row> = env.d1("DB")?.prepare(jobs::LIST_FAILURES).bind(&[JsValue::from_f64(f64::from(limit))])?.all().await?.results()?;
    Ok(rows
        .into_iter()
        .map(|r| jobs::RetryingJob {
            message_id: r.message_id,
            reason: r.reason,
            attempts: r.attempts as u32,
            failed_at: r.failed_at as i64,
        })
        .collect())
}
