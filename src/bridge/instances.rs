//! Creating instances the way every entry point should (HTTP, and later queues and
//! crons): claimed in the D1 instance index (which listing reads, and which settles
//! races on one id), then created by the engine, which never runs an id twice.

use crate::bridge::js::random_uuid;
use crate::bridge::{Instance, NewInstance, WorkflowBinding};
use crate::core::engine_error::BindingError;
use crate::core::instance_index::{self, Cursor, IndexedInstance};
use crate::registry::WorkflowSpec;
use wasm_bindgen::JsValue;
use worker::{console_log, Env};

/// An instance and whether this call created it (false: the id existed already).
pub struct Created {
    pub instance: Instance,
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

/// Records an instance created elsewhere (a queue batch) for listing. The engine
/// already holds the instance, so a failure here is logged rather than failing it.
pub async fn record(env: &Env, workflow: &str, id: &str) {
    if let Err(e) = claim(env, workflow, id).await {
        console_log!("{}", serde_json::json!({"level": "error", "workflow": workflow, "instance": id, "error": e.to_string()}));
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

/// Creates one instance; an id that exists returns the existing instance, never a
/// second run, also when many requests race with one id.
pub async fn create(env: &Env, spec: &WorkflowSpec, id: Option<&str>, params: &serde_json::Value) -> Result<Created, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let id = id.map(str::to_string).unwrap_or_else(random_uuid);
    crate::core::validate::instance_id(&id)?;
    if claim(env, spec.name, &id).await? {
        return match binding.create(Some(&id), params).await {
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
    match binding.create(Some(&id), params).await {
        Ok(instance) => Ok(Created { instance, created: true }),
        Err(BindingError::AlreadyExists(id)) => Ok(Created { instance: binding.get(&id).await?, created: false }),
        Err(e) => Err(e),
    }
}

/// Creates up to 100 instances in one engine call, answering for each (in order)
/// whether it was created or already existed.
pub async fn create_batch(
    env: &Env,
    spec: &WorkflowSpec,
    items: Vec<(Option<String>, serde_json::Value)>,
) -> Result<Vec<(String, bool)>, BindingError> {
    BindingError::check_batch_size(items.len())?;
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let batch: Vec<NewInstance<serde_json::Value>> =
        items.into_iter().map(|(id, params)| NewInstance { id: Some(id.unwrap_or_else(random_uuid)), params }).collect();
    let ids: Vec<String> = batch.iter().filter_map(|n| n.id.clone()).collect();
    let mut existed = Vec::with_capacity(ids.len());
    for id in &ids {
        existed.push(match binding.get(id).await {
            Ok(_) => true,
            Err(BindingError::NotFound(_)) => false,
            Err(e) => return Err(e),
        });
    }
    binding.create_batch(&batch).await?;
    for id in &ids {
        // Recorded for listing; the engine skipped the ids that existed.
        record(env, spec.name, id).await;
    }
    Ok(ids.into_iter().zip(existed).map(|(id, existed)| (id, !existed)).collect())
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
