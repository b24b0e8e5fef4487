//! The starter template (templates/starter) shares this repository's setup: its scripts,
//! toolchain and formatting are these, byte for byte, and its migrations hold the
//! library's schema as the library ships it. (tests/e2e/starter.test.mjs runs it.)
//! Host only.
#![cfg(not(target_arch = "wasm32"))]

use std::fs;
use std::path::Path;

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_starter_has_this_repositorys_setup_and_scripts() {
    for file in [
        "scripts/tools.sh",
        "scripts/setup.sh",
        "scripts/build.sh",
        "scripts/dev.sh",
        "scripts/test.sh",
        "rust-toolchain.toml",
        "rustfmt.toml",
    ] {
        assert_eq!(read(&format!("templates/starter/{file}")), read(file), "templates/starter/{file} differs from {file}: copy it over");
    }
}

#[test]
fn the_starter_and_the_catalogue_migrate_the_librarys_schema() {
    assert_eq!(
        worker_workflows::MIGRATIONS,
        [
            worker_workflows::MIGRATION,
            worker_workflows::CHILD_MIGRATION,
            worker_workflows::PATCHES_MIGRATION,
            worker_workflows::STATUS_MIGRATION
        ]
    );
    for schema in worker_workflows::MIGRATIONS {
        for dir in ["migrations", "templates/starter/migrations"] {
            assert_eq!(
                read(&format!("{dir}/{}", schema.file_name)),
                schema.sql,
                "{dir}/{} is not the library's migration of that name (worker_workflows::MIGRATIONS)",
                schema.file_name
            );
        }
    }
}
