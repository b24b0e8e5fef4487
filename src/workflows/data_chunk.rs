//! `data-chunk`: one chunk of a large data-pipeline source, a child instance the pipeline
//! starts and awaits (`Step::children`). It normalises the chunk's records
//! (`chunks/{pipeline}/{i}.json` → `processed/{pipeline}/{i}.json`) and loads them into
//! D1 tagged with the pipeline's instance id, as the pipeline does for a whole source,
//! and returns its counts, typed, to the pipeline.
//!
//! With `maxDropped`, a chunk that drops more records than that fails (non-retryable:
//! the data will not change): a data-quality gate, which fails the pipeline naming the chunk.

use crate::workflows::data_pipeline::ProcessedObject;
use crate::workflows::DataPipelineWorkflow;
use serde::{Deserialize, Serialize};
use worker_workflows::bridge::{Env, Step, Workflow, WorkflowEvent};
use worker_workflows::core::step_config::{Backoff, Retries, StepConfig};
use worker_workflows::core::step_error::StepError;
use worker_workflows::core::validate;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChunkParams {
    /// The chunk's R2 key: `chunks/{source}/{i}.json`.
    pub key: String,
    /// The pipeline instance the records come from (their `source` in D1).
    pub source: String,
    /// The most records the chunk may drop before it fails; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dropped: Option<u64>,
}

/// What a chunk returns to its pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkOutput {
    /// The chunk's instance (a child of the pipeline).
    pub instance: String,
    /// The R2 key of its normalised records.
    pub key: String,
    /// Records normalised and loaded into D1.
    pub records: u64,
    /// Records that could not be normalised.
    pub dropped: u64,
}

/// `processed/{source}/{i}.json` for a chunk key `chunks/{source}/{i}.json` of a
/// well-formed source; anything else is refused (a chunk reads only chunk objects).
fn processed_key(params: &ChunkParams) -> Result<String, StepError> {
    let refused = || StepError::non_retryable(format!("the chunk key must be chunks/{{source}}/{{n}}.json of its source, not {}", validate::excerpt(&params.key)));
    validate::instance_id(&params.source).map_err(|e| StepError::non_retryable(format!("source: {e}")))?;
    let rest = params.key.strip_prefix("chunks/").and_then(|k| k.strip_prefix(params.source.as_str())).and_then(|k| k.strip_prefix('/')).ok_or_else(refused)?;
    let number = rest.strip_suffix(".json").filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).ok_or_else(refused)?;
    Ok(format!("processed/{}/{number}.json", params.source))
}

fn chunk_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(5).delay("5 seconds").backoff(Backoff::Exponential)).timeout("10 minutes")
}

pub struct DataChunkWorkflow {
    pipeline: DataPipelineWorkflow,
}

impl Workflow for DataChunkWorkflow {
    type Params = ChunkParams;
    type Output = ChunkOutput;

    fn new(env: Env) -> Self {
        DataChunkWorkflow { pipeline: DataPipelineWorkflow::new(env) }
    }

    async fn run(&self, event: &WorkflowEvent<ChunkParams>, step: Step<'_>) -> Result<ChunkOutput, StepError> {
        let params = &event.payload;
        let processed_key = processed_key(params)?;
        let processed: ProcessedObject =
            step.run_with("transform", chunk_config(), |_| self.pipeline.transform(&params.key, &processed_key)).await?;
        if let Some(max) = params.max_dropped.filter(|&max| processed.dropped > max) {
            return Err(StepError::non_retryable(format!(
                "chunk {}: {} of {} records could not be normalised, over the limit of {max}",
                params.key,
                processed.dropped,
                processed.dropped + processed.records
            )));
        }
        let loaded: u64 = step.run_with("load", chunk_config(), |_| self.pipeline.load(&processed.key, &params.source)).await?;
        Ok(ChunkOutput { instance: event.instance_id.clone(), key: processed.key, records: loaded, dropped: processed.dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(key: &str, source: &str) -> ChunkParams {
        ChunkParams { key: key.into(), source: source.into(), max_dropped: None }
    }

    #[test]
    fn a_chunk_reads_only_chunk_objects_of_its_source() {
        assert_eq!(processed_key(&params("chunks/pipe-1/3.json", "pipe-1")).unwrap(), "processed/pipe-1/3.json");
        for (key, source) in [
            ("raw/pipe-1.json", "pipe-1"),
            ("chunks/pipe-2/3.json", "pipe-1"),
            ("chunks/pipe-1/../x.json", "pipe-1"),
            ("chunks/pipe-1/.json", "pipe-1"),
            ("chunks/pipe-1/3.json", "bad source"),
        ] {
            assert!(matches!(processed_key(&params(key, source)), Err(StepError::NonRetryable(_))), "{key} {source}");
        }
    }
}
