//! Creating and deleting instances the way every entry point should (HTTP, queues,
//! crons): a create, one or a batch, is claimed in the D1 instance index (which listing
//! reads, and which settles races on one id), then made by the engine, which never runs an id twice,
//! with the workflow's retention default from the registry; a delete leaves the index
//! too, so listing stays true.

use crate::bridge::handles::{TerminateOutcome, TerminatedInstance, MAX_TERMINATED};
use crate::bridge::js::random_uuid;
use crate::bridge::{Instance, NewInstance, WorkflowBinding};
use crate::core::callback::DeliveryOutcome;
use crate::core::child::{ChildNotice, InstanceRef};
use crate::core::engine_error::BindingError;
use crate::core::instance_batch::{codes, CreateEntry, CreateOutcome, DeleteEntry, EntryError};
use crate::core::instance_index::{self, Cursor, IndexedInstance};
use crate::core::instance_options::Retention;
use crate::core::status::InstanceStatus;
use crate::registry::{Registry, WorkflowSpec};
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
async fn claim(env: &Env, workflow: &str, id: &str, parent: Option<&InstanceRef>) -> Result<bool, BindingError> {
    let result = env
        .d1(INDEX_DB)
        .and_then(|db| claim_statement(&db, workflow, id, JsValue::from_f64(js_sys::Date::now()), parent))
        .map_err(index_error)?
        .run()
        .await
        .map_err(index_error)?;
    Ok(result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) > 0)
}

/// The claim of one id: with its parent for a child workflow ([`instance_index::INSERT_CHILD`]).
fn claim_statement(
    db: &worker::D1Database,
    workflow: &str,
    id: &str,
    now: JsValue,
    parent: Option<&InstanceRef>,
) -> worker::Result<D1PreparedStatement> {
    match parent {
        None => db.prepare(instance_index::INSERT).bind(&[workflow.into(), id.into(), now]),
        Some(parent) => db.prepare(instance_index::INSERT_CHILD).bind(&[
            workflow.into(),
            id.into(),
            now,
            parent.workflow.as_str().into(),
            parent.id.as_str().into(),
        ]),
    }
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
    create_claimed(env, spec, id, params, retention, None).await
}

/// [`create`] of a child workflow: `params` are the child's envelope
/// (`core::child::wrap`), and its parent is recorded with its claim in the index.
pub async fn create_child(
    env: &Env,
    spec: &WorkflowSpec,
    id: &str,
    params: &serde_json::Value,
    parent: &InstanceRef,
) -> Result<Created, BindingError> {
    create_claimed(env, spec, Some(id), params, Retention::new(), Some(parent)).await
}

async fn create_claimed(
    env: &Env,
    spec: &WorkflowSpec,
    id: Option<&str>,
    params: &serde_json::Value,
    retention: Retention,
    parent: Option<&InstanceRef>,
) -> Result<Created, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    let id = id.map(str::to_string).unwrap_or_else(random_uuid);
    crate::core::validate::instance_id(&id)?;
    let retention = retention.or(spec.default_retention());
    retention.to_engine()?;
    let new = NewInstance {
        id: Some(id.clone()),
        params,
        retention: Some(retention),
        location_hint: spec.settings.location_hint.map(str::to_string),
    };
    if claim(env, spec.name, &id, parent).await? {
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

/// Claims each id in the index in one D1 round trip: true where this call claimed it,
/// false where another request (or an instance created earlier) holds it.
async fn claim_all(env: &Env, workflow: &str, ids: &[&str], parent: Option<&InstanceRef>) -> Result<Vec<bool>, BindingError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let db = env.d1(INDEX_DB).map_err(index_error)?;
    let now = JsValue::from_f64(js_sys::Date::now());
    let statements = ids
        .iter()
        .map(|id| claim_statement(&db, workflow, id, now.clone(), parent))
        .collect::<worker::Result<Vec<D1PreparedStatement>>>()
        .map_err(index_error)?;
    let results = db.batch(statements).await.map_err(index_error)?;
    if results.len() != ids.len() {
        return Err(index_error(worker::Error::RustError(format!("{} claims answered for {} ids", results.len(), ids.len()))));
    }
    Ok(results.iter().map(|r| r.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) > 0).collect())
}

/// What became of an id another request had claimed.
enum Theirs {
    /// Its instance exists: the entry existed.
    Exists,
    /// No instance came in time: a stale claim (its instance expired from the engine),
    /// so the engine decides, as for [`create_with`].
    Stale,
    /// Reading it failed.
    Failed(BindingError),
}

