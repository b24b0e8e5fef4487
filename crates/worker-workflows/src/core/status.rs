//! Instance status as the engine reports it, and what the engine's error messages mean.

use serde::{Deserialize, Serialize};

/// Every status the engine reports, with a fallback for any it adds later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InstanceState {
    /// Created, not started yet.
    Queued,
    /// Running a step, or between steps.
    Running,
    /// Paused; resumes on `resume()`.
    Paused,
    /// Failed; the status carries the error.
    Errored,
    /// Terminated.
    Terminated,
    /// Completed with an output.
    Complete,
    /// Sleeping or waiting for an event.
    Waiting,
    /// A pause was asked for; it pauses once the running step ends.
    WaitingForPause,
    /// Running the compensations of its steps (production reports it while rollbacks
    /// run; the local engine stays `running` meanwhile).
    RollingBack,
    /// A status this code does not know.
    #[serde(other)]
    Unknown,
}

impl InstanceState {
    /// The instance will not run again unless restarted.
    pub fn is_finished(self) -> bool {
        matches!(self, InstanceState::Complete | InstanceState::Errored | InstanceState::Terminated)
    }

    /// The engine's name for the state (`"waitingForPause"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Queued => "queued",
            InstanceState::Running => "running",
            InstanceState::Paused => "paused",
            InstanceState::Errored => "errored",
            InstanceState::Terminated => "terminated",
            InstanceState::Complete => "complete",
            InstanceState::Waiting => "waiting",
            InstanceState::WaitingForPause => "waitingForPause",
            InstanceState::RollingBack => "rollingBack",
            InstanceState::Unknown => "unknown",
        }
    }
}

/// The error of an errored instance. Older engines report a bare string; it becomes the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawInstanceError")]
pub struct InstanceError {
    /// The error's name (`"Error"`, `"NonRetryableError"`, …).
    pub name: String,
    /// Its message.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawInstanceError {
    Full {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    Message(String),
}

impl From<RawInstanceError> for InstanceError {
    fn from(raw: RawInstanceError) -> Self {
        match raw {
            RawInstanceError::Full { name, message } => {
                InstanceError { name: name.unwrap_or_else(|| "Error".into()), message: message.unwrap_or_default() }
            }
            RawInstanceError::Message(message) => InstanceError { name: "Error".into(), message },
        }
    }
}

/// `instance.status()`: state, error when errored, output when complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Where the instance stands.
    pub status: InstanceState,
    /// The error, when errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// The output, when complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_state_round_trips_and_unknown_ones_fall_back() {
        for name in
            ["queued", "running", "paused", "errored", "terminated", "complete", "waiting", "waitingForPause", "rollingBack", "unknown"]
        {
            let state: InstanceState = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(state.as_str(), name);
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        }
        let later: InstanceState = serde_json::from_value(json!("hibernating")).unwrap();
        assert_eq!(later, InstanceState::Unknown);
        let rolling: InstanceStatus = serde_json::from_value(json!({"status": "rollingBack", "output": null})).unwrap();
        assert_eq!(rolling.status, InstanceState::RollingBack);
        assert!(!rolling.status.is_finished(), "compensations are still running");
    }

    #[test]
    fn status_with_error_and_output() {
        let s: InstanceStatus = serde_json::from_value(json!({
            "status": "errored",
            "error": {"name": "NonRetryableError", "message": "card declined"},
            "output": null,
            "__LOCAL_DEV_STEP_OUTPUTS": []
        }))
        .unwrap();
        assert_eq!(s.status, InstanceState::Errored);
        assert_eq!(s.error, Some(InstanceError { name: "NonRetryableError".into(), message: "card declined".into() }));
        assert_eq!(s.output, None);
        let old: InstanceStatus = serde_json::from_value(json!({"status": "errored", "error": "boom"})).unwrap();
        assert_eq!(old.error.unwrap().message, "boom");
        let done: InstanceStatus = serde_json::from_value(json!({"status": "complete", "output": {"a": 1}})).unwrap();
        assert_eq!(done.output, Some(json!({"a": 1})));
        assert!(done.status.is_finished());
    }
}
