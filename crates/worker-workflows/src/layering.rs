//! Holds each folder of this crate to what its `mod.rs` says it may depend on, and its
//! pure parts to having no Workers code (`worker_workflows_build::layering` scans).

use std::path::Path;
use worker_workflows_build::layering::{dependency_problems, workers_code_in_pure_files};

/// Each folder of `src/` and the top-level modules it may name as `crate::…`.
const ALLOWED: &[(&str, &[&str])] =
    &[("core", &["core"]), ("bridge", &["core", "registry", "bridge"]), ("testing", &["core", "registry", "bridge", "testing"])];

#[test]
fn every_folder_depends_only_on_what_its_mod_rs_allows() {
    let problems = dependency_problems(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), ALLOWED);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_pure_parts_have_no_workers_code() {
    let (scanned, problems) =
        workers_code_in_pure_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &["core", "bridge", "testing"]);
    assert!(scanned > 30, "the scan found only {scanned} pure files");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
