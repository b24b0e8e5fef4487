//! A scheduled run: the cron and the tick an instance was started for, as its event
//! carries them ([`WorkflowEvent::schedule`](crate::bridge::WorkflowEvent::schedule)).
//! Two sources: the engine's own `schedules` (its event's `schedule` field), and the
//! Worker's scheduled handler (`worker-workflows-api`'s crons), which puts the same in an
//! envelope around the params (`{"$schedule": {cron, scheduledTime}, "$params": …}`) the
//! bridge unwraps, as it does the callback URL.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SCHEDULE_KEY: &str = "$schedule";
const PARAMS_KEY: &str = "$params";

/// The cron tick an instance was started for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    /// The cron expression, as configured.
    pub cron: String,
    /// The tick's time (when it was due, not when it ran).
    pub scheduled_time: SystemTime,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    cron: String,
    /// Unix milliseconds, or an ISO-8601 date (what a JS `Date` serialises to).
    scheduled_time: Value,
}

impl ScheduledRun {
    /// The tick's time in Unix milliseconds.
    pub fn scheduled_millis(&self) -> u64 {
        self.scheduled_time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    /// Reads `{cron, scheduledTime}`: the time as Unix milliseconds or an ISO-8601 date.
    /// Anything else (a missing cron, an unreadable time) is `None`: a run is never failed
    /// for a schedule it cannot read.
    pub fn from_json(value: &Value) -> Option<ScheduledRun> {
        let wire: Wire = serde_json::from_value(value.clone()).ok()?;
        let millis = match &wire.scheduled_time {
            Value::Number(n) => n.as_f64().filter(|m| m.is_finite() && *m >= 0.0)? as u64,
            Value::String(text) => chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis().try_into().ok()?,
            _ => return None,
        };
        (!wire.cron.trim().is_empty()).then(|| ScheduledRun { cron: wire.cron, scheduled_time: UNIX_EPOCH + Duration::from_millis(millis) })
    }
}

/// The params of a run the Worker's scheduled handler starts, with its schedule beside them.
pub fn wrap(params: Value, run: &ScheduledRun) -> Value {
    json!({ SCHEDULE_KEY: {"cron": run.cron, "scheduledTime": run.scheduled_millis()}, PARAMS_KEY: params })
}

/// Splits an engine payload into the workflow's params and its schedule, when the Worker's
/// scheduled handler started it. Anything but an exact, readable envelope passes through.
pub fn unwrap(payload: Value) -> (Value, Option<ScheduledRun>) {
    match payload {
        Value::Object(mut map) if map.len() == 2 && map.contains_key(PARAMS_KEY) => {
            match map.get(SCHEDULE_KEY).and_then(ScheduledRun::from_json) {
                Some(run) => (map.remove(PARAMS_KEY).unwrap_or(Value::Null), Some(run)),
                None => (Value::Object(map), None),
            }
        }
        other => (other, None),
    }
}

/// The instance a cron tick starts: `cron-{workflow}-{scheduledTime}`, so the same tick
/// delivered twice starts one run. A workflow registered with several crons gets the
/// cron's hash too (`…-{8 hex digits}`), so two of its crons due at the same minute start
/// a run each.
pub fn cron_instance_id(workflow: &str, workflow_crons: &[&str], cron: &str, scheduled_time_ms: i64) -> String {
    if workflow_crons.len() <= 1 {
        return format!("cron-{workflow}-{scheduled_time_ms}");
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(cron.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("cron-{workflow}-{scheduled_time_ms}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> ScheduledRun {
        ScheduledRun { cron: "0 3 * * *".into(), scheduled_time: UNIX_EPOCH + Duration::from_millis(1_795_400_000_000) }
    }

    #[test]
    fn two_crons_of_one_workflow_due_at_once_start_two_runs_and_one_cron_keeps_the_plain_id() {
        let both = ["0 3 * * *", "0 3 * * 1"];
        let daily = cron_instance_id("report", &both, both[0], 1_795_400_000_000);
        let monday = cron_instance_id("report", &both, both[1], 1_795_400_000_000);
        assert_ne!(daily, monday);
        assert!(daily.starts_with("cron-report-1795400000000-") && daily.len() == "cron-report-1795400000000-".len() + 8, "{daily}");
        assert_eq!(daily, cron_instance_id("report", &both, both[0], 1_795_400_000_000), "the same tick, the same id");
        assert_eq!(cron_instance_id("cleanup", &["0 3 * * *"], "0 3 * * *", 1_795_400_000_000), "cron-cleanup-1795400000000");
        assert!(crate::core::validate::instance_id(&cron_instance_id(&"w".repeat(64), &both, both[1], i64::MAX)).is_ok());
    }

    #[test]
    fn a_wrapped_run_unwraps_to_its_params_and_schedule() {
        let params = json!({"scheduledTime": 1_795_400_000_000u64, "cron": "0 3 * * *"});
        let (unwrapped, schedule) = unwrap(wrap(params.clone(), &run()));
        assert_eq!(unwrapped, params);
        assert_eq!(schedule, Some(run()));
    }

    #[test]
    fn the_engines_schedule_reads_as_milliseconds_or_a_date() {
        assert_eq!(ScheduledRun::from_json(&json!({"cron": "0 3 * * *", "scheduledTime": 1_795_400_000_000u64})), Some(run()));
        let iso = chrono::DateTime::from_timestamp_millis(1_795_400_000_000).unwrap().to_rfc3339();
        assert_eq!(ScheduledRun::from_json(&json!({"cron": "0 3 * * *", "scheduledTime": iso})), Some(run()));
        for unreadable in
            [json!({"cron": "", "scheduledTime": 1}), json!({"cron": "x", "scheduledTime": "soon"}), json!({"cron": "x"}), json!(null)]
        {
            assert_eq!(ScheduledRun::from_json(&unreadable), None, "{unreadable}");
        }
    }

    #[test]
    fn anything_but_an_exact_envelope_passes_through() {
        for payload in [
            json!({"$schedule": {"cron": "x", "scheduledTime": 1}, "$params": {}, "extra": 1}),
            json!({"$schedule": "no", "$params": {}}),
            json!({"scheduledTime": 1, "cron": "x"}),
            json!([1, 2]),
        ] {
            assert_eq!(unwrap(payload.clone()), (payload.clone(), None), "{payload}");
        }
    }
}
