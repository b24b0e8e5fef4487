//! Holds each folder of the catalogue to what its `mod.rs` says it may depend on, and
//! its pure parts (the workflows above all: they run on the host) to having no Workers code.

worker_workflows_build::layering_tests!(
    rules: &[("workflows", &["workflows", "records"]), ("demo", &["demo", "workflows"])],
    pure: &["workflows", "demo"],
    min_pure: 8,
);
