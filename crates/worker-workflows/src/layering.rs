//! Holds each folder of this crate to what its `mod.rs` says it may depend on, and its
//! pure parts to having no Workers code.

worker_workflows_build::layering_tests!(
    rules: &[("core", &["core"]), ("bridge", &["core", "registry", "bridge"]), ("testing", &["core", "registry", "bridge", "testing"])],
    pure: &["core", "bridge", "testing"],
    min_pure: 30,
);