/// Waits briefly for the instance of an id another request claimed to reach the engine.
async fn wait_for_theirs(binding: &WorkflowBinding, id: &str) -> Theirs {
    for delay_ms in [0, 50, 100, 200, 400, 800, 1600] {
        if delay_ms > 0 {
            worker::Delay::from(std::time::Duration::from_millis(delay_ms)).await;
        }
        match binding.get(id).await {
            Ok(_) => return Theirs::Exists,
            Err(BindingError::NotFound(_)) => continue,
            Err(e) => return Theirs::Failed(e),
        }
    }
    Theirs::Stale
}

/// Creates up to 100 instances in one engine call, each claimed in the index first as
/// [`create_with`] claims one (entries without an id get a UUID here, so they can be;
/// entries without a retention take the workflow's default, part by part). Answers per
/// entry, in order: created, already existed, or failed with a code. The claims are one
/// D1 batch; only claimed ids (and stale claims) go to the engine, so of any number of
/// racing requests with one id exactly one reports it created and the rest existed; a
/// claim the engine refused is given back.
pub async fn create_batch(
    env: &Env,
    spec: &WorkflowSpec,
    batch: Vec<NewInstance<serde_json::Value>>,
) -> Result<Vec<CreateEntry>, BindingError> {
    create_batch_claimed(env, spec, batch, None).await
}

/// [`create_batch`] of child workflows of `parent` (their params are envelopes,
/// `core::child::wrap`), each recorded with its parent in the index.
pub async fn create_child_batch(
    env: &Env,
    spec: &WorkflowSpec,
    batch: Vec<NewInstance<serde_json::Value>>,
    parent: &InstanceRef,
) -> Result<Vec<CreateEntry>, BindingError> {
    create_batch_claimed(env, spec, batch, Some(parent)).await
}

