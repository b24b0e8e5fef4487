//! What workflows need from the Worker's env, as step errors: a missing var or
//! binding is configuration that no retry can fix, so it is non-retryable.

use crate::core::step_error::StepError;
use worker::{Bucket, D1Database, Env};

pub trait WorkflowEnv {
    /// A var (or secret) that must be set.
    fn required_var(&self, name: &str) -> Result<String, StepError>;
    /// A D1 database binding.
    fn database(&self, binding: &str) -> Result<D1Database, StepError>;
    /// An R2 bucket binding.
    fn bucket_binding(&self, binding: &str) -> Result<Bucket, StepError>;
    /// A switch var: on only when set to "true".
    fn flag(&self, name: &str) -> bool;
}

impl WorkflowEnv for Env {
    fn required_var(&self, name: &str) -> Result<String, StepError> {
        self.var(name).map(|v| v.to_string()).map_err(|_| StepError::non_retryable(format!("the var {name} is not set")))
    }

    fn database(&self, binding: &str) -> Result<D1Database, StepError> {
        self.d1(binding).map_err(|e| StepError::non_retryable(format!("the D1 binding {binding}: {e}")))
    }

    fn bucket_binding(&self, binding: &str) -> Result<Bucket, StepError> {
        self.bucket(binding).map_err(|e| StepError::non_retryable(format!("the R2 binding {binding}: {e}")))
    }

    fn flag(&self, name: &str) -> bool {
        self.var(name).map(|v| v.to_string() == "true").unwrap_or(false)
    }
}
