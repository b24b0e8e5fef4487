//! Generates what the registry (src/registry/mod.rs) implies, and fails the build,
//! naming each problem, where the registry disagrees with wrangler.jsonc or with the
//! files in src/workflows/:
//! - `$OUT_DIR/workflows.rs`: the workflow modules and their dispatch (src/workflows/mod.rs);
//! - `build/workflows.mjs` (wasm builds): the shim's WorkflowEntrypoint classes;
//! - `$OUT_DIR/readme_example.rs`: README's "Writing a workflow" example, compiled with the crate;
//!   `$OUT_DIR/readme_saga_example.rs`: its "Sagas and compensation" example, likewise;
//! - `$OUT_DIR/readme_testing_example.rs`: README's "Testing a workflow" example, run by `cargo test`
//!   (`tests/workflows.rs`);
//! - `$OUT_DIR/openapi.min.json`: `src/http/openapi.json` without its whitespace, as served.

#[path = "src/registry/mod.rs"]
#[allow(dead_code)]
mod registry;

use registry::{codegen, config_check};
use std::{env, fs, path::Path};

fn read(path: &str) -> String {
    println!("cargo:rerun-if-changed={path}");
    fs::read_to_string(path).unwrap_or_else(|e| panic!("build.rs: cannot read {path}: {e}"))
}

/// Writes `contents` to `path` unless it already holds them (an unchanged file keeps its
/// mtime, so nothing downstream rebuilds).
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("build.rs: cannot create {}: {e}", dir.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("build.rs: cannot write {}: {e}", path.display()));
}

fn main() {
    println!("cargo:rerun-if-changed=src/registry/mod.rs");
    println!("cargo:rerun-if-changed=src/registry/codegen.rs");
    println!("cargo:rerun-if-changed=src/registry/config_check.rs");
    println!("cargo:rerun-if-changed=src/workflows");
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let wrangler = read("wrangler.jsonc");
    let registry: Vec<_> = registry::WORKFLOWS.iter().map(|w| (w.name, w.class_name, w.binding)).collect();

    let configured = config_check::configured_workflows(&wrangler).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = config_check::registry_problems(&registry);
    problems.extend(config_check::mismatches(&registry, &configured));
    let workflow_files: Vec<String> = fs::read_dir("src/workflows")
        .expect("build.rs: cannot read src/workflows")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    problems.extend(config_check::file_problems(&registry, &workflow_files));
    let crons: Vec<_> = registry::CRONS.iter().map(|c| (c.cron, c.workflow)).collect();
    let configured_crons = config_check::configured_crons(&wrangler).unwrap_or_else(|e| panic!("{e}"));
    problems.extend(config_check::cron_mismatches(&crons, &configured_crons));
    if !problems.is_empty() {
        for p in &problems {
            println!("cargo:warning={}", p.replace('\n', " "));
        }
        panic!("the registry (src/registry/mod.rs) disagrees with wrangler.jsonc or src/workflows/:\n  {}", problems.join("\n  "));
    }

    let workflows_dir = Path::new(&manifest_dir).join("src/workflows");
    let dispatch = codegen::rust_dispatch(&registry, &workflows_dir.to_string_lossy());
    write_if_changed(&Path::new(&out_dir).join("workflows.rs"), &dispatch);

    let readme = read("README.md");
    let example = codegen::markdown_rust_block(&readme, "## Writing a workflow")
        .unwrap_or_else(|| panic!("README.md has no ```rust block under \"## Writing a workflow\""));
    write_if_changed(&Path::new(&out_dir).join("readme_example.rs"), &example);
    // The "Testing a workflow" example is a test file of its own (tests/workflows.rs includes it).
    let testing_example = codegen::markdown_rust_block(&readme, "## Testing a workflow")
        .unwrap_or_else(|| panic!("README.md has no ```rust block under \"## Testing a workflow\""));
    write_if_changed(&Path::new(&out_dir).join("readme_testing_example.rs"), &testing_example);
    let saga = codegen::markdown_rust_block(&readme, "## Sagas and compensation")
        .unwrap_or_else(|| panic!("README.md has no ```rust block under \"## Sagas and compensation\""));
    write_if_changed(&Path::new(&out_dir).join("readme_saga_example.rs"), &saga);
    // The OpenAPI document as served: the hand-written one without its indentation.
    write_if_changed(&Path::new(&out_dir).join("openapi.min.json"), &codegen::minify_json(&read("src/http/openapi.json")));

    // Only the Worker build needs the shim's classes; host builds leave build/ alone.
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // A deleted build/ (a missing file counts as changed) makes this run again.
        println!("cargo:rerun-if-changed=build/workflows.mjs");
        write_if_changed(&Path::new(&manifest_dir).join("build/workflows.mjs"), &codegen::js_classes(&registry));
    }
}
