//! The Worker's entry points: `fetch` for HTTP, and `run_workflow`, which the
//! shim's workflow classes call with `run(event, step)`.

use std::panic::AssertUnwindSafe;
use wasm_bindgen::prelude::*;
use worker::{event, Context, Env, Request, Response, ScheduleContext, ScheduledEvent};

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    crate::http::handler::handle(req, env).await
}

/// `run(event, step)` of the workflow class `class_name`. A panic anywhere in the
/// run rejects this promise (with the panic-unwind build) instead of aborting the isolate.
/// The run may go on after the promise settles, to serve its steps' rollbacks.
#[wasm_bindgen]
pub fn run_workflow(class_name: String, event: JsValue, step: JsValue, env: JsValue, _ctx: JsValue) -> js_sys::Promise {
    crate::bridge::start(move |promise| async move { crate::workflows::dispatch(&class_name, event, step, env, promise).await })
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    crate::triggers::cron::run(&event.cron(), event.schedule(), &env).await;
}

/// The queue consumer, bound by hand (not `#[event(queue)]`) to read each message's
/// `attempts` and its body as the producer sent it.
#[wasm_bindgen]
pub fn queue(batch: JsValue, env: JsValue, _ctx: JsValue) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(AssertUnwindSafe(async move {
        crate::triggers::queue::consume(batch.unchecked_into(), env.unchecked_into()).await;
        Ok(JsValue::UNDEFINED)
    }))
}
