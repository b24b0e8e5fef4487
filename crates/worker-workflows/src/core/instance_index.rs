//! The instance index in D1: the Workflow binding cannot list instances, so every
//! create through this Worker records `(workflow, id, created_at)`, and listing
//! pages through it newest first with an opaque keyset cursor.

use crate::core::status::InstanceStatus;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Records a created instance (`?1` workflow, `?2` id, `?3` Unix milliseconds); an id
/// recorded already is left as it is.
pub const INSERT: &str = "INSERT OR IGNORE INTO instances (workflow, id, created_at) VALUES (?1, ?2, ?3)";
/// Removes a deleted instance (`?1` workflow, `?2` id).
pub const DELETE: &str = "DELETE FROM instances WHERE workflow = ?1 AND id = ?2";
/// Newest first; `?2`/`?3` are the cursor's position (or the largest values for the first page).
pub const PAGE: &str = "SELECT id, created_at FROM instances WHERE workflow = ?1 \
     AND (created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
     ORDER BY created_at DESC, id DESC LIMIT ?4";

/// Records how an instance's callback delivery ended (`?4`: the outcome as JSON), adding
/// the row if the instance was not created through this Worker.
pub const RECORD_CALLBACK: &str = "INSERT INTO instances (workflow, id, created_at, callback) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (workflow, id) DO UPDATE SET callback = excluded.callback";
/// The recorded callback outcome, if any.
pub const READ_CALLBACK: &str = "SELECT callback FROM instances WHERE workflow = ?1 AND id = ?2";

/// Claims a child workflow's instance as [`INSERT`] claims any, with its parent (`?4` the
/// parent's workflow, `?5` its id); needs `0001_worker_workflows_children.sql`.
pub const INSERT_CHILD: &str =
    "INSERT OR IGNORE INTO instances (workflow, id, created_at, parent_workflow, parent_id) VALUES (?1, ?2, ?3, ?4, ?5)";
/// The child workflows an instance started (`?1` its workflow, `?2` its id), oldest
/// first, at most `?3` of them.
pub const CHILDREN: &str =
    "SELECT workflow, id FROM instances WHERE parent_workflow = ?1 AND parent_id = ?2 ORDER BY created_at, id LIMIT ?3";
/// The parent of an instance (`?1` its workflow, `?2` its id): `parent_workflow` and
/// `parent_id`, both null when it is not a child.
pub const PARENT: &str = "SELECT parent_workflow, parent_id FROM instances WHERE workflow = ?1 AND id = ?2";

/// The status route's read of an instance's row (`?1` workflow, `?2` id): its recorded
/// finished status with when it was recorded, what a later record must match (`created_at`,
/// `generation`), its callback's outcome and its parent, in one round trip. Needs
/// `0003_worker_workflows_status.sql`.
pub const STATUS_ROW: &str = "SELECT created_at, generation, final_status, final_at, callback, parent_workflow, parent_id \
     FROM instances WHERE workflow = ?1 AND id = ?2";
/// Records a finished status (`?3` its JSON, `?4` now in Unix milliseconds) on the row
/// read by [`STATUS_ROW`], unless that row has changed since (`?5` its `created_at`, `?6`
/// its `generation`): a status read before a restart, or of a deleted instance whose id
/// was used again, is never recorded on the row that follows.
pub const RECORD_FINAL: &str = "UPDATE instances SET final_status = ?3, final_at = ?4 \
     WHERE workflow = ?1 AND id = ?2 AND created_at = ?5 AND generation = ?6";
/// Forgets a recorded finished status (`?1` workflow, `?2` id) after a restart or a
/// terminate, and counts the generation up so that a status read before it is not recorded.
pub const FORGET_FINAL: &str =
    "UPDATE instances SET final_status = NULL, final_at = NULL, generation = generation + 1 WHERE workflow = ?1 AND id = ?2";
/// How long a recorded finished status is served without asking the engine: what the API
/// itself changes (restart, terminate, delete) is seen at once; this bounds how long a
/// change made elsewhere (a restart from the dashboard, wrangler or `Instance::restart`,
/// the engine forgetting the instance when its retention ends) goes unseen.
pub const FINAL_STATUS_MAX_AGE_MS: f64 = 60_000.0;
/// The largest status (as JSON) recorded; a larger output is read from the engine every time.
pub const FINAL_STATUS_MAX_BYTES: usize = 256 * 1024;

/// An instance's row as [`STATUS_ROW`] reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusRow {
    /// When it was claimed (Unix milliseconds; D1 gives numbers as floats).
    pub created_at: f64,
    /// How many restarts and terminates through the API it has seen.
    pub generation: f64,
    /// The recorded finished status, as JSON.
    pub final_status: Option<String>,
    /// When it was recorded (Unix milliseconds).
    pub final_at: Option<f64>,
    /// The callback's delivery outcome, as JSON.
    pub callback: Option<String>,
    /// The parent's workflow, for a child.
    pub parent_workflow: Option<String>,
    /// The parent's id, for a child.
    pub parent_id: Option<String>,
}

impl StatusRow {
    /// The recorded finished status, if there is one younger than
    /// [`FINAL_STATUS_MAX_AGE_MS`] at `now_ms` that reads as a finished status.
    pub fn fresh_final(&self, now_ms: f64) -> Option<InstanceStatus> {
        let at = self.final_at?;
        if !(now_ms - at < FINAL_STATUS_MAX_AGE_MS && at <= now_ms) {
            return None;
        }
        let status: InstanceStatus = serde_json::from_str(self.final_status.as_deref()?).ok()?;
        status.status.is_finished().then_some(status)
    }
}

