//! `data-pipeline`: extract a JSON array of user records from `sourceUrl` into R2,
//! normalise it in Rust (`records::transform`), and load it into the D1 table
//! `records`, tagged with the instance id in `source`.
//!
//! Step results are capped at 1 MiB and a real source is far bigger, so the data
//! itself moves through the R2 bucket `DATA` (`raw/{instanceId}.json`, then
//! `processed/{instanceId}.json`) and steps return only keys and counts. Keys are
//! derived from the instance id, so every retry and every restart of a step
//! overwrites the same objects instead of leaving new ones behind.
//!
//! The load is idempotent on the record id (`ON CONFLICT(id) DO NOTHING`): a
//! retried or restarted load never duplicates rows.
//!
//! With `chunkRecords`, a source is split instead (`split`: `chunks/{instanceId}/{i}.json`,
//! at most 100 chunks) and each chunk is transformed and loaded by a child instance of
//! `data-chunk` (`process chunks`: `Step::children`, awaited durably, in the order of
//! the chunks); the pipeline adds up their typed outputs. `maxDroppedPerChunk` fails a
//! chunk that drops more records than that, and with it the pipeline, naming the chunk.

use crate::workflows::data_chunk::{ChunkOutput, ChunkParams};
use crate::workflows::DataChunkWorkflow;
use worker_workflows::bridge::{Bucket, Database, Env, SqlValue, Statement, Step, Workflow, WorkflowEvent};
use worker_workflows::ChildOptions;
use crate::records;
use worker_workflows::bridge::outbound::ServiceCall;
use worker_workflows::core::step_config::{Backoff, Retries, StepConfig};
use worker_workflows::core::step_error::StepError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineParams {
    /// Where to GET the records: an http(s) URL answering a JSON array.
    pub source_url: String,
    /// Split the source into chunks of this many records, each handled by a child
    /// `data-chunk` instance (raised so that there are at most 100 chunks). Absent: one run
    /// does it all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_records: Option<std::num::NonZeroU32>,
    /// With `chunkRecords`: a chunk that drops more records than this fails, and the
    /// pipeline with it (a data-quality gate). Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dropped_per_chunk: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineOutput {
    /// The R2 key of the normalised records (split: the prefix of the chunks' keys,
    /// `processed/{instanceId}/`).
    pub key: String,
    /// Records normalised and loaded into D1.
    pub records: u64,
    /// Source records that could not be normalised.
    pub dropped: u64,
    /// Split: what each chunk's child instance returned, in the order of the chunks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkOutput>,
}

/// What `split` stored: the chunks' keys and how many records the source held.
#[derive(Debug, Serialize, Deserialize)]
struct SplitObject {
    chunks: Vec<String>,
    records: u64,
}

/// The most chunks, one child instance each (`Step::children` takes at most 100).
const MAX_CHUNKS: usize = worker_workflows::core::child::MAX_CHILDREN;

/// How long the pipeline waits for its chunks, and how often it checks on them when a
/// chunk's notice is late.
fn chunk_options() -> ChildOptions {
    ChildOptions::new().deadline("2 hours").check_every("5 minutes")
}

/// What `extract` stored: the source body, unchanged.
#[derive(Debug, Serialize, Deserialize)]
struct RawObject {
    key: String,
    bytes: u64,
}

/// What `transform` stored: the normalised records as one JSON array.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProcessedObject {
    pub key: String,
    pub records: u64,
    pub dropped: u64,
}

/// One row of the processed file, borrowing its strings from the file's bytes
/// (only strings with JSON escapes are copied) so loading allocates no row copies.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessedRow<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    email: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
}

const DATA_BUCKET: &str = "DATA";
const DATABASE: &str = "DB";

/// Rows per `db.batch` call: one round trip and one transaction each. 50,000 rows are
/// 500 calls, within the 1,000 D1 queries a Worker invocation (here: a step) may make.
const ROWS_PER_BATCH: usize = 100;
/// `id, name, email, created_at, source`.
const COLUMNS_PER_ROW: usize = 5;
/// D1 refuses a statement with more bound parameters than this.
const MAX_BOUND_PARAMETERS: usize = 100;
/// Rows per multi-row INSERT: 20 rows × 5 columns = exactly 100 parameters, so a
/// batch of 100 rows is 5 statements.
const ROWS_PER_STATEMENT: usize = MAX_BOUND_PARAMETERS / COLUMNS_PER_ROW;

/// A source that is briefly down (a deploy, a rate limit) should not sink the run:
/// 10 retries from 2 s, so the first few land within seconds.
fn extract_config() -> StepConfig {
    StepConfig::new()
        .retries(Retries::new(10).delay("2 seconds").backoff(Backoff::Exponential))
        .timeout("5 minutes")
}

