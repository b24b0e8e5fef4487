//! Cron triggers: each expression in wrangler.jsonc starts the workflow registered
//! with it (`Workflow::new(..).cron(..)` in build.rs), as instance
//! `cron-{workflow}-{scheduledTime}` (with the cron's hash after it for a workflow of
//! several crons), so the same tick delivered twice starts one run.
//! The tick reaches the run in its event's `schedule` (an envelope the bridge unwraps).

use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use worker::{console_log, Env};
use worker_workflows::bridge::instances;
use worker_workflows::core::schedule;
use worker_workflows::registry::Registry;
use worker_workflows::ScheduledRun;

/// Starts the instance of the workflow `cron` is registered to, for the tick at
/// `scheduled_time` (Unix ms). Returns false (and logs why) when no workflow has the cron.
pub async fn run(workflows: &'static Registry, cron: &str, scheduled_time: f64, env: &Env) -> bool {
    let Some(spec) = workflows.for_cron(cron) else {
        console_log!("{}", json!({"level": "error", "type": "cron", "cron": cron, "error": "no registered workflow has this cron"}));
        return false;
    };
    let scheduled_time = scheduled_time as i64;
    let id = schedule::cron_instance_id(spec.name, spec.settings.crons, cron, scheduled_time);
    // The params stay `{scheduledTime, cron}` for workflows that read them; the envelope
    // gives the run its typed `event.schedule` too.
    let tick = ScheduledRun { cron: cron.to_string(), scheduled_time: UNIX_EPOCH + Duration::from_millis(scheduled_time.max(0) as u64) };
    let params = schedule::wrap(json!({"scheduledTime": scheduled_time, "cron": cron}), &tick);
    match instances::create(env, spec, Some(&id), &params).await {
        Ok(created) => console_log!("{}", json!({"type": "cron", "cron": cron, "instance": id, "created": created.created})),
        Err(e) => console_log!("{}", json!({"level": "error", "type": "cron", "cron": cron, "instance": id, "error": e.to_string()})),
    }
    true
}
