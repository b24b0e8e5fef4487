//! What an answer from an outside service means for the step that called it:
//! a 2xx is success; anything else fails the attempt so the engine retries,
//! except the answers a retry cannot change (a 4xx from a service that says so).

use crate::core::step_error::StepError;

/// Whether a 4xx answer from this service is final (a declined payment) or may
/// pass on a retry (a rate limit, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrors {
    Retry,
    Final,
}

/// Maps a service's status to the step's outcome, keeping the start of the body
/// in the message so the instance's error says what the service said.
pub fn check_status(service: &str, status: u16, body: &str, client_errors: ClientErrors) -> Result<(), StepError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let excerpt: String = body.chars().take(200).collect();
    let message = format!("{service} answered {status}: {excerpt}");
    if (400..500).contains(&status) && client_errors == ClientErrors::Final && status != 408 && status != 429 {
        Err(StepError::NonRetryable(message))
    } else {
        Err(StepError::Failed(message))
    }
}

/// What `encodeURIComponent` leaves as it is: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A value as one path segment, encoded as JavaScript's `encodeURIComponent` does.
pub fn encode_uri_component(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// Joins a base URL from config and a path without doubling or dropping the slash.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(check_status("payments", 201, "", ClientErrors::Final), Ok(()));
        assert!(
            matches!(check_status("payments", 503, "down", ClientErrors::Final), Err(StepError::Failed(m)) if m == "payments answered 503: down")
        );
        assert!(
            matches!(check_status("payments", 402, "declined", ClientErrors::Final), Err(StepError::NonRetryable(m)) if m.contains("declined"))
        );
        assert!(matches!(check_status("payments", 429, "", ClientErrors::Final), Err(StepError::Failed(_))));
        assert!(matches!(check_status("inventory", 404, "", ClientErrors::Retry), Err(StepError::Failed(_))));
    }

    #[test]
    fn path_segments_are_encoded_like_encode_uri_component() {
        assert_eq!(encode_uri_component("p-1_a.b"), "p-1_a.b");
        assert_eq!(encode_uri_component("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(encode_uri_component("!~*'()"), "!~*'()");
        assert_eq!(encode_uri_component("ü"), "%C3%BC");
        assert_eq!(encode_uri_component(".."), "..");
    }

    #[test]
    fn urls() {
        assert_eq!(join_url("http://a/b/", "/check/1"), "http://a/b/check/1");
        assert_eq!(join_url("http://a", "send"), "http://a/send");
    }
}
