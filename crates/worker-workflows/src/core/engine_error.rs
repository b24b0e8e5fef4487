//! Errors of the Workflow binding (create, get, status, pause, ...), read from the
//! engine's messages, which carry codes such as `instance.not_found`.

use crate::core::validate::NameError;

/// What an error thrown by the Workflow binding means, read from its message
/// (the engine reports codes such as `instance.not_found` inside the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineErrorKind {
    NotFound,
    AlreadyExists,
    /// `restart({from})` named a step the instance's history does not hold
    /// (`(instance.cannot_restart) Step "x" not found in execution history`).
    StepNotFound,
    /// The instance's state does not allow the operation (`instance.cannot_terminate`, …).
    InvalidState,
    InvalidId,
    Other,
}

pub fn classify_engine_error(message: &str) -> EngineErrorKind {
    if message.contains("instance.not_found") {
        EngineErrorKind::NotFound
    } else if message.contains("instance.already_exists") {
        EngineErrorKind::AlreadyExists
    } else if message.contains("instance.cannot_restart") && message.contains("not found in execution history") {
        EngineErrorKind::StepNotFound
    } else if message.contains("instance.cannot_") || message.contains("instance.invalid_state") {
        EngineErrorKind::InvalidState
    } else if message.contains("invalid id") || message.contains("instance.invalid_id") {
        EngineErrorKind::InvalidId
    } else {
        EngineErrorKind::Other
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("the Worker has no Workflow binding {0:?}")]
    MissingBinding(String),
    #[error("workflow instance {0:?} not found")]
    NotFound(String),
    #[error("workflow instance {0:?} already exists")]
    AlreadyExists(String),
    #[error("workflow instance {id:?} has no such step to restart from: {message}")]
    StepNotFound { id: String, message: String },
    #[error("restart point: {0}")]
    InvalidRestartFrom(#[from] crate::core::instance_options::RestartFromError),
    #[error(transparent)]
    InvalidRetention(#[from] crate::core::instance_options::RetentionError),
    #[error("workflow instance {id:?} cannot do that in its current state: {message}")]
    InvalidState { id: String, message: String },
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("a batch holds 1 to 100 instances, not {0}")]
    BatchSize(usize),
    #[error("{0}")]
    Serialization(String),
    #[error("{name}: {message}")]
    Engine { name: String, message: String },
}

/// The most instances one `create_batch` may hold.
pub const MAX_BATCH: usize = 100;

impl BindingError {
    /// Maps an error the binding threw for instance `id` to what it means.
    pub fn from_engine(id: &str, name: &str, message: &str) -> Self {
        match classify_engine_error(message) {
            EngineErrorKind::NotFound => BindingError::NotFound(id.to_string()),
            EngineErrorKind::AlreadyExists => BindingError::AlreadyExists(id.to_string()),
            EngineErrorKind::StepNotFound => BindingError::StepNotFound { id: id.to_string(), message: message.to_string() },
            EngineErrorKind::InvalidState => BindingError::InvalidState { id: id.to_string(), message: message.to_string() },
            EngineErrorKind::InvalidId => BindingError::InvalidName(NameError::InstanceId(id.to_string())),
            EngineErrorKind::Other => BindingError::Engine { name: name.to_string(), message: message.to_string() },
        }
    }

    pub fn check_batch_size(n: usize) -> Result<(), BindingError> {
        if (1..=MAX_BATCH).contains(&n) {
            Ok(())
        } else {
            Err(BindingError::BatchSize(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages() {
        use EngineErrorKind::*;
        assert_eq!(classify_engine_error("WorkflowError: (instance.not_found) Instance not found"), NotFound);
        assert_eq!(
            classify_engine_error(r#"WorkflowError: (instance.already_exists) Workflow instance with id "x" already exists"#),
            AlreadyExists
        );
        assert_eq!(
            classify_engine_error("WorkflowError: (instance.cannot_terminate) Cannot terminate instance since its on a finite state"),
            InvalidState
        );
        assert_eq!(classify_engine_error("WorkflowError: Workflow instance has invalid id"), InvalidId);
        assert_eq!(
            classify_engine_error(r#"WorkflowError: (instance.cannot_restart) Step "x" not found in execution history"#),
            StepNotFound
        );
        assert_eq!(classify_engine_error("network down"), Other);
    }

    #[test]
    fn binding_errors_name_the_instance() {
        assert_eq!(BindingError::from_engine("o-1", "WorkflowError", "(instance.not_found) x"), BindingError::NotFound("o-1".into()));
        assert_eq!(
            BindingError::from_engine("o-1", "WorkflowError", "(instance.already_exists) x"),
            BindingError::AlreadyExists("o-1".into())
        );
        assert!(matches!(BindingError::from_engine("o-1", "E", "(instance.cannot_terminate) x"), BindingError::InvalidState { .. }));
        assert!(matches!(BindingError::from_engine("o-1", "TypeError", "oops"), BindingError::Engine { .. }));
        let missing_step =
            BindingError::from_engine("o-1", "WorkflowError", r#"(instance.cannot_restart) Step "x" not found in execution history"#);
        assert!(
            matches!(&missing_step, BindingError::StepNotFound { id, message } if id == "o-1" && message.contains(r#""x""#)),
            "{missing_step:?}"
        );
        assert!(BindingError::check_batch_size(0).is_err());
        assert!(BindingError::check_batch_size(100).is_ok());
        assert_eq!(BindingError::check_batch_size(101), Err(BindingError::BatchSize(101)));
    }
}
