//! The queue consumer and producer: `workflow-jobs` messages become workflow
//! instances (one `create_batch` per workflow per batch), and messages that can
//! never succeed, or that exhausted their retries (`workflow-jobs-dlq`), are
//! recorded as dead letters. Bound to the raw JS objects, since the queue's own
//! `attempts` and structured-clone bodies are what this needs.

use crate::bridge::instances;
use crate::bridge::NewInstance;
use crate::core::instance_batch::{codes, CreateOutcome, EntryError};
use crate::registry::WorkflowSpec;
use crate::triggers::jobs::{self, DeadLetter, Job, Poison};
use crate::workflows;
use js_sys::{Array, Promise, JSON};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::{console_log, console_warn, Env};

#[wasm_bindgen]
extern "C" {
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
    let messages = JSON::parse(&Value::Array(messages).to_string()).map_err(|e| crate::bridge::js_error_text(&e))?;
    let promise = queue.send_batch(&messages).map_err(|e| crate::bridge::js_error_text(&e))?;
    JsFuture::from(promise).await.map(drop).map_err(|e| crate::bridge::js_error_text(&e))
}

/// Sends jobs to `JOBS`.
pub async fn send(env: &Env, jobs: &[Job]) -> Result<(), String> {
    send_bodies(env, jobs.iter().map(|job| json!(job)).collect()).await
}

/// Sends one message body exactly as given (a string), as another producer could.
pub async fn send_raw(env: &Env, body: &str) -> Result<(), String> {
    send_bodies(env, vec![Value::String(body.to_string())]).await
}

/// Records a dead letter; false when it could not be recorded (then the message is
/// retried rather than lost).
async fn record_dead_letter(env: &Env, queue: &str, message: &JsMessage, reason: &str) -> bool {
    let letter = DeadLetter {
        message_id: message.id(),
        queue: queue.to_string(),
        body: body_text(message),
        reason: reason.to_string(),
        attempts: message.attempts() as u32,
        recorded_at: js_sys::Date::now() as i64,
    };
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

/// Test hook, off unless the var is set: jobs whose id starts with `flaky-` fail their
/// first N delivery attempts as a transient create failure would.
fn simulated_transient_failure(env: &Env, id: &str, attempts: u32) -> bool {
    let limit = env.var("TEST_FLAKY_JOB_ATTEMPTS").ok().and_then(|v| v.to_string().parse::<u32>().ok()).unwrap_or(0);
    limit > 0 && id.starts_with("flaky-") && attempts <= limit
}

/// A checked job waiting for its workflow's `create_batch`: message, instance id, params.
type PendingJob = (JsMessage, String, Value);

pub async fn consume(batch: JsMessageBatch, env: Env) {
    let queue = batch.queue();
    let messages: Vec<JsMessage> = batch.messages().iter().map(JsCast::unchecked_into).collect();
    if queue == jobs::DEAD_LETTER_QUEUE {
        for message in &messages {
            let reason = format!("retries exhausted after {} attempts", message.attempts());
            if record_dead_letter(&env, &queue, message, &reason).await {
                message.ack();
            } else {
                message.retry(&JsValue::UNDEFINED);
            }
        }
        return;
    }

    let mut by_workflow: BTreeMap<&'static str, (&'static WorkflowSpec, Vec<PendingJob>)> = BTreeMap::new();
    for message in messages {
        let checked = jobs::parse(&body_text(&message)).and_then(|job| {
            let spec =
                jobs::check(&job, |spec, params| workflows::check_workflow_params(spec.class_name, params).map_err(|e| e.to_string()))?;
            Ok::<_, Poison>((spec, jobs::instance_id(&job, &message.id()), job.params))
        });
        match checked {
            Ok((spec, id, params)) => {
                by_workflow.entry(spec.name).or_insert_with(|| (spec, Vec::new())).1.push((message, id, params));
            }
            Err(poison) => {
                if record_dead_letter(&env, &queue, &message, &poison.to_string()).await {
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
    let mut outcome: HashMap<String, Option<EntryError>> = HashMap::new();
    let mut sending: Vec<NewInstance<Value>> = Vec::new();
    for (message, id, params) in &items {
        if outcome.contains_key(id) {
            continue;
        }
        if simulated_transient_failure(env, id, message.attempts() as u32) {
            // The test hook fails a job as an entry of the engine's answer would, unsent.
            outcome.insert(id.clone(), Some(EntryError::new(codes::ENGINE_ERROR, "simulated transient failure")));
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
            Some(None) => message.ack(),
            failed => {
                // One line per retried job, naming the jobs of its batch that were acked.
                console_warn!(
                    "{}",
                    json!({"level": "warn", "type": "queue", "what": "job retried", "workflow": spec.name, "instance": id,
                           "attempts": message.attempts() as u32, "error": failed.cloned().flatten(), "ackedInSameBatch": acked})
                );
                retry_later(message);
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
