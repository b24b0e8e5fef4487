//! An expense claim: the amount is held on the team's budget, a manager approves or
//! rejects it (an event), and an approved claim is paid. A rejected claim, or one nobody
//! decides within its deadline, fails, and the hold is released by its rollback.

use serde::{Deserialize, Serialize};
use worker_workflows::{Env, Event, EventSpec, Retries, Rollback, RollbackContext, Step, StepConfig, StepError, Workflow, WorkflowEvent};

/// What an instance is created with.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpenseParams {
    pub employee: String,
    pub amount_cents: u64,
    /// How long the manager has to decide (`"7 days"` when not given).
    #[serde(default)]
    pub deadline: Option<String>,
}

/// The manager's answer, sent as `POST /workflows/expense/instances/{id}/events/decision`.
#[derive(Debug, Deserialize)]
pub struct Decision {
    pub approved: bool,
    pub by: String,
}

impl Event for Decision {
    const TYPE: &'static str = "decision";
}

/// A paid claim.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Paid {
    pub hold: String,
    pub approved_by: String,
}

pub struct ExpenseWorkflow {
    env: Env,
}

impl Workflow for ExpenseWorkflow {
    type Params = ExpenseParams;
    type Output = Paid;
    const EVENTS: &'static [EventSpec] = &[EventSpec::of::<Decision>()];

    fn new(env: Env) -> Self {
        ExpenseWorkflow { env }
    }

    async fn run<'w>(&'w self, event: &'w WorkflowEvent<ExpenseParams>, step: Step<'w>) -> Result<Paid, StepError> {
        let claim = &event.payload;
        // The hold's id is this instance's life (its id and creation time): a retried,
        // replayed or restarted step holds once, and a new claim that reuses a deleted
        // claim's id gets a hold of its own. (Computed where used: the rollback outlives
        // `run`, so it may borrow the event but not a local.)
        let hold_id = move || event.identity().key();
        let hold: String = step
            .run_with_rollback(
                "hold budget",
                StepConfig::new().retries(Retries::new(3)),
                |_| async move {
                    let db = self.env.database("DB")?;
                    db.prepare("INSERT INTO holds (id, employee, amount_cents, state) VALUES (?1, ?2, ?3, 'held') ON CONFLICT (id) DO NOTHING")
                        .bind([hold_id().into(), claim.employee.as_str().into(), claim.amount_cents.into()])
                        .run()
                        .await?;
                    Ok(hold_id())
                },
                // Undone when the claim fails after the hold: the hold is released.
                Rollback::new(move |_undo: RollbackContext<String>| async move {
                    let db = self.env.database("DB")?;
                    db.prepare("UPDATE holds SET state = 'released' WHERE id = ?1 AND state = 'held'").bind([hold_id().into()]).run().await?;
                    Ok(())
                }),
            )
            .await?;

        let deadline = claim.deadline.as_deref().unwrap_or("7 days");
        let decision = match step.wait_for::<Decision>("manager decision", deadline).await {
            Ok(decision) => decision.payload,
            Err(StepError::Timeout(_)) => return Err(StepError::non_retryable(format!("no decision within {deadline}"))),
            Err(other) => return Err(other),
        };
        if !decision.approved {
            return Err(StepError::non_retryable(format!("rejected by {}", decision.by)));
        }

        step.run("pay", |_| async move {
            let db = self.env.database("DB")?;
            db.prepare("UPDATE holds SET state = 'paid' WHERE id = ?1").bind([hold_id().into()]).run().await?;
            Ok(())
        })
        .await?;
        Ok(Paid { hold, approved_by: decision.by })
    }
}
