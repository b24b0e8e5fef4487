//! `daily-cleanup`: started by the daily cron, deletes instance-index rows and dead
//! letters past retention, one step per bounded batch, and outputs the counts.

use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use worker_workflows::core::retention::{self, BATCH_ROWS, MAX_BATCHES};
use worker_workflows::core::step_error::StepError;
use serde::{Deserialize, Serialize};

/// What the cron passes: when it fired (Unix ms) and which expression. Both optional: a
/// run started by a schedule reads its tick from `event.schedule` first, and one created
/// by hand with no time cleans up against its creation time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CleanupParams {
    #[serde(default)]
    pub scheduled_time: Option<i64>,
    #[serde(default)]
    pub cron: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupOutput {
    pub cutoff: i64,
    pub instances_deleted: u64,
    pub dead_letters_deleted: u64,
    /// The cron whose tick started the run (`event.schedule`), absent for a run created by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<String>,
}

pub struct CleanupWorkflow {
    env: Env,
}

impl CleanupWorkflow {
    /// Deletes one batch older than `cutoff`, returning how many rows went.
    async fn delete_batch(&self, sql: &str, cutoff: i64) -> Result<u64, StepError> {
        let db = self.env.database("DB")?;
        let result = db.prepare(sql).bind([cutoff.into(), BATCH_ROWS.into()]).run().await?;
        Ok(result.changes)
    }

    /// Deletes in batches of `BATCH_ROWS`, one step each, until a batch comes back short.
    async fn delete_old(&self, step: &Step<'_>, table: &str, sql: &str, cutoff: i64) -> Result<u64, StepError> {
        let mut total = 0;
        for batch in 0..MAX_BATCHES {
            let deleted: u64 = step.run(&format!("delete {table} {batch}"), |_| self.delete_batch(sql, cutoff)).await?;
            total += deleted;
            if deleted < u64::from(BATCH_ROWS) {
                break;
            }
        }
        Ok(total)
    }
}

impl Workflow for CleanupWorkflow {
    type Params = CleanupParams;
    type Output = CleanupOutput;

    fn new(env: Env) -> Self {
        CleanupWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<CleanupParams>, step: Step<'_>) -> Result<CleanupOutput, StepError> {
        // The tick the run is for: the schedule's, else the params', else when it was created.
        let tick = match (&event.schedule, event.payload.scheduled_time) {
            (Some(schedule), _) => schedule.scheduled_millis() as i64,
            (None, Some(time)) => time,
            (None, None) => event.identity().created_at_ms as i64,
        };
        // The cutoff is a step result, so a replay deletes against the same one.
        let cutoff: i64 = step
            .run("cutoff", |_| async {
                let days = retention::parse_retention_days(self.env.var("RETENTION_DAYS").as_deref())
                    .map_err(StepError::NonRetryable)?;
                Ok(retention::cutoff_ms(tick, days))
            })
            .await?;
        let instances_deleted = self.delete_old(&step, "instances", retention::DELETE_OLD_INSTANCES, cutoff).await?;
        let dead_letters_deleted = self.delete_old(&step, "dead-letters", retention::DELETE_OLD_DEAD_LETTERS, cutoff).await?;
        let scheduled_by = event.schedule.as_ref().map(|s| s.cron.clone());
        Ok(CleanupOutput { cutoff, instances_deleted, dead_letters_deleted, scheduled_by })
    }
}
