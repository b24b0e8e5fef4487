//! Fails the build when wrangler.jsonc's `workflows`, the shim's classes and the
//! Rust registry disagree, naming each mismatch.

#[path = "src/config_check.rs"]
mod config_check;
#[path = "src/registry.rs"]
#[allow(dead_code)]
mod registry;

use std::fs;

fn read(path: &str) -> String {
    println!("cargo:rerun-if-changed={path}");
    fs::read_to_string(path).unwrap_or_else(|e| panic!("build.rs: cannot read {path}: {e}"))
}

fn main() {
    println!("cargo:rerun-if-changed=src/registry.rs");
    let wrangler = read("wrangler.jsonc");
    let shim = read("shim/index.mjs");
    let configured = config_check::configured_workflows(&wrangler).unwrap_or_else(|e| panic!("{e}"));
    let registry: Vec<_> =
        registry::WORKFLOWS.iter().map(|w| (w.name, w.class_name, w.binding)).collect();
    let mut problems =
        config_check::mismatches(&registry, &configured, &config_check::shim_classes(&shim));
    problems.extend(config_check::shim_name_mismatches(&shim));
    let classes: Vec<_> = registry::WORKFLOWS.iter().map(|w| w.class_name).collect();
    problems.extend(config_check::dispatch_mismatches(&classes, &read("src/workflows/mod.rs")));
    let crons: Vec<_> = registry::CRONS.iter().map(|c| (c.cron, c.workflow)).collect();
    let configured_crons = config_check::configured_crons(&wrangler).unwrap_or_else(|e| panic!("{e}"));
    problems.extend(config_check::cron_mismatches(&crons, &configured_crons));
    if !problems.is_empty() {
        for p in &problems {
            println!("cargo:warning={p}");
        }
        panic!("workflows or crons disagree between src/registry.rs, wrangler.jsonc and shim/index.mjs:\n  {}", problems.join("\n  "));
    }
}
