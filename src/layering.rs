//! Holds each folder of the catalogue to what its `mod.rs` says it may depend on, and
//! its pure parts (the workflows above all: they run on the host) to having no Workers code.

use std::path::Path;
use worker_workflows_build::layering::{dependency_problems, workers_code_in_pure_files};

/// Each folder of `src/` and the top-level modules it may name as `crate::…`.
const ALLOWED: &[(&str, &[&str])] = &[("workflows", &["workflows", "records"]), ("demo", &["demo", "workflows"])];

#[test]
fn every_folder_depends_only_on_what_its_mod_rs_allows() {
    let problems = dependency_problems(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), ALLOWED);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_pure_parts_have_no_workers_code() {
    let (scanned, problems) = workers_code_in_pure_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &["workflows", "demo"]);
    assert!(scanned >= 8, "the scan found only {scanned} pure files");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
