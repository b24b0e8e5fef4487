//! Batches of creates and deletes, answered per entry. The engine's object-form
//! `createBatch({instances})` answers `{created: [{id}], errors: [{index, id, code,
//! message}]}` and `deleteBatch(ids)` answers `{deleted: [{id}], errors: [{id, code,
//! message}]}`; both fail the whole call on one invalid id, so entries are checked here
//! first and only valid ones are sent. This module reads the engine's answers back into
//! one outcome per entry, in the caller's order.

use serde::{Deserialize, Serialize};

/// The engine's per-entry code for an id an instance has already (a Cloudflare API error code,
/// like the other `ENGINE_*` codes).
pub const ENGINE_ALREADY_EXISTS: i64 = 10405;
/// The engine's code for an id that appears twice in one batch.
pub const ENGINE_DUPLICATE_IN_BATCH: i64 = 10415;
/// The engine's code for an id no instance has (delete).
pub const ENGINE_NOT_FOUND: i64 = 10400;

/// Per-entry failure codes, as the HTTP API reports them.
pub mod codes {
    /// A malformed id, one that is reserved, or one that appears twice in the batch.
    pub const INVALID_ID: &str = "invalid_id";
    /// Params that do not read as the workflow's params.
    pub const INVALID_PARAMS: &str = "invalid_params";
    /// A retention that was refused.
    pub const INVALID_RETENTION: &str = "invalid_retention";
    /// An entry that is not an object of the documented fields.
    pub const INVALID_JSON: &str = "invalid_json";
    /// The engine refused or failed this entry; the message carries its code and words.
    pub const ENGINE_ERROR: &str = "engine_error";
}

/// Why one entry failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// One of [`codes`].
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl EntryError {
    /// An error with a code of [`codes`].
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        EntryError { code: code.to_string(), message: message.into() }
    }
}

/// What happened to one entry of a create batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The instance was created and started.
    Created,
    /// An instance with this id existed already; it was not started again.
    AlreadyExists,
    /// It was not created.
    Failed(EntryError),
}

/// One entry's result: its position in the request, its id (absent only for an entry
/// without one that failed before an id was made for it) and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEntry {
    /// The entry's position in the request, from 0.
    pub index: usize,
    /// The instance id; `None` only for an entry without one that failed before an id was made.
    pub id: Option<String>,
    /// What happened.
    pub outcome: CreateOutcome,
}

impl CreateEntry {
    /// Whether an instance with this id exists now (created here or before).
    pub fn exists(&self) -> bool {
        matches!(self.outcome, CreateOutcome::Created | CreateOutcome::AlreadyExists)
    }
}

/// `{"index", "id"?, "outcome": "created" | "existed" | "failed", "error"?: {code, message}}`
impl Serialize for CreateEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            index: usize,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            outcome: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a EntryError>,
        }
        let (outcome, error) = match &self.outcome {
            CreateOutcome::Created => ("created", None),
            CreateOutcome::AlreadyExists => ("existed", None),
            CreateOutcome::Failed(e) => ("failed", Some(e)),
        };
        Wire { index: self.index, id: self.id.as_deref(), outcome, error }.serialize(serializer)
    }
}

/// One per-entry error of the engine's create or delete batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EngineEntryError {
    /// The entry's position in the batch sent (create batches).
    #[serde(default)]
    pub index: Option<usize>,
    /// The entry's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The engine's code (one of the `ENGINE_*` constants, or another Cloudflare API code).
    #[serde(default)]
    pub code: i64,
    /// The engine's message.
    #[serde(default)]
    pub message: String,
}

fn engine_failure(e: &EngineEntryError) -> EntryError {
    EntryError::new(codes::ENGINE_ERROR, format!("{} (engine code {})", e.message, e.code))
}

/// Reads the engine's answer to a create batch of `sent` ids (in the order sent): one
/// outcome per sent entry, in that order. `created` holds the ids the engine created.
pub fn create_outcomes(sent: &[String], created: &[String], errors: &[EngineEntryError]) -> Vec<CreateOutcome> {
    sent.iter()
        .enumerate()
        .map(|(i, id)| {
            let error = errors
                .iter()
                .find(|e| e.index == Some(i))
                .or_else(|| errors.iter().find(|e| e.index.is_none() && e.id.as_ref() == Some(id)));
            match error {
                Some(e) if e.code == ENGINE_ALREADY_EXISTS || e.message.contains("instance.already_exists") => CreateOutcome::AlreadyExists,
                Some(e) if e.code == ENGINE_DUPLICATE_IN_BATCH || e.message.contains("duplicate_in_batch") => {
                    CreateOutcome::Failed(EntryError::new(codes::INVALID_ID, format!("instance id {id:?} appears twice in the batch")))
                }
                Some(e) => CreateOutcome::Failed(engine_failure(e)),
                None if created.contains(id) => CreateOutcome::Created,
                None => CreateOutcome::Failed(EntryError::new(codes::ENGINE_ERROR, "the engine reported nothing for this entry")),
            }
        })
        .collect()
}

/// What happened to one id of a delete batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The instance was deleted.
    Deleted,
    /// No instance had this id.
    NotFound,
    /// It was not deleted.
    Failed(EntryError),
}

