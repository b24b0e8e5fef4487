//! Embeds the OpenAPI document minified: `src/http/openapi.json` without its whitespace
//! (`$OUT_DIR/openapi.min.json`), a third smaller in a Worker's upload.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/http/openapi.json");
    let document = std::fs::read_to_string("src/http/openapi.json").expect("build.rs: cannot read src/http/openapi.json");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    worker_workflows_build::write_if_changed(
        &Path::new(&out_dir).join("openapi.min.json"),
        &worker_workflows_build::codegen::minify_json(&document),
    );
}
