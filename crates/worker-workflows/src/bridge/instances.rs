//! Creating and deleting instances the way every entry point should (HTTP, queues,
//! crons): a create is claimed in the D1 instance index (which listing reads, and which
//! settles races on one id), then made by the engine, which never runs an id twice,
//! with the workflow's retention default from the registry; a delete leaves the index
//! too, so listing stays true.

use crate::bridge::js::random_uuid;
use crate::bridge::{Instance, NewInstance, WorkflowBinding};
use crate::core::callback::DeliveryOutcome;
use crate::core::engine_error::BindingError;
use crate::core::instance_batch::{CreateEntry, DeleteEntry};
use crate::core::instance_index::{self, Cursor, IndexedInstance};
use crate::core::instance_options::Retention;
use crate::registry::WorkflowSpec;
use wasm_bindgen::JsValue;
use worker::{console_log, D1PreparedStatement, Env};

/// An instance and whether this call created it (false: the id existed already).
pub struct Created {
    /// The instance.
    pub instance: Instance,
    /// Whether this call created it.
    pub created: bool,
}

const INDEX_DB: &str = "DB";

fn index_error(e: worker::Error) -> BindingError {
    BindingError::Engine { name: "D1Error".into(), message: format!("instance index: {e}") }
}

/// Claims `(workflow, id)` in the index: true for exactly one of any number of
/// racing requests. The local engine's create is check-then-create, so racing creates
/// of one id all "succeed" there (with one run); the claim is what tells this API
/// which request created the instance.
async fn claim(env: &Env, workflow: &str, id: &str) -> Result<bool, BindingError> {
    let result = env
        .d1(INDEX_DB)
        .and_then(|db| db.prepare(instance_index::INSERT).bind(&[workflow.into(), id.into(), JsValue::from_f64(js_sys::Date::now())]))
        .map_err(index_error)?
        .run()
        .await
        .map_err(index_error)?;
    Ok(result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) > 0)
}

fn log_index_error(workflow: &str, what: &str, e: impl std::fmt::Display) {
    console_log!("{}", serde_json::json!({"level": "error", "workflow": workflow, "error": format!("instance index {what}: {e}")}));
}

/// Runs one statement per id in one D1 round trip. The engine already holds the
/// instances, so a failure here is logged rather than failing them.
async fn index_batch(env: &Env, workflow: &str, sql: &str, ids: &[&str], with_time: bool) {
    if ids.is_empty() {
        return;
    }
    let result = async {
        let db = env.d1(INDEX_DB)?;
        let now = JsValue::from_f64(js_sys::Date::now());
        let statements = ids
            .iter()
            .map(|id| {
                let mut args = vec![workflow.into(), (*id).into()];
                if with_time {
                    args.push(now.clone());
                }
                db.prepare(sql).bind(&args)
            })
            .collect::<worker::Result<Vec<D1PreparedStatement>>>()?;
        db.batch(statements).await
    }
    .await;
    if let Err(e) = result {
        log_index_error(workflow, if with_time { "record" } else { "removal" }, e);
    }
}

/// Gives a claim back after the engine refused the create, so a later request can try again.
async fn release(env: &Env, workflow: &str, id: &str) {
    let result = async { env.d1(INDEX_DB)?.prepare(instance_index::DELETE).bind(&[workflow.into(), id.into()])?.run().await }.await;
    if let Err(e) = result {
        console_log!(
            "{}",
            serde_json::json!({"level": "error", "workflow": workflow, "instance": id, "error": format!("instance index release failed: {e}")})
        );
    }
}

/// Creates one instance with the workflow's default retention; an id that exists
/// returns the existing instance, never a second run, also when many requests race
/// with one id.
pub async fn create(env: &Env, spec: &WorkflowSpec, id: Option<&str>, params: &serde_json::Value) -> Result<Created, BindingError> {
    create_with(env, spec, id, params, Retention::new()).await
}