/// One id's result of a delete batch, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEntry {
    /// The id's position in the request, from 0.
    pub index: usize,
    /// The instance id.
    pub id: String,
    /// What happened.
    pub outcome: DeleteOutcome,
}

impl DeleteEntry {
    /// Whether the instance is gone now (deleted here, or there was none).
    pub fn gone(&self) -> bool {
        matches!(self.outcome, DeleteOutcome::Deleted | DeleteOutcome::NotFound)
    }
}

/// `{"index", "id", "outcome": "deleted" | "not_found" | "failed", "error"?: {code, message}}`
impl Serialize for DeleteEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            index: usize,
            id: &'a str,
            outcome: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a EntryError>,
        }
        let (outcome, error) = match &self.outcome {
            DeleteOutcome::Deleted => ("deleted", None),
            DeleteOutcome::NotFound => ("not_found", None),
            DeleteOutcome::Failed(e) => ("failed", Some(e)),
        };
        Wire { index: self.index, id: &self.id, outcome, error }.serialize(serializer)
    }
}

/// Reads the engine's answer to a delete batch of `sent` ids. The engine answers every
/// position of a repeated id alike, so outcomes are found by id.
pub fn delete_outcomes(sent: &[String], deleted: &[String], errors: &[EngineEntryError]) -> Vec<DeleteOutcome> {
    sent.iter()
        .map(|id| match errors.iter().find(|e| e.id.as_ref() == Some(id)) {
            Some(e) if e.code == ENGINE_NOT_FOUND || e.message.contains("instance.not_found") => DeleteOutcome::NotFound,
            Some(e) => DeleteOutcome::Failed(engine_failure(e)),
            None if deleted.contains(id) => DeleteOutcome::Deleted,
            None => DeleteOutcome::Failed(EntryError::new(codes::ENGINE_ERROR, "the engine reported nothing for this id")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn error(value: serde_json::Value) -> EngineEntryError {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn create_answers_are_read_per_entry_in_order() {
        let sent = ids(&["a", "b", "c", "a", "d"]);
        let errors = [
            error(json!({"index": 1, "id": "b", "code": 10405, "message": "workflows.api.error.instance.already_exists"})),
            error(json!({"index": 3, "id": "a", "code": 10415, "message": "workflows.api.error.instance.duplicate_in_batch"})),
            error(json!({"index": 4, "id": "d", "code": 10001, "message": "workflows.api.error.internal_server"})),
        ];
        let outcomes = create_outcomes(&sent, &ids(&["a", "c"]), &errors);
        assert_eq!(outcomes[0], CreateOutcome::Created);
        assert_eq!(outcomes[1], CreateOutcome::AlreadyExists);
        assert_eq!(outcomes[2], CreateOutcome::Created);
        assert!(matches!(&outcomes[3], CreateOutcome::Failed(e) if e.code == "invalid_id" && e.message.contains("twice")));
        assert!(matches!(&outcomes[4], CreateOutcome::Failed(e) if e.code == "engine_error" && e.message.contains("10001")));
        // An entry the engine says nothing about is a failure, never a silent success.
        assert!(matches!(&create_outcomes(&ids(&["x"]), &[], &[])[0], CreateOutcome::Failed(e) if e.code == "engine_error"));
    }

    #[test]
    fn create_entries_serialise_with_their_outcome() {
        let entries = [
            CreateEntry { index: 0, id: Some("a".into()), outcome: CreateOutcome::Created },
            CreateEntry { index: 1, id: Some("b".into()), outcome: CreateOutcome::AlreadyExists },
            CreateEntry { index: 2, id: None, outcome: CreateOutcome::Failed(EntryError::new(codes::INVALID_PARAMS, "orderId: missing")) },
        ];
        assert_eq!(
            serde_json::to_value(entries).unwrap(),
            json!([
                {"index": 0, "id": "a", "outcome": "created"},
                {"index": 1, "id": "b", "outcome": "existed"},
                {"index": 2, "outcome": "failed", "error": {"code": "invalid_params", "message": "orderId: missing"}}
            ])
        );
    }

    #[test]
    fn delete_answers_are_read_per_id() {
        let sent = ids(&["a", "gone", "a", "broken"]);
        let errors = [
            error(json!({"id": "gone", "code": 10400, "message": "workflows.api.error.instance.not_found"})),
            error(json!({"id": "broken", "code": 10001, "message": "workflows.api.error.internal_server"})),
        ];
        let outcomes = delete_outcomes(&sent, &ids(&["a", "a"]), &errors);
        assert_eq!(outcomes[..3], [DeleteOutcome::Deleted, DeleteOutcome::NotFound, DeleteOutcome::Deleted]);
        assert!(matches!(&outcomes[3], DeleteOutcome::Failed(e) if e.code == "engine_error"));
        let entry = DeleteEntry { index: 1, id: "gone".into(), outcome: DeleteOutcome::NotFound };
        assert!(entry.gone());
        assert_eq!(serde_json::to_value(entry).unwrap(), json!({"index": 1, "id": "gone", "outcome": "not_found"}));
    }
}
