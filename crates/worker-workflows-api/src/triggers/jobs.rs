//! Jobs: workflow instances requested through the `JOBS` queue. What a job message
//! is, which instance id it gets (stable across redeliveries, so a redelivered
//! message never starts a second run), what can never succeed (a dead letter,
//! recorded with its reason) and how long a transient failure waits before a retry.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker_workflows::core::validate;
use worker_workflows::registry::WorkflowSpec;

/// The job queue (wrangler.jsonc `queues`).
pub const QUEUE: &str = "workflow-jobs";
/// The dead-letter queue of [`QUEUE`].
pub const DEAD_LETTER_QUEUE: &str = "workflow-jobs-dlq";

/// One job: start `workflow` with `params`, as instance `id` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The name of the workflow to start.
    pub workflow: String,
    /// The instance id; absent, `job-{message id}` ([`instance_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The params; absent reads as JSON `null`.
    #[serde(default)]
    pub params: Value,
}

/// Why a job can never succeed: acked and recorded as a dead letter, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    /// The body does not read as a [`Job`] (serde's message).
    #[error("not a job: {0}")]
    NotAJob(String),
    /// No workflow of that name is registered (or available).
    #[error("no workflow named {}", worker_workflows::core::validate::excerpt(.0))]
    UnknownWorkflow(String),
    /// The id is malformed or reserved.
    #[error("{0}")]
    InvalidId(String),
    /// The params do not read as the workflow's params, or hold a URL the policy refuses.
    #[error("params do not match the workflow's params: {0}")]
    InvalidParams(String),
}

/// Checks a job: a workflow that `find_workflow` knows (`Registry::available`),
/// a valid id, and params that `check_params` (the workflow's typed params and URL
/// policy) accepts.
pub fn check(
    job: &Job,
    find_workflow: impl Fn(&str) -> Option<&'static WorkflowSpec>,
    check_params: impl Fn(&WorkflowSpec, &Value) -> Result<(), String>,
) -> Result<&'static WorkflowSpec, Poison> {
    let spec = find_workflow(&job.workflow).ok_or_else(|| Poison::UnknownWorkflow(job.workflow.clone()))?;
    if let Some(id) = &job.id {
        validate::instance_id(id).map_err(|e| Poison::InvalidId(e.to_string()))?;
    }
    check_params(spec, &job.params).map_err(Poison::InvalidParams)?;
    Ok(spec)
}

/// Reads a message body (JSON text of the body as the queue delivered it).
pub fn parse(body_json: &str) -> Result<Job, Poison> {
    serde_json::from_str(body_json).map_err(|e| Poison::NotAJob(worker_workflows::core::validate::serde_message(&e.to_string())))
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

/// The largest message body the queue takes (Cloudflare Queues: 128 KB per message).
pub const MAX_MESSAGE_BYTES: usize = 128_000;
/// The most bytes one `sendBatch` may carry (Cloudflare Queues: 256 KB per batch).
pub const MAX_BATCH_BYTES: usize = 256_000;

/// A job too large for one queue message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {index} is {bytes} bytes as a queue message; a message holds at most {MAX_MESSAGE_BYTES} bytes (keep large data in R2 and pass its key)")]
pub struct JobTooLarge {
    /// The job's position among those sent, from 0.
    pub index: usize,
    /// Its size as a queue message, in bytes.
    pub bytes: usize,
}

/// Splits message bodies (JSON text) into sendBatch groups under the queue's limits: at
/// most 100 messages and [`MAX_BATCH_BYTES`] each. A body over [`MAX_MESSAGE_BYTES`] is
/// refused before anything is sent, so one oversized job queues none of its siblings.
pub fn send_groups(bodies: &[String]) -> Result<Vec<std::ops::Range<usize>>, JobTooLarge> {
    if let Some((index, body)) = bodies.iter().enumerate().find(|(_, b)| b.len() > MAX_MESSAGE_BYTES) {
        return Err(JobTooLarge { index, bytes: body.len() });
    }
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (bytes + body.len() > MAX_BATCH_BYTES || i - start == 100) {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        groups.push(start..bodies.len());
    }
    Ok(groups)
}

/// What a transient failure leaves for the dead-letter queue to report: the reason of
/// the last failed delivery and how many deliveries failed (the dead-letter queue counts
/// its own attempts from 1 again). Kept in D1, keyed by message id, which the queue keeps
/// when it moves a message to the dead-letter queue.
pub const REMEMBER_FAILURE: &str = "INSERT INTO job_failures (message_id, reason, attempts, failed_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT(message_id) DO UPDATE SET reason = excluded.reason, attempts = excluded.attempts, failed_at = excluded.failed_at";
/// The failure remembered for a message (`?1`): its reason and failed deliveries.
pub const RECALL_FAILURE: &str = "SELECT reason, attempts FROM job_failures WHERE message_id = ?1";
/// Forgets the failure of a message (`?1`), once it was created or recorded as a dead letter.
pub const FORGET_FAILURE: &str = "DELETE FROM job_failures WHERE message_id = ?1";
/// The jobs the queue is retrying, latest failure first, at most `?1`.
pub const LIST_FAILURES: &str =
    "SELECT message_id, reason, attempts, failed_at FROM job_failures ORDER BY failed_at DESC, message_id DESC LIMIT ?1";

/// A job the queue is retrying: its message, the reason of its last failed delivery, how
/// many deliveries failed, and when the last one did (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryingJob {
    /// The queue message's id.
    pub message_id: String,
    /// Why its last delivery failed.
    pub reason: String,
    /// How many deliveries failed.
    pub attempts: u32,
    /// When the last one failed, in Unix milliseconds.
    pub failed_at: i64,
}

