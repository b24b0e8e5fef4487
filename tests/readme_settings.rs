//! README's "Workflow settings in build.rs" example, compiled and checked: the
//! `wrangler.jsonc` entry it asks for holds every setting the example declares.

include!(concat!(env!("OUT_DIR"), "/readme_settings_example.rs"));

#[test]
fn the_readmes_settings_example_asks_wrangler_for_each_setting() {
    let entry = cleanup().wrangler_entry();
    assert_eq!(
        entry,
        serde_json::json!({
            "name": "daily-cleanup",
            "binding": "CLEANUP_WORKFLOW",
            "class_name": "CleanupWorkflow",
            "schedules": ["0 4 * * 1"],
            "concurrency": {"limit": 1},
            "limits": {"steps": 2500},
            "default_retention": {"success_retention": "7 days", "error_retention": "30 days"},
            "jurisdiction": "eu"
        })
    );
}
