//! [`Step::patched`]: a durable answer to "was this instance created after this patch
//! was first seen?", so a deploy can change a workflow while instances of the old code
//! are in flight. The rule, the names and the SQL are `core::patch`; here are the step
//! and where first sightings are recorded ([`PatchBackend`]): the Worker's D1 database
//! ([`D1Patches`]) or the test engine's own record.

use super::engine::{AttemptFuture, LocalBoxFuture, StepCall};
use super::{Env, Step, StepContext};
use crate::core::patch;
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the first sightings of patches are kept.
pub trait PatchBackend {
    /// When a run of this Worker first asked for patch `patch` of `workflow`, in Unix
    /// milliseconds, recording now when no run had: the first writer wins, and every
    /// later call gets its time back.
    fn first_seen<'a>(&'a self, workflow: &'a str, patch: &'a str) -> LocalBoxFuture<'a, Result<u64, StepError>>;
}

/// What a run's [`Step`] needs for [`Step::patched`]: the workflow, the instance's
/// creation time and the backend; answers already given in this run are remembered, so
/// asking twice costs one step. Cheap to clone (the step handle's clones share it).
#[derive(Clone)]
pub struct PatchContext {
    workflow: Rc<str>,
    created_at_ms: u64,
    backend: Rc<dyn PatchBackend>,
    answers: Rc<RefCell<BTreeMap<String, bool>>>,
}

impl PatchContext {
    /// The context of a run of `workflow` for an instance created at `created_at` (its
    /// event's timestamp).
    pub fn new(workflow: &str, created_at: SystemTime, backend: Rc<dyn PatchBackend>) -> Self {
        let created_at_ms = created_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64);
        PatchContext { workflow: workflow.into(), created_at_ms, backend, answers: Rc::default() }
    }
}

/// The patch step's retries: D1 may be briefly unreachable; about a quarter of an hour
/// of retries (1 s doubling, 10 times) before the instance fails.
fn patch_step_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(10).delay("1 second").backoff(Backoff::Exponential)).timeout("30 seconds")
}

impl<'w> Step<'w> {
    /// Whether this instance takes the code a change added (`true`) or keeps the code it
    /// started with (`false`): the way to change a workflow whose instances are in flight.
    ///
    /// ```
    /// # use worker_workflows::bridge::Step;
    /// # use worker_workflows::core::step_error::StepError;
    /// async fn ship(step: Step<'_>) -> Result<(), StepError> {
    ///     step.run("charge", |_| async { Ok(()) }).await?;
    ///     if step.patched("fraud-check-before-ship").await? {
    ///         // Added by this deploy: instances that charged before it never run it.
    ///         step.run("fraud-check", |_| async { Ok(()) }).await?;
    ///     }
    ///     step.run("ship", |_| async { Ok(()) }).await
    /// }
    /// ```
    ///
    /// The answer is a durable step of its own, `patched:{id}`, so every later run of the
    /// instance (replays, after a `wrangler deploy` too) gets the same one. It is true for
    /// an instance created at or after the patch was first seen — the first time any run
    /// of this Worker asked for `id` in this workflow, recorded once in the D1 table
    /// `workflow_patches` (the migration `0002_worker_workflows_patches.sql`, in `DB`) —
    /// and false for one created before, which may have run the old code past this point.
    /// An instance created after the deploy but before any run reached the patch gets
    /// false too: the old code, which must stay correct until the patch is removed.
    ///
    /// The life of a patch: add the new code behind `patched("id")` with the old code in
    /// the `else`; deploy; wait until no instance created before the patch's
    /// `first_seen` can run again (finished, and not to be restarted); then remove the
    /// call and the old code, keeping the new. Never reuse an id, nor bring one back after
    /// a rollback of its deploy (instances created meanwhile ran the old code: use a new id).
    ///
    /// `id`: 1 to 100 letters, digits, `-`, `_` and `.`, else [`StepError::Invalid`]. The
    /// test engine answers from its own record (`TestEngine::upgrade` simulates a
    /// deploy), and its determinism check accepts the patch's step appearing in an old
    /// instance's replay.
    pub async fn patched(&self, id: &str) -> Result<bool, StepError> {
        patch::check_id(id).map_err(|e| StepError::Invalid(e.to_string()))?;
        let Some(context) = &self.patches else {
            return Err(StepError::non_retryable(
                "Step::patched: this step handle has no patch context (the engine that made it sets one)",
            ));
        };
        if let Some(&answer) = context.answers.borrow().get(id) {
            return Ok(answer);
        }
        let name = patch::step_name(id);
        let config = patch_step_config().to_engine()?;
        let attempt = |_: StepContext| -> AttemptFuture<'_> {
            Box::pin(async move {
                let first_seen = context.backend.first_seen(&context.workflow, id).await?;
                Ok(patch::is_patched(context.created_at_ms, first_seen).to_string())
            })
        };
        let text = self.engine.run(StepCall { name: &name, config: Some(config), attempt: &attempt, rollback: None }).await?;
        let answer: bool = serde_json::from_str(&text)
            .map_err(|e| StepError::Serialization(format!("the stored answer of step {name:?} is not a boolean: {e}")))?;
        context.answers.borrow_mut().insert(id.to_string(), answer);
        Ok(answer)
    }
}

/// First sightings in the Worker's D1 database `DB`, table `workflow_patches`
/// ([`PATCHES_MIGRATION`](crate::PATCHES_MIGRATION)), on the Worker's clock.
pub struct D1Patches {
    env: Env,
}

impl D1Patches {
    /// The record in `env`'s D1 database `DB`.
    pub fn new(env: Env) -> Self {
        D1Patches { env }
    }
}

impl PatchBackend for D1Patches {
    fn first_seen<'a>(&'a self, workflow: &'a str, patch_id: &'a str) -> LocalBoxFuture<'a, Result<u64, StepError>> {
        Box::pin(async move {
            let db = self.env.database(crate::INDEX_DATABASE)?;
            let now = self.env.now_millis();
            let seen: Option<u64> = db
                .prepare(patch::RECORD_FIRST_SEEN)
                .bind([workflow.into(), patch_id.into(), now.into()])
                .first(Some("first_seen"))
                .await
                .map_err(|e| match e {
                    // A missing table is configuration no retry fixes.
                    StepError::Failed(message) if message.contains("no such table") => StepError::NonRetryable(format!(
                        "Step::patched needs the table {} in the D1 database {}: apply the migration {} ({message})",
                        patch::TABLE,
                        crate::INDEX_DATABASE,
                        crate::PATCHES_MIGRATION.file_name
                    )),
                    other => other,
                })?;
            seen.ok_or_else(|| StepError::failed(format!("D1: recording patch {patch_id:?} returned no row")))
        })
    }
}
