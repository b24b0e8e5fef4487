//! The Worker's entry points: `fetch` (the seed demo's routes, then the HTTP API), the
//! queue consumer and crons, all over the workflows registered in `build.rs`. The
//! `run_workflow` export the shim's workflow classes call comes with
//! `include_workflows!` (src/workflows/mod.rs).

use crate::workflows::WORKFLOWS;
use worker::{event, Context, Env, Request, Response, ScheduleContext, ScheduledEvent};
use worker_workflows_api::Api;

/// The HTTP API over this Worker's workflows, its OpenAPI document with the demo routes,
/// and the schemas of its workflows' params and events (for the dashboard's forms).
static API: Api = Api::new(&WORKFLOWS).with_openapi(&[crate::demo::OPENAPI]).with_schemas(&crate::schemas::SCHEMAS);

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    if crate::demo::serves_path(&req.path()) {
        return crate::demo::handler::handle(&API, req, env).await;
    }
    API.handle(req, env).await
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    worker_workflows_api::triggers::cron::run(&WORKFLOWS, &event.cron(), event.schedule(), &env).await;
}

// The `workflow-jobs` consumer (and its dead-letter queue's).
worker_workflows_api::export_queue_consumer!(crate::workflows::WORKFLOWS);