/// The reason and attempt count a dead letter from the dead-letter queue is recorded with:
/// the original failure when one was remembered, else what the dead-letter queue knows.
pub fn exhausted(remembered: Option<(String, u32)>, dead_letter_attempts: u32) -> (String, u32) {
    match remembered {
        Some((reason, attempts)) => (format!("retries exhausted after {attempts} attempts; last error: {reason}"), attempts),
        None => (
            format!("retries exhausted (no failure was recorded for it; {dead_letter_attempts} dead-letter delivery attempts)"),
            dead_letter_attempts,
        ),
    }
}

/// Test faults, only where the var `TEST_FLAKY_JOB_ATTEMPTS` is set to `limit` > 0
/// (never in wrangler.jsonc): they let the tests drive real redeliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    /// No fault: the job runs as it would in production.
    None,
    /// Fail before creating, as a transient create failure would: ids `flaky-…` on their
    /// first `limit` deliveries, ids `doomed-…` on every delivery.
    BeforeCreate,
    /// Create, then ask for a redelivery anyway: bodies that mention
    /// `redeliver-after-create`, on their first `limit` deliveries.
    AfterCreate,
}

/// The fault for one delivery: `limit` is the var's value, `attempts` the delivery's
/// attempt (from 1).
pub fn test_fault(limit: u32, instance_id: &str, body: &str, attempts: u32) -> TestFault {
    if limit == 0 {
        TestFault::None
    } else if instance_id.starts_with("doomed-") || (instance_id.starts_with("flaky-") && attempts <= limit) {
        TestFault::BeforeCreate
    } else if body.contains("redeliver-after-create") && attempts <= limit {
        TestFault::AfterCreate
    } else {
        TestFault::None
    }
}

/// Test fault: recording a dead letter whose body mentions `unrecordable` fails on its
/// first delivery to each queue, as a D1 outage would.
pub fn dead_letter_write_fault(limit: u32, body: &str, attempts: u32) -> bool {
    limit > 0 && body.contains("unrecordable") && attempts <= 1
}

/// Records a dead letter (`?1` message id, `?2` queue, `?3` body, `?4` reason, `?5`
/// attempts, `?6` Unix milliseconds); one already recorded is left as it is.
pub const INSERT_DEAD_LETTER: &str = "INSERT OR IGNORE INTO dead_letters (message_id, queue, body, reason, attempts, recorded_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// The latest dead letters first, at most `?1`.
pub const LIST_DEAD_LETTERS: &str = "SELECT message_id, queue, body, reason, attempts, recorded_at FROM dead_letters \
     ORDER BY recorded_at DESC, message_id DESC LIMIT ?1";