/// What [`RECORD_FINAL`] records of a status the engine gave: its JSON, for a finished
/// status of at most [`FINAL_STATUS_MAX_BYTES`]; `None` for any other.
pub fn final_record(status: &InstanceStatus) -> Option<String> {
    if !status.status.is_finished() {
        return None;
    }
    serde_json::to_string(status).ok().filter(|text| text.len() <= FINAL_STATUS_MAX_BYTES)
}

/// Instances per page when `?limit=` is absent.
pub const DEFAULT_LIMIT: u32 = 25;
/// Longest cursor text read (an encoded cursor is at most about 200 characters).
pub const MAX_CURSOR_LEN: usize = 512;
/// The most instances per page.
pub const MAX_LIMIT: u32 = 100;

/// One instance of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedInstance {
    /// The instance id.
    pub id: String,
    /// When it was created through this Worker, in Unix milliseconds.
    pub created_at: i64,
}

/// Where the next page starts: just after this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The instance's creation time, in Unix milliseconds.
    pub created_at: i64,
    /// The instance's id.
    pub id: String,
}

/// The position before the newest instance.
pub fn first_page() -> Cursor {
    // Every id sorts below "~" (ids are ASCII letters, digits, '-' and '_').
    Cursor { created_at: i64::MAX, id: "~".into() }
}

impl Cursor {
    /// The cursor as the opaque text the API gives out (URL-safe base64 of JSON).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor given out by [`encode`](Self::encode); `None` for anything else.
    pub fn decode(text: &str) -> Option<Cursor> {
        // A cursor this API gives out is a few hundred characters; anything longer is not one.
        if text.len() > MAX_CURSOR_LEN {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Reads `?limit=`: 1 to 100, 25 when absent.
pub fn parse_limit(value: Option<&str>) -> Option<u32> {
    match value {
        None => Some(DEFAULT_LIMIT),
        Some(v) => v.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)),
    }
}

/// Splits a page fetched with `limit + 1` rows into the page and the next cursor.
pub fn paginate(mut rows: Vec<IndexedInstance>, limit: u32) -> (Vec<IndexedInstance>, Option<String>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let next = rows.last().map(|r| Cursor { created_at: r.created_at, id: r.id.clone() }.encode());
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor { created_at: 1_700_000_000_000, id: "order-1".into() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        assert!("zzz" < first_page().id.as_str());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Some(25));
        assert_eq!(parse_limit(Some("100")), Some(100));
        assert_eq!(parse_limit(Some("0")), None);
        assert_eq!(parse_limit(Some("101")), None);
        assert_eq!(parse_limit(Some("x")), None);
    }

    #[test]
    fn a_recorded_status_is_served_while_fresh_and_only_when_finished() {
        use crate::core::status::InstanceState;
        let done = InstanceStatus { status: InstanceState::Complete, error: None, output: Some(serde_json::json!({"n": 1})) };
        let text = final_record(&done).unwrap();
        let row = |final_status: Option<String>, final_at: Option<f64>| StatusRow {
            created_at: 1.0,
            generation: 0.0,
            final_status,
            final_at,
            callback: None,
            parent_workflow: None,
            parent_id: None,
        };
        let at = 1_000_000.0;
        assert_eq!(row(Some(text.clone()), Some(at)).fresh_final(at + 1.0), Some(done.clone()));
        assert_eq!(row(Some(text.clone()), Some(at)).fresh_final(at + FINAL_STATUS_MAX_AGE_MS), None, "too old: ask the engine");
        assert_eq!(row(Some(text.clone()), Some(at)).fresh_final(at - 5_000.0), None, "recorded in the future: a clock is wrong");
        assert_eq!(row(None, Some(at)).fresh_final(at), None);
        assert_eq!(row(Some(text), None).fresh_final(at), None);
        assert_eq!(row(Some("{\"status\":\"running\"}".into()), Some(at)).fresh_final(at), None, "only finished statuses are served");
        let running = InstanceStatus { status: InstanceState::Running, error: None, output: None };
        assert_eq!(final_record(&running), None, "a running instance is asked every time");
        let huge = InstanceStatus { output: Some(serde_json::json!("x".repeat(FINAL_STATUS_MAX_BYTES))), ..done };
        assert_eq!(final_record(&huge), None);
    }

    #[test]
    fn pages() {
        let rows = |n: i64| (0..n).map(|i| IndexedInstance { id: format!("i{i}"), created_at: 100 - i }).collect::<Vec<_>>();
        let (page, next) = paginate(rows(3), 2);
        assert_eq!(page.len(), 2);
        assert_eq!(Cursor::decode(&next.unwrap()), Some(Cursor { created_at: 99, id: "i1".into() }));
        let (page, next) = paginate(rows(2), 2);
        assert_eq!((page.len(), next), (2, None));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A cursor this API gave out reads back as itself; any other text is refused or
        /// read, never a panic.
        #[test]
        fn cursors_round_trip(created_at in any::<i64>(), id in "[a-zA-Z0-9_-]{1,100}") {
            let cursor = Cursor { created_at, id };
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }

        #[test]
        fn any_text_is_a_cursor_or_refused(text in ".{0,600}") {
            let _ = Cursor::decode(&text);
        }

        #[test]
        fn limits_are_1_to_100(text in ".{0,12}", n in any::<u32>()) {
            let _ = parse_limit(Some(&text));
            prop_assert_eq!(parse_limit(Some(&n.to_string())).is_some(), (1..=MAX_LIMIT).contains(&n));
        }
    }
}
