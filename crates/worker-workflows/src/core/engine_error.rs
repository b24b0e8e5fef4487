//! Errors of the Workflow binding (create, get, status, pause, ...), read from the
//! engine's messages, which carry codes such as `instance.not_found`.

use crate::core::validate::NameError;

/// What an error thrown by the Workflow binding means, read from its message
/// (the engine reports codes such as `instance.not_found` inside the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineErrorKind {
    /// `instance.not_found`: no instance has that id.
    NotFound,
    /// `instance.already_exists`: an instance has that id already.
    AlreadyExists,
    /// `restart({from})` named a step the instance's history does not hold
    /// (`(instance.cannot_restart) Step "x" not found in execution history`).
    StepNotFound,
    /// The instance's state does not allow the operation (`instance.cannot_terminate`, …).
    InvalidState,
    /// `instance.invalid_id`: the engine refused the id.
    InvalidId,
    /// Any other error.
    Other,
}

/// What an error the Workflow binding threw means, from its message.
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

/// An error of the Workflow binding, from this crate's checks or the engine's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The Worker's environment has no Workflow binding of this name.
    #[error("the Worker has no Workflow binding {0:?}")]
    MissingBinding(String),
    /// No instance has this id.
    #[error("workflow instance {0:?} not found")]
    NotFound(String),
    /// An instance has this id already.
    #[error("workflow instance {0:?} already exists")]
    AlreadyExists(String),
    /// `restart({from})` named a step the instance's history does not hold.
    #[error("workflow instance {id:?} has no such step to restart from: {message}")]
    StepNotFound {
        /// The instance.
        id: String,
        /// The engine's message.
        message: String,
    },
    /// The restart point was refused before reaching the engine.
    #[error("restart point: {0}")]
    InvalidRestartFrom(#[from] crate::core::instance_options::RestartFromError),
    /// The retention was refused before reaching the engine.
    #[error(transparent)]
    InvalidRetention(#[from] crate::core::instance_options::RetentionError),
    /// The instance's state does not allow the operation (terminating a finished instance, …).
    #[error("workflow instance {id:?} cannot do that in its current state: {message}")]
    InvalidState {
        /// The instance.
        id: String,
        /// The engine's message.
        message: String,
    },
    /// An instance id or step name was refused (by this crate's checks or the engine's).
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A batch held fewer than 1 or more than [`MAX_BATCH`] instances.
    #[error("a batch holds 1 to 100 instances, not {0}")]
    BatchSize(usize),
    /// A value could not be converted to or from the engine's (params, a status, an event).
    #[error("{0}")]
    Serialization(String),
    /// Any other error the engine threw, as it threw it.
    #[error("{name}: {message}")]
    Engine {
        /// The error's name.
        name: String,
        /// Its message.
        message: String,
    },
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

    /// Checks a batch's size: 1 to [`MAX_BATCH`] instances.
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