/// A job that can never succeed, or that exhausted its retries, as recorded in D1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The queue message's id.
    pub message_id: String,
    /// The queue it came from ([`QUEUE`] or [`DEAD_LETTER_QUEUE`]).
    pub queue: String,
    /// The message body as JSON text (or the text it was, if not JSON).
    pub body: String,
    /// Why it is a dead letter.
    pub reason: String,
    /// How many deliveries were made.
    pub attempts: u32,
    /// When it was recorded, in Unix milliseconds.
    pub recorded_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn any_params(_: &WorkflowSpec, _: &Value) -> Result<(), String> {
        Ok(())
    }

    fn registered(name: &str) -> Option<&'static WorkflowSpec> {
        crate::test_registry::WORKFLOWS.by_name(name)
    }

    #[test]
    fn jobs_and_their_ids() {
        let job = parse(r#"{"workflow":"order-processing","params":{"a":1}}"#).unwrap();
        assert_eq!(instance_id(&job, "m-1"), "job-m-1");
        let named = parse(r#"{"workflow":"order-processing","id":"o-7","params":{}}"#).unwrap();
        assert_eq!(instance_id(&named, "m-1"), "o-7");
        assert_eq!(check(&named, registered, any_params).map(|s| s.name), Ok("order-processing"));
    }

    #[test]
    fn poison_messages() {
        assert!(matches!(parse("not json"), Err(Poison::NotAJob(_))));
        assert!(matches!(parse(r#"{"params":{}}"#), Err(Poison::NotAJob(m)) if m.contains("workflow")));
        let unknown = Job { workflow: "nope".into(), id: None, params: json!({}) };
        assert_eq!(check(&unknown, registered, any_params).map(|s| s.name), Err(Poison::UnknownWorkflow("nope".into())));
        let bad_id = Job { workflow: "order-processing".into(), id: Some("-x".into()), params: json!({}) };
        assert!(matches!(check(&bad_id, registered, any_params), Err(Poison::InvalidId(_))));
        let bad_params = Job { workflow: "order-processing".into(), id: None, params: json!({}) };
        let refuse = |_: &WorkflowSpec, _: &Value| Err("missing field `orderId`".to_string());
        assert_eq!(check(&bad_params, registered, refuse).map(|s| s.name), Err(Poison::InvalidParams("missing field `orderId`".into())));
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

    #[test]
    fn a_workflow_the_deployment_does_not_serve_is_unknown() {
        let job = Job { workflow: "step-tour".into(), id: None, params: json!({}) };
        assert_eq!(check(&job, |_| None, any_params).map(|s| s.name), Err(Poison::UnknownWorkflow("step-tour".into())));
    }

    #[test]
    fn jobs_are_grouped_under_the_queue_limits() {
        let body = |n: usize| "x".repeat(n);
        let one_group = send_groups(&[body(10), body(10)]).unwrap();
        assert_eq!((one_group.len(), one_group[0].clone()), (1, 0..2));
        assert_eq!(send_groups(&[]), Ok(vec![]));
        // 100 messages of 3 KB are 300 KB: two sendBatch calls.
        let many: Vec<String> = (0..100).map(|_| body(3_000)).collect();
        let groups = send_groups(&many).unwrap();
        assert_eq!(groups, vec![0..85, 85..100]);
        let tiny: Vec<String> = (0..150).map(|_| body(1)).collect();
        assert_eq!(send_groups(&tiny).unwrap(), vec![0..100, 100..150]);
        assert_eq!(send_groups(&[body(10), body(MAX_MESSAGE_BYTES + 1)]), Err(JobTooLarge { index: 1, bytes: MAX_MESSAGE_BYTES + 1 }));
        assert!(send_groups(&[body(MAX_MESSAGE_BYTES)]).is_ok());
    }

    #[test]
    fn dead_letters_keep_the_original_reason_and_attempts() {
        let (reason, attempts) = exhausted(Some(("engine unavailable".into(), 6)), 1);
        assert_eq!(attempts, 6);
        assert_eq!(reason, "retries exhausted after 6 attempts; last error: engine unavailable");
        let (reason, attempts) = exhausted(None, 2);
        assert_eq!(attempts, 2);
        assert!(reason.starts_with("retries exhausted"), "{reason}");
    }

    #[test]
    fn test_faults_only_when_enabled() {
        assert_eq!(test_fault(0, "doomed-x", "", 1), TestFault::None);
        assert_eq!(test_fault(0, "flaky-x", "", 1), TestFault::None);
        assert_eq!(test_fault(2, "flaky-x", "", 2), TestFault::BeforeCreate);
        assert_eq!(test_fault(2, "flaky-x", "", 3), TestFault::None);
        assert_eq!(test_fault(2, "doomed-x", "", 99), TestFault::BeforeCreate);
        assert_eq!(test_fault(2, "job-m1", "{\"url\":\"/call/redeliver-after-create-1\"}", 1), TestFault::AfterCreate);
        assert_eq!(test_fault(2, "job-m1", "redeliver-after-create", 3), TestFault::None);
        assert!(dead_letter_write_fault(2, "not json unrecordable-1", 1));
        assert!(!dead_letter_write_fault(2, "not json unrecordable-1", 2));
        assert!(!dead_letter_write_fault(0, "unrecordable", 1));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;

    fn any_params(_: &WorkflowSpec, _: &Value) -> Result<(), String> {
        Ok(())
    }

    fn registered(name: &str) -> Option<&'static WorkflowSpec> {
        crate::test_registry::WORKFLOWS.by_name(name)
    }

    proptest::proptest! {
        /// Any text is either a job or a poison message with a reason; never a panic.
        #[test]
        fn any_message_body_is_a_job_or_poison(body in ".{0,200}") {
            match parse(&body) {
                Ok(job) => { let _ = check(&job, registered, any_params); }
                Err(Poison::NotAJob(reason)) => proptest::prop_assert!(!reason.is_empty()),
                Err(other) => proptest::prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn groups_cover_every_body_once_within_the_limits(sizes in proptest::collection::vec(0usize..130_000, 0..250)) {
            let bodies: Vec<String> = sizes.iter().map(|n| "x".repeat(*n)).collect();
            match send_groups(&bodies) {
                Ok(groups) => {
                    let mut next = 0;
                    for g in &groups {
                        proptest::prop_assert_eq!(g.start, next);
                        proptest::prop_assert!(!g.is_empty() && g.len() <= 100);
                        let bytes: usize = bodies[g.clone()].iter().map(String::len).sum();
                        proptest::prop_assert!(bytes <= MAX_BATCH_BYTES);
                        next = g.end;
                    }
                    proptest::prop_assert_eq!(next, bodies.len());
                }
                Err(e) => proptest::prop_assert!(sizes[e.index] > MAX_MESSAGE_BYTES),
            }
        }
    }
}