async fn create_batch_claimed(
    env: &Env,
    spec: &WorkflowSpec,
    mut batch: Vec<NewInstance<serde_json::Value>>,
    parent: Option<&InstanceRef>,
) -> Result<Vec<CreateEntry>, BindingError> {
    let binding = WorkflowBinding::from_env(env, spec.binding)?;
    BindingError::check_batch_size(batch.len())?;
    let default = spec.default_retention();
    for new in &mut batch {
        new.retention = Some(new.retention.take().unwrap_or_default().or(default.clone()));
        if new.location_hint.is_none() {
            new.location_hint = spec.settings.location_hint.map(str::to_string);
        }
        if new.id.is_none() {
            new.id = Some(random_uuid());
        }
    }
    // Entries the binding refuses (a malformed, reserved or repeated id, a bad retention)
    // are not claimed: it answers them itself.
    let mut seen = std::collections::HashSet::new();
    let claimable: Vec<usize> = (0..batch.len())
        .filter(|&i| {
            let new = &batch[i];
            let id = new.id.as_deref().unwrap_or_default();
            crate::core::validate::instance_id(id).is_ok()
                && new.retention.as_ref().is_none_or(|r| r.to_engine().is_ok())
                && seen.insert(id.to_string())
        })
        .collect();
    let ids: Vec<&str> = claimable.iter().map(|&i| batch[i].id.as_deref().unwrap_or_default()).collect();
    let claimed = claim_all(env, spec.name, &ids, parent).await?;
    let mine: Vec<usize> = claimable.iter().zip(&claimed).filter(|(_, &c)| c).map(|(&i, _)| i).collect();
    let theirs: Vec<usize> = claimable.iter().zip(&claimed).filter(|(_, &c)| !c).map(|(&i, _)| i).collect();

    let waits =
        futures_util::future::join_all(theirs.iter().map(|&i| wait_for_theirs(&binding, batch[i].id.as_deref().unwrap_or_default()))).await;
    let mut answered: Vec<CreateEntry> = Vec::with_capacity(batch.len());
    let mut skip = std::collections::HashSet::new();
    for (&i, outcome) in theirs.iter().zip(waits) {
        let id = batch[i].id.clone();
        match outcome {
            Theirs::Exists => answered.push(CreateEntry { index: i, id, outcome: CreateOutcome::AlreadyExists }),
            Theirs::Failed(e) => answered.push(CreateEntry {
                index: i,
                id,
                outcome: CreateOutcome::Failed(EntryError::new(codes::ENGINE_ERROR, e.to_string())),
            }),
            Theirs::Stale => continue,
        }
        skip.insert(i);
    }

    // One engine call for the rest: claimed ids, stale claims, and the entries the binding answers itself.
    let mine_ids: Vec<String> = mine.iter().filter_map(|&i| batch[i].id.clone()).collect();
    let positions: Vec<usize> = (0..batch.len()).filter(|i| !skip.contains(i)).collect();
    let sending: Vec<NewInstance<serde_json::Value>> =
        batch.into_iter().enumerate().filter(|(i, _)| !skip.contains(i)).map(|(_, new)| new).collect();
    if !sending.is_empty() {
        let entries = match binding.create_batch(&sending).await {
            Ok(entries) => entries,
            Err(e) => {
                let ids: Vec<&str> = mine_ids.iter().map(String::as_str).collect();
                index_batch(env, spec.name, instance_index::DELETE, &ids, false).await;
                return Err(e);
            }
        };
        // The engine's entries count over what was sent: back to the request's positions.
        let entries: Vec<CreateEntry> =
            entries.into_iter().filter_map(|e| positions.get(e.index).map(|&index| CreateEntry { index, ..e })).collect();
        let refused: Vec<&str> =
            entries.iter().filter(|e| !e.exists()).filter_map(|e| e.id.as_deref()).filter(|id| mine_ids.iter().any(|m| m == id)).collect();
        index_batch(env, spec.name, instance_index::DELETE, &refused, false).await;
        answered.extend(entries);
    }
    answered.sort_by_key(|e| e.index);
    Ok(answered)
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

/// The instance's index row as the status route reads it (its recorded finished status,
/// callback outcome and parent, in one round trip); `None` when it has none, or when the
/// index cannot say (logged: the status is then read from the engine and shown without
/// the callback and parent).
pub async fn status_row(env: &Env, workflow: &str, id: &str) -> Option<instance_index::StatusRow> {
    let read = async {
        env.d1(INDEX_DB)?
            .prepare(instance_index::STATUS_ROW)
            .bind(&[workflow.into(), id.into()])?
            .first::<instance_index::StatusRow>(None)
            .await
    };
    match read.await {
        Ok(row) => row,
        Err(e) => {
            log_index_error(workflow, "status read", e);
            None
        }
    }
}

/// Records `status`, read from the engine at `now_ms` after `row` was read, as the
/// instance's finished status when it is one ([`instance_index::final_record`]), unless
/// the row changed meanwhile (a restart, terminate or delete). A failure is logged: the
/// next read asks the engine again.
pub async fn record_final(env: &Env, workflow: &str, id: &str, row: &instance_index::StatusRow, status: &InstanceStatus, now_ms: f64) {
    let Some(text) = instance_index::final_record(status) else { return };
    let result = async {
        env.d1(INDEX_DB)?
            .prepare(instance_index::RECORD_FINAL)
            .bind(&[
                workflow.into(),
                id.into(),
                text.into(),
                JsValue::from_f64(now_ms),
                JsValue::from_f64(row.created_at),
                JsValue::from_f64(row.generation),
            ])?
            .run()
            .await
    };
    if let Err(e) = result.await {
        log_index_error(workflow, "status record", e);
    }
}

/// Forgets the instance's recorded finished status, after a restart or a terminate
/// (a delete removes its row). A failure is logged; the record then lasts at most
/// [`instance_index::FINAL_STATUS_MAX_AGE_MS`].
pub async fn forget_final(env: &Env, workflow: &str, id: &str) {
    index_batch(env, workflow, instance_index::FORGET_FINAL, &[id], false).await;
}

/// The child workflows an instance started (recorded with their claims), oldest first,
/// at most `limit` of them.
pub async fn children_of(env: &Env, parent: &InstanceRef, limit: usize) -> Result<Vec<InstanceRef>, BindingError> {
    #[derive(serde::Deserialize)]
    struct ChildRow {
        workflow: String,
        id: String,
    }
    let rows = async {
        env.d1(INDEX_DB)?
            .prepare(instance_index::CHILDREN)
            .bind(&[parent.workflow.as_str().into(), parent.id.as_str().into(), JsValue::from_f64(limit as f64)])?
            .all()
            .await?
            .results::<ChildRow>()
    }
    .await
    .map_err(index_error)?;
    Ok(rows.into_iter().map(|r| InstanceRef::new(r.workflow, r.id)).collect())
}

/// The parent of an instance that a workflow started as its child; `None` for any other
/// (and when the index cannot say, which is logged: a status is shown without it).
pub async fn parent_of(env: &Env, workflow: &str, id: &str) -> Option<InstanceRef> {
    #[derive(serde::Deserialize)]
    struct ParentRow {
        parent_workflow: Option<String>,
        parent_id: Option<String>,
    }
    let read =
        async { env.d1(INDEX_DB)?.prepare(instance_index::PARENT).bind(&[workflow.into(), id.into()])?.first::<ParentRow>(None).await };
    match read.await {
        Ok(Some(ParentRow { parent_workflow: Some(workflow), parent_id: Some(id) })) => Some(InstanceRef::new(workflow, id)),
        Ok(_) => None,
        Err(e) => {
            log_index_error(workflow, "parent read", e);
            None
        }
    }
}

/// Tells `parent` that its child `child` was terminated (the notice the child's own run
/// cannot send), so a parent waiting for it wakes now rather than at its next check. A
/// parent that is gone or has finished cannot be told: logged, never an error.
pub async fn tell_parent_terminated(env: &Env, registry: &Registry, parent: &InstanceRef, child: &InstanceRef) {
    let told = async {
        let spec = registry.by_name(&parent.workflow).ok_or_else(|| BindingError::MissingBinding(parent.workflow.clone()))?;
        let instance = WorkflowBinding::from_env(env, spec.binding)?.get(&parent.id).await?;
        instance.send_event(&crate::core::child::notice_type(child), &ChildNotice::terminated(child.clone())).await
    };
    if let Err(e) = told.await {
        console_log!(
            "{}",
            serde_json::json!({"level": "warn", "workflow": child.workflow, "instance": child.id, "parent": parent.id, "error": format!("the parent could not be told of the terminate: {e}")})
        );
    }
}

/// Terminates instance `id` of `spec` (with its steps' rollbacks first when `rollback`)
/// unless it has ended, telling its parent if it is a child; with `children`, then every
/// descendant (its child workflows, theirs, …) that has not ended, found in the instance
/// index, children before grandchildren, up to [`MAX_TERMINATED`] instances in all. The
/// instance goes first, so it starts no new child meanwhile. Answers for each instance
/// reached, the instance first; an instance the engine does not have is `NotFound`.
pub async fn terminate(
    env: &Env,
    registry: &Registry,
    spec: &WorkflowSpec,
    id: &str,
    rollback: bool,
    children: bool,
) -> Result<Vec<TerminatedInstance>, BindingError> {
    let root = InstanceRef::new(spec.name, id);
    let instance = WorkflowBinding::from_env(env, spec.binding)?.get(id).await?;
    let state = instance.state().await?;
    let mut reached = Vec::new();
    if state.is_finished() {
        reached.push(TerminatedInstance { instance: root.clone(), outcome: TerminateOutcome::Ended(state) });
    } else {
        if rollback {
            instance.terminate_with_rollback().await?;
        } else {
            instance.terminate().await?;
        }
        reached.push(TerminatedInstance { instance: root.clone(), outcome: TerminateOutcome::Terminated });
        // A status recorded meanwhile (the instance ending as it was terminated) is not its last.
        forget_final(env, spec.name, id).await;
        if let Some(parent) = parent_of(env, spec.name, id).await {
            tell_parent_terminated(env, registry, &parent, &root).await;
        }
    }
    if !children {
        return Ok(reached);
    }
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(parent) = queue.pop_front() {
        let left = MAX_TERMINATED.saturating_sub(reached.len());
        if left == 0 {
            break;
        }
        for child in children_of(env, &parent, left).await? {
            let outcome = terminate_child(env, registry, &child).await;
            reached.push(TerminatedInstance { instance: child.clone(), outcome });
            queue.push_back(child);
        }
    }
    Ok(reached)
}

/// Terminates one descendant unless it has ended (its parent is being terminated: no notice).
async fn terminate_child(env: &Env, registry: &Registry, child: &InstanceRef) -> TerminateOutcome {
    let Some(spec) = registry.by_name(&child.workflow) else {
        return TerminateOutcome::Failed(format!("{:?} is not a workflow of this Worker", child.workflow));
    };
    let outcome = async {
        let instance = WorkflowBinding::from_env(env, spec.binding)?.get(&child.id).await?;
        let state = instance.state().await?;
        if state.is_finished() {
            return Ok(TerminateOutcome::Ended(state));
        }
        instance.terminate().await.map(|()| TerminateOutcome::Terminated)
    };
    match outcome.await {
        Ok(outcome) => outcome,
        Err(BindingError::NotFound(_)) => TerminateOutcome::NotFound,
        Err(e) => TerminateOutcome::Failed(e.to_string()),
    }
}
