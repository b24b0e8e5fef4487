//! `approval`: a human in the loop. Records a pending approval in D1, waits for an
//! `approval-response` event (`{approved, by?}`) for at most `timeout` (48 hours by
//! default), and records the decision: approved, rejected, or auto-rejected when
//! nobody answered in time.

use worker_workflows::bridge::{Database, Env, SqlValue, Step, Workflow, WorkflowEvent};
use worker_workflows::core::duration::DurationParam;
use worker_workflows::core::events::{Event, EventSpec};
use worker_workflows::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalParams {
    pub user_id: String,
    /// How long to wait for a response before auto-rejecting; "48 hours" when absent.
    #[serde(default)]
    pub timeout: Option<DurationParam>,
}

/// The payload of an `approval-response` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResponse {
    pub approved: bool,
    /// Who decided; recorded as `decided_by`.
    #[serde(default)]
    pub by: Option<String>,
}

impl Event for ApprovalResponse {
    const TYPE: &'static str = "approval-response";
}

/// How the approval ended, as written to `approvals.status` and to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Approved,
    Rejected,
    AutoRejected,
}

impl Decision {
    fn status(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
            Decision::AutoRejected => "auto-rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalOutput {
    pub decision: Decision,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(48 * 60 * 60);

/// Who `decided_by` names when the wait ran out.
const TIMEOUT_DECIDER: &str = "system";

const INSERT_APPROVAL: &str =
    "INSERT OR IGNORE INTO approvals (id, user_id, status, created_at) VALUES (?1, ?2, 'pending', ?3)";
const RECORD_DECISION: &str = "UPDATE approvals SET status = ?1, decided_by = ?2, decided_at = ?3 WHERE id = ?4";

pub struct ApprovalWorkflow {
    env: Env,
}

impl ApprovalWorkflow {
    /// The D1 database; a missing binding cannot be fixed by a retry.
    fn db(&self) -> Result<Database, StepError> {
        self.env.database("DB")
    }

    /// Runs one statement; a D1 failure fails the attempt, so the engine retries it.
    async fn execute(&self, sql: &str, values: Vec<SqlValue<'_>>) -> Result<(), StepError> {
        self.db()?.prepare(sql).bind(values).run().await?;
        Ok(())
    }

    /// Writes the decision to the approval's row. Unconditional on the current status,
    /// so a retried attempt (or a restarted instance) writes the same outcome again.
    async fn record(&self, id: &str, decision: Decision, by: Option<&str>) -> Result<(), StepError> {
        let values = vec![decision.status().into(), by.into(), self.env.now_millis().into(), id.into()];
        self.execute(RECORD_DECISION, values).await
    }
}

impl Workflow for ApprovalWorkflow {
    type Params = ApprovalParams;
    type Output = ApprovalOutput;

    const EVENTS: &'static [EventSpec] = &[EventSpec::of::<ApprovalResponse>()];

    fn new(env: Env) -> Self {
        ApprovalWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<ApprovalParams>, step: Step<'_>) -> Result<ApprovalOutput, StepError> {
        let params = &event.payload;
        let id = event.instance_id.as_str();

        // INSERT OR IGNORE: a retried attempt finds the row already there.
        step.run("create-approval", |_| async {
            let values = vec![id.into(), params.user_id.as_str().into(), self.env.now_millis().into()];
            self.execute(INSERT_APPROVAL, values).await
        })
        .await?;

        let timeout = params.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        let (decision, by) = match step.wait_for::<ApprovalResponse>("wait-for-approval", timeout).await {
            Ok(response) if response.payload.approved => (Decision::Approved, response.payload.by),
            Ok(response) => (Decision::Rejected, response.payload.by),
            // Nobody answered in time: the safe outcome is a rejection.
            Err(StepError::Timeout(_)) => (Decision::AutoRejected, Some(TIMEOUT_DECIDER.to_string())),
            Err(other) => return Err(other),
        };

        let name = match decision {
            Decision::Approved => "process-approval",
            Decision::Rejected => "handle-rejection",
            Decision::AutoRejected => "auto-reject",
        };
        step.run(name, |_| self.record(id, decision, by.as_deref())).await?;

        Ok(ApprovalOutput { decision })
    }
}

