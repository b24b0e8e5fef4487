//! Creating instances the way every entry point should (HTTP, and later queues and
//! crons): through the engine, which refuses a duplicate id atomically, and into the
//! D1 instance index, which listing reads.

use crate::bridge::{Instance, NewInstance, WorkflowBinding};
use crate::engine_error::BindingError;
use crate::instance_index::{self, Cursor, IndexedInstance};
use crate::registry::WorkflowSpec;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;
use worker::{console_log, Env};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

/// An instance and whether this call created it (false: the id existed already).
pub struct Created {
    pub instance: Instance,
    pub created: bool,
}

const INDEX_DB: &str = "DB";

/// Records an instance in the index. The engine already holds the instance, so a
/// failure here is logged rather than failing the create.
async fn record(env: &Env, workflow: &str, id: &str) {
    let result = async {
        env.d1(INDEX_DB)?
            .prepare(instance_index::INSERT)
            .bind(&[workflow.into(), id.into(), JsValue::from_f64(js_sys::Date::now())])?
            .run()
            .await
    }
    .await;
    if let Err(e) = result {
        console_log!("{}", serde_json::json!({"level": "error", "workflow": workflow, "instance": id, "error": format!("instance index insert failed: {e}")}));
    }
}

/// Creates one instance; an id that exists returns the existing instance, never a second run.
pub async fn create(env: &Env, spec: &WorkflowSpec, id: Option<&str>, params: &serde_json::Value) -> Result<Created, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let created = match binding.create(id, params).await {
        Ok(instance) => Created { instance, created: true },
        Err(BindingError::AlreadyExists(id)) => Created { instance: binding.get(&id).await?, created: false },
        Err(e) => return Err(e),
    };
    record(env, spec.name, created.instance.id()).await;
    Ok(created)
}

/// Creates up to 100 instances in one engine call, answering for each (in order)
/// whether it was created or already existed.
pub async fn create_batch(env: &Env, spec: &WorkflowSpec, items: Vec<(Option<String>, serde_json::Value)>) -> Result<Vec<(String, bool)>, BindingError> {
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
        record(env, spec.name, id).await;
    }
    Ok(ids.into_iter().zip(existed).map(|(id, existed)| (id, !existed)).collect())
}

/// One page of a workflow's instances, newest first, and the cursor of the next.
pub async fn list(env: &Env, workflow: &str, cursor: &Cursor, limit: u32) -> worker::Result<(Vec<IndexedInstance>, Option<String>)> {
    let rows: Vec<IndexedInstance> = env
        .d1(INDEX_DB)?
        .prepare(instance_index::PAGE)
        .bind(&[workflow.into(), JsValue::from_f64(cursor.created_at as f64), cursor.id.as_str().into(), JsValue::from_f64(f64::from(limit + 1))])?
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
