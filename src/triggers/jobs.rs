//! Jobs: workflow instances requested through the `JOBS` queue. What a job message
//! is, which instance id it gets (stable across redeliveries, so a redelivered
//! message never starts a second run), what can never succeed (a dead letter,
//! recorded with its reason) and how long a transient failure waits before a retry.

use crate::core::validate;
use crate::registry::{self, WorkflowSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The job queue and its dead-letter queue (wrangler.jsonc `queues`).
pub const QUEUE: &str = "workflow-jobs";
pub const DEAD_LETTER_QUEUE: &str = "workflow-jobs-dlq";

/// One job: start `workflow` with `params`, as instance `id` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub workflow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub params: Value,
}

/// Why a job can never succeed: acked and recorded as a dead letter, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("not a job: {0}")]
    NotAJob(String),
    #[error("no workflow named {0:?}")]
    UnknownWorkflow(String),
    #[error("{0}")]
    InvalidId(String),
    #[error("params do not match the workflow's params: {0}")]
    InvalidParams(String),
}

/// Checks a job: a known workflow, a valid id, and params that `check_params` (the
/// workflow's typed params) accepts.
pub fn check(job: &Job, check_params: impl Fn(&WorkflowSpec, &Value) -> Result<(), String>) -> Result<&'static WorkflowSpec, Poison> {
    let spec = registry::workflow_by_name(&job.workflow).ok_or_else(|| Poison::UnknownWorkflow(job.workflow.clone()))?;
    if let Some(id) = &job.id {
        validate::instance_id(id).map_err(|e| Poison::InvalidId(e.to_string()))?;
    }
    check_params(spec, &job.params).map_err(Poison::InvalidParams)?;
    Ok(spec)
}

/// Reads a message body (JSON text of the body as the queue delivered it).
pub fn parse(body_json: &str) -> Result<Job, Poison> {
    serde_json::from_str(body_json).map_err(|e| Poison::NotAJob(e.to_string()))
}

/// The instance id of a job: its own, else `job-{message id}`, the same on every redelivery.
pub fn instance_id(job: &Job, message_id: &str) -> String {
    job.id.clone().unwrap_or_else(|| format!("job-{message_id}"))
}

/// Seconds before retrying a transient failure, growing with the delivery attempt:
/// 5, 10, 20, 40, … at most 5 minutes.
pub fn retry_delay_seconds(attempts: u32) -> u32 {
    let exponent = attempts.saturating_sub(1).min(16);
    (5_u32 << exponent).min(300)
}

/// The dead-letter table (see migrations/).
pub const INSERT_DEAD_LETTER: &str = "INSERT OR IGNORE INTO dead_letters (message_id, queue, body, reason, attempts, recorded_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub const LIST_DEAD_LETTERS: &str = "SELECT message_id, queue, body, reason, attempts, recorded_at FROM dead_letters \
     ORDER BY recorded_at DESC, message_id DESC LIMIT ?1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    pub queue: String,
    /// The message body as JSON text (or the text it was, if not JSON).
    pub body: String,
    pub reason: String,
    pub attempts: u32,
    pub recorded_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn any_params(_: &WorkflowSpec, _: &Value) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn jobs_and_their_ids() {
        let job = parse(r#"{"workflow":"order-processing","params":{"a":1}}"#).unwrap();
        assert_eq!(instance_id(&job, "m-1"), "job-m-1");
        let named = parse(r#"{"workflow":"order-processing","id":"o-7","params":{}}"#).unwrap();
        assert_eq!(instance_id(&named, "m-1"), "o-7");
        assert_eq!(check(&named, any_params).map(|s| s.name), Ok("order-processing"));
    }

    #[test]
    fn poison_messages() {
        assert!(matches!(parse("not json"), Err(Poison::NotAJob(_))));
        assert!(matches!(parse(r#"{"params":{}}"#), Err(Poison::NotAJob(m)) if m.contains("workflow")));
        let unknown = Job { workflow: "nope".into(), id: None, params: json!({}) };
        assert_eq!(check(&unknown, any_params), Err(Poison::UnknownWorkflow("nope".into())));
        let bad_id = Job { workflow: "order-processing".into(), id: Some("-x".into()), params: json!({}) };
        assert!(matches!(check(&bad_id, any_params), Err(Poison::InvalidId(_))));
        let bad_params = Job { workflow: "order-processing".into(), id: None, params: json!({}) };
        let refuse = |_: &WorkflowSpec, _: &Value| Err("missing field `orderId`".to_string());
        assert_eq!(check(&bad_params, refuse), Err(Poison::InvalidParams("missing field `orderId`".into())));
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        assert_eq!(retry_delay_seconds(1), 5);
        assert_eq!(retry_delay_seconds(2), 10);
        assert_eq!(retry_delay_seconds(3), 20);
        assert_eq!(retry_delay_seconds(10), 300);
        assert_eq!(retry_delay_seconds(0), 5);
        assert_eq!(retry_delay_seconds(u32::MAX), 300);
    }
}