/// Only R2 can fail here transiently; bad input is non-retryable.
fn transform_config() -> StepConfig {
    StepConfig::new()
        .retries(Retries::new(3).delay("5 seconds").backoff(Backoff::Exponential))
        .timeout("5 minutes")
}

/// A long step for a big file (hundreds of sequential D1 round trips); every retry
/// starts over, which the idempotent insert makes safe.
fn load_config() -> StepConfig {
    StepConfig::new()
        .retries(Retries::new(5).delay("10 seconds").backoff(Backoff::Exponential))
        .timeout("15 minutes")
}


/// `INSERT … VALUES (?, ?, ?, ?, ?), …` for `rows` rows, skipping ids already loaded.
fn insert_sql(rows: usize) -> String {
    const HEAD: &str = "INSERT INTO records (id, name, email, created_at, source) VALUES ";
    const ROW: &str = "(?, ?, ?, ?, ?)";
    const TAIL: &str = " ON CONFLICT(id) DO NOTHING";
    let mut sql = String::with_capacity(HEAD.len() + rows * (ROW.len() + 2) + TAIL.len());
    sql.push_str(HEAD);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
    sql.push_str(TAIL);
    sql
}

/// Reads a whole object as bytes (one copy, out of the runtime into wasm memory).
async fn read_object(bucket: &Bucket, key: &str) -> Result<Vec<u8>, StepError> {
    // R2 is strongly consistent: an object a finished step wrote and that is gone now
    // was deleted, and no retry brings it back.
    bucket.get(key).await?.ok_or_else(|| StepError::non_retryable(format!("R2 object {key} is missing from bucket {DATA_BUCKET}")))
}

async fn write_json_object(bucket: &Bucket, key: &str, body: Vec<u8>) -> Result<(), StepError> {
    bucket.put(key, body, Some("application/json")).await
}

pub struct DataPipelineWorkflow {
    env: Env,
}

impl DataPipelineWorkflow {
    /// A missing binding is a deployment mistake: no retry can fix it.
    fn data_bucket(&self) -> Result<Bucket, StepError> {
        self.env.bucket(DATA_BUCKET)
    }

    fn database(&self) -> Result<Database, StepError> {
        self.env.database(DATABASE)
    }

    /// GETs the source and stores its body unchanged at `raw_key`.
    async fn extract(&self, source_url: &str, raw_key: &str) -> Result<RawObject, StepError> {
        let bucket = self.data_bucket()?;
        // At most MAX_SOURCE_BYTES (10 MiB unless set) are read; a longer body fails the step.
        let body = ServiceCall::data_source(&self.env, source_url.to_string())?.get_bytes().await?;
        let bytes = body.len() as u64;
        write_json_object(&bucket, raw_key, body).await?;
        Ok(RawObject { key: raw_key.to_string(), bytes })
    }