/// [`create`] with a retention, whose unset parts take the workflow's default.
pub async fn create_with(
    env: &Env,
    spec: &WorkflowSpec,
    id: Option<&str>,
    params: &serde_json::Value,
    retention: Retention,
) -> Result<Created, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let id = id.map(str::to_string).unwrap_or_else(random_uuid);
    crate::core::validate::instance_id(&id)?;
    let retention = retention.or(spec.default_retention());
    retention.to_engine()?;
    let new = NewInstance { id: Some(id.clone()), params, retention: Some(retention) };
    if claim(env, spec.name, &id).await? {
        return match binding.create_with(&new).await {
            Ok(instance) => Ok(Created { instance, created: true }),
            Err(BindingError::AlreadyExists(id)) => Ok(Created { instance: binding.get(&id).await?, created: false }),
            Err(e) => {
                release(env, spec.name, &id).await;
                Err(e)
            }
        };
    }
    // Another request holds the claim: answer with its instance once the engine has it.
    for delay_ms in [0, 50, 100, 200, 400, 800, 1600] {
        if delay_ms > 0 {
            worker::Delay::from(std::time::Duration::from_millis(delay_ms)).await;
        }
        match binding.get(&id).await {
            Ok(instance) => return Ok(Created { instance, created: false }),
            Err(BindingError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    // A stale claim (its instance expired from the engine): the engine decides.
    match binding.create_with(&new).await {
        Ok(instance) => Ok(Created { instance, created: true }),
        Err(BindingError::AlreadyExists(id)) => Ok(Created { instance: binding.get(&id).await?, created: false }),
        Err(e) => Err(e),
    }
}

/// Creates up to 100 instances in one engine call (entries without a retention take
/// the workflow's default, part by part), answering per entry in order: created,
/// already existed, or failed with a code. Instances that exist afterwards are recorded
/// in the index for listing (an existing row keeps its time).
pub async fn create_batch(
    env: &Env,
    spec: &WorkflowSpec,
    mut batch: Vec<NewInstance<serde_json::Value>>,
) -> Result<Vec<CreateEntry>, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let default = spec.default_retention();
    for new in &mut batch {
        new.retention = Some(new.retention.take().unwrap_or_default().or(default.clone()));
    }
    let entries = binding.create_batch(&batch).await?;
    let existing: Vec<&str> = entries.iter().filter(|e| e.exists()).filter_map(|e| e.id.as_deref()).collect();
    index_batch(env, spec.name, instance_index::INSERT, &existing, true).await;
    Ok(entries)
}

/// Deletes one instance and its index row. A missing instance is `NotFound`, and its
/// index row (if any) goes too.
pub async fn delete(env: &Env, spec: &WorkflowSpec, id: &str) -> Result<(), BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let outcome = match binding.get(id).await {
        Ok(instance) => instance.delete().await,
        Err(e) => Err(e),
    };
    if matches!(outcome, Ok(()) | Err(BindingError::NotFound(_))) {
        index_batch(env, spec.name, instance_index::DELETE, &[id], false).await;
    }
    outcome
}

/// Deletes up to 100 instances in one engine call, answering per id; every id that is
/// gone afterwards (deleted, or not found) leaves the index.
pub async fn delete_batch(env: &Env, spec: &WorkflowSpec, ids: &[String]) -> Result<Vec<DeleteEntry>, BindingError> {
    let entries = WorkflowBinding::from_env(env, spec.binding)?.delete_batch(ids).await?;
    let gone: Vec<&str> = entries.iter().filter(|e| e.gone()).map(|e| e.id.as_str()).collect();
    index_batch(env, spec.name, instance_index::DELETE, &gone, false).await;
    Ok(entries)
}

/// One page of a workflow's instances, newest first, and the cursor of the next.
pub async fn list(env: &Env, workflow: &str, cursor: &Cursor, limit: u32) -> worker::Result<(Vec<IndexedInstance>, Option<String>)> {
    let rows: Vec<IndexedInstance> = env
        .d1(INDEX_DB)?
        .prepare(instance_index::PAGE)
        .bind(&[
            workflow.into(),
            JsValue::from_f64(cursor.created_at as f64),
            cursor.id.as_str().into(),
            JsValue::from_f64(f64::from(limit + 1)),
        ])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| IndexedInstance { id: r.id, created_at: r.created_at as i64 })
        .collect();
    Ok(instance_index::paginate(rows, limit))
}

#[derive(serde::Deserialize)]
struct Row {
    id: String,
    created_at: f64,
}

/// How the instance's callback delivery ended, as the instance recorded it (`None`: no
/// callback, none ended yet, or no record to read: a failing index is logged, and the
/// status is shown without it).
pub async fn callback_outcome(env: &Env, workflow: &str, id: &str) -> Option<DeliveryOutcome> {
    let read = async {
        let statement = env.d1(INDEX_DB)?.prepare(instance_index::READ_CALLBACK).bind(&[workflow.into(), id.into()])?;
        let text: Option<Option<String>> = statement.first(Some("callback")).await?;
        Ok::<_, worker::Error>(text.flatten())
    };
    match read.await {
        Ok(text) => text.and_then(|text| serde_json::from_str(&text).ok()),
        Err(e) => {
            log_index_error(workflow, "read", e);
            None
        }
    }
}
