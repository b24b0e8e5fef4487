//! Holds each folder of this crate to what its `mod.rs` says it may depend on, and its
//! pure parts to having no Workers code (`test_registry` holds the workflows the tests register).

worker_workflows_build::layering_tests!(
    rules: &[("triggers", &["triggers", "test_registry"]), ("http", &["http", "triggers", "test_registry"])],
    pure: &["http", "triggers"],
    min_pure: 8,
);
