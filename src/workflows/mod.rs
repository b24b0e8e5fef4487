//! Every workflow of the catalogue, one per file, named after the workflow
//! (`order-processing` is `order_processing.rs`, holding `OrderWorkflow`).
//!
//! To add one: the file here, one `.workflow(..)` line in `build.rs`, and the
//! `workflows` entry wrangler needs in `wrangler.jsonc` (the build prints it when it is
//! missing). `worker_workflows::include_workflows!` brings in what build.rs generated
//! from them: the modules, `WORKFLOWS` (this Worker's registry) and the shim's dispatch.
//!
//! May depend on: `records` and the `worker_workflows` library; never on `worker`,
//! `js_sys` or `wasm_bindgen` (workflows run on the host too, on the test engine).

worker_workflows::include_workflows!();

/// README's "Writing a workflow" example, compiled here so it cannot drift from the API.
#[allow(dead_code)]
mod readme_example {
    include!(concat!(env!("OUT_DIR"), "/readme_example.rs"));
}

/// README's "Sagas and compensation" example, compiled likewise.
#[allow(dead_code)]
mod readme_saga_example {
    include!(concat!(env!("OUT_DIR"), "/readme_saga_example.rs"));
}

/// README's "Typed handles" example, compiled likewise.
#[allow(dead_code)]
mod readme_typed_handles_example {
    include!(concat!(env!("OUT_DIR"), "/readme_typed_handles_example.rs"));
}

/// README's "Child workflows" example, compiled likewise.
#[allow(dead_code)]
mod readme_children_example {
    include!(concat!(env!("OUT_DIR"), "/readme_children_example.rs"));
}

/// README's "Changing a workflow safely" example, compiled likewise.
#[allow(dead_code)]
mod readme_patch_example {
    include!(concat!(env!("OUT_DIR"), "/readme_patch_example.rs"));
}
