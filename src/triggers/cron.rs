//! Cron triggers: each expression in wrangler.jsonc starts the workflow that
//! `registry::CRONS` names, as instance `cron-{workflow}-{scheduledTime}`, so the
//! same tick delivered twice starts one run.

use crate::bridge::instances;
use crate::registry;
use serde_json::json;
use worker::{console_log, Env};

pub async fn run(cron: &str, scheduled_time: f64, env: &Env) {
    let Some(entry) = registry::cron(cron) else {
        console_log!("{}", json!({"level": "error", "type": "cron", "cron": cron, "error": "no entry in registry::CRONS for this cron"}));
        return;
    };
    let Some(spec) = registry::workflow_by_name(entry.workflow) else {
        console_log!(
            "{}",
            json!({"level": "error", "type": "cron", "cron": cron, "error": format!("unknown workflow {}", entry.workflow)})
        );
        return;
    };
    let scheduled_time = scheduled_time as i64;
    let id = format!("cron-{}-{scheduled_time}", spec.name);
    let params = json!({"scheduledTime": scheduled_time, "cron": cron});
    match instances::create(env, spec, Some(&id), &params).await {
        Ok(created) => console_log!("{}", json!({"type": "cron", "cron": cron, "instance": id, "created": created.created})),
        Err(e) => console_log!("{}", json!({"level": "error", "type": "cron", "cron": cron, "instance": id, "error": e.to_string()})),
    }
}