    /// Splits the raw records into chunk objects of `per_chunk` records (more, when that
    /// would make over [`MAX_CHUNKS`]) at `chunks/{instance_id}/{i}.json`, without parsing
    /// the records themselves.
    async fn split(&self, raw_key: &str, instance_id: &str, per_chunk: usize) -> Result<SplitObject, StepError> {
        let bucket = self.data_bucket()?;
        let raw = read_object(&bucket, raw_key).await?;
        let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&raw).map_err(|e| {
            StepError::non_retryable(format!(
                "the source data ({raw_key}) is not a JSON array of records: {}",
                records::json_error_without_values(&e)
            ))
        })?;
        let per_chunk = per_chunk.max(elements.len().div_ceil(MAX_CHUNKS)).max(1);
        let mut keys = Vec::with_capacity(elements.len().div_ceil(per_chunk));
        for (i, chunk) in elements.chunks(per_chunk).enumerate() {
            let key = format!("chunks/{instance_id}/{i}.json");
            let mut body = Vec::with_capacity(chunk.iter().map(|r| r.get().len() + 1).sum::<usize>() + 2);
            body.push(b'[');
            for (j, record) in chunk.iter().enumerate() {
                if j > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(record.get().as_bytes());
            }
            body.push(b']');
            write_json_object(&bucket, &key, body).await?;
            keys.push(key);
        }
        Ok(SplitObject { chunks: keys, records: elements.len() as u64 })
    }

    /// Normalises the raw records into `processed_key`: the raw body is read once and
    /// parsed in place, and the records are serialised once.
    pub(crate) async fn transform(&self, raw_key: &str, processed_key: &str) -> Result<ProcessedObject, StepError> {
        let bucket = self.data_bucket()?;
        let raw = read_object(&bucket, raw_key).await?;
        // The stored body will not change, so neither will this error: do not retry it. The
        // message names the problem and where, never a value (records are personal data).
        let transformed = records::transform(&raw).map_err(|e| {
            StepError::non_retryable(format!(
                "the source data ({raw_key}) is not a JSON array of records: {}",
                records::json_error_without_values(&e)
            ))
        })?;
        drop(raw); // the records own their strings; free the raw body before serialising
        let body = serde_json::to_vec(&transformed.records)?;
        write_json_object(&bucket, processed_key, body).await?;
        Ok(ProcessedObject {
            key: processed_key.to_string(),
            records: transformed.records.len() as u64,
            dropped: transformed.dropped as u64,
        })
    }

    /// Inserts every row of `processed_key` into `records` with `source` = the instance,
    /// `ROWS_PER_BATCH` rows per `db.batch`, and returns how many rows the file holds.
    pub(crate) async fn load(&self, processed_key: &str, instance_id: &str) -> Result<u64, StepError> {
        let bucket = self.data_bucket()?;
        let db = self.database()?;
        let file = read_object(&bucket, processed_key).await?;
        // Written by `transform`, so a parse failure means the object was replaced: final.
        let rows: Vec<ProcessedRow<'_>> = serde_json::from_slice(&file).map_err(|e| {
            StepError::non_retryable(format!(
                "R2 object {processed_key} is not an array of normalised records: {}",
                records::json_error_without_values(&e)
            ))
        })?;

        let full_insert = insert_sql(ROWS_PER_STATEMENT);
        for (batch_index, batch) in rows.chunks(ROWS_PER_BATCH).enumerate() {
            let first_row = batch_index * ROWS_PER_BATCH;
            let mut statements: Vec<Statement<'_>> = Vec::with_capacity(batch.len().div_ceil(ROWS_PER_STATEMENT));
            for statement_rows in batch.chunks(ROWS_PER_STATEMENT) {
                let mut parameters: Vec<SqlValue<'_>> = Vec::with_capacity(statement_rows.len() * COLUMNS_PER_ROW);
                for row in statement_rows {
                    parameters.extend([
                        row.id.as_ref().into(),
                        row.name.as_ref().into(),
                        row.email.as_ref().into(),
                        row.created_at.as_ref().into(),
                        instance_id.into(),
                    ]);
                }
                // Only the last statement of the file can be short.
                let sql: Cow<'_, str> =
                    if statement_rows.len() == ROWS_PER_STATEMENT { full_insert.as_str().into() } else { insert_sql(statement_rows.len()).into() };
                statements.push(db.prepare(sql).bind(parameters));
            }
            db.batch(statements).await.map_err(|e| {
                StepError::failed(format!(
                    "D1 batch insert of rows {first_row}..{} of {processed_key} into records failed: {e}",
                    first_row + batch.len()
                ))
            })?;
        }
        Ok(rows.len() as u64)
    }
}

impl Workflow for DataPipelineWorkflow {
    type Params = PipelineParams;
    type Output = PipelineOutput;
    // The source is fetched: checked against the URL policy before an instance exists.
    const URL_PARAMS: &'static [&'static str] = &["sourceUrl"];

    fn new(env: Env) -> Self {
        DataPipelineWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<PipelineParams>, step: Step<'_>) -> Result<PipelineOutput, StepError> {
        // The URL policy is applied inside `extract`, right before the fetch (however the
        // instance was created), so a refused URL fails that step without a request.
        let source_url = event.payload.source_url.as_str();
        let instance_id = event.instance_id.as_str();
        let raw_key = format!("raw/{instance_id}.json");
        let processed_key = format!("processed/{instance_id}.json");

        let raw: RawObject = step.run_with("extract", extract_config(), |_| self.extract(source_url, &raw_key)).await?;
        if let Some(per_chunk) = event.payload.chunk_records {
            let per_chunk = usize::try_from(per_chunk.get()).unwrap_or(usize::MAX);
            let split: SplitObject = step.run_with("split", transform_config(), |_| self.split(&raw.key, instance_id, per_chunk)).await?;
            let params: Vec<ChunkParams> = split
                .chunks
                .iter()
                .map(|key| ChunkParams { key: key.clone(), source: instance_id.to_string(), max_dropped: event.payload.max_dropped_per_chunk })
                .collect();
            // One child per chunk, started once, awaited durably; the first chunk (in
            // order) that failed fails the pipeline, named.
            let chunks: Vec<ChunkOutput> = step.children_with::<DataChunkWorkflow>("process chunks", &params, chunk_options()).await?;
            return Ok(PipelineOutput {
                key: format!("processed/{instance_id}/"),
                records: chunks.iter().map(|c| c.records).sum(),
                dropped: chunks.iter().map(|c| c.dropped).sum(),
                chunks,
            });
        }
        let processed: ProcessedObject =
            step.run_with("transform", transform_config(), |_| self.transform(&raw.key, &processed_key)).await?;
        let loaded: u64 = step.run_with("load", load_config(), |_| self.load(&processed.key, instance_id)).await?;

        Ok(PipelineOutput { key: processed.key, records: loaded, dropped: processed.dropped, chunks: Vec::new() })
    }
}
