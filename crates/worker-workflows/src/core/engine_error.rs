//! Errors of the Workflow binding (create, get, status, pause, ...), read from the
//! engine's messages, which carry codes such as `instance.not_found`.

use crate::core::status::InstanceState;
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

/// Words of the engine's refusals of an operation the instance's state does not allow,
/// lower-cased: the codes (`(instance.cannot_terminate) Cannot terminate instance since
/// its on a finite state`, `(instance.cannot_resume) Cannot resume instance with status
/// "running"`, as the local runtimes write them) and the phrases Cloudflare's engine words
/// them with (`resume()`: "if it is already running, an error will be thrown").
const STATE_REFUSALS: &[&str] = &[
    "instance.cannot_",
    "instance.invalid_state",
    "instance.not_running",
    "instance.not_paused",
    "instance.already_running",
    "instance.already_paused",
    "instance.finished",
    "cannot pause",
    "cannot resume",
    "cannot restart",
    "cannot terminate",
    "cannot send",
    "finite state",
    "is not running",
    "is not paused",
    "is already running",
    "is already paused",
    "already finished",
    "already completed",
    "has finished",
];

/// What an error the Workflow binding threw means, from its message.
pub fn classify_engine_error(message: &str) -> EngineErrorKind {
    let lower = message.to_ascii_lowercase();
    if message.contains("instance.not_found") {
        EngineErrorKind::NotFound
    } else if message.contains("instance.already_exists") {
        EngineErrorKind::AlreadyExists
    } else if message.contains("instance.cannot_restart") && message.contains("not found in execution history") {
        EngineErrorKind::StepNotFound
    } else if STATE_REFUSALS.iter().any(|words| lower.contains(words)) {
        EngineErrorKind::InvalidState
    } else if message.contains("invalid id") || message.contains("instance.invalid_id") {
        EngineErrorKind::InvalidId
    } else {
        EngineErrorKind::Other
    }
}

/// An operation on one instance that the instance's state may not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAction {
    /// `pause()`.
    Pause,
    /// `resume()`.
    Resume,
    /// `terminate()`, with or without rollback.
    Terminate,
    /// `restart()`, from the start or from a step.
    Restart,
    /// `sendEvent()`.
    SendEvent,
}

impl InstanceAction {
    fn verb(self) -> &'static str {
        match self {
            InstanceAction::Pause => "paused",
            InstanceAction::Resume => "resumed",
            InstanceAction::Terminate => "terminated",
            InstanceAction::Restart => "restarted",
            InstanceAction::SendEvent => "sent an event",
        }
    }
}

