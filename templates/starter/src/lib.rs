//! A Worker with one workflow (`expense`), served with the HTTP API of
//! worker-workflows-api: create instances, read their status and history, send events.

pub mod workflows;

pub use workflows::WORKFLOWS;

#[cfg(target_arch = "wasm32")]
mod entry {
    use crate::WORKFLOWS;
    use worker::{event, Context, Env, Request, Response};
    use worker_workflows_api::Api;

    /// The HTTP API over this Worker's workflows (`/workflows…`, `/health`, `/openapi.json`).
    static API: Api = Api::new(&WORKFLOWS);

    #[event(start)]
    fn start() {
        console_error_panic_hook::set_once();
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
        // Routes of your own go here, before the API:
        // if !Api::serves_path(&req.path()) { return my_routes(req, env).await; }
        API.handle(req, env).await
    }
}
