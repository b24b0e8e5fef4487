//! Patches: changing a workflow's code while instances of the old code are in flight.
//!
//! The engine replays an instance from the top on every run, and gets each step's result
//! by its name and count; a step the history does not have simply runs. So code that a
//! deploy adds *before* steps an instance already completed would run in the middle of
//! that instance's old history (a fraud check after the goods shipped), and the engine
//! cannot be asked whether a run is a replay. [`Step::patched`](crate::bridge::Step)
//! answers the question that matters instead, once per instance, durably: *was this
//! instance created after this patch was first seen?*
//!
//! - Each patch of each workflow has a *first sighting*: the time a run of this Worker
//!   first asked for it, recorded once (the first writer wins) in the library's D1 table
//!   `workflow_patches` ([`RECORD_FIRST_SEEN`]).
//! - A durable step `patched:{id}` ([`step_name`]) compares the instance's creation time
//!   (its event's timestamp, the same on every retry, replay and restart) with the first
//!   sighting: [`is_patched`]. Its result is stored like any step's, so every later run
//!   of the instance gets the same answer without asking again.
//! - Instances created before the sighting answer false (the old path: they may have run
//!   the old code past this point), instances created at or after it true. An instance
//!   created after the deploy but before any run reached the patch answers false too:
//!   the old path, which must stay correct until the patch is removed anyway.
//!
//! Pure: the names, the rule and the SQL. The step itself is `bridge::patch`.

/// The prefix of a patch's step name: `patched:{id}`. Reserved: name no other step so.
pub const STEP_PREFIX: &str = "patched:";

/// The longest patch id, in characters.
pub const MAX_PATCH_ID_LEN: usize = 100;

/// A patch id [`check_id`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid patch id {}: 1 to 100 characters, letters, digits, '-', '_' and '.'", crate::core::validate::excerpt(.0))]
pub struct PatchIdError(pub String);

/// Checks a patch id: 1 to [`MAX_PATCH_ID_LEN`] ASCII letters, digits, `-`, `_` and `.`
/// (it names a step and a row, and appears in logs).
pub fn check_id(id: &str) -> Result<(), PatchIdError> {
    let ok = !id.is_empty() && id.len() <= MAX_PATCH_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PatchIdError(id.to_string()))
    }
}

/// The name of the step that records a patch's answer for an instance: `patched:{id}`.
pub fn step_name(id: &str) -> String {
    format!("{STEP_PREFIX}{id}")
}

/// Whether a step name is a patch's (see [`STEP_PREFIX`]); its id when so.
pub fn patch_id(step_name: &str) -> Option<&str> {
    step_name.strip_prefix(STEP_PREFIX)
}

/// The answer for an instance created at `created_at_ms` when the patch was first seen at
/// `first_seen_ms` (both Unix milliseconds): true (the new code) for an instance created
/// at or after the first sighting, which never ran the code before the patch; false
/// (the old code) for one created before, which may have.
pub fn is_patched(created_at_ms: u64, first_seen_ms: u64) -> bool {
    created_at_ms >= first_seen_ms
}

/// The library's table of first sightings, in the D1 database `DB`
/// (`0002_worker_workflows_patches.sql`).
pub const TABLE: &str = "workflow_patches";

/// Records a first sighting unless one is recorded, and returns the one that stands
/// (`first_seen`): binds the workflow, the patch id and now (Unix ms). One statement,
/// so two runs asking at once agree on the first.
pub const RECORD_FIRST_SEEN: &str = "INSERT INTO workflow_patches (workflow, patch, first_seen) VALUES (?1, ?2, ?3) \
     ON CONFLICT (workflow, patch) DO UPDATE SET first_seen = workflow_patches.first_seen RETURNING first_seen";

/// Every patch of a workflow with its first sighting, oldest first: binds the workflow.
pub const LIST_FOR_WORKFLOW: &str = "SELECT patch, first_seen FROM workflow_patches WHERE workflow = ?1 ORDER BY first_seen, patch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_a_step_and_are_checked() {
        assert_eq!(step_name("refund-before-ship"), "patched:refund-before-ship");
        assert_eq!(patch_id("patched:refund-before-ship"), Some("refund-before-ship"));
        assert_eq!(patch_id("refund-before-ship"), None);
        for ok in ["a", "refund-before-ship", "v2.1_fix", &"x".repeat(100)] {
            assert_eq!(check_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ü", "a:b", &"x".repeat(101)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert!(crate::core::validate::step_name(&step_name(&"x".repeat(MAX_PATCH_ID_LEN))).is_ok(), "always a valid step name");
        let long = PatchIdError("y".repeat(500)).to_string();
        assert!(long.len() < 200 && long.contains("500 characters"), "{long}");
    }

    #[test]
    fn instances_created_before_the_first_sighting_take_the_old_path() {
        assert!(!is_patched(999, 1000), "in flight before it");
        assert!(is_patched(1000, 1000), "created as it was first seen");
        assert!(is_patched(1001, 1000), "created after");
    }
}