/// Why an instance in `state` cannot take `action`, if it cannot: a caller's mistake (a
/// 409, never a 500). Cloudflare's engine refuses these itself; the local one drops some
/// of them silently (an event sent to a finished instance is stored and never read, a
/// pause of a finished instance and a resume of one that is not paused do nothing), so
/// the HTTP API checks here first, and maps the engine's own refusals
/// ([`classify_engine_error`]) the same way. A state this code does not know is left to
/// the engine.
pub fn state_refuses(action: InstanceAction, state: InstanceState) -> Option<String> {
    use InstanceAction::*;
    use InstanceState::*;
    let why = match (action, state) {
        (_, Unknown) => return None,
        (Pause | Terminate | SendEvent, Complete | Errored | Terminated) => format!("it has finished ({})", state.as_str()),
        (Pause | SendEvent, RollingBack) => "it is running its compensations (rolling back)".to_string(),
        (Resume, Paused | WaitingForPause) => return None,
        (Resume, _) => format!("it is not paused ({})", state.as_str()),
        (Restart, RollingBack) => "it is running its compensations (rolling back)".to_string(),
        _ => return None,
    };
    Some(format!("the instance cannot be {}: {why}", action.verb()))
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
    /// An event the instance's workflow does not declare with that payload type (its
    /// `Workflow::EVENTS`): refused before it is sent, as the HTTP API refuses it.
    #[error("{0}")]
    UndeclaredEvent(String),
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
    fn state_refusals_of_each_engine() {
        use EngineErrorKind::*;
        // workerd's local engine, and the phrases Cloudflare's uses.
        for message in [
            r#"WorkflowError: (instance.cannot_resume) Cannot resume instance with status "running""#,
            "(instance.cannot_pause) Cannot pause instance since its on a finite state",
            "Error: Cannot resume instance: instance is already running",
            "Instance is not paused",
            "Cannot send event to instance: it has finished",
            "instance.not_running",
        ] {
            assert_eq!(classify_engine_error(message), InvalidState, "{message}");
            assert!(matches!(BindingError::from_engine("i", "Error", message), BindingError::InvalidState { .. }), "{message}");
        }
    }

    #[test]
    fn what_each_state_allows() {
        use InstanceAction::*;
        use InstanceState::*;
        let all = [Queued, Running, Paused, Errored, Terminated, Complete, Waiting, WaitingForPause, RollingBack, Unknown];
        let refused = |action, state| state_refuses(action, state).is_some();
        for state in all {
            let finished = state.is_finished();
            assert_eq!(refused(Pause, state), finished || state == RollingBack, "pause {state:?}");
            assert_eq!(refused(SendEvent, state), finished || state == RollingBack, "send event {state:?}");
            assert_eq!(refused(Terminate, state), finished, "terminate {state:?}");
            assert_eq!(refused(Resume, state), !matches!(state, Paused | WaitingForPause | Unknown), "resume {state:?}");
            assert_eq!(refused(Restart, state), state == RollingBack, "restart {state:?}");
        }
        assert_eq!(state_refuses(SendEvent, Complete).as_deref(), Some("the instance cannot be sent an event: it has finished (complete)"));
        assert_eq!(state_refuses(Resume, Running).as_deref(), Some("the instance cannot be resumed: it is not paused (running)"));
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

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The engine's words for each kind, as they appear inside its messages.
    fn coded() -> impl Strategy<Value = (&'static str, EngineErrorKind)> {
        prop_oneof![
            Just(("(instance.not_found) Instance does not exist", EngineErrorKind::NotFound)),
            Just(("instance.not_found", EngineErrorKind::NotFound)),
            Just((r#"(instance.already_exists) Workflow instance with id "x" already exists"#, EngineErrorKind::AlreadyExists)),
            Just((r#"(instance.cannot_restart) Step "s" not found in execution history"#, EngineErrorKind::StepNotFound)),
            Just(("(instance.cannot_terminate) Cannot terminate instance since its on a finite state", EngineErrorKind::InvalidState)),
            Just((r#"(instance.cannot_resume) Cannot resume instance with status "complete""#, EngineErrorKind::InvalidState)),
            Just(("Cannot pause instance", EngineErrorKind::InvalidState)),
            Just(("instance is already running", EngineErrorKind::InvalidState)),
            Just(("(instance.invalid_id) Instance ID is invalid", EngineErrorKind::InvalidId)),
            Just(("Workflow instance has invalid id", EngineErrorKind::InvalidId)),
        ]
    }

    proptest! {
        /// A message carrying one of the engine's codes or phrases, whatever surrounds it
        /// (the error's name, a stack, RPC's wrapping), means what that code means.
        #[test]
        fn codes_are_read_wherever_they_sit((words, kind) in coded(), before in "[a-zA-Z:() ]{0,30}", after in "[a-zA-Z0-9 .]{0,30}") {
            let message = format!("{before}{words}{after}");
            prop_assert_eq!(classify_engine_error(&message), kind, "{}", message);
        }

        /// Any message is classified without panicking; one with no code or phrase of the
        /// engine's is `Other` (an internal error, not a caller's mistake).
        #[test]
        fn other_messages_are_other(message in "[a-z0-9 ]{0,80}") {
            let kind = classify_engine_error(&message);
            let lower = message.to_ascii_lowercase();
            if !STATE_REFUSALS.iter().any(|w| lower.contains(w)) && !message.contains("invalid id") {
                prop_assert_eq!(kind, EngineErrorKind::Other);
            }
        }

        #[test]
        fn any_text_is_classified(message in ".{0,200}") {
            let _ = classify_engine_error(&message);
        }
    }
}
